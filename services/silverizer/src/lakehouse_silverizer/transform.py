"""Apply a contract to a raw batch: normalise, cast, check expectations, hash keys.

Everything here is vectorised with pyarrow compute; a per-row Python path runs only for a
column that holds at least one value that does not convert, to name each bad row. The
expectations of a contract are evaluated by DuckDB over the Arrow batch in one query, which
also hashes the primary key for de-duplication.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_common.contracts import Column, Contract, Expectation
from lakehouse_silverizer.exceptions import ExpectationFailedError
from lakehouse_silverizer.readers import RawBatch, RowError
from lakehouse_silverizer.writers import Split, split_by_partition

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "json": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list<string>": pa.list_(pa.string()),
}
META_FIELDS = [
    pa.field("_bronze_key", pa.dictionary(pa.int32(), pa.string()), nullable=False),  # one value per file
    pa.field("_bronze_row", pa.int64(), nullable=False),
    pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
]
RESCUED = pa.field("_rescued_data", pa.string())
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def silver_schema(columns: Sequence[Column], rescued: bool = False) -> pa.Schema:
    fields = [pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in columns]
    return pa.schema([*fields, *([RESCUED] if rescued else []), *META_FIELDS])


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------
def normalize(array: pa.Array, column: Column) -> pa.Array:
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        return array
    for step in column.normalize:
        if step == "strip":
            array = pc.utf8_trim_whitespace(array)
        elif step == "lower":
            array = pc.utf8_lower(array)
        elif step == "upper":
            array = pc.utf8_upper(array)
        elif step == "collapse_spaces":
            array = pc.replace_substring_regex(array, r"\s+", " ")
        elif step == "strip_html":
            array = pc.replace_substring_regex(array, r"<[^>]*>", "")
            for entity, char in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&")):
                array = pc.replace_substring(array, entity, char)
        elif step == "null_if_empty":
            array = pc.if_else(pc.equal(array, ""), pa.scalar(None, array.type), array)
    for old, new in column.map.items():
        array = pc.if_else(pc.equal(array, old), pa.scalar(new, array.type), array)
    return array


# ---------------------------------------------------------------------------------------------
# Casting with per-row error capture
# ---------------------------------------------------------------------------------------------
def _convert_one(text: str, type_name: str) -> object:
    value = text.strip()
    if type_name == "int64":
        return int(value)
    if type_name == "float64":
        return float(value)
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


def cast_column(array: pa.Array, column: Column) -> tuple[pa.Array, np.ndarray | None, str]:
    """Cast to the contract type. Returns (typed array, mask of bad rows or None, reason)."""
    target = ARROW_TYPES[column.type]
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    if array.type == target:
        return array, None, ""
    if column.type in {"date", "timestamp"}:
        if not pa.types.is_string(array.type):
            array = pc.cast(array, pa.string())
        fmt = column.strptime_format
        parsed = pc.strptime(array, format=fmt, unit="us", error_is_null=True)
        if parsed.type.tz is None and column.type == "timestamp":
            parsed = pc.assume_timezone(parsed, "UTC")
        bad = pc.and_(pc.is_valid(array), pc.is_null(parsed))
        typed = pc.cast(parsed, target)
        if pc.any(bad).as_py():
            return typed, bad.to_numpy(zero_copy_only=False), f"does not match the format {fmt!r}"
        return typed, None, ""
    if column.type == "list<string>":
        return pc.cast(array, target), None, ""
    if column.type in {"string", "json"}:
        return pc.cast(array, target), None, ""
    try:
        source = array
        if pa.types.is_string(array.type):
            source = pc.utf8_trim_whitespace(array)
            if column.type == "bool":
                source = pc.utf8_lower(source)
        return pc.cast(source, target), None, ""
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = array.to_pylist()
    converted: list[object] = []
    bad_rows = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if value is None:
            converted.append(None)
            continue
        try:
            converted.append(_convert_one(str(value), column.type))
        except (ValueError, OverflowError):
            bad_rows[i] = True
            converted.append(None)
    return pa.array(converted, type=target), bad_rows, f"is not a valid {column.type}"


# ---------------------------------------------------------------------------------------------
# Expectations and key hashing through DuckDB
# ---------------------------------------------------------------------------------------------
_local = threading.local()


def _duckdb() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(config={"threads": 1})
        _local.con = con
    return con


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def evaluate(
    table: pa.Table, expectations: Sequence[Expectation], key: Sequence[str]
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Per expectation a boolean mask of failing rows, and the key hashes (uint64)."""
    selects = [f"coalesce(({e.sql}), true) AS e{i}" for i, e in enumerate(expectations)]
    if key:
        selects.append(f"hash({', '.join(_quote(k) for k in key)}) AS __key")
    if not selects or table.num_rows == 0:
        return [np.zeros(table.num_rows, dtype=bool) for _ in expectations], (
            np.zeros(0, dtype=np.uint64) if key else None
        )
    # Hand DuckDB only the columns the expressions can name (a word match on the SQL text).
    text = " ".join([e.sql for e in expectations])
    wanted = [n for n in table.column_names if n in key or re.search(rf"\b{re.escape(n)}\b", text)]
    con = _duckdb()
    con.register("batch", table.select(wanted) if wanted else table)
    try:
        result = con.execute(f"SELECT {', '.join(selects)} FROM batch").arrow()
        if isinstance(result, pa.RecordBatchReader):
            result = result.read_all()
    finally:
        con.unregister("batch")
    failing = [~result.column(f"e{i}").to_numpy() for i in range(len(expectations))]
    hashes = result.column("__key").to_numpy().astype(np.uint64, copy=False) if key else None
    return failing, hashes


# ---------------------------------------------------------------------------------------------
# A converted batch
# ---------------------------------------------------------------------------------------------
@dataclass
class Converted:
    """A typed batch. ``keep`` masks out quarantined rows (None: keep all); ``hashes`` are the
    primary-key hashes of every row."""

    table: pa.Table
    rows: np.ndarray
    keep: np.ndarray | None
    hashes: np.ndarray | None
    errors: list[RowError]
    rows_in: int
    warnings: dict[str, int] = field(default_factory=dict)
    source_bytes: int = 0


def convert(batch: RawBatch, contract: Contract, key: str, rescued: bool = False) -> Converted:
    n = batch.table.num_rows if contract.columns else len(batch.rows)
    rows_in = n + len(batch.errors)
    errors = list(batch.errors)
    bad_any = np.zeros(n, dtype=bool)
    first_reason: list[tuple[str, str] | None] = [None] * n
    typed: dict[str, pa.Array] = {}
    for column in contract.columns:
        array = normalize(batch.table.column(column.name), column)
        values, bad, reason = cast_column(array, column)
        if bad is not None:
            for i in np.flatnonzero(bad & ~bad_any):
                first_reason[i] = (column.name, f"field {column.name!r}: value {array[int(i)].as_py()!r} {reason}")
            bad_any |= bad
        if not column.nullable:
            missing = pc.is_null(values).to_numpy(zero_copy_only=False) & ~bad_any
            for i in np.flatnonzero(missing):
                first_reason[i] = (column.name, f"field {column.name!r} is required (not nullable) but missing")
            bad_any |= missing
        typed[column.name] = values
    if rescued:
        typed[RESCUED.name] = batch.extra.get(RESCUED.name, pa.nulls(n, pa.string()))
    table = pa.table(typed) if typed else pa.table({"_": pa.nulls(n)})
    rows = batch.rows.to_numpy(zero_copy_only=False) if isinstance(batch.rows, pa.Array) else np.asarray(batch.rows)
    for i in np.flatnonzero(bad_any):
        field_name, reason = first_reason[i] or (None, "invalid row")
        errors.append(RowError(int(rows[i]), field_name, reason, batch.raw_text(int(i))))

    # Expectations run on the whole typed batch; rows already rejected are masked out. The
    # batch is materialised once, later, per partition (see prepare): no copy here.
    failing, hashes = evaluate(table, contract.expectations, contract.primary_key)
    warnings: dict[str, int] = {}
    drop = bad_any.copy()
    for expectation, failed in zip(contract.expectations, failing, strict=True):
        mask = failed & ~bad_any
        if not mask.any():
            continue
        if expectation.action == "fail":
            first = int(np.flatnonzero(mask)[0])
            raise ExpectationFailedError(key, expectation.name, expectation.sql, int(rows[first]))
        if expectation.action == "warn":
            warnings[expectation.name] = int(mask.sum())
            continue
        for i in np.flatnonzero(mask & ~drop):
            errors.append(
                RowError(
                    int(rows[i]),
                    None,
                    f"expectation {expectation.name!r} failed: {expectation.sql}",
                    batch.raw_text(int(i)),
                )
            )
        drop |= mask
    errors.sort(key=lambda e: e.row or 0)
    keep = ~drop if drop.any() else None
    return Converted(
        table=table,
        rows=rows,
        keep=keep,
        hashes=hashes,
        errors=errors,
        rows_in=rows_in,
        warnings=warnings,
        source_bytes=batch.source_bytes,
    )


def distinct(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct hashes of a batch (0 reserved as the empty slot) and where each first occurs."""
    keys = np.where(hashes == 0, np.uint64(1), hashes).astype(np.uint64, copy=False)
    unique, first_index = np.unique(keys, return_index=True)
    return unique, first_index


class KeySet:
    """Seen primary-key hashes: an open-addressing hash table of uint64 in one numpy array.

    Inserting a batch is a few vectorised probing rounds, so the cost per row stays flat as the
    set grows; memory is 16 bytes per key at most (the table is kept under half full).
    A 64-bit hash makes a false duplicate vanishingly rare (about n²/2⁶⁵: 3e-7 for 10⁶ keys).
    """

    def __init__(self, expected: int = 1 << 15) -> None:
        capacity = 1 << max(16, int(2 * max(expected, 1) - 1).bit_length())
        self._table = np.zeros(capacity, dtype=np.uint64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def first_seen(self, hashes: np.ndarray) -> np.ndarray:
        """Mask of rows whose key appears for the first time (earlier rows and batches win)."""
        return self.first_seen_distinct(*distinct(hashes), len(hashes))

    def first_seen_distinct(self, unique: np.ndarray, first_index: np.ndarray, rows: int) -> np.ndarray:
        """:meth:`first_seen` with the batch's :func:`distinct` already computed (off this thread)."""
        mask = np.zeros(rows, dtype=bool)
        if rows == 0:
            return mask
        while (self._count + len(unique)) * 2 > len(self._table):
            self._grow()
        inserted = self._insert(self._table, unique)
        self._count += int(inserted.sum())
        mask[first_index[inserted]] = True
        return mask

    def _grow(self) -> None:
        old = self._table[self._table != 0]
        self._table = np.zeros(len(self._table) * 2, dtype=np.uint64)
        self._insert(self._table, old)

    @staticmethod
    def _insert(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Insert distinct keys; returns which were absent before."""
        size_mask = np.uint64(len(table) - 1)
        inserted = np.zeros(len(keys), dtype=bool)
        pending = np.arange(len(keys))
        slots = (keys & size_mask).astype(np.int64)
        while len(pending):
            key = keys[pending]
            slot = slots[pending]
            current = table[slot]
            found = current == key
            empty = current == 0
            candidates = np.flatnonzero(empty)
            won = np.zeros(len(pending), dtype=bool)
            if len(candidates):
                # Several keys may aim at one free slot: the last write stays, and it is the winner.
                table[slot[candidates]] = key[candidates]
                winners = candidates[table[slot[candidates]] == key[candidates]]
                inserted[pending[winners]] = True
                won[winners] = True
            collided = ~found & ~empty
            slots[pending[collided]] = (slot[collided] + 1) & int(size_mask)
            pending = pending[~(found | won)]
        return inserted


@dataclass
class Prepared:
    """A batch ready to write: each output table split by partition, plus what the load history counts."""

    main: Split
    keys: tuple[np.ndarray, np.ndarray] | None
    rows: int
    children: dict[str, tuple[Split, np.ndarray, tuple[np.ndarray, np.ndarray] | None]]
    errors: list[RowError]
    rows_in: int
    warnings: dict[str, int]
    source_bytes: int


def with_meta(table: pa.Table, key: str, rows: np.ndarray, ingested: pa.Scalar) -> pa.Table:
    n = table.num_rows
    bronze_key = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([key]))
    table = table.append_column("_bronze_key", bronze_key)
    table = table.append_column("_bronze_row", pa.array(rows, type=pa.int64()))
    return table.append_column("_ingested_at", pa.repeat(ingested, n))


def prepare(converted: Converted, contract: Contract, key: str, ingested: pa.Scalar) -> Prepared:
    """Everything per batch that does not depend on earlier batches (it runs on the pool).

    From here on a batch's rows are its kept rows, in order: the partition pieces, the key
    hashes and the children all index that sequence.
    """
    table = with_meta(converted.table, key, converted.rows, ingested)
    kept = np.flatnonzero(converted.keep) if converted.keep is not None else None
    hashes = converted.hashes
    if hashes is not None and kept is not None:
        hashes = hashes[kept]
    children = {}
    for child in contract.children:
        child_table, parent = explode(table, child.explode, child.parent_columns, child.column)
        child_table = with_meta(child_table, key, converted.rows[parent], ingested)
        if kept is not None:  # children of quarantined rows go too; parents renumbered to kept rows
            position = np.full(table.num_rows, -1, dtype=np.int64)
            position[kept] = np.arange(len(kept))
            alive = np.flatnonzero(position[parent] >= 0)
            child_table, parent = child_table.take(pa.array(alive)), position[parent][alive]
        child_hashes = evaluate(child_table, (), child.primary_key)[1] if child.primary_key else None
        partition = contract.partition
        if partition is not None and partition.column not in child.parent_columns:
            partition = None
        children[child.name] = (
            split_by_partition(child_table, partition, None),
            parent,
            distinct(child_hashes) if child_hashes is not None else None,
        )
    main = split_by_partition(table, contract.partition, kept)
    return Prepared(
        main=main,
        keys=distinct(hashes) if hashes is not None else None,
        rows=main.rows,
        children=children,
        errors=converted.errors,
        rows_in=converted.rows_in,
        warnings=converted.warnings,
        source_bytes=converted.source_bytes,
    )


def explode(
    table: pa.Table, list_column: str, parent_columns: Sequence[str], child: Column
) -> tuple[pa.Table, np.ndarray]:
    """One row per list element, with the parent's columns; returns (table, parent row index)."""
    lists = table.column(list_column).combine_chunks()
    parents = pc.list_parent_indices(lists)
    values = normalize(pc.list_flatten(lists), child)
    valid = pc.is_valid(values)
    parents = parents.filter(valid)
    values = values.filter(valid)
    columns = {name: table.column(name).take(parents) for name in parent_columns}
    columns[child.name] = pc.cast(values, ARROW_TYPES[child.type])
    return pa.table(columns), parents.to_numpy(zero_copy_only=False)
