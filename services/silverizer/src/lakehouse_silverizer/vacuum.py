"""Vacuum: delete the silver files that readers no longer see, once no reader can be using them.

Readers see only the files that each bronze key's newest ledger entry names
(:meth:`lakehouse_common.ledger.Ledger.committed`). Two kinds of file are outside that set:

- *superseded*: named by an older entry of the key (an earlier version, an earlier reprocess);
- *orphans*: named by no entry (an attempt killed before its commit, or one whose claim was
  taken over).

Neither is deleted at commit time: a dbt build or a BI query that listed the files a moment
before may still be reading them (snapshot isolation, as Delta's VACUUM keeps files for a
retention period). :func:`vacuum` deletes them once older than the retention
(``LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S``), and never a file of an object version that a
live claim holds, whatever its age.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from lakehouse_common.ledger import LedgerEntry, is_data_object, newest_per_key, version_of
from lakehouse_common.storage import ObjectInfo

if TYPE_CHECKING:
    from lakehouse_silverizer.claims import Claim
    from lakehouse_silverizer.runner import Silverizer

log = logging.getLogger(__name__)

QUARANTINE_PREFIX = "_quarantine"


@dataclass
class Unreferenced:
    """A source's silver files that readers do not see."""

    superseded: list[ObjectInfo] = field(default_factory=list)
    orphans: list[ObjectInfo] = field(default_factory=list)


@dataclass
class VacuumReport:
    source: str
    deleted: list[str] = field(default_factory=list)
    waiting: int = 0  # unreferenced, but younger than the retention
    claimed: int = 0  # unreferenced, but a live claim holds its object version


def silver_tables(silverizer: Silverizer, source: str) -> list[str]:
    """The silver tables a source writes: its contract's table and child tables."""
    try:
        contract = silverizer.contract(source)
    except Exception:  # an undeclared source with no inferred contract yet writes its own folder
        return [source]
    return [contract.name, *(child.name for child in contract.children)]


def source_files(silverizer: Silverizer, source: str) -> list[ObjectInfo]:
    """Every finished silver file of a source: its tables' files and its quarantine files."""
    silver = silverizer.lake.silver
    prefixes = [f"{table}/" for table in silver_tables(silverizer, source)] + [f"{QUARANTINE_PREFIX}/{source}/"]
    return [info for prefix in prefixes for info in silver.list(prefix) if is_data_object(info.key)]


def unreferenced(silverizer: Silverizer, source: str, entries: list[LedgerEntry] | None = None) -> Unreferenced:
    """The source's files readers do not see; ``entries`` (the source's ledger) when already read."""
    if entries is None:
        entries = list(silverizer.ledger.entries(source))
    committed = {key for entry in newest_per_key(entries).values() for key in entry.files()}
    named = {key for entry in entries for key in entry.files()}
    found = Unreferenced()
    for info in source_files(silverizer, source):
        if info.key in committed:
            continue
        (found.superseded if info.key in named else found.orphans).append(info)
    return found


def vacuum(
    silverizer: Silverizer,
    source: str,
    retention: timedelta | None = None,
    *,
    now: datetime | None = None,
    found: Unreferenced | None = None,
    claims: list[tuple[str, Claim | None]] | None = None,
) -> VacuumReport:
    """Delete the source's superseded and orphan silver files older than ``retention``.

    ``found`` and ``claims`` (:meth:`Claims.all`) spare the reads when the caller has them.
    """
    if retention is None:
        retention = timedelta(seconds=silverizer.options.vacuum_retention_s)
    cutoff = (now or datetime.now(tz=UTC)) - retention
    held = {
        claim_key.rsplit("/", 1)[-1].removesuffix(".json")
        for claim_key, claim in (silverizer.claims.all(source) if claims is None else claims)
        if claim is not None and not claim.expired()
    }
    report = VacuumReport(source)
    found = found or unreferenced(silverizer, source)
    for info in [*found.superseded, *found.orphans]:
        if version_of(info.key) in held:
            report.claimed += 1
        elif info.modified > cutoff:
            report.waiting += 1
        else:
            report.deleted.append(info.key)
    silverizer.lake.silver.delete(report.deleted)
    if report.deleted:
        log.info("vacuum %s: deleted %d unreferenced silver file(s)", source, len(report.deleted))
    return report
