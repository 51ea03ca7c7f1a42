"""Reconciliation: does silver account for bronze, and bronze for silver?

Built on the Delta tables, for one source: bronze object versions whose transaction
``_load_history`` lacks (pending), keys whose newest load-history row is ``loaded`` while the
bronze object is gone (their rows stay in silver: bronze was deleted under it), files in the
source's table directories that no current snapshot names (staged by a killed run, or replaced by
a MERGE: Delta's vacuum removes them past its retention, see ``maintain``), and unfinished writes
(temporary files, incomplete multipart uploads) older than the retention. ``clean`` removes the
unfinished writes; ``maintain`` is what vacuums.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lakehouse_common import tables
from lakehouse_common.exceptions import UnknownSourceError
from lakehouse_silverizer.commits import table_specs

if TYPE_CHECKING:
    from lakehouse_silverizer.runner import Silverizer


@dataclass
class Reconciliation:
    source: str
    bronze_objects: int = 0
    pending: list[str] = field(default_factory=list)
    bronze_gone: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    cleaned: int = 0

    @property
    def ok(self) -> bool:
        return not (self.pending or self.bronze_gone)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def reconcile(
    silverizer: Silverizer, source: str, *, clean: bool = False, retention: timedelta | None = None
) -> Reconciliation:
    """What is pending, gone or unreferenced for ``source``; with ``clean``, remove unfinished writes.

    ``retention`` (default ``LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S``) is the age below which
    unfinished writes are reported but kept.
    """
    silver = silverizer.lake.silver
    if retention is None:
        retention = timedelta(seconds=silverizer.options.vacuum_retention_s)
    result = Reconciliation(source)
    objects = silverizer.objects(source)
    result.bronze_objects = len(objects)
    result.pending = [o.key for o in tables.pending(silver, source, objects)]
    newest: dict[str, str] = {}
    for row in tables.read_history(silver, source, ["bronze_key", "status", "finished_at"]).to_pylist():
        newest[row["bronze_key"]] = row["status"]
    present = {o.key for o in objects}
    result.bronze_gone = sorted(k for k, status in newest.items() if status == "loaded" and k not in present)
    try:
        names = [spec.name for spec in table_specs(silverizer.contract(source))]
    except UnknownSourceError:  # an undeclared source with nothing loaded yet has no contract: no tables
        names = []
    for name in names:
        table = tables.open_table(silver, name)
        if table is None:
            continue
        # full: also the files no log entry ever named (staged by a killed run); the tombstones of
        # files an earlier vacuum deleted are listed again by delta-rs, so keep what is on storage.
        found = table.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False, full=True)
        present = {info.key.removeprefix(f"{name}/") for info in silver.list(f"{name}/")}
        result.unreferenced += sorted(f"{name}/{p}" for p in found if p in present or unquote(p) in present)
    result.leftovers = list(silver.leftovers(retention))
    if clean:
        result.cleaned = silver.clean_leftovers(retention)
    return result
