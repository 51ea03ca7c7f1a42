"""Streaming readers: bronze bytes to raw Arrow batches, one chunk at a time.

A reader never holds a whole file: it cuts the stream into blocks at line breaks, so that each
chunk knows its first line number, and parses chunks independently (in parallel, in the
runner). Each chunk becomes a :class:`RawBatch`: one Arrow column per contract column holding
the raw value (strings for CSV; typed values where the JSON fast path parsed them), the
physical row number of every row, and the rows that could not be parsed at all.

JSON and NDJSON take a fast path through pyarrow's JSON parser with an explicit schema built
from the contract. Any chunk the fast path rejects (a bad line, a value of another JSON type)
is parsed again line by line in Python, so that each bad row is reported with its number and
text while the good rows go on.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pajson

from lakehouse_common.contracts import Column, Contract
from lakehouse_silverizer.exceptions import FileUnreadableError

RAW_PREVIEW = 4000  # characters of raw text kept per quarantined row


@dataclass(frozen=True)
class RowError:
    """A row that cannot go to silver, with where it came from and why."""

    row: int | None
    field: str | None
    reason: str
    raw: str


@dataclass
class RawBatch:
    table: pa.Table
    rows: pa.Array
    errors: list[RowError] = field(default_factory=list)
    raw_line: Callable[[int], str] | None = None
    extra: dict[str, pa.Array] = field(default_factory=dict)
    source_bytes: int = 0

    def raw_text(self, index: int) -> str:
        if self.raw_line is not None:
            return self.raw_line(index)[:RAW_PREVIEW]
        row = {name: self.table.column(name)[index].as_py() for name in self.table.column_names}
        return json.dumps(row, ensure_ascii=False, default=str)[:RAW_PREVIEW]


@dataclass(frozen=True)
class Chunk:
    """Whole lines of a bronze object; ``first_line`` is the 1-based number of its first line."""

    data: bytes
    first_line: int


# ---------------------------------------------------------------------------------------------
# Byte streams to chunks of whole lines
# ---------------------------------------------------------------------------------------------
def iter_chunks(stream: Any, block_size: int, first_line: int = 1, head: bytes = b"") -> Iterator[Chunk]:
    """Cut a binary stream into chunks that end at a line break (the last one may not)."""
    carry = head
    line = first_line
    while True:
        block = stream.read(block_size)
        if not block:
            break
        data = carry + bytes(block) if carry else bytes(block)
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        chunk, carry = data[: cut + 1], data[cut + 1 :]
        yield Chunk(chunk, line)
        line += int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == 10))
    if carry:
        yield Chunk(carry, line)


def read_first_line(stream: Any, block_size: int) -> tuple[bytes, bytes]:
    """Read up to the first line break: returns (first line without the break, what follows)."""
    buffered = b""
    while True:
        block = stream.read(block_size)
        if not block:
            return buffered, b""
        buffered += bytes(block)
        cut = buffered.find(b"\n")
        if cut >= 0:
            return buffered[:cut].rstrip(b"\r"), buffered[cut + 1 :]


PROBE_BYTES = 1 << 16


def read_header(file: Any, size: int) -> tuple[bytes, int]:
    """The first line of a random-access file (without its break) and the offset after it."""
    offset, head = 0, b""
    while offset < size:
        probe = bytes(file.read_at(min(PROBE_BYTES, size - offset), offset))
        found = probe.find(b"\n")
        if found >= 0:
            return (head + probe[:found]).rstrip(b"\r"), offset + found + 1
        head += probe
        offset += len(probe)
    return head.rstrip(b"\r"), size


class RangeSource:
    """A random-access object cut into byte ranges of whole lines, read by the workers themselves.

    Range ``[start, stop)`` owns the lines whose first byte lies in it, so neighbouring ranges
    agree on their boundary without talking to each other; the main thread only hands out
    offsets and adds up line counts. Works on local files and on S3 (ranged GETs).
    """

    def __init__(
        self,
        file: Any,
        size: int,
        begin: int,
        block_size: int,
        first_line: int,
        key: str = "",
        max_line: int | None = None,
    ) -> None:
        self.file = file
        self.size = size
        self.begin = begin
        self.block_size = block_size
        self.first_line = first_line
        self.key = key
        self.max_line = max_line

    def ranges(self) -> Iterator[tuple[int, int]]:
        start = self.begin
        while start < self.size:
            yield start, min(start + self.block_size, self.size)
            start += self.block_size

    def read(self, byte_range: tuple[int, int]) -> tuple[bytes, int]:
        """The whole lines starting in the range, and how many lines that is."""
        start, stop = byte_range
        first = start if start == self.begin else self.line_start(start)
        end = self.size if stop >= self.size else self.line_start(stop)
        if end <= first:
            return b"", 0
        # Lines that start in the range are at most one block long, except the one crossing its
        # end: a line longer than max_line is never read into memory.
        if self.max_line is not None and end - max(stop, first) > self.max_line:
            raise FileUnreadableError(
                self.key,
                f"a line starting in bytes {first}-{stop} is {end - max(stop, first) >> 20}+ MiB long, longer "
                f"than the maximum of {self.max_line >> 20} MiB (LAKEHOUSE_SILVERIZER_MAX_LINE_MB)",
            )
        data = bytes(self.file.read_at(end - first, first))
        return data, count_lines(data)

    def line_start(self, position: int) -> int:
        """The first line start at or after ``position``."""
        offset = position - 1
        while offset < self.size:
            probe = bytes(self.file.read_at(min(PROBE_BYTES, self.size - offset), offset))
            found = probe.find(b"\n")
            if found >= 0:
                return offset + found + 1
            offset += len(probe)
        return self.size


class Lines:
    """Random access to the lines of a chunk, indexed on first use (error path only)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._starts: np.ndarray | None = None

    def __call__(self, index: int) -> str:
        if self._starts is None:
            breaks = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == 10)
            self._starts = np.concatenate(([0], breaks + 1))
        if index >= len(self._starts):
            return ""
        start = int(self._starts[index])
        end = self.data.find(b"\n", start)
        raw = self.data[start : end if end >= 0 else len(self.data)]
        return raw.rstrip(b"\r").decode("utf-8", "replace")


def count_lines(data: bytes) -> int:
    """Lines in a chunk (a last line without a break counts)."""
    breaks = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))
    return breaks + (0 if not data or data.endswith(b"\n") else 1)


UTF8 = {"utf-8", "utf8"}


def to_utf8(chunk: Chunk, encoding: str, key: str) -> bytes:
    """Return the chunk as UTF-8, or raise naming the first line that is not valid.

    UTF-8 input is returned as is: the readers validate it where they parse it.
    """
    if encoding in UTF8:
        return chunk.data
    try:
        return chunk.data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise _decode_error(chunk, key, encoding, exc) from exc


def utf8_error(chunk: Chunk, key: str) -> FileUnreadableError:
    """Name the first line of a chunk that is not valid UTF-8 (error path only)."""
    try:
        chunk.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _decode_error(chunk, key, "utf-8", exc)
    return FileUnreadableError(key, f"invalid UTF-8 near line {chunk.first_line}")


def _decode_error(chunk: Chunk, key: str, encoding: str, exc: UnicodeDecodeError) -> FileUnreadableError:
    line = chunk.first_line + chunk.data.count(b"\n", 0, exc.start)
    return FileUnreadableError(
        key,
        f"line {line} is not valid {encoding} (byte 0x{chunk.data[exc.start]:02x}); "
        "set format.encoding in the contract to the file's real encoding",
    )


# ---------------------------------------------------------------------------------------------
# Paths: 'a.b' and 'list[].field'
# ---------------------------------------------------------------------------------------------
def split_path(path: str) -> list[tuple[str, bool]]:
    """'professional_roles[].id' -> [('professional_roles', True), ('id', False)]."""
    parts = []
    for part in path.split("."):
        is_list = part.endswith("[]")
        parts.append((part[:-2] if is_list else part, is_list))
    return parts


def py_extract(record: Any, steps: list[tuple[str, bool]]) -> Any:
    value = record
    for i, (name, is_list) in enumerate(steps):
        if not isinstance(value, dict):
            return None
        value = value.get(name)
        if is_list:
            if value is None:
                return None
            if not isinstance(value, list):
                return [value]
            rest = steps[i + 1 :]
            return [py_extract(item, rest) if rest else item for item in value]
    return value


def arrow_extract(array: pa.Array, steps: list[tuple[str, bool]]) -> pa.Array:
    """The Arrow twin of :func:`py_extract` on a parsed struct array."""
    value: pa.Array = array
    for i, (name, is_list) in enumerate(steps):
        value = pc.struct_field(value, name)
        if is_list:
            rest = steps[i + 1 :]
            list_array = value
            if isinstance(list_array, pa.ChunkedArray):
                list_array = list_array.combine_chunks()
            inner = list_array.values
            if rest:
                inner = arrow_extract(inner, rest)
            offsets = list_array.offsets
            return pa.ListArray.from_arrays(offsets, inner, mask=list_array.is_null())
    return value


# ---------------------------------------------------------------------------------------------
# Python values (JSON documents, slow path) to raw string columns
# ---------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def records_to_batch(
    records: list[tuple[int, Any, str]],
    contract: Contract,
    errors: list[RowError],
    extra_fields: list[str] | None = None,
) -> RawBatch:
    """Build a raw batch from (row number, parsed record, raw text) triples."""
    columns: dict[str, pa.Array] = {}
    for column in contract.columns:
        steps = split_path(column.path)
        values = [py_extract(rec, steps) for _, rec, _ in records]
        if column.type == "list<string>":
            lists = [None if v is None else [_text(x) for x in v] for v in values]
            columns[column.name] = pa.array(lists, type=pa.list_(pa.string()))
        else:
            columns[column.name] = pa.array([_text(v) for v in values], type=pa.string())
    raws = [raw for _, _, raw in records]
    extra: dict[str, pa.Array] = {}
    if extra_fields:
        extra["_rescued_data"] = pa.array(
            [
                _rescued({k: rec.get(k) for k in extra_fields if isinstance(rec, dict) and k in rec})
                for _, rec, _ in records
            ],
            type=pa.string(),
        )
    return RawBatch(
        table=pa.table(columns) if columns else pa.table({"_": pa.nulls(len(records))}),
        rows=pa.array([row for row, _, _ in records], type=pa.int64()),
        errors=errors,
        raw_line=lambda i: raws[i],
        extra=extra,
    )


def _rescued(values: dict[str, Any]) -> str | None:
    return json.dumps(values, ensure_ascii=False, sort_keys=True) if values else None


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------
class CsvReader:
    """CSV with a header line; every contract column is read as text and typed later."""

    def __init__(self, contract: Contract, key: str, block_size: int) -> None:
        self.contract = contract
        self.key = key
        self.block_size = block_size
        self.fmt = contract.format
        self.header: list[str] = []
        self.extra_columns: list[str] = []
        self.rescue = False
        self.typed_columns, self.timestamp_format = _csv_typed_columns(contract)

    def _read(
        self, data: bytes, include: list[str], types: dict[str, pa.DataType], invalid: list[tuple[int, str, str]]
    ) -> pa.Table:
        def on_invalid(row: pcsv.InvalidRow) -> str:
            invalid.append(
                (row.number or 0, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}")
            )
            return "skip"

        return pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(
                column_names=self.header, use_threads=False, block_size=max(len(data) + 1, 1 << 16)
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=self.fmt.delimiter,
                quote_char=self.fmt.quote_char,
                newlines_in_values=self.fmt.multiline,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=include,
                null_values=[""],  # only an empty field is null: "NA" or "null" are text
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                timestamp_parsers=[self.timestamp_format] if self.timestamp_format else None,
            ),
        )

    def open(self, stream: Any) -> Iterator[Chunk]:
        """Sequential chunks of a stream (compressed objects cannot be read by range)."""
        first, rest = read_first_line(stream, self.block_size)
        self._header(first, more=bool(rest))
        return iter_chunks(stream, self.block_size, first_line=2, head=rest)

    def open_ranges(self, file: Any, size: int, max_line: int | None = None) -> RangeSource:
        """Ranges for the workers (not for ``multiline`` CSV, whose values may hold line breaks)."""
        first, begin = read_header(file, size)
        self._header(first, more=begin < size)
        return RangeSource(file, size, begin, self.block_size, 2, self.key, max_line)

    def _header(self, first: bytes, *, more: bool) -> None:
        if not first.strip() and not more:
            raise FileUnreadableError(self.key, "the file is empty (no header line)")
        if first.startswith(codecs.BOM_UTF8):  # Excel and many exporters write one, whatever the encoding
            first = first[len(codecs.BOM_UTF8) :]
        header = Chunk(first, 1)
        try:
            header_text = to_utf8(header, self.fmt.encoding, self.key).decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError:
            raise utf8_error(header, self.key) from None
        self.header = next(csv.reader([header_text], delimiter=self.fmt.delimiter, quotechar=self.fmt.quote_char))
        self.header = [h.strip() for h in self.header]
        if len(set(self.header)) != len(self.header):
            dupes = sorted({h for h in self.header if self.header.count(h) > 1})
            raise FileUnreadableError(self.key, f"header repeats column names: {', '.join(dupes)}")
        wanted = [c.path for c in self.contract.columns]
        missing = [c for c in wanted if c not in self.header]
        if missing:
            raise FileUnreadableError(
                self.key,
                f"header lacks contract columns {', '.join(missing)}; the header has: {', '.join(self.header)}",
            )
        self.extra_columns = [h for h in self.header if h not in wanted]

    def _blank_unbalanced(self, data: bytes, first_line: int) -> tuple[bytes, list[RowError]]:
        """Blank the lines with an odd number of quote characters (keeping the line numbering)."""
        quote = self.fmt.quote_char.encode()
        lines = data.split(b"\n")
        errors = []
        for index, line in enumerate(lines):
            if line.count(quote) % 2:
                text = line.rstrip(b"\r").decode("utf-8", "replace")
                reason = f"malformed CSV row: unterminated quote ({self.fmt.quote_char}) on the line"
                errors.append(RowError(first_line + index, None, reason, text[:RAW_PREVIEW]))
                lines[index] = b""
        return b"\n".join(lines), errors

    def parse(self, chunk: Chunk) -> RawBatch:
        data = to_utf8(chunk, self.fmt.encoding, self.key)
        invalid: list[tuple[int, str, str]] = []
        include = [c.path for c in self.contract.columns]
        if self.rescue:
            include += self.extra_columns
        table = None
        if self.typed_columns:
            # Fast path: the CSV parser converts numbers, booleans and timestamps itself. Any
            # value it rejects sends this chunk down the text path, which names each bad row.
            with contextlib.suppress(pa.ArrowInvalid):
                types = {**dict.fromkeys(include, pa.string()), **self.typed_columns}
                table = self._read(data, include, types, invalid)
            if table is None:
                invalid.clear()
        if table is None:
            try:
                table = self._read(data, include, dict.fromkeys(include, pa.string()), invalid)
            except pa.ArrowInvalid as exc:
                if "UTF8" in str(exc):
                    raise utf8_error(Chunk(data, chunk.first_line), self.key) from exc
                raise FileUnreadableError(self.key, f"cannot parse CSV near line {chunk.first_line}: {exc}") from exc
        unterminated: list[RowError] = []
        if not self.fmt.multiline and any("\n" in text for _, text, _ in invalid):
            # A quote left open swallowed the lines after it: values cannot span lines here, so
            # quarantine the lines whose quotes do not balance and parse the others again.
            data, unterminated = self._blank_unbalanced(data, chunk.first_line)
            invalid.clear()
            table = self._read(data, include, dict.fromkeys(include, pa.string()), invalid)
        # The parser numbers rows counting non-blank lines only; map them back to physical lines.
        n_lines = count_lines(data)
        if table.num_rows + len(invalid) == n_lines:
            physical = np.arange(1, n_lines + 1, dtype=np.int64)
        else:
            physical = np.array(
                [i + 1 for i, line in enumerate(data.split(b"\n")[:n_lines]) if line.strip()], dtype=np.int64
            )
        bad = np.array(sorted({number - 1 for number, _, _ in invalid if 0 < number <= len(physical)}), dtype=np.int64)
        local = np.delete(physical, bad) if len(bad) else physical
        exact = len(local) == table.num_rows and len(bad) == len(invalid)
        if exact:
            rows = pa.array(local + (chunk.first_line - 1))
        else:  # quoted line breaks: physical numbers are not known exactly, count records instead
            rows = pa.array(np.arange(table.num_rows, dtype=np.int64) + chunk.first_line)
        errors = [
            RowError(
                row=chunk.first_line - 1 + (int(physical[number - 1]) if exact else number),
                field=None,
                reason=f"malformed CSV row: {why}",
                raw=text[:RAW_PREVIEW],
            )
            for number, text, why in invalid
        ]
        errors = sorted([*errors, *unterminated], key=lambda e: e.row or 0)
        rows_np = rows.to_numpy()
        first = chunk.first_line
        lines = Lines(data)

        def raw_line(i: int) -> str:
            return lines(int(rows_np[i]) - first)

        rename = {c.path: c.name for c in self.contract.columns}
        columns = {rename[c]: table.column(c) for c in include if c in rename}
        extra: dict[str, pa.Array] = {}
        if self.rescue and self.extra_columns:
            extra["_rescued_data"] = _rescue_columns({c: table.column(c) for c in self.extra_columns})
        return RawBatch(
            table=pa.table(columns), rows=rows, errors=errors, raw_line=raw_line, extra=extra, source_bytes=len(data)
        )


_CSV_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def _csv_typed_columns(contract: Contract) -> tuple[dict[str, pa.DataType], str | None]:
    """Columns the CSV parser can type by itself (no normalisation or mapping to apply first).

    Timestamps qualify when they all share one strptime format with an offset (%z), so that the
    parser's result is the same instant the text path computes.
    """
    formats = {c.strptime_format for c in contract.columns if c.type == "timestamp"}
    timestamp_format = formats.pop() if len(formats) == 1 else None
    if timestamp_format is not None and "%z" not in timestamp_format:
        timestamp_format = None
    typed: dict[str, pa.DataType] = {}
    for column in contract.columns:
        if column.normalize or column.map or column.type not in _CSV_TYPES:
            continue
        if column.type == "timestamp" and timestamp_format is None:
            continue
        typed[column.path] = _CSV_TYPES[column.type]
    return typed, timestamp_format


def _rescue_columns(columns: dict[str, pa.ChunkedArray]) -> pa.Array:
    names = list(columns)
    values = [col.to_pylist() for col in columns.values()]
    out = []
    for row in zip(*values, strict=True):
        present = {n: v for n, v in zip(names, row, strict=True) if v is not None}
        out.append(_rescued(present))
    return pa.array(out, type=pa.string())


# ---------------------------------------------------------------------------------------------
# NDJSON
# ---------------------------------------------------------------------------------------------
_LEAF_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.string(),
    "timestamp": pa.string(),
}


def json_parse_schema(columns: tuple[Column, ...]) -> pa.Schema | None:
    """The explicit schema for pyarrow's JSON parser, or None when a column needs Python."""
    tree: dict[str, Any] = {}
    for column in columns:
        if column.type == "json":
            return None
        steps = split_path(column.path)
        node = tree
        for i, (name, is_list) in enumerate(steps):
            last = i == len(steps) - 1
            if is_list:
                if last:
                    node[name] = ("list_leaf", pa.string())
                else:
                    entry = node.setdefault(name, ("list", {}))
                    if entry[0] != "list":
                        return None
                    node = entry[1]
            elif last:
                node[name] = ("leaf", pa.string() if column.type == "list<string>" else _LEAF_TYPES[column.type])
            else:
                entry = node.setdefault(name, ("struct", {}))
                if entry[0] != "struct":
                    return None
                node = entry[1]

    def build(children: dict[str, Any]) -> list[pa.Field]:
        fields = []
        for name, (kind, payload) in children.items():
            if kind == "leaf":
                fields.append(pa.field(name, payload))
            elif kind == "list_leaf":
                fields.append(pa.field(name, pa.list_(payload)))
            elif kind == "struct":
                fields.append(pa.field(name, pa.struct(build(payload))))
            else:
                fields.append(pa.field(name, pa.list_(pa.struct(build(payload)))))
        return fields

    return pa.schema(build(tree))


class NdjsonReader:
    """One JSON object per line."""

    def __init__(self, contract: Contract, key: str, block_size: int) -> None:
        self.contract = contract
        self.key = key
        self.block_size = block_size
        self.schema = None if contract.inferred else json_parse_schema(contract.columns)
        self.steps = {c.name: split_path(c.path) for c in contract.columns}
        self.extra_fields: list[str] | None = None
        self.utf8 = contract.format.encoding in UTF8

    def open(self, stream: Any) -> Iterator[Chunk]:
        """Sequential chunks of a stream (compressed objects cannot be read by range)."""
        first = stream.read(self.block_size)
        if not first:
            raise FileUnreadableError(self.key, "the file is empty")
        return iter_chunks(stream, self.block_size, head=bytes(first))

    def open_ranges(self, file: Any, size: int, max_line: int | None = None) -> RangeSource:
        if size == 0:
            raise FileUnreadableError(self.key, "the file is empty")
        return RangeSource(file, size, 0, self.block_size, 1, self.key, max_line)

    def parse(self, chunk: Chunk) -> RawBatch:
        data = to_utf8(chunk, self.contract.format.encoding, self.key)
        if chunk.first_line == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        if self.schema is not None and self.extra_fields is None:
            batch = self._fast(data, chunk.first_line)
            if batch is not None:
                return batch
        return self._slow(data, chunk.first_line)

    def _fast(self, data: bytes, first_line: int) -> RawBatch | None:
        n_lines = count_lines(data)
        try:
            table = pajson.read_json(
                io.BytesIO(data),
                read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16)),
                parse_options=pajson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore"),
            )
        except pa.ArrowInvalid:
            return None
        if table.num_rows != n_lines:  # blank lines: numbering needs the slow path
            return None
        struct = table.to_struct_array()
        columns = pa.table({name: arrow_extract(struct, steps) for name, steps in self.steps.items()})
        if self.utf8:
            try:
                columns.validate(full=True)  # pyarrow's JSON parser does not check UTF-8
            except pa.ArrowInvalid:
                raise utf8_error(Chunk(data, first_line), self.key) from None
        rows = pa.array(np.arange(first_line, first_line + n_lines, dtype=np.int64))
        return RawBatch(table=columns, rows=rows, raw_line=Lines(data), source_bytes=len(data))

    def _slow(self, data: bytes, first_line: int) -> RawBatch:
        records: list[tuple[int, Any, str]] = []
        errors: list[RowError] = []
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise utf8_error(Chunk(data, first_line), self.key) from None
        for offset, raw in enumerate(data.split(b"\n")):
            text = raw.decode("utf-8").strip()
            if not text:
                continue
            row = first_line + offset
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                errors.append(RowError(row, None, f"invalid JSON: {exc.msg} at column {exc.colno}", text[:RAW_PREVIEW]))
                continue
            if not isinstance(record, dict):
                errors.append(
                    RowError(row, None, f"expected a JSON object, got {type(record).__name__}", text[:RAW_PREVIEW])
                )
                continue
            records.append((row, record, text))
        batch = records_to_batch(records, self.contract, errors, self.extra_fields)
        batch.source_bytes = len(data)
        return batch


# ---------------------------------------------------------------------------------------------
# JSON documents (an API page: the records sit at records_path)
# ---------------------------------------------------------------------------------------------
class JsonDocumentReader:
    """One JSON document per object; records at ``format.records_path`` (or the document itself)."""

    def __init__(self, contract: Contract, key: str, max_bytes: int, batch_rows: int) -> None:
        self.contract = contract
        self.key = key
        self.max_bytes = max_bytes
        self.batch_rows = batch_rows
        self.extra_fields: list[str] | None = None

    def load(self, stream: Any) -> list[Any]:
        data = bytes(stream.read(self.max_bytes + 1))
        if len(data) > self.max_bytes:
            raise FileUnreadableError(
                self.key,
                f"document is larger than {self.max_bytes >> 20} MiB; store big sources as ndjson "
                "(or raise LAKEHOUSE_SILVERIZER_MAX_DOCUMENT_MB)",
            )
        if not data.strip():
            raise FileUnreadableError(self.key, "the file is empty")
        try:
            text = to_utf8(Chunk(data, 1), self.contract.format.encoding, self.key).decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError:
            raise utf8_error(Chunk(data, 1), self.key) from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileUnreadableError(
                self.key, f"invalid or truncated JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
        path = self.contract.format.records_path
        records: Any = document
        if path:
            for name in path.split("."):
                if not isinstance(records, dict) or name not in records:
                    keys = ", ".join(sorted(records)) if isinstance(records, dict) else type(records).__name__
                    raise FileUnreadableError(
                        self.key, f"records_path {path!r} not found (at {name!r}; the document has: {keys})"
                    )
                records = records[name]
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            raise FileUnreadableError(self.key, f"records_path {path!r} is a {type(records).__name__}, not a list")
        return records

    def batches(self, records: list[Any]) -> Iterator[RawBatch]:
        where = self.contract.format.records_path or "document"
        for start in range(0, max(len(records), 1), self.batch_rows):
            good: list[tuple[int, Any, str]] = []
            errors: list[RowError] = []
            for index, record in enumerate(records[start : start + self.batch_rows], start=start + 1):
                raw = json.dumps(record, ensure_ascii=False)
                if isinstance(record, dict):
                    good.append((index, record, raw))
                else:
                    errors.append(
                        RowError(index, None, f"{where}[{index - 1}] is a {type(record).__name__}, not an object", raw)
                    )
            yield records_to_batch(good, self.contract, errors, self.extra_fields)
