"""Reconciliation: does silver account for bronze, and bronze for silver?

For one source it lists bronze objects with no ledger entry for their current version
(pending), silver files that no current ledger entry names (orphans: left by a killed run, or
by an object since removed), ledger entries whose bronze object is gone, claims that are no
longer needed (their object is recorded, or their lease ran out) and unfinished writes
(temporary files, incomplete multipart uploads) older than a claim's lease.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lakehouse_common.ledger import LedgerEntry

if TYPE_CHECKING:
    from lakehouse_silverizer.runner import Silverizer


@dataclass
class Reconciliation:
    source: str
    bronze_objects: int = 0
    pending: list[str] = field(default_factory=list)
    orphan_outputs: list[str] = field(default_factory=list)
    bronze_gone: list[str] = field(default_factory=list)
    stale_claims: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    cleaned: int = 0

    @property
    def ok(self) -> bool:
        return not (self.pending or self.orphan_outputs or self.bronze_gone)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def silver_tables(silverizer: Silverizer, source: str) -> list[str]:
    """The silver tables a source writes: its contract's table and child tables."""
    try:
        contract = silverizer.contract(source)
    except Exception:  # an undeclared source with no inferred contract yet writes its own folder
        return [source]
    return [contract.name, *(child.name for child in contract.children)]


def reconcile(silverizer: Silverizer, source: str, *, clean: bool = False) -> Reconciliation:
    silver = silverizer.lake.silver
    result = Reconciliation(source)
    objects = silverizer.objects(source)
    result.bronze_objects = len(objects)
    result.pending = [o.key for o in silverizer.ledger.pending(source, objects)]
    latest: dict[str, LedgerEntry] = {}
    for entry in silverizer.ledger.entries(source):
        if entry.key not in latest or entry.finished_at > latest[entry.key].finished_at:
            latest[entry.key] = entry
    present = {o.key for o in objects}
    result.bronze_gone = sorted(k for k in latest if k not in present)
    named = {o for e in latest.values() for o in e.outputs} | {e.quarantine for e in latest.values() if e.quarantine}
    candidates = [info.key for table in silver_tables(silverizer, source) for info in silver.list(f"{table}/")]
    candidates += [info.key for info in silver.list(f"_quarantine/{source}/")]
    result.orphan_outputs = sorted(k for k in candidates if k not in named)
    recorded = silverizer.ledger.recorded(source)
    lease = timedelta(seconds=silverizer.options.claim_lease_s)
    for claim_key, claim in silverizer.claims.all(source):
        done = claim is not None and (
            silverizer.ledger.entry_key(source, claim.bronze_key, claim.bronze_etag) in recorded
        )
        if claim is None or done or claim.expired():
            result.stale_claims.append(claim_key)
    result.leftovers = list(silver.leftovers(lease))
    if clean:
        silver.delete(result.stale_claims)
        result.cleaned = len(result.stale_claims) + silver.clean_leftovers(lease)
    return result
