"""Reconciliation: does silver account for bronze, and bronze for silver?

For one source it lists bronze objects with no ledger entry for their current version
(pending), silver files that no ledger entry names (orphans: left by a killed run), files that
only an older entry names (superseded: readers no longer see them, vacuum collects them),
ledger entries whose bronze object is gone, claims that are no longer needed (their object is
recorded, or their lease ran out) and unfinished writes (temporary files, incomplete multipart
uploads) older than the vacuum retention. ``clean`` removes the stale claims, and vacuums: the
orphans, superseded files and unfinished writes older than the retention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lakehouse_common.ledger import Ledger, newest_per_key
from lakehouse_silverizer.vacuum import unreferenced, vacuum

if TYPE_CHECKING:
    from lakehouse_silverizer.runner import Silverizer


@dataclass
class Reconciliation:
    source: str
    bronze_objects: int = 0
    pending: list[str] = field(default_factory=list)
    orphan_outputs: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    bronze_gone: list[str] = field(default_factory=list)
    stale_claims: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    cleaned: int = 0

    @property
    def ok(self) -> bool:
        return not (self.pending or self.orphan_outputs or self.bronze_gone)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def reconcile(
    silverizer: Silverizer, source: str, *, clean: bool = False, retention: timedelta | None = None
) -> Reconciliation:
    """What is pending, orphaned, superseded or stale for ``source``; with ``clean``, remove what may go.

    ``retention`` (default ``LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S``) is the age below which
    unreferenced files and unfinished writes are reported but kept.
    """
    silver = silverizer.lake.silver
    if retention is None:
        retention = timedelta(seconds=silverizer.options.vacuum_retention_s)
    result = Reconciliation(source)
    objects = silverizer.objects(source)
    result.bronze_objects = len(objects)
    entries = list(silverizer.ledger.entries(source))  # read once: pending, gone, unreferenced, claims
    recorded = {Ledger.entry_key(e.source, e.key, e.etag) for e in entries}
    result.pending = [o.key for o in objects if Ledger.entry_key(source, o.key, o.etag) not in recorded]
    present = {o.key for o in objects}
    result.bronze_gone = sorted(key for _, key in newest_per_key(entries) if key not in present)
    found = unreferenced(silverizer, source, entries)
    result.orphan_outputs = sorted(info.key for info in found.orphans)
    result.superseded = sorted(info.key for info in found.superseded)
    claims = silverizer.claims.all(source)
    for claim_key, claim in claims:
        done = claim is not None and Ledger.entry_key(source, claim.bronze_key, claim.bronze_etag) in recorded
        if claim is None or done or claim.expired():
            result.stale_claims.append(claim_key)
    result.leftovers = list(silver.leftovers(retention))
    if clean:
        silver.delete(result.stale_claims)
        swept = vacuum(silverizer, source, retention, found=found, claims=claims)
        gone = set(swept.deleted)
        result.orphan_outputs = [k for k in result.orphan_outputs if k not in gone]
        result.superseded = [k for k in result.superseded if k not in gone]
        result.cleaned = len(result.stale_claims) + len(gone) + silver.clean_leftovers(retention)
    return result
