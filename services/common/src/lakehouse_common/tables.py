"""Silver's Delta Lake tables: their names, the bookkeeping tables' schemas, and what is pending.

Every silver table is a Delta table at ``silver/<table>/`` (``deltalake`` writes it, DuckDB's
``delta_scan``, Polars, Spark and Athena read it as it is). Two bookkeeping tables sit beside the
sources' tables:

- ``_load_history``: one row per processed bronze object version (status, rows in, out,
  quarantined and de-duplicated, reason, times, the Delta version of each table's commit);
- ``_quarantine``: one row per rejected row (bronze key, row, field, reason, raw text), or per
  file rejected whole (row and field null).

Exactly once is Delta's: the commit that adds an object's rows to a table also records the app
transaction :func:`app_id` of that object version, with :func:`txn_version` as its version, in
the same log entry. ``_load_history`` is committed last, so an object version is pending while
``_load_history`` lacks its transaction (:func:`pending`); a rerun after a crash skips, table by
table, what an earlier attempt already committed. This module only reads; the silverizer writes.

``deltalake`` is imported lazily: the DAG files import this module at parse time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakehouse_common.exceptions import StorageError

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable

    from lakehouse_common.storage import LayerStore, ObjectInfo

LOAD_HISTORY = "_load_history"
QUARANTINE = "_quarantine"
BOOKKEEPING = (LOAD_HISTORY, QUARANTINE)
# What the previous version of the silverizer wrote instead of Delta's log (see refuse_legacy).
LEGACY_PREFIXES = ("_ledger/", "_claims/")
STATUSES = ("loaded", "quarantined", "duplicate", "failed")


class LegacyLakeError(StorageError):
    """The silver layer was written by the ledger-based version (no Delta tables): reprocess bronze."""


def app_id(source: str, key: str, etag: str) -> str:
    """The Delta app transaction id of one bronze object version: ``silver/<source>/<etag>/<key>``.

    It names the source, the bronze version's identity (its ETag) and the key, so that a changed
    object (new ETag) is pending again. The transaction's version is :func:`txn_version`.
    """
    return f"silver/{source}/{etag}/{key}"


def txn_version(modified: datetime) -> int:
    """The app transaction's version: the bronze version's modification time in microseconds.

    Restoring an object's old bytes gives its old ETag back but a newer time: it is pending again.
    """
    return int(modified.astimezone(UTC).timestamp() * 1_000_000)


_MD5_ETAG = re.compile(r"[0-9a-f]{32}")


def is_data_object(key: str) -> bool:
    """Whether a bronze key holds data: names starting with ``.`` or ``_`` are bookkeeping or temporary."""
    return not key.rsplit("/", 1)[-1].startswith((".", "_"))


def content_etag(etag: str) -> str | None:
    """The ETag when it identifies the bytes: S3's ETag of a single-part upload is their MD5.

    Multipart ETags (``<md5>-<parts>``) depend on the part size, and the local lake's
    (``<size>-<mtime>``) on the file's timestamp: neither says two objects hold the same bytes.
    """
    etag = etag.strip('"')
    return etag if _MD5_ETAG.fullmatch(etag) else None


def key_id(key: str) -> str:
    """A short id of a bronze key, for file names."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def content_id(etag: str) -> str:
    """A short id of an ETag, for file names."""
    return hashlib.sha256(etag.encode()).hexdigest()[:12]


def open_table(store: LayerStore, name: str, version: int | None = None) -> DeltaTable | None:
    """The Delta table ``name`` of ``store`` at its newest (or a given) version; None when there is none."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = store.table_uri(name)
    try:
        return DeltaTable(uri, version=version, storage_options=store.delta_options or None)
    except TableNotFoundError:
        return None


def transactions(store: LayerStore, name: str, table: DeltaTable) -> dict[str, int] | None:
    """Every app transaction that table ``name`` holds at ``table.version()``: app id -> version.

    Read in bulk from the log: the newest checkpoint's ``txn`` column, then the ``txn`` actions
    of the JSON commits after it. ``DeltaTable.transaction_version`` answers one app id per call
    by scanning the log (measured: 6 ms per call at 20,000 transactions, 2.6 ms after a
    checkpoint), so checking a batch of objects one by one grows with the lake. None when the
    log is laid out in a way this does not read (multi-part or v2 checkpoints, cleaned-up
    commits): callers then ask ``transaction_version`` per object.
    """
    import pyarrow.parquet as pq

    from lakehouse_common.exceptions import ObjectNotFoundError

    version = table.version()
    log = f"{name}/_delta_log"
    found: dict[str, int] = {}
    start = 0
    try:
        pointer = json.loads(store.read_bytes(f"{log}/_last_checkpoint"))
    except ObjectNotFoundError:
        pointer = None
    if pointer is not None and int(pointer.get("version", -1)) <= version:
        if "parts" in pointer or "v2Checkpoint" in pointer:
            return None
        checkpoint = int(pointer["version"])
        key = f"{log}/{checkpoint:020d}.checkpoint.parquet"
        try:
            schema = pq.read_schema(store.fs_path(key), filesystem=store.filesystem)
            if "txn" in schema.names:
                import pyarrow.compute as pc

                data = pq.read_table(store.fs_path(key), filesystem=store.filesystem, columns=["txn"])
                txns = data.column("txn").combine_chunks()
                txns = txns.filter(pc.is_valid(txns))
                found.update(zip(txns.field("appId").to_pylist(), txns.field("version").to_pylist(), strict=True))
        except (FileNotFoundError, ObjectNotFoundError):
            return None
        start = checkpoint + 1
    for number in range(start, version + 1):
        try:
            raw = store.read_bytes(f"{log}/{number:020d}.json")
        except ObjectNotFoundError:
            return None
        for line in raw.splitlines():
            if b'"txn"' in line:
                txn = json.loads(line).get("txn")
                if txn:
                    found[txn["appId"]] = int(txn["version"])
    return found


def committed_ids(store: LayerStore, name: str, table: DeltaTable, ids: Sequence[tuple[str, int]]) -> set[str]:
    """Which of ``ids`` (app id, version) ``table`` holds at that version or a newer one."""
    held = transactions(store, name, table)
    if held is None:
        return {i for i, v in ids if (found := table.transaction_version(i)) is not None and found >= v}
    return {i for i, v in ids if held.get(i, -1) >= v}


def newest_versions(table: DeltaTable, source: str) -> dict[str, str]:
    """Each bronze key's newest recorded version (its ETag) in the load history ``table``: the last
    row that did not fail (failed rows carry no transaction)."""
    import pyarrow.compute as pc

    data = table.to_pyarrow_dataset().to_table(
        columns=["bronze_key", "bronze_etag", "status", "finished_at"], filter=pc.field("source") == source
    )
    data = data.filter(pc.not_equal(data.column("status"), "failed")).sort_by([("finished_at", "ascending")])
    return dict(zip(data.column("bronze_key").to_pylist(), data.column("bronze_etag").to_pylist(), strict=True))


def pending(
    store: LayerStore, source: str, objects: Iterable[ObjectInfo], history: DeltaTable | None = None
) -> list[ObjectInfo]:
    """The object versions not loaded yet: ``_load_history`` lacks their transaction, or the key's
    newest recorded version is another one (an older version's bytes were put back).

    The same bytes put again under the same key (the same ETag) are not pending: they would load
    the same rows twice. Only objects modified since their transaction was recorded need the
    history's rows to tell the two apart; usually none do, and only the log is read.
    ``history`` is an open ``_load_history`` table to read (default: open it).
    """
    todo = list(objects)
    if not todo:
        return todo
    table = history if history is not None else open_table(store, LOAD_HISTORY)
    if table is None:
        return todo
    ids = [app_id(source, info.key, info.etag) for info in todo]
    held = transactions(store, LOAD_HISTORY, table)
    if held is None:
        held = {i: v for i in ids if (v := table.transaction_version(i)) is not None}
    touched = [info for info, i in zip(todo, ids, strict=True) if i in held and held[i] < txn_version(info.modified)]
    newest = newest_versions(table, source) if touched else {}
    return [
        info
        for info, i in zip(todo, ids, strict=True)
        if i not in held or (held[i] < txn_version(info.modified) and newest.get(info.key) != info.etag)
    ]


def refuse_legacy(store: LayerStore) -> None:
    """Refuse a silver layer written by the ledger-based version of Mini-Lakehouse.

    Its Parquet files are not Delta tables, and its ledger is not read any more: reprocess bronze
    into a fresh silver layer instead (bronze is the source of truth; see the README, "Migration").
    """
    for prefix in LEGACY_PREFIXES:
        if next(iter(store.list(prefix)), None) is not None:
            raise LegacyLakeError(
                f"{store.uri(prefix)} holds the silver ledger of an earlier Mini-Lakehouse version; silver is now "
                f"made of Delta tables. Move or delete the old silver layer ({store.uri()}) and run "
                "`lakehouse-silverize run` to rebuild it from bronze (bronze is unchanged and complete)"
            )


def load_history_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("source", pa.string(), nullable=False),
            pa.field("bronze_key", pa.string(), nullable=False),
            pa.field("bronze_etag", pa.string(), nullable=False),
            pa.field("bronze_size", pa.int64(), nullable=False),
            pa.field("bronze_modified", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("version_id", pa.string(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("contract_version", pa.string()),
            pa.field("rows_in", pa.int64(), nullable=False),
            pa.field("rows_out", pa.int64(), nullable=False),
            pa.field("rows_quarantined", pa.int64(), nullable=False),
            pa.field("rows_deduplicated", pa.int64(), nullable=False),
            pa.field("reason", pa.string()),
            pa.field("warnings", pa.string()),  # JSON object: warning name -> count
            pa.field("table_versions", pa.string()),  # JSON object: silver table -> Delta version of its commit
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("finished_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("seconds", pa.float64(), nullable=False),
        ]
    )


def quarantine_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("source", pa.string(), nullable=False),
            pa.field("bronze_key", pa.string(), nullable=False),
            pa.field("bronze_etag", pa.string(), nullable=False),
            pa.field("row", pa.int64()),
            pa.field("field", pa.string()),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("raw", pa.string()),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def read_history(
    store: LayerStore,
    source: str | None = None,
    columns: Sequence[str] | None = None,
    history: DeltaTable | None = None,
) -> pa.Table:
    """The load history (every source, or one), oldest first; empty with its schema when none.
    ``history`` is an open ``_load_history`` table to read (default: open it)."""
    import pyarrow.compute as pc

    table = history if history is not None else open_table(store, LOAD_HISTORY)
    schema = load_history_schema()
    if table is None:
        data = schema.empty_table()
    else:
        dataset = table.to_pyarrow_dataset()
        data = dataset.to_table(filter=pc.field("source") == source if source else None)
    if columns is not None:
        data = data.select(list(columns))
    return data.sort_by([("finished_at", "ascending")]) if "finished_at" in data.column_names else data


def history_rows(store: LayerStore, source: str | None = None) -> list[dict[str, Any]]:
    """:func:`read_history` as Python dicts, with ``warnings`` and ``table_versions`` decoded."""
    rows: list[dict[str, Any]] = read_history(store, source).to_pylist()
    for row in rows:
        for name in ("warnings", "table_versions"):
            row[name] = json.loads(row[name]) if row.get(name) else {}
    return rows


__all__ = [
    "BOOKKEEPING",
    "LOAD_HISTORY",
    "QUARANTINE",
    "STATUSES",
    "LegacyLakeError",
    "app_id",
    "committed_ids",
    "content_etag",
    "content_id",
    "history_rows",
    "is_data_object",
    "key_id",
    "load_history_schema",
    "newest_versions",
    "open_table",
    "pending",
    "quarantine_schema",
    "read_history",
    "refuse_legacy",
    "transactions",
    "txn_version",
]
