"""What the DAG tasks do. Plain functions of the service packages; the DAG files only wire them.

Each function reads the settings from the environment when it runs (in the worker), never at
DAG parse time, and returns a small JSON-able summary that becomes the task's XCom and, where
the task updates Assets, the Asset event's ``extra``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import get_settings

log = logging.getLogger(__name__)

# At most this many keys are listed in an Asset event's extra (the metadata DB stores it).
MAX_KEYS_IN_EXTRA = 100


def _silverizer() -> Any:
    from lakehouse_silverizer.runner import Silverizer
    from lakehouse_silverizer.settings import get_settings as silverizer_settings

    settings = get_settings()
    return Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir), silverizer_settings())


def pending_keys(source: str) -> list[str]:
    """Bronze keys of ``source`` with no ledger entry: the silver run's work list, decided by the ledger."""
    keys = [info.key for info in _silverizer().pending(source)]
    log.info("%s: %d pending bronze object(s)", source, len(keys))
    return keys


def silverize_object(source: str, key: str) -> dict[str, Any]:
    """Turn one bronze object into silver, exactly once.

    A key that another run (or an earlier try) already committed is reported as ``skipped``:
    Asset events are wake-ups, and duplicates must not process anything twice.
    """
    from lakehouse_silverizer.exceptions import ObjectNotPendingError

    try:
        entry = _silverizer().run_key(source, key)
    except ObjectNotPendingError as exc:
        log.info("%s", exc)
        return {"key": key, "status": "skipped", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0}
    return {
        "key": key,
        "status": entry.status,
        "rows_in": entry.rows_in,
        "rows_out": entry.rows_out,
        "rows_quarantined": entry.rows_quarantined,
        "rows_deduplicated": entry.rows_deduplicated,
        "seconds": entry.seconds,
        "reason": entry.reason,
    }


def summarize_silver(source: str, results: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """The silver Asset event's extra: the objects processed and their rows."""
    done = [r for r in results if r is not None]
    processed = [r for r in done if r["status"] not in ("skipped", "duplicate")]
    return {
        "source": source,
        "objects": len(processed),
        "keys": [r["key"] for r in processed[:MAX_KEYS_IN_EXTRA]],
        "statuses": dict(sorted(Counter(r["status"] for r in processed).items())),
        "rows_in": sum(r["rows_in"] for r in processed),
        "rows_out": sum(r["rows_out"] for r in processed),
        "rows_quarantined": sum(r["rows_quarantined"] for r in processed),
        "duplicates": sum(1 for r in done if r["status"] == "duplicate"),
        "skipped": sum(1 for r in done if r["status"] == "skipped"),
    }


def vacuum_silver(source: str) -> dict[str, Any]:
    """Delete ``source``'s silver files that readers no longer see (superseded versions, killed
    attempts), once older than ``LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S``."""
    from lakehouse_silverizer.vacuum import vacuum

    report = vacuum(_silverizer(), source)
    return {"source": source, "deleted": len(report.deleted), "waiting": report.waiting, "claimed": report.claimed}


def build_gold() -> dict[str, Any]:
    """``dbt build`` (models and tests), then publish gold; raises (publishing nothing) if any fails."""
    from lakehouse_gold.build import build_gold as build

    result = build(get_settings())
    manifest = result.manifest
    return {
        "run_id": result.run_id,
        "published_at": manifest.published_at.isoformat(),
        "marts": {m.name: {"rows": m.rows, "sha256": m.sha256} for m in manifest.marts},
        "dbt": manifest.dbt_status_counts,
        "warnings": list(manifest.dbt_warnings),
    }


def replicate_gold() -> dict[str, Any]:
    """Copy new or changed gold objects to the replica; verified; skipped when none is configured."""
    from lakehouse_gold.replicate import replicate_gold as replicate

    report = replicate(get_settings())
    return {
        "target": report.target,
        "copied": report.copied,
        "unchanged": len(report.unchanged),
        "verified": len(report.verified),
        "summary": report.summary(),
    }


def load_postgres() -> dict[str, Any]:
    """Load the published marts into the Postgres serving schema for BI tools; atomic and idempotent per mart.

    Skipped (one log line, ``"skipped": true``) when ``LAKEHOUSE_SERVING_POSTGRES_DSN`` is unset.
    """
    from lakehouse_gold.serving import load_postgres as load
    from lakehouse_gold.settings import get_settings as serving_settings

    return load(get_settings(), serving_settings()).to_dict()


def build_report() -> dict[str, Any]:
    """Render the static HTML report (marts as charts, pipeline health) into gold's ``report/index.html``.

    Meant to run after a gold publish; reads the manifest, the marts, the ledger and the bronze listing.
    """
    from lakehouse_gold.report import build_report as build

    result = build(get_settings())
    return {
        "uri": result.gold_uri,
        "local_path": str(result.local_path),
        "bytes": result.size_bytes,
        "gold_run_id": result.gold_run_id,
        "ledger_entries": result.ledger_entries,
        "charts": result.charts,
        "notes": list(result.notes),
    }
