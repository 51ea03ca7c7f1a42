"""Writers: one bronze object's rows staged as Parquet files inside silver's Delta tables.

Staged names carry the bronze key, its version and the attempt
(``part-<key id>-<etag id>-<attempt>.parquet``, see :func:`lakehouse_silverizer.runner.attempt_id`),
so an attempt never overwrites another's file. No reader sees a staged file until a Delta commit
names it (:mod:`lakehouse_silverizer.commits`); files no commit names are removed by the
committer, or by Delta's vacuum past its retention. Every file is written through the layer's
atomic ``open_output``. Rows are buffered per partition into row groups of ``row_group_rows``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse_common.contracts import Partition
from lakehouse_common.storage import LayerStore
from lakehouse_common.tables import QUARANTINE, quarantine_schema
from lakehouse_silverizer.readers import RowError

NULL_PARTITION = "__null__"
MAX_STAT_CHARS = 32  # longer strings get no min/max (a truncated max would make readers skip wrongly)
_FORMATS = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d"}


_DIVISORS = {"year": 10_000, "month": 100, "day": 1}


def partition_codes(table: pa.Table, partition: Partition) -> tuple[np.ndarray, list[str]]:
    """Each row's partition as a small integer code, and the directory value of each code.

    Dates and timestamps (UTC) map to integers like 202503 with integer kernels (formatting a
    string per row would cost more than the rest of the split); only the distinct values are
    formatted.
    """
    column = table.column(partition.column)
    if partition.granularity == "value":
        encoded = pc.dictionary_encode(pc.fill_null(pc.cast(column, pa.string()), NULL_PARTITION)).combine_chunks()
        return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()
    day_number = pc.add(
        pc.add(pc.multiply(pc.year(column), 10_000), pc.multiply(pc.month(column), 100)), pc.day(column)
    )
    numbers = pc.fill_null(day_number, -1).to_numpy(zero_copy_only=False) // _DIVISORS[partition.granularity]
    low, high = numbers.min(initial=0), numbers.max(initial=0)
    if low == high:
        codes, uniques = np.zeros(len(numbers), dtype=np.int64), np.array([low])
    else:
        uniques, codes = np.unique(numbers, return_inverse=True)
    return codes, [_label(int(u), partition.granularity) for u in uniques]


def _label(number: int, granularity: str) -> str:
    if number < 0:
        return NULL_PARTITION
    if granularity == "year":
        return f"{number:04d}"
    if granularity == "month":
        return f"{number // 100:04d}-{number % 100:02d}"
    return f"{number // 10_000:04d}-{number // 100 % 100:02d}-{number % 100:02d}"


MAX_SLICES = 32
IDLE_WRITES = 2  # batches without rows after which a partition's buffer is written out


def take_sorted(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """The rows at ascending ``indices``: zero-copy slices when they form a few runs (the usual
    case: time-ordered bronze, a handful of rejected rows), a copy otherwise."""
    if len(indices) == 0:
        return table.slice(0, 0)
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    if len(breaks) >= MAX_SLICES:
        return table.take(pa.array(indices))
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [len(indices)]))
    slices = [table.slice(int(indices[a]), int(b - a)) for a, b in zip(starts, stops, strict=True)]
    return slices[0] if len(slices) == 1 else pa.concat_tables(slices)


@dataclass
class Split:
    """Rows bound for one silver table, one compact table per partition value.

    Each piece keeps the batch positions of its rows, so that a mask computed in batch order
    (de-duplication keeps the first occurrence) selects the right rows.
    """

    pieces: list[tuple[str, pa.Table, np.ndarray | None]]
    rows: int

    def select(self, keep: np.ndarray | None) -> list[tuple[str, pa.Table]]:
        selected = []
        for value, table, positions in self.pieces:
            mask = None if keep is None else (keep if positions is None else keep[positions])
            if mask is None or mask.all():
                selected.append((value, table))
            elif mask.any():
                selected.append((value, take_sorted(table, np.flatnonzero(mask))))
        return selected


def split_by_partition(table: pa.Table, partition: Partition | None, kept: np.ndarray | None) -> Split:
    """Materialise the kept rows (all when ``kept`` is None) once, one table per partition."""
    rows = table.num_rows if kept is None else len(kept)
    if partition is None or rows == 0:
        return Split([("", table if kept is None else take_sorted(table, kept), None)], rows)
    codes, labels = partition_codes(table, partition)
    if kept is not None:
        codes = codes[kept]
    if len(labels) == 1 or codes.min() == codes.max():
        label = labels[int(codes[0])]
        return Split([(label, table if kept is None else take_sorted(table, kept), None)], rows)
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=len(labels)))))
    pieces: list[tuple[str, pa.Table, np.ndarray | None]] = []
    for code, label in enumerate(labels):
        positions = order[bounds[code] : bounds[code + 1]]
        if len(positions):
            source = positions if kept is None else kept[positions]
            pieces.append((label, take_sorted(table, source), positions))
    return Split(pieces, rows)


LONG_TEXT_BYTES = 48


def encoding_options(table: pa.Table) -> tuple[list[str], list[str]]:
    """Columns worth a dictionary and min/max statistics: all but long free text.

    Dictionary-encoding and min/max of long, mostly unique strings (descriptions, snippets)
    cost much CPU and save nothing; the first batch of a file decides, so outputs stay
    deterministic.
    """
    chosen = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            present = max(column.length() - column.null_count, 1)
            data_bytes = sum(chunk.buffers()[2].size if chunk.buffers()[2] else 0 for chunk in column.chunks)
            if data_bytes / present > LONG_TEXT_BYTES:
                continue
        chosen.append(name)
    return chosen, chosen


@dataclass(frozen=True)
class StagedFile:
    """A Parquet file written into a table's directory, not yet named by the Delta log."""

    path: str  # relative to the table's root, as the log names it
    partition: str | None  # the partition column's value (None: null, or an unpartitioned table)
    size: int
    rows: int
    stats: str  # Delta's per-file statistics (JSON)


def stats_json(metadata: pq.FileMetaData, schema: pa.Schema) -> str:
    """Delta's ``stats`` of one Parquet file from its footer: row count, nulls, and min/max where
    they are exact (numbers, dates, timestamps, short strings), so engines can skip the file."""
    rows = metadata.num_rows
    nulls: dict[str, int] = {}
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    names = metadata.schema.names
    for name in schema.names:
        if name not in names:
            continue
        index = names.index(name)
        kind = schema.field(name).type
        if pa.types.is_nested(kind):
            continue
        null_count = 0
        low: Any = None
        high: Any = None
        exact = True
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(index).statistics
            if stats is None or not stats.has_null_count:
                exact = False
                break
            null_count += stats.null_count
            if stats.has_min_max:
                low = stats.min if low is None else min(low, stats.min)
                high = stats.max if high is None else max(high, stats.max)
        if not exact:
            continue
        nulls[name] = null_count
        if low is None or high is None:
            continue
        if isinstance(low, str) and (len(low) > MAX_STAT_CHARS or len(high) > MAX_STAT_CHARS):
            continue
        if isinstance(low, bytes):
            continue
        lows[name], highs[name] = _stat_value(low), _stat_value(high)
    return json.dumps(
        {"numRecords": rows, "minValues": lows, "maxValues": highs, "nullCount": nulls}, separators=(",", ":")
    )


def _stat_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


class PartitionedParquetWriter:
    """Writes one silver table's rows of one bronze object, split by partition value."""

    def __init__(
        self,
        store: LayerStore,
        table_name: str,
        schema: pa.Schema,
        partition: Partition | None,
        file_id: str,
        row_group_rows: int,
        compression: str = "zstd",
        compression_level: int | None = None,
        max_buffered_bytes: int = 128 << 20,
    ) -> None:
        self.store = store
        self.table_name = table_name
        self.schema = schema
        self.partition = partition
        self.file_id = file_id
        self.row_group_rows = row_group_rows
        self.compression = compression
        self.compression_level = compression_level
        self.max_buffered_bytes = max_buffered_bytes
        self._stack = contextlib.ExitStack()
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._sinks: dict[str, BinaryIO] = {}
        self._buffers: dict[str, list[pa.Table]] = {}
        self._buffered: dict[str, int] = {}
        self._bytes: dict[str, int] = {}
        self._encoding: tuple[list[str], list[str]] | None = None
        self._calls = 0
        self._touched: dict[str, int] = {}
        self.outputs: list[str] = []
        self.published: list[str] = []
        self.staged: list[StagedFile] = []  # what close() wrote, for the Delta commit
        self.rows = 0

    def key_for(self, value: str | None) -> str:
        name = f"part-{self.file_id}.parquet"
        if self.partition is None or value is None:
            return f"{self.table_name}/{name}"
        safe = value.replace("/", "_")
        return f"{self.table_name}/{self.partition.directory}={safe}/{name}"

    def write(self, pieces: list[tuple[str, pa.Table]]) -> None:
        """Buffer rows already split by partition value (see :func:`split_by_partition`).

        A partition that received nothing for a few batches is written out at once: bronze
        usually comes in time order, so its month is over, and writing it now overlaps the
        work with reading instead of leaving it all to :meth:`close`.
        """
        self._calls += 1
        for value, table in pieces:
            if table.num_rows:
                self.rows += table.num_rows
                self._touched[value] = self._calls
                self._buffer(value, table.cast(self.schema) if table.schema != self.schema else table)
        for value in [v for v in self._buffers if self._calls - self._touched.get(v, 0) >= IDLE_WRITES]:
            self._flush(value)

    def _buffer(self, value: str, table: pa.Table) -> None:
        """Buffer rows per partition; memory stays bounded however many partitions a file has."""
        self._buffers.setdefault(value, []).append(table)
        self._buffered[value] = self._buffered.get(value, 0) + table.num_rows
        self._bytes[value] = self._bytes.get(value, 0) + table.nbytes
        if self._buffered[value] >= self.row_group_rows:
            self._flush(value)
        while self._bytes and sum(self._bytes.values()) > self.max_buffered_bytes:
            self._flush(max(self._bytes, key=self._bytes.__getitem__))

    def _flush(self, value: str) -> None:
        parts = self._buffers.pop(value, [])
        self._buffered.pop(value, None)
        self._bytes.pop(value, None)
        if not parts:
            return
        data = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        writer = self._writers.get(value)
        if writer is None:
            key = self.key_for(value or None)
            if self._encoding is None:
                self._encoding = encoding_options(data)
            dictionary, statistics = self._encoding
            sink: BinaryIO = self._stack.enter_context(self._publishing(key))
            writer = pq.ParquetWriter(
                sink,
                self.schema,
                compression=self.compression,
                compression_level=self.compression_level,
                use_dictionary=dictionary,
                write_statistics=statistics,
            )
            self._writers[value] = writer
            self._sinks[value] = sink
            self.outputs.append(key)
        writer.write_table(data, row_group_size=self.row_group_rows)

    @contextlib.contextmanager
    def _publishing(self, key: str) -> Iterator[BinaryIO]:
        with self.store.open_output(key) as sink:
            yield sink
        self.published.append(key)  # only once the layer made it visible

    def close(self) -> list[str]:
        """Flush, close and publish every partition file; returns their keys."""
        for value in list(self._buffers):
            self._flush(value)
        staged = []
        for value, writer in self._writers.items():
            writer.close()
            metadata = writer.writer.metadata
            staged.append(
                StagedFile(
                    path=self.key_for(value or None).removeprefix(f"{self.table_name}/"),
                    partition=None if not value or value == NULL_PARTITION else value,
                    size=self._sinks[value].tell(),  # the whole file: the footer is written
                    rows=metadata.num_rows,
                    stats=stats_json(metadata, self.schema),
                )
            )
        self._stack.close()
        self.staged = sorted(staged, key=lambda f: f.path)
        return sorted(self.outputs)

    def abort(self) -> None:
        """Drop everything: temporary files are removed and nothing is published."""
        for writer in self._writers.values():
            with contextlib.suppress(Exception):
                writer.close()
            writer.is_open = False  # its sink is discarded below; never write a footer later
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
        if self.published:  # close() failed part-way: take back the files it published (best effort)
            with contextlib.suppress(Exception):
                self.store.delete(self.published)
            self.published = []


class QuarantineWriter:
    """One bronze object's rejected rows (row, field, reason, raw text), staged as a Parquet file
    of the ``_quarantine`` Delta table (partition ``source``); the batch's commit adds it."""

    BUFFER_ROWS = 16_384

    def __init__(
        self, store: LayerStore, source: str, bronze_key: str, bronze_etag: str, file_id: str, run_id: str
    ) -> None:
        self.store = store
        self.source = source
        self.bronze_key = bronze_key
        self.bronze_etag = bronze_etag
        self.run_id = run_id
        self.table = QUARANTINE
        self.schema = pa.schema([f for f in quarantine_schema() if f.name != "source"])
        self.path = f"source={source.replace('/', '_')}/part-{file_id}.parquet"
        self._stack = contextlib.ExitStack()
        self._sink: BinaryIO | None = None
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[RowError] = []
        self.rows = 0  # rejected rows (file-level reasons are not rows)
        self.staged: list[StagedFile] = []

    def write(self, errors: list[RowError]) -> None:
        if not errors:
            return
        self._buffer.extend(errors)
        self.rows += sum(1 for e in errors if e.row is not None)
        if len(self._buffer) >= self.BUFFER_ROWS:
            self._flush()

    def write_file_reason(self, reason: str) -> None:
        self.write([RowError(None, None, reason, "")])

    def _flush(self) -> None:
        if not self._buffer:
            return
        now = datetime.now(tz=UTC)
        errors, self._buffer = self._buffer, []
        n = len(errors)
        data = pa.table(
            [
                pa.repeat(pa.scalar(self.bronze_key), n),
                pa.repeat(pa.scalar(self.bronze_etag), n),
                pa.array([e.row for e in errors], pa.int64()),
                pa.array([e.field for e in errors], pa.string()),
                pa.array([e.reason for e in errors], pa.string()),
                pa.array([e.raw for e in errors], pa.string()),
                pa.repeat(pa.scalar(self.run_id), n),
                pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n),
            ],
            schema=self.schema,
        )
        if self._writer is None:
            self._sink = self._stack.enter_context(self.store.open_output(f"{self.table}/{self.path}"))
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")
        self._writer.write_table(data)

    def close(self) -> list[StagedFile]:
        """Write out and publish the file (none when nothing was rejected)."""
        self._flush()
        if self._writer is not None and self._sink is not None:
            self._writer.close()
            metadata = self._writer.writer.metadata
            size = self._sink.tell()
            self._stack.close()
            self.staged = [
                StagedFile(self.path, self.source, size, metadata.num_rows, stats_json(metadata, self.schema))
            ]
        self._writer = None
        self._sink = None
        return self.staged

    def abort(self) -> None:
        """Drop what was written (nothing is published); the writer can be used again afterwards."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer.is_open = False
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._stack = contextlib.ExitStack()
        self._writer = None
        self._sink = None
        self._buffer = []
        self.rows = 0
        self.staged = []


class BackgroundWorker:
    """Runs submitted calls in order on one thread; the first error is raised to the caller."""

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="silver-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:
                    self._error = exc

    def submit(self, job: Callable[[], Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(job)

    def join(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def utc_now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds")
