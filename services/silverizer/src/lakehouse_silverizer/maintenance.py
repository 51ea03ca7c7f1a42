"""Silver's maintenance, done by Delta Lake itself: compaction, vacuum and checkpoints.

Every Delta table of the silver layer (the sources' tables, their child tables, ``_load_history``
and ``_quarantine``) is found by its ``<table>/_delta_log/`` folder and maintained in three steps,
each ``deltalake``'s own operation (this module writes no data and no log entry of its own):

1. **compact** (``optimize.compact()``): a silver run commits once per table per batch, so a table
   collects many small files; compaction rewrites each partition's small files into few large ones
   in one commit. Rows, app transactions and older versions are unchanged; the replaced files stay
   on storage (Delta's tombstones) until vacuum.
2. **vacuum** (``vacuum(full=True)``): deletes the files that no version within the retention needs:
   files tombstoned longer ago than the retention (compacted, merged away), and files that no log
   entry names at all, older than the retention (a silverizer run killed after staging its
   Parquet files and before its commit). The retention
   (``LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S``) must be longer than any reader (a dbt build, a BI
   query, time travel people rely on) and longer than any silverizer run, whose staged files are
   unnamed until it commits. It replaces Delta's own 7-day default
   (``enforce_retention_duration=False``) and is rounded up to whole hours, as Delta counts it.
3. **checkpoint** (``create_checkpoint()`` and ``cleanup_metadata()``): the table's state as one
   Parquet file in ``_delta_log/``, so that opening the table reads the checkpoint and the few
   commits after it instead of every commit since the table was created; log entries older than
   Delta's log retention (``delta.logRetentionDuration``, 30 days) and covered by a checkpoint
   are then removed. A table already checkpointed at its newest version is left as it is.

Concurrent silverizer runs are safe: appends never conflict with compaction, and a compaction
that loses to a MERGE on the same files is retried against the new snapshot.

``lakehouse-silverize maintain`` and the ``silver_maintenance`` DAG run :func:`maintain`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from deltalake.exceptions import CommitFailedError

from lakehouse_common.exceptions import ObjectNotFoundError
from lakehouse_common.tables import open_table, refuse_legacy
from lakehouse_silverizer.exceptions import SilverizerError

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from lakehouse_common.storage import LayerStore

log = logging.getLogger(__name__)

DELTA_LOG = "_delta_log"
COMPACT_ATTEMPTS = 5


class MaintenanceError(SilverizerError):
    """Base of the maintenance errors."""


class UnknownTableError(MaintenanceError):
    """A table asked for is not a Delta table of the layer."""

    def __init__(self, store_uri: str, unknown: Sequence[str], known: Sequence[str]) -> None:
        super().__init__(
            f"not a Delta table under {store_uri}: {', '.join(unknown)}; "
            f"the Delta tables there are: {', '.join(known) or 'none'}"
        )
        self.unknown = tuple(unknown)
        self.known = tuple(known)


class InvalidRetentionError(MaintenanceError, ValueError):
    """The vacuum retention is negative or not a number."""

    def __init__(self, retention_hours: float) -> None:
        super().__init__(f"vacuum retention must be a number of hours >= 0, got {retention_hours!r}")


class MaintenanceFailedError(MaintenanceError):
    """Some tables could not be maintained; the others were (``results``)."""

    def __init__(self, failures: dict[str, str], results: Sequence[TableMaintenance]) -> None:
        listed = "; ".join(f"{table}: {reason}" for table, reason in sorted(failures.items()))
        super().__init__(f"maintenance failed for {len(failures)} silver table(s): {listed}")
        self.failures = dict(failures)
        self.results = list(results)


@dataclass(frozen=True)
class TableMaintenance:
    """What maintenance did to one table."""

    table: str
    version_before: int
    version_after: int
    files_before: int  # data files of the newest version, before
    files_after: int  # ... and after
    files_compacted: int  # small files compaction replaced (now tombstoned)
    files_written: int  # the files compaction wrote instead
    files_removed: int  # files vacuum deleted from storage (tombstoned or named by no log entry)
    checkpoint: int | None  # the version checkpointed now; None when none was written

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def delta_tables(store: LayerStore) -> list[str]:
    """The Delta tables of ``store``: its top-level folders that hold a ``_delta_log/``, sorted."""
    return [name for name in store.folders() if next(iter(store.list(f"{name}/{DELTA_LOG}/")), None) is not None]


def maintain(
    store: LayerStore,
    tables: Sequence[str] | None = None,
    *,
    retention_hours: float,
    compact: bool = True,
    vacuum: bool = True,
    checkpoint: bool = True,
) -> list[TableMaintenance]:
    """Compact, vacuum and checkpoint every Delta table of ``store`` (or only ``tables``).

    Every table is tried; if any failed, :class:`MaintenanceFailedError` is raised afterwards,
    naming each and carrying the results of the others. Raises :class:`UnknownTableError` (before
    doing anything) for a name that is not a Delta table of ``store``, and
    :class:`~lakehouse_common.tables.LegacyLakeError` for a silver layer of the ledger-based version.
    """
    if not isinstance(retention_hours, (int, float)) or math.isnan(retention_hours) or retention_hours < 0:
        raise InvalidRetentionError(retention_hours)
    refuse_legacy(store)
    known = delta_tables(store)
    if tables is None:
        names = known
    else:
        unknown = [name for name in tables if name not in known]
        if unknown:
            raise UnknownTableError(store.uri(), unknown, known)
        names = list(dict.fromkeys(tables))
    results: list[TableMaintenance] = []
    failures: dict[str, str] = {}
    for name in names:
        try:
            done = maintain_table(
                store, name, retention_hours=retention_hours, compact=compact, vacuum=vacuum, checkpoint=checkpoint
            )
        except Exception as exc:  # one table's failure must not keep the others unmaintained
            log.warning("silver table %s: maintenance failed: %s: %s", name, type(exc).__name__, exc)
            failures[name] = f"{type(exc).__name__}: {exc}"
            continue
        log.info(
            "silver table %s: v%d -> v%d, %d -> %d file(s), %d compacted, %d removed, checkpoint %s",
            name,
            done.version_before,
            done.version_after,
            done.files_before,
            done.files_after,
            done.files_compacted,
            done.files_removed,
            "none" if done.checkpoint is None else f"v{done.checkpoint}",
        )
        results.append(done)
    if failures:
        raise MaintenanceFailedError(failures, results)
    return results


def maintain_table(
    store: LayerStore,
    name: str,
    *,
    retention_hours: float,
    compact: bool = True,
    vacuum: bool = True,
    checkpoint: bool = True,
) -> TableMaintenance:
    """:func:`maintain` for one table, which must exist."""
    table = _open(store, name)
    version_before, files_before = table.version(), len(table.file_uris())
    compacted = written = removed = 0
    if compact:
        compacted, written = _compact(store, name)
        table = _open(store, name)
    if vacuum:
        removed = _vacuum(store, name, table, math.ceil(retention_hours))
        table.update_incremental()
    checkpointed: int | None = None
    if checkpoint and last_checkpoint(store, name) != table.version():
        table.create_checkpoint()
        table.cleanup_metadata()
        checkpointed = table.version()
    return TableMaintenance(
        table=name,
        version_before=version_before,
        version_after=table.version(),
        files_before=files_before,
        files_after=len(table.file_uris()),
        files_compacted=compacted,
        files_written=written,
        files_removed=removed,
        checkpoint=checkpointed,
    )


def last_checkpoint(store: LayerStore, name: str) -> int | None:
    """The version of the table's newest checkpoint (``_delta_log/_last_checkpoint``), or None."""
    try:
        raw = store.read_bytes(f"{name}/{DELTA_LOG}/_last_checkpoint")
    except ObjectNotFoundError:
        return None
    try:
        return int(json.loads(raw)["version"])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: write a new one


def _open(store: LayerStore, name: str) -> DeltaTable:
    table = open_table(store, name)
    if table is None:
        raise UnknownTableError(store.uri(), [name], delta_tables(store))
    return table


def _vacuum(store: LayerStore, name: str, table: DeltaTable, hours: int) -> int:
    """Vacuum when something is left to delete; returns how many files were deleted.

    Delta keeps a deleted file's tombstone in the log (and checkpoints) for
    ``delta.deletedFileRetentionDuration`` after vacuum deleted the file, and vacuum lists it
    again on every run (and commits again). So the candidates are checked against the table's
    files on storage first: a run with nothing to delete commits nothing.
    """

    def run(dry_run: bool) -> list[str]:
        return table.vacuum(retention_hours=hours, dry_run=dry_run, enforce_retention_duration=False, full=True)

    candidates = run(dry_run=True)
    if not candidates:
        return 0
    root = f"{name}/"
    present = {info.key.removeprefix(root) for info in store.list(root)}
    existing = [path for path in candidates if path in present or unquote(path) in present]
    if not existing:
        return 0
    run(dry_run=False)
    return len(existing)


def _compact(store: LayerStore, name: str) -> tuple[int, int]:
    """``optimize.compact()``, retried against the new snapshot when a MERGE removed the same files."""
    for attempt in range(1, COMPACT_ATTEMPTS + 1):
        table = _open(store, name)
        try:
            metrics = table.optimize.compact()
        except CommitFailedError as exc:
            if attempt == COMPACT_ATTEMPTS:
                raise
            log.info("silver table %s: compaction conflicted with another commit (%s); retrying", name, exc)
            continue
        return int(metrics.get("numFilesRemoved", 0)), int(metrics.get("numFilesAdded", 0))
    raise AssertionError("unreachable")


__all__ = [
    "InvalidRetentionError",
    "MaintenanceError",
    "MaintenanceFailedError",
    "TableMaintenance",
    "UnknownTableError",
    "delta_tables",
    "last_checkpoint",
    "maintain",
    "maintain_table",
]
