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


def is_committed(table: DeltaTable | None, source: str, info: ObjectInfo) -> bool:
    """Whether ``table`` holds the transaction of this bronze object version."""
    if table is None:
        return False
    found = table.transaction_version(app_id(source, info.key, info.etag))
    return found is not None and found >= txn_version(info.modified)


def pending(store: LayerStore, source: str, objects: Iterable[ObjectInfo]) -> list[ObjectInfo]:
    """The object versions whose transaction ``_load_history`` lacks (one log read, no data read)."""
    history = open_table(store, LOAD_HISTORY)
    return [info for info in objects if not is_committed(history, source, info)]


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


def read_history(store: LayerStore, source: str | None = None, columns: Sequence[str] | None = None) -> pa.Table:
    """The load history (every source, or one), oldest first; empty with its schema when none."""
    import pyarrow.compute as pc

    table = open_table(store, LOAD_HISTORY)
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
    "content_id",
    "history_rows",
    "is_committed",
    "load_history_schema",
    "open_table",
    "pending",
    "quarantine_schema",
    "read_history",
    "refuse_legacy",
    "txn_version",
]
