"""The silverizer run: every pending bronze object of a source, exactly once, into Delta tables.

Pending objects are taken in batches (``LAKEHOUSE_SILVERIZER_BATCH_OBJECTS`` objects, at most
``BATCH_MB`` of bronze). Each object is streamed chunk by chunk (chunks are parsed and converted
on a small thread pool, in order), de-duplicated on the primary key, and its rows staged as
Parquet files inside the silver tables' directories, its rejected rows inside ``_quarantine``.
Then each table gets one Delta commit for the whole batch (:class:`~lakehouse_silverizer.commits.DeltaCommitter`),
which also records every object version's app transaction, and ``_load_history`` is committed
last: from then on the batch's objects are not pending. A crash at any point leaves readers the
previous snapshot and the objects pending; the rerun stages them again and each table skips what
it already holds, so the result is that of one clean run. Two runs at once conflict in Delta's
log, and the loser re-checks the transactions against the winner's snapshot: no claims, no locks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_common import tables
from lakehouse_common.contracts import Contract, ContractRegistry
from lakehouse_common.exceptions import ObjectNotFoundError, StorageError, UnknownSourceError
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, ObjectInfo
from lakehouse_silverizer import infer
from lakehouse_silverizer.commits import (
    DeltaCommitter,
    StagedObject,
    TableSpec,
    history_spec,
    quarantine_spec,
    table_specs,
)
from lakehouse_silverizer.exceptions import (
    ExpectationFailedError,
    FileUnreadableError,
    NewColumnsError,
    ObjectNotPendingError,
)
from lakehouse_silverizer.listing import Listing, finish, list_source
from lakehouse_silverizer.readers import Chunk, CsvReader, JsonDocumentReader, NdjsonReader, RangeSource, RawBatch
from lakehouse_silverizer.settings import SilverizerSettings
from lakehouse_silverizer.transform import KeySet, Prepared, convert, prepare, silver_schema
from lakehouse_silverizer.writers import BackgroundWorker, PartitionedParquetWriter, QuarantineWriter

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class LoadRecord:
    """What happened to one bronze object version: its row of ``_load_history``."""

    source: str
    key: str
    etag: str
    size: int
    modified: datetime
    status: str = "loaded"  # loaded | quarantined | duplicate | failed (tables.STATUSES)
    contract_version: str | None = None
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    reason: str | None = None
    warnings: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    seconds: float = 0.0

    @classmethod
    def start(cls, source: str, info: ObjectInfo) -> LoadRecord:
        return cls(source=source, key=info.key, etag=info.etag, size=info.size, modified=info.modified)

    def to_row(self, run_id: str) -> dict[str, Any]:
        return {
            "source": self.source,
            "bronze_key": self.key,
            "bronze_etag": self.etag,
            "bronze_size": self.size,
            "bronze_modified": self.modified.astimezone(UTC),
            "version_id": self.etag,
            "status": self.status,
            "contract_version": self.contract_version,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_quarantined": self.rows_quarantined,
            "rows_deduplicated": self.rows_deduplicated,
            "reason": self.reason,
            "warnings": json.dumps(self.warnings, sort_keys=True) if self.warnings else None,
            "table_versions": json.dumps(self.table_versions, sort_keys=True) if self.table_versions else None,
            "run_id": run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at or utc_now(),
            "seconds": self.seconds,
        }


@dataclass
class RunSummary:
    source: str
    entries: list[LoadRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # another run committed them first, or they changed


def _ordered(pool: ThreadPoolExecutor, fn: Any, items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Map ``fn`` over ``items`` on the pool, yielding results in order, ``depth`` in flight."""
    pending: deque[Future[Any]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class Silverizer:
    def __init__(
        self, settings: Settings, registry: ContractRegistry, options: SilverizerSettings | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.options = options or SilverizerSettings()
        self.lake = Lake(settings)
        self.run_id = f"{utc_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.committer = DeltaCommitter(self.lake.silver, self.run_id)
        self._ensured: dict[str, pa.Schema] = {}
        self._checked_legacy = False

    # -- sources and contracts ---------------------------------------------------------------
    def sources(self) -> list[str]:
        """Declared sources plus any bronze top-level folder without a contract (not ``_``/``.`` ones)."""
        found = set(self.registry.names())
        found.update(f for f in self.lake.bronze.folders() if not f.startswith(("_", ".")))
        return sorted(found)

    def contract(self, source: str, sample: ObjectInfo | None = None) -> Contract:
        if source in self.registry:
            return self.registry.get(source)
        saved = infer.load_inferred(self.lake.silver, source)
        if saved is not None:
            return saved
        if sample is None:
            raise UnknownSourceError(source, self.registry.names())
        contract = infer.infer_contract(self.lake.bronze, source, sample, self.options.block_size)
        return infer.save_inferred(self.lake.silver, contract)

    def prefix(self, source: str) -> str:
        return self.registry.get(source).prefix if source in self.registry else f"{source}/"

    def objects(self, source: str) -> list[ObjectInfo]:
        """Every bronze data object of the source (a full listing)."""
        return [o for o in self.lake.bronze.list(self.prefix(source)) if tables.is_data_object(o.key)]

    def listing(self, source: str, *, incremental: bool = True, hints: Iterable[str] = ()) -> Listing:
        """The source's bronze objects: after its listing cursor when ``incremental`` (all of them
        when a full listing is due), plus the ``hints`` (keys named by events); see :mod:`.listing`."""
        return list_source(
            self.lake.bronze,
            self.lake.silver,
            source,
            self.prefix(source),
            full_listing_interval=timedelta(seconds=self.options.full_listing_interval_s),
            full=not incremental,
            hints=hints,
        )

    def pending(self, source: str, listing: Listing | None = None) -> list[ObjectInfo]:
        """The source's bronze object versions whose transaction ``_load_history`` lacks: among
        ``listing``'s objects, or among all of bronze (a full listing)."""
        return self._pending_among(source, self.objects(source) if listing is None else listing.objects)

    def _pending_among(self, source: str, objects: Sequence[ObjectInfo]) -> list[ObjectInfo]:
        if not objects:
            return []
        return tables.pending(self.lake.silver, source, objects, self.committer.table(tables.LOAD_HISTORY))

    def advance_listing(self, listing: Listing | None, summary: RunSummary) -> bool:
        """Move the source's listing cursor past ``listing`` once its run finished: unless some
        key it skipped is still pending (it changed while it was processed). Whether it moved."""
        if listing is None:
            return False
        return finish(self.lake.silver, self.lake.bronze, listing.source, listing.advanced(), summary.skipped)

    # -- tables ------------------------------------------------------------------------------
    def _ensure(self, spec: TableSpec) -> None:
        if self._ensured.get(spec.name) != spec.schema:
            self.committer.ensure(spec)
            self._ensured[spec.name] = spec.schema

    def ensure_tables(self, sources: Iterable[str] | None = None) -> None:
        """Create the bookkeeping tables and every declared source's tables from its contract, so
        that readers (dbt, the catalog, any engine) find them even before any data. An earlier
        version's silver layer is refused (see :func:`lakehouse_common.tables.refuse_legacy`)."""
        if not self._checked_legacy:
            tables.refuse_legacy(self.lake.silver)
            self._checked_legacy = True
        self._ensure(history_spec())
        self._ensure(quarantine_spec())
        names = self.registry.names() if sources is None else [s for s in sources if s in self.registry]
        for name in names:
            for spec in table_specs(self.registry.get(name)):
                self._ensure(spec)

    # -- commands ----------------------------------------------------------------------------
    def run_source(
        self,
        source: str,
        objects: Sequence[ObjectInfo] | None = None,
        *,
        on_batch: Callable[[Sequence[LoadRecord]], None] | None = None,
        incremental: bool = False,
    ) -> RunSummary:
        """Process every pending object of ``source`` (or the pending ones among ``objects``), a
        batch (one commit per table) at a time; ``on_batch`` hears each batch's records.

        Without ``objects``, bronze is listed in full, or, when ``incremental`` (the scheduler's
        way), after the source's listing cursor unless a full listing is due; the cursor moves
        once every batch is done (see :mod:`.listing`).
        """
        self.ensure_tables()
        summary = RunSummary(source)
        listing = None if objects is not None else self.listing(source, incremental=incremental)
        todo = self._pending_among(source, listing.objects if listing is not None else objects or [])
        for batch in self.batches(todo):
            done = len(summary.entries)
            self._run_batch(source, batch, summary)
            if on_batch is not None:
                on_batch(summary.entries[done:])
        self.advance_listing(listing, summary)
        return summary

    def batches(self, objects: Sequence[ObjectInfo]) -> Iterator[list[ObjectInfo]]:
        """``objects`` in batches of at most ``BATCH_OBJECTS`` objects and ``BATCH_MB`` of bronze
        (a larger object is a batch of its own): each batch is one Delta commit per table."""
        limit_bytes = self.options.batch_mb << 20
        batch: list[ObjectInfo] = []
        size = 0
        for info in objects:
            if batch and (len(batch) >= self.options.batch_objects or size + info.size > limit_bytes):
                yield batch
                batch, size = [], 0
            batch.append(info)
            size += info.size
        if batch:
            yield batch

    def run_keys(self, source: str, keys: Sequence[str]) -> RunSummary:
        """Process the pending ones among bronze ``keys`` (one Airflow task's batch): keys that are
        gone or already loaded (by another run, or an earlier try) are reported as skipped."""
        infos = []
        gone = []
        for key in keys:
            info = self.lake.bronze.stat(key)
            (gone.append(key) if info is None else infos.append(info))
        summary = self.run_source(source, infos)
        done = {e.key for e in summary.entries} | set(summary.skipped)
        summary.skipped += gone + [k for k in keys if k not in done and k not in gone]
        return summary

    def run_key(self, source: str, key: str) -> LoadRecord:
        """Process one pending object (``reprocess`` is the way to redo a processed one)."""
        self.ensure_tables()
        info = self.lake.bronze.stat(key)
        if info is None:
            raise ObjectNotFoundError("bronze", key)
        if not tables.pending(self.lake.silver, source, [info]):
            done = [r for r in tables.history_rows(self.lake.silver, source) if r["bronze_key"] == key]
            when = f" at {done[-1]['finished_at'].isoformat()} (status {done[-1]['status']})" if done else ""
            raise ObjectNotPendingError(f"{key} was processed{when}; use 'reprocess' to process it again")
        summary = RunSummary(source)
        self._run_batch(source, [info], summary)
        if not summary.entries:
            raise ObjectNotPendingError(
                f"{key} was committed by another run meanwhile, or changed while it was processed; see 'history'"
            )
        return summary.entries[0]

    def reprocess(self, source: str, key: str | None = None) -> RunSummary:
        """Process objects again (one key, or the whole source), processed or not: their rows in
        every table are replaced and a new load-history row is recorded."""
        self.ensure_tables()
        targets = [o for o in self.objects(source) if key is None or o.key == key]
        if key is not None and not targets:
            raise ObjectNotFoundError("bronze", key)
        summary = RunSummary(source)
        for batch in self.batches(targets):
            self._run_batch(source, batch, summary, redo=True)
        return summary

    # -- one batch ---------------------------------------------------------------------------
    def _run_batch(self, source: str, infos: Sequence[ObjectInfo], summary: RunSummary, *, redo: bool = False) -> None:
        """Stage every object of the batch, then commit each table once, the load history last.

        An object that fails for another reason than its content (storage trouble) stops the
        batch: what was staged before it is committed, it is recorded ``failed`` (no
        transaction: it stays pending) and the error is raised.
        """
        staged: list[tuple[StagedObject, LoadRecord]] = []
        failure: tuple[LoadRecord, BaseException] | None = None
        content, loaded = self._history_index(source, infos)
        redo_version = tables.txn_version(utc_now()) if redo else None
        for info in infos:
            replaces = info.key in loaded and (redo or loaded[info.key] != info.etag)
            obj = StagedObject(info, source, redo_version=redo_version, replaces=replaces)
            record = LoadRecord.start(source, info)
            started = time.perf_counter()
            try:
                self._stage(source, info, obj, record, content)
            except Exception as exc:
                self._discard(obj)
                record.status = "failed"
                record.reason = f"{type(exc).__name__}: {exc}"
                record.finished_at = utc_now()
                record.seconds = round(time.perf_counter() - started, 3)
                failure = (record, exc)
                log.error("failed %s: %s", info.key, exc)
                break
            record.seconds = round(time.perf_counter() - started, 3)
            staged.append((obj, record))
            digest = tables.content_etag(info.etag)
            if record.status == "loaded" and digest is not None:
                content.setdefault(digest, record)
            loaded[info.key] = info.etag
        kept: list[tuple[StagedObject, LoadRecord]] = []
        for obj, record in staged:
            if self._superseded(obj.info):
                self._discard(obj)
                summary.skipped.append(obj.info.key)
            else:
                kept.append((obj, record))
        # A failure from here on leaves the staged files where they are: some tables may already
        # name them. The rerun skips those tables, and Delta's vacuum removes the files no
        # commit names once they are older than its retention.
        skipped = self._commit(source, kept, failure[0] if failure else None, redo=redo)
        for obj, record in kept:
            if obj.app_id in skipped:
                summary.skipped.append(record.key)
            else:
                summary.entries.append(record)
                log.info(
                    "%s %s: %d in, %d out, %d quarantined, %d duplicates (%.2fs)",
                    record.status,
                    record.key,
                    record.rows_in,
                    record.rows_out,
                    record.rows_quarantined,
                    record.rows_deduplicated,
                    record.seconds,
                )
        if failure is not None:
            raise failure[1]

    def _commit(
        self, source: str, batch: list[tuple[StagedObject, LoadRecord]], failed: LoadRecord | None, *, redo: bool
    ) -> set[str]:
        """Commit the batch to each table, then its load history; the app ids another run recorded first."""
        objects = [obj for obj, _ in batch]
        if objects:
            contract = self.contract(source)  # the newest version, if the batch evolved it
            specs = table_specs(contract)
            for spec in specs:
                self._ensure(spec)
            if redo:
                keys = [o.info.key for o in objects]
                for spec in specs:
                    self.committer.delete_objects(spec.name, keys)
            for spec in [*specs, quarantine_spec()]:
                result = self.committer.commit(spec, objects)
                for _, record in batch:
                    record.table_versions[spec.name] = result.version
        finished = utc_now()
        rows = []
        for _, record in batch:
            record.finished_at = record.finished_at or finished
            rows.append(record.to_row(self.run_id))
        failed_rows = None
        if failed is not None:
            failed_rows = pa.Table.from_pylist([failed.to_row(self.run_id)], schema=tables.load_history_schema())
        history = pa.Table.from_pylist(rows, schema=tables.load_history_schema())
        result = self.committer.record(history, objects, failed_rows)
        return set(result.skipped)

    def _discard(self, obj: StagedObject) -> None:
        keys = [f"{name}/{f.path}" for name, files in obj.files.items() for f in files]
        if keys:
            with contextlib.suppress(Exception):
                self.lake.silver.delete(keys)
        obj.files.clear()

    def _superseded(self, info: ObjectInfo) -> bool:
        """Whether a newer version replaced this one with the same modification time.

        Merge tables take the newest row by the contract's order, then the bronze object's time;
        two versions with the same time (S3's LastModified has whole seconds) cannot be ordered,
        so the one being processed is not committed and the current one stays pending. A newer
        version with a later time outranks this one anyway, so only the tie is refused.
        """
        current = self.lake.bronze.stat(info.key)
        if current is not None and current.etag != info.etag and current.modified <= info.modified:
            log.info(
                "%s changed while it was processed (ETag %s -> %s, both modified at %s): not committed; "
                "the current version is pending",
                info.key,
                info.etag,
                current.etag,
                info.modified.isoformat(),
            )
            return True
        return False

    def _history_index(self, source: str, infos: Sequence[ObjectInfo]) -> tuple[dict[str, LoadRecord], dict[str, str]]:
        """From the load history, in one read, for the batch's keys and ETags: the ETags
        (single-part MD5s) whose bytes the source loaded from a key that still holds them, and
        each key's newest version that did not fail. The rows are filtered in Arrow, so the cost
        of a batch does not grow with the history's length beyond one columnar scan."""
        columns = [
            "bronze_key",
            "bronze_etag",
            "bronze_size",
            "bronze_modified",
            "status",
            "contract_version",
            "finished_at",
        ]
        history = tables.read_history(self.lake.silver, source, columns, self.committer.table(tables.LOAD_HISTORY))
        keys = pa.array(sorted({info.key for info in infos}), pa.string())
        etags = pa.array(sorted({info.etag for info in infos if tables.content_etag(info.etag)}), pa.string())
        mine = pc.is_in(history.column("bronze_key").cast(pa.string()), value_set=keys)
        copies = pc.is_in(history.column("bronze_etag").cast(pa.string()), value_set=etags)
        originals = pc.unique(history.filter(copies).column("bronze_key").cast(pa.string()))
        theirs = pc.is_in(history.column("bronze_key").cast(pa.string()), value_set=originals)
        data = history.filter(pc.or_(pc.or_(mine, copies), theirs)).to_pylist()
        newest: dict[str, dict[str, Any]] = {}
        for row in data:  # oldest first: the last row of a key is its newest (failed rows hold nothing)
            if row["status"] != "failed":
                newest[row["bronze_key"]] = row
        index: dict[str, LoadRecord] = {}
        for row in newest.values():
            digest = tables.content_etag(row["bronze_etag"])
            if row["status"] == "loaded" and digest is not None:
                record = LoadRecord(
                    source=source,
                    key=row["bronze_key"],
                    etag=row["bronze_etag"],
                    size=row["bronze_size"],
                    modified=row["bronze_modified"],
                    contract_version=row["contract_version"],
                    finished_at=row["finished_at"],
                )
                index.setdefault(digest, record)
        versions = {key: row["bronze_etag"] for key, row in newest.items()}
        return index, versions

    # -- one object --------------------------------------------------------------------------
    def _stage(
        self, source: str, info: ObjectInfo, obj: StagedObject, record: LoadRecord, content: dict[str, LoadRecord]
    ) -> None:
        digest = tables.content_etag(info.etag)
        original = content.get(digest) if digest is not None else None
        if original is not None and original.key != info.key and original.size == info.size:
            when = original.finished_at.isoformat() if original.finished_at else "in this batch"
            record.status = "duplicate"
            record.contract_version = original.contract_version
            record.reason = f"same content as {original.key} (ETag {info.etag}), loaded {when}; nothing written"
            log.info("duplicate %s: %s", info.key, record.reason)
            return
        file_id = attempt_id(info)
        quarantine = QuarantineWriter(self.lake.silver, source, info.key, info.etag, file_id, self.run_id)
        contract: Contract | None = None
        try:
            contract = self.contract(source, sample=info)
            record.contract_version = contract.fingerprint
            self._convert(contract, info, obj, record, quarantine, file_id)
        except (FileUnreadableError, ExpectationFailedError) as exc:
            self._discard(obj)
            quarantine.abort()  # the rows quarantined so far: the whole file is, instead
            quarantine.write_file_reason(exc.reason)
            log.warning("quarantined %s: %s", info.key, exc.reason)
            record.status = "quarantined"
            record.reason = exc.reason
            record.rows_in = record.rows_out = record.rows_quarantined = record.rows_deduplicated = 0
            record.warnings = {}
            record.contract_version = contract.fingerprint if contract else None
        except BaseException:
            quarantine.abort()
            raise
        obj.files[tables.QUARANTINE] = quarantine.close()

    def _batches(
        self, contract: Contract, info: ObjectInfo, stream: Any, *, ranged: bool
    ) -> tuple[Iterator[Prepared], list[str]]:
        """Converted batches of one object, in order, and (for inferred contracts) the fields it
        has beyond the contract. Chunks are parsed and converted on the thread pool."""
        opts = self.options
        rescue = contract.inferred and contract.on_new_columns == "rescue"
        if contract.format.type == "json":
            doc_reader = JsonDocumentReader(contract, info.key, opts.max_document_mb << 20, opts.row_group_rows)
            records = doc_reader.load(stream)
            extra = infer.new_fields(contract, records[:1000]) if contract.inferred else []
            doc_reader.extra_fields = extra if rescue and extra else None
            rescued = bool(doc_reader.extra_fields)
            ingested = _ingested(info)
            return (
                prepare(convert(b, contract, info.key, rescued), contract, info.key, ingested)
                for b in doc_reader.batches(records)
            ), extra
        if contract.format.type == "ndjson":
            nd_reader = NdjsonReader(contract, info.key, opts.block_size)
            nd_chunks: Iterator[Chunk] | RangeSource
            if ranged:
                nd_chunks = nd_reader.open_ranges(stream, info.size, opts.max_line_mb << 20)
                sample = bytes(stream.read_at(min(infer.SAMPLE_BYTES, info.size), 0)) if contract.inferred else b""
            else:
                stream_chunks = nd_reader.open(stream)
                first = next(stream_chunks, None)
                sample = first.data if first is not None else b""
                nd_chunks = _prepend(first, stream_chunks)
            extra = infer.new_fields(contract, infer.sample_records(sample)) if contract.inferred else []
            nd_reader.extra_fields = extra if rescue and extra else None
            rescued = bool(nd_reader.extra_fields)
            return self._parallel(nd_reader.parse, contract, info, nd_chunks, rescued), extra
        csv_reader = CsvReader(contract, info.key, opts.block_size)
        chunks: Iterator[Chunk] | RangeSource = (
            csv_reader.open_ranges(stream, info.size, opts.max_line_mb << 20) if ranged else csv_reader.open(stream)
        )
        extra = csv_reader.extra_columns if contract.inferred else []
        csv_reader.rescue = rescue and bool(extra)
        return self._parallel(csv_reader.parse, contract, info, chunks, csv_reader.rescue), extra

    def _parallel(
        self,
        parse: Callable[[Chunk], RawBatch],
        contract: Contract,
        info: ObjectInfo,
        chunks: Iterator[Chunk] | RangeSource,
        rescued: bool,
    ) -> Iterator[Prepared]:
        ingested = _ingested(info)

        def work(chunk: Chunk) -> Prepared:
            return prepare(convert(parse(chunk), contract, info.key, rescued), contract, info.key, ingested)

        if self.options.threads <= 1:
            return (work(c) for c in (_sequential(chunks) if isinstance(chunks, RangeSource) else chunks))
        return self._pooled(work, chunks)

    def _pooled(self, work: Callable[[Chunk], Prepared], chunks: Iterator[Chunk] | RangeSource) -> Iterator[Prepared]:
        with ThreadPoolExecutor(self.options.threads, thread_name_prefix="silver-parse") as pool:
            depth = self.options.threads + 1
            if isinstance(chunks, RangeSource):
                yield from _ranged(pool, work, chunks, depth)
            else:
                yield from _ordered(pool, work, chunks, depth)

    def _convert(
        self,
        contract: Contract,
        info: ObjectInfo,
        obj: StagedObject,
        record: LoadRecord,
        quarantine: QuarantineWriter,
        file_id: str,
    ) -> None:
        if info.size == 0:
            raise FileUnreadableError(info.key, "the file is empty (0 bytes)")
        # Plain csv and ndjson are read by range, in parallel; compressed objects and JSON
        # documents as a stream (the layer decompresses by extension while streaming).
        fmt = contract.format
        ranged = fmt.type != "json" and not fmt.multiline and not info.key.endswith(_COMPRESSED)
        store = self.lake.bronze
        try:
            with store.open_random(info.key) if ranged else store.open_input(info.key) as stream:
                batches, extra = self._batches(contract, info, stream, ranged=ranged)
                if not extra or contract.on_new_columns == "rescue":
                    self._write(contract, info, obj, record, quarantine, file_id, batches, extra)
                    return
        except OSError as exc:
            if _is_decompression_error(info.key, exc):
                raise FileUnreadableError(
                    info.key, f"cannot decompress the object (truncated or corrupt): {exc}"
                ) from exc
            # Storage trouble (retries exhausted, disk full): fail the run, the object stays pending.
            raise StorageError(
                f"cannot read {store.uri(info.key)} or write its silver outputs ({self.lake.silver.uri()}): {exc}"
            ) from exc
        if contract.on_new_columns == "fail":
            raise NewColumnsError(info.key, extra)
        evolved = infer.evolve(self.lake.silver, contract, extra)
        log.info("contract %s evolved to version %d: added %s", contract.name, evolved.version, ", ".join(extra))
        record.contract_version = evolved.fingerprint
        self._convert(evolved, info, obj, record, quarantine, file_id)

    def _write(
        self,
        contract: Contract,
        info: ObjectInfo,
        obj: StagedObject,
        entry: LoadRecord,
        quarantine: QuarantineWriter,
        file_id: str,
        batches: Iterator[Prepared],
        extra: list[str],
    ) -> None:
        opts = self.options
        rescued = bool(extra) and contract.on_new_columns == "rescue"
        main = PartitionedParquetWriter(
            self.lake.silver,
            contract.name,
            silver_schema(contract.columns, rescued),
            contract.partition,
            file_id,
            opts.row_group_rows,
            opts.compression,
            opts.compression_level,
        )
        children = {
            child.name: PartitionedParquetWriter(
                self.lake.silver,
                child.name,
                silver_schema([*(c for c in contract.columns if c.name in child.parent_columns), child.column]),
                contract.partition
                if contract.partition and contract.partition.column in child.parent_columns
                else None,
                file_id,
                opts.row_group_rows,
                opts.compression,
                opts.compression_level,
            )
            for child in contract.children
        }
        keys: KeySet | None = None  # sized from the first batch's rows per byte
        child_keys: dict[str, KeySet] = {}
        writer = BackgroundWorker()
        entry.status = "loaded"
        entry.contract_version = contract.fingerprint
        entry.rows_in = entry.rows_out = entry.rows_quarantined = entry.rows_deduplicated = 0
        entry.warnings = {}
        if extra:
            entry.warnings[f"new_columns[{contract.on_new_columns}]:{','.join(extra)}"] = 1
        try:
            for batch in batches:
                if keys is None:
                    expected = _expected_rows(info.size, batch.rows_in, batch.source_bytes)
                    keys = KeySet(expected)
                    child_keys = {name: KeySet(expected) for name in children}
                entry.rows_in += batch.rows_in
                for name, count in batch.warnings.items():
                    entry.warnings[name] = entry.warnings.get(name, 0) + count
                if batch.errors:
                    errors = batch.errors
                    writer.submit(lambda errors=errors: quarantine.write(errors))  # type: ignore[misc]
                    entry.rows_quarantined += sum(1 for e in errors if e.row is not None)
                keep = keys.first_seen_distinct(*batch.keys, batch.rows) if batch.keys else None
                kept = batch.rows if keep is None else int(keep.sum())
                entry.rows_deduplicated += batch.rows - kept
                entry.rows_out += kept
                pieces = batch.main.select(keep)
                writer.submit(lambda pieces=pieces: main.write(pieces))  # type: ignore[misc]
                for name, (split, parent, child_hashes) in batch.children.items():
                    child_keep = keep[parent] if keep is not None else np.ones(len(parent), dtype=bool)
                    if child_hashes is not None:
                        child_keep &= child_keys[name].first_seen_distinct(*child_hashes, len(parent))
                    target = children[name]
                    child_pieces = split.select(child_keep)
                    writer.submit(lambda p=child_pieces, w=target: w.write(p))  # type: ignore[misc]
            writer.join()
            main.close()
            obj.files[contract.name] = main.staged
            for name, child_writer in children.items():
                child_writer.close()
                obj.files[name] = child_writer.staged
                entry.warnings[f"{name}_rows"] = child_writer.rows
        except BaseException:
            with contextlib.suppress(Exception):
                writer.join()
            main.abort()
            for child_writer in children.values():
                child_writer.abort()
            raise


_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


def _is_decompression_error(key: str, exc: OSError) -> bool:
    message = str(exc).lower()
    return key.endswith(_COMPRESSED) and any(
        word in message for word in ("compress", "gzip", "zlib", "inflate", "bz2", "zstd", "lz4", "magic")
    )


def attempt_id(info: ObjectInfo) -> str:
    """Names one attempt's staged files: ``<key id>-<etag id>-<random>``, never another attempt's."""
    return f"{tables.key_id(info.key)}-{tables.content_id(info.etag)}-{uuid.uuid4().hex[:8]}"


def _ingested(info: ObjectInfo) -> pa.Scalar:
    """The bronze object's time: the same for every rerun of the same object version."""
    return pa.scalar(info.modified, type=pa.timestamp("us", tz="UTC"))


def _expected_rows(size: int, rows: int, source_bytes: int) -> int:
    """Rows in the whole object, extrapolated from one batch (sizes the de-duplication set)."""
    if source_bytes <= 0 or rows <= 0:
        return 1 << 15
    return int(size * rows / source_bytes * 1.1) + 1024


def _sequential(source: RangeSource) -> Iterator[Chunk]:
    line = source.first_line
    for byte_range in source.ranges():
        data, lines = source.read(byte_range)
        if data:
            yield Chunk(data, line)
        line += lines


def _ranged(
    pool: ThreadPoolExecutor, work: Callable[[Chunk], Prepared], source: RangeSource, depth: int
) -> Iterator[Prepared]:
    """Workers read their own ranges; in order, each chunk learns its first line, then is parsed."""
    ranges = source.ranges()
    reads: deque[Future[tuple[bytes, int]]] = deque()
    works: deque[Future[Prepared]] = deque()
    line = source.first_line

    def read_ahead() -> None:
        while len(reads) < depth:
            byte_range = next(ranges, None)
            if byte_range is None:
                return
            reads.append(pool.submit(source.read, byte_range))

    read_ahead()
    while reads or works:
        while reads and len(works) < depth:
            data, lines = reads.popleft().result()
            read_ahead()
            if data:
                works.append(pool.submit(work, Chunk(data, line)))
            line += lines
        if works:
            yield works.popleft().result()


def _prepend(first: Chunk | None, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    if first is not None:
        yield first
    yield from rest
