"""The silverizer run: every pending bronze object of a source, exactly once.

For one object: stream it chunk by chunk (chunks are parsed and converted on a small thread
pool, in order), de-duplicate on the primary key, write partitioned Parquet and quarantine
through atomic writers under names of this attempt's own, then record the ledger entry, which
commits them (:mod:`lakehouse_common.ledger`). Readers see only committed files, so a crash at
any point leaves them the previous state and the object pending; the rerun writes a new
attempt and commits it: the result is that of one clean run. Superseded and unreferenced files
are left for :mod:`lakehouse_silverizer.vacuum`, since a reader may still be reading them.

Runs may overlap (a schedule and a manual run, two workers): each object version is claimed
first (:mod:`lakehouse_silverizer.claims`) and the claim's lease is renewed while the run
works; a run skips the objects another run holds.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse_common.contracts import Contract, ContractRegistry
from lakehouse_common.exceptions import LakehouseError, ObjectNotFoundError, StorageError, UnknownSourceError
from lakehouse_common.ledger import Ledger, LedgerEntry, etag_id, is_data_object, key_id
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, ObjectInfo
from lakehouse_silverizer import infer
from lakehouse_silverizer.claims import Claims, Lease, new_owner
from lakehouse_silverizer.exceptions import (
    ClaimLostError,
    ExpectationFailedError,
    FileUnreadableError,
    NewColumnsError,
    ObjectClaimedError,
    ObjectNotPendingError,
    ObjectSupersededError,
)
from lakehouse_silverizer.readers import Chunk, CsvReader, JsonDocumentReader, NdjsonReader, RangeSource, RawBatch
from lakehouse_silverizer.settings import SilverizerSettings
from lakehouse_silverizer.transform import KeySet, Prepared, convert, prepare, silver_schema
from lakehouse_silverizer.writers import BackgroundWorker, PartitionedParquetWriter, QuarantineWriter, utc_now

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    source: str
    entries: list[LedgerEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # another run held (or just finished) them, or they changed


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
        self.ledger = Ledger(self.lake.silver)
        self.claims = Claims(self.lake.silver, new_owner(), self.options.claim_lease_s)

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

    def objects(self, source: str) -> list[ObjectInfo]:
        prefix = self.registry.get(source).prefix if source in self.registry else f"{source}/"
        return [o for o in self.lake.bronze.list(prefix) if is_data_object(o.key)]

    def pending(self, source: str) -> list[ObjectInfo]:
        return self.ledger.pending(source, self.objects(source))

    # -- commands ----------------------------------------------------------------------------
    def run_source(self, source: str) -> RunSummary:
        summary = RunSummary(source)
        for info in self.pending(source):
            entry = self.run_object(source, info)
            if entry is None:
                summary.skipped.append(info.key)
            else:
                summary.entries.append(entry)
        return summary

    def run_object(self, source: str, info: ObjectInfo) -> LedgerEntry | None:
        """Process one listed pending object under a claim; None when another run holds it or just
        recorded it, or when the object changed meanwhile (its new version is pending)."""
        try:
            return self._claimed(source, info, redo=False)
        except ObjectSupersededError as exc:
            log.info("%s", exc)
            return None

    def _claimed(self, source: str, info: ObjectInfo, *, redo: bool) -> LedgerEntry | None:
        """Process the object under a claim; None when another run holds it or has just recorded it."""
        held = self.claims.acquire(source, info.key, info.etag)
        if held is None:
            log.info("skipped %s: another run holds its claim", info.key)
            return None
        lease = Lease(self.claims, held)
        try:
            if not redo and self.ledger.get(source, info.key, info.etag) is not None:
                return None  # recorded by another run between our listing and our claim
            with lease:
                return self.process(source, info, lease=lease)
        finally:
            try:
                self.claims.release(lease.held)  # after the ledger entry; a failed run frees the object too
            except LakehouseError as exc:  # never hide the run's own error; the claim expires anyway
                log.warning("could not release the claim on %s (it expires by itself): %s", info.key, exc)

    def run_key(self, source: str, key: str) -> LedgerEntry:
        """Process one pending object (``reprocess`` is the way to redo a processed one)."""
        info = self.lake.bronze.stat(key)
        if info is None:
            raise ObjectNotFoundError("bronze", key)
        existing = self.ledger.get(source, key, info.etag)
        if existing is not None:
            raise ObjectNotPendingError(
                f"{key} was processed at {existing.finished_at} (status {existing.status}); "
                "use 'reprocess' to process it again"
            )
        entry = self._claimed(source, info, redo=False)
        if entry is None:
            raise self._claimed_error(source, info)
        return entry

    def _claimed_error(self, source: str, info: ObjectInfo) -> ObjectClaimedError:
        holder = self.claims.holder(source, info.key, info.etag)
        if holder is None:
            if self.ledger.get(source, info.key, info.etag) is not None:
                return ObjectClaimedError(f"{info.key} was just processed by another run; see 'ledger'")
            return ObjectClaimedError(
                f"{info.key} is being processed by another run (its claim is changing); try again later"
            )
        return ObjectClaimedError(
            f"{info.key} is being processed by {holder.owner} since {holder.started_at} "
            f"(its claim expires at {holder.expires_at().isoformat()}); try again later"
        )

    def reprocess(self, source: str, key: str | None = None) -> RunSummary:
        """Process objects again (one key, or the whole source), processed or not: each one's
        outputs and ledger entry are replaced."""
        targets = [o for o in self.objects(source) if key is None or o.key == key]
        if key is not None and not targets:
            raise ObjectNotFoundError("bronze", key)
        summary = RunSummary(source)
        for info in targets:
            try:
                entry = self._claimed(source, info, redo=True)
            except ObjectSupersededError as exc:
                log.info("%s", exc)
                entry = None
            if entry is None:
                summary.skipped.append(info.key)
            else:
                summary.entries.append(entry)
        return summary

    # -- one object --------------------------------------------------------------------------
    def process(self, source: str, info: ObjectInfo, *, lease: Lease | None = None) -> LedgerEntry:
        """Process one object version and commit it (no claim: callers hold one, see :meth:`run_object`).

        With a ``lease``, nothing is committed once the lease was lost to another run.
        """
        started = time.perf_counter()
        started_at = utc_now()
        file_id = attempt_id(info)
        quarantine = QuarantineWriter(self.lake.silver, source, info.key, file_id)
        original = self.ledger.loaded_with_same_content(source, info.key, info.etag, info.size)
        try:
            return self._process(source, info, started, started_at, file_id, quarantine, original, lease)
        except BaseException:
            quarantine.abort()  # the run fails: the object stays pending, no temporary file is left
            raise

    def _process(
        self,
        source: str,
        info: ObjectInfo,
        started: float,
        started_at: str,
        file_id: str,
        quarantine: QuarantineWriter,
        original: LedgerEntry | None,
        lease: Lease | None,
    ) -> LedgerEntry:
        contract: Contract | None = None
        try:
            if original is not None:
                entry = self._duplicate(source, info, original)
            else:
                contract = self.contract(source, sample=info)
                entry = self._convert(source, contract, info, quarantine, file_id)
        except (FileUnreadableError, ExpectationFailedError) as exc:
            quarantine.abort()  # the rows quarantined so far: the whole file is, instead
            reason = exc.reason
            quarantine.write_file_reason(reason)
            status = "unreadable" if isinstance(exc, FileUnreadableError) else "rejected"
            log.warning("%s %s: %s", status, info.key, reason)
            entry = LedgerEntry(
                source=source,
                key=info.key,
                etag=info.etag,
                size=info.size,
                status=status,  # type: ignore[arg-type]
                contract_version=contract.fingerprint if contract else "none",
                reason=reason,
            )
        try:
            entry.quarantine = quarantine.close()
            entry.started_at = started_at
            entry.bronze_modified = info.modified.astimezone(UTC).isoformat(timespec="microseconds")
            self._check_still_ordered(info)
            if lease is not None and not lease.confirm():
                raise ClaimLostError(info.key, self.claims.lease_s)
        except BaseException:
            # No ledger entry: take back what this attempt published (best effort; readers never
            # saw it, and vacuum collects whatever is left).
            with contextlib.suppress(Exception):
                self.lake.silver.delete(entry.files())
            raise
        entry.finished_at = utc_now()
        entry.seconds = round(time.perf_counter() - started, 3)
        # The commit: readers now see these files, and no longer the old ones. If it fails, the
        # entry may still have landed (a lost response), so the files stay; vacuum removes them
        # if no entry names them.
        self.ledger.record(entry)
        log.info(
            "%s %s: %d in, %d out, %d quarantined, %d duplicates (%.2fs)",
            entry.status,
            info.key,
            entry.rows_in,
            entry.rows_out,
            entry.rows_quarantined,
            entry.rows_deduplicated,
            entry.seconds,
        )
        return entry

    def _check_still_ordered(self, info: ObjectInfo) -> None:
        """Refuse to commit a version that a newer one replaced with the same modification time.

        Readers take the entry of the latest bronze version (``version_rank``); two versions with
        the same time (S3's LastModified has whole seconds) would be told apart by finish time
        only, and a slow run over the older one would win. A newer version with a later time
        outranks this entry anyway, so only the tie is refused.
        """
        current = self.lake.bronze.stat(info.key)
        if current is not None and current.etag != info.etag and current.modified <= info.modified:
            raise ObjectSupersededError(info.key, info.etag, current.etag, info.modified.isoformat())

    def _duplicate(self, source: str, info: ObjectInfo, original: LedgerEntry) -> LedgerEntry:
        """The bytes were already loaded from another key: record it, write nothing (exactly once)."""
        reason = f"same content as {original.key} (ETag {info.etag}), loaded {original.finished_at}; nothing written"
        log.info("duplicate %s: %s", info.key, reason)
        return LedgerEntry(
            source=source,
            key=info.key,
            etag=info.etag,
            size=info.size,
            status="duplicate",
            contract_version=original.contract_version,
            reason=reason,
        )

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
        self, source: str, contract: Contract, info: ObjectInfo, quarantine: QuarantineWriter, file_id: str
    ) -> LedgerEntry:
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
                    return self._write(source, contract, info, quarantine, file_id, batches, extra)
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
        log.info("contract %s evolved to version %d: added %s", source, evolved.version, ", ".join(extra))
        return self._convert(source, evolved, info, quarantine, file_id)

    def _write(
        self,
        source: str,
        contract: Contract,
        info: ObjectInfo,
        quarantine: QuarantineWriter,
        file_id: str,
        batches: Iterator[Prepared],
        extra: list[str],
    ) -> LedgerEntry:
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
        entry = LedgerEntry(
            source=source,
            key=info.key,
            etag=info.etag,
            size=info.size,
            status="loaded",
            contract_version=contract.fingerprint,
        )
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
            entry.outputs = main.close()
            for name, child_writer in children.items():
                entry.outputs += child_writer.close()
                entry.warnings[f"{name}_rows"] = child_writer.rows
        except BaseException:
            with contextlib.suppress(Exception):
                writer.join()
            main.abort()
            for child_writer in children.values():
                child_writer.abort()
            raise
        return entry


_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


def _is_decompression_error(key: str, exc: OSError) -> bool:
    message = str(exc).lower()
    return key.endswith(_COMPRESSED) and any(
        word in message for word in ("compress", "gzip", "zlib", "inflate", "bz2", "zstd", "lz4", "magic")
    )


def attempt_id(info: ObjectInfo) -> str:
    """Names one attempt's outputs: ``<key id>-<etag id>-<random>``, never another attempt's files."""
    return f"{key_id(info.key)}-{etag_id(info.etag)}-{uuid.uuid4().hex[:8]}"


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
