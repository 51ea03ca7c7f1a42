"""What the DAG tasks do. Plain functions of the service packages; the DAG files only wire them.

Each function reads the settings from the environment when it runs (in the worker), never at
DAG parse time, and returns a small JSON-able summary that becomes the task's XCom and, where
the task updates Assets, the Asset event's ``extra``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

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
    """Bronze keys of ``source`` whose object version ``silver/_load_history`` has no Delta app
    transaction for (:func:`lakehouse_common.tables.pending`: log reads and the history's key
    column, no data read): the silver run's work list."""
    keys = [info.key for info in _silverizer().pending(source)]
    log.info("%s: %d pending bronze object(s)", source, len(keys))
    return keys


class SilverWork(TypedDict):
    """:func:`pending_batches`' answer."""

    batches: list[list[str]]
    listing: dict[str, Any] | None  # the listing cursor to write once every batch is done


def pending_batches(source: str, hints: Iterable[str] = ()) -> SilverWork:
    """The silver run's work list: the pending keys in the silverizer's batches
    (``LAKEHOUSE_SILVERIZER_BATCH_OBJECTS`` and ``BATCH_MB``; one mapped task per batch, one
    Delta commit per table per batch), found by an incremental listing of bronze after the
    source's listing cursor (in full when one is due) plus the ``hints``, the keys the triggering
    events named. ``listing`` is what :func:`advance_listing` writes once every batch is done."""
    silverizer = _silverizer()
    listing = silverizer.listing(source, incremental=True, hints=hints)
    batches = [[info.key for info in batch] for batch in silverizer.batches(silverizer.pending(source, listing))]
    log.info(
        "%s: %d pending bronze object(s) in %d batch(es) (%s listing of %d object(s), %d named by events)",
        source,
        sum(map(len, batches)),
        len(batches),
        "full" if listing.full else "incremental",
        len(listing.objects),
        len(listing.hinted),
    )
    return {"batches": batches, "listing": listing.to_dict()}


def event_keys(events: Mapping[Any, Iterable[Any]] | None) -> list[str]:
    """The bronze keys that a run's triggering Asset events name: the event bridge's ``key`` (one
    object per MinIO notification) and the landing sensor's ``keys`` (the first 100 it found)."""
    keys: list[str] = []
    for asset_events in (events or {}).values():
        for event in asset_events:
            extra = getattr(event, "extra", None) or {}
            if isinstance(extra.get("key"), str):
                keys.append(extra["key"])
            listed = extra.get("keys")
            keys += [k for k in listed if isinstance(k, str)] if isinstance(listed, list) else []
    return list(dict.fromkeys(keys))


def advance_listing(source: str, cursor: dict[str, Any] | None, batches: Sequence[list[dict[str, Any]] | None]) -> bool:
    """Move the source's listing cursor (``pending_batches``' ``listing``) once every batch of the
    run succeeded and nothing it skipped is still pending; whether it moved (a failed batch
    leaves it: the next run lists again)."""
    from lakehouse_silverizer.listing import finish

    if any(batch is None for batch in batches):
        return False
    silverizer = _silverizer()
    skipped = [r["key"] for batch in batches for r in batch or [] if r.get("status") == "skipped"]
    return finish(silverizer.lake.silver, silverizer.lake.bronze, source, cursor, skipped)


def _result(record: Any) -> dict[str, Any]:
    return {
        "key": record.key,
        "status": record.status,
        "rows_in": record.rows_in,
        "rows_out": record.rows_out,
        "rows_quarantined": record.rows_quarantined,
        "rows_deduplicated": record.rows_deduplicated,
        "seconds": record.seconds,
        "reason": record.reason,
    }


def _skipped(key: str) -> dict[str, Any]:
    return {"key": key, "status": "skipped", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0, "rows_deduplicated": 0}


def silverize_batch(source: str, keys: list[str]) -> list[dict[str, Any]]:
    """Turn a batch of bronze objects into silver, exactly once: one Delta commit per table holds
    their rows and their app transactions, and their load-history rows are committed last.

    Keys that another run (or an earlier try) already committed, or that are gone, are reported
    as ``skipped``: Asset events are wake-ups, and duplicates must not process anything twice.
    """
    summary = _silverizer().run_keys(source, keys)
    return [*(_result(r) for r in summary.entries), *(_skipped(k) for k in summary.skipped)]


def silverize_object(source: str, key: str) -> dict[str, Any]:
    """:func:`silverize_batch` of one key."""
    (result,) = silverize_batch(source, [key])
    return result


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
        "rows_deduplicated": sum(r.get("rows_deduplicated", 0) for r in processed),
        "duplicates": sum(1 for r in done if r["status"] == "duplicate"),
        "skipped": sum(1 for r in done if r["status"] == "skipped"),
    }


def maintain_silver(tables: list[str] | None = None) -> dict[str, Any]:
    """Delta's maintenance of every silver table (or only ``tables``): compaction of small files,
    vacuum of files older than ``LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S`` that no retained version
    names, and a checkpoint (:func:`lakehouse_silverizer.maintenance.maintain`)."""
    from lakehouse_common.storage import Lake
    from lakehouse_silverizer.maintenance import maintain
    from lakehouse_silverizer.settings import get_settings as silverizer_settings

    retention_s = silverizer_settings().vacuum_retention_s
    results = maintain(Lake(get_settings()).silver, tables, retention_hours=retention_s / 3600)
    return {
        "retention_hours": retention_s / 3600,
        "tables": {r.table: r.to_dict() for r in results},
        "files_compacted": sum(r.files_compacted for r in results),
        "files_removed": sum(r.files_removed for r in results),
        "checkpoints": sum(r.checkpoint is not None for r in results),
    }


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

    Meant to run after a gold publish; reads the manifest, the marts, silver's load history and the
    bronze listing.
    """
    from lakehouse_gold.report import build_report as build

    result = build(get_settings())
    return {
        "uri": result.gold_uri,
        "local_path": str(result.local_path),
        "bytes": result.size_bytes,
        "gold_run_id": result.gold_run_id,
        "loads": result.loads,  # rows of silver's load history (tables.read_history) the report shows
        "charts": result.charts,
        "notes": list(result.notes),
    }
