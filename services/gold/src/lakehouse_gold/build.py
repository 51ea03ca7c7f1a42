"""``lakehouse-gold build``: run dbt into a fresh staging location, publish only if every node passed.

0. Every silver table that dbt's sources read (``dbt/models/staging/_silver__sources.yml``) must
   be a Delta table: the silverizer creates each declared source's tables, empty, before any data,
   so a source that has not loaded yet gives empty marts; a table that does not exist at all is
   refused up front (:class:`SilverNotReadyError`), and so is a ledger-era silver layer.
1. dbt writes the marts to ``<gold>/_staging/<run_id>/<model>.parquet`` (the profile's
   ``external_root``); its target, logs and DuckDB file go to ``<scratch>/dbt/<run_id>/``.
2. If every model, data test and unit test passed, :func:`publish_staged` writes each mart to its
   run-versioned key ``marts/<model>/run=<run_id>.parquet``, commits by writing ``_manifest.json``,
   then refreshes the convenience copies ``marts/<model>.parquet`` and removes old run files.
3. Otherwise :class:`DbtBuildError` names the failed nodes, and the published gold is untouched.

The staging objects are removed in every case. A build that was killed outright leaves its
staging prefix behind; readers never look under ``_staging/`` (the manifest names the marts), and
the next build removes prefixes older than :data:`STALE_STAGING_AFTER` (:func:`clean_stale_staging`).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from lakehouse_common import tables
from lakehouse_common.exceptions import StorageError
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, LocalLayerStore
from lakehouse_gold.dbt_runner import PROFILE_EXTENSIONS, DbtRunResult, ensure_extensions, project_dir, run_dbt
from lakehouse_gold.exceptions import DbtBuildError, GoldError
from lakehouse_gold.manifest import RUN_STAMP, STAGING_PREFIX, GoldManifest, run_started
from lakehouse_gold.publish import publish_staged

log = logging.getLogger(__name__)

STALE_STAGING_AFTER = timedelta(hours=6)
"""A staging prefix this much older than now (by its run id) belongs to a build that died: removed.
Younger ones may belong to a build still running (another process), so they are left alone."""


SOURCES_FILE = Path("models/staging/_silver__sources.yml")


class SilverNotReadyError(GoldError):
    """A silver table that dbt reads is not a Delta table yet."""

    def __init__(self, missing: list[str], silver: str) -> None:
        self.missing = missing
        super().__init__(
            f"silver has no Delta table {', '.join(missing)} under {silver}: dbt's sources read every one of them. "
            "Run `lakehouse-silverize run` first: it creates each declared source's tables (empty until data "
            "arrives), so gold builds with empty marts for sources that have not loaded yet"
        )


def silver_source_tables(project: Path) -> list[str]:
    """The silver tables (identifiers) that the dbt project's ``silver`` source reads."""
    document = yaml.safe_load((project / SOURCES_FILE).read_text(encoding="utf-8")) or {}
    return [
        str(table.get("identifier") or table["name"])
        for source in document.get("sources", [])
        if source.get("name") == "silver"
        for table in source.get("tables", [])
    ]


def check_silver(settings: Settings, lake: Lake) -> None:
    """Refuse a silver layer that dbt cannot read: ledger-era files, or a source table not created yet."""
    tables.refuse_legacy(lake.silver)
    wanted = silver_source_tables(project_dir(settings))
    missing = [name for name in wanted if tables.open_table(lake.silver, name) is None]
    if missing:
        raise SilverNotReadyError(missing, lake.silver.uri())


@dataclass(frozen=True)
class BuildResult:
    run_id: str
    manifest: GoldManifest
    dbt: DbtRunResult


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20240131T120000Z-1a2b3c``."""
    stamp = (now or datetime.now(UTC)).strftime(RUN_STAMP)
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def build_gold(settings: Settings, *, lake: Lake | None = None, run_id: str | None = None) -> BuildResult:
    lake = lake or Lake(settings)
    lake.ensure(["silver", "gold"])
    check_silver(settings, lake)
    run_id = run_id or new_run_id()
    try:
        clean_stale_staging(lake)
    except StorageError as exc:  # leftovers are harmless: the build goes on
        log.warning("could not remove stale staging prefixes: %s", exc)
    staging = f"{STAGING_PREFIX}{run_id}"
    external_root = lake.gold.uri(staging)
    scratch = settings.scratch_dir.resolve()
    run_dir = scratch / "dbt" / run_id
    if isinstance(lake.gold, LocalLayerStore):
        Path(external_root).mkdir(parents=True, exist_ok=True)  # DuckDB's COPY does not create directories
    ensure_extensions(PROFILE_EXTENSIONS[settings.backend])  # the profile's INSTALLs, offline
    succeeded = False
    try:
        result = run_dbt(settings, external_root=external_root, run_dir=run_dir)
        if not result.ok:
            raise DbtBuildError(run_id, result.failed, result.skipped, result.returncode)
        manifest = publish_staged(
            lake,
            run_id=run_id,
            staging_prefix=staging,
            spool_dir=scratch / "spool",
            dbt_status_counts=result.status_counts(),
            dbt_warnings=result.warned,
        )
        succeeded = True
        return BuildResult(run_id=run_id, manifest=manifest, dbt=result)
    finally:
        _clean_staging(lake, staging)
        _clean_run_dir(run_dir, keep_logs=not succeeded)


def _clean_staging(lake: Lake, staging: str) -> None:
    keys = [info.key for info in lake.gold.list(staging + "/")]
    lake.gold.delete(keys)
    if isinstance(lake.gold, LocalLayerStore):
        shutil.rmtree(lake.gold.path(staging), ignore_errors=True)
    log.info("removed %d staged object(s) under %s", len(keys), lake.gold.uri(staging))


def _clean_run_dir(run_dir: Path, *, keep_logs: bool) -> None:
    """Drop the run's DuckDB file; keep dbt's logs and run_results.json of a failed run for diagnosis."""
    if not keep_logs:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for path in run_dir.glob("lakehouse.duckdb*"):
        path.unlink(missing_ok=True)
    log.info("dbt logs and run_results.json of the failed run kept in %s", run_dir)


def clean_stale_staging(
    lake: Lake, *, now: datetime | None = None, older_than: timedelta = STALE_STAGING_AFTER
) -> list[str]:
    """Remove ``_staging/<run>/`` prefixes of runs that started more than ``older_than`` ago; returns the runs.

    Prefixes whose name is not a run id are left alone.
    """
    now = now or datetime.now(UTC)
    runs = {info.key[len(STAGING_PREFIX) :].split("/", 1)[0] for info in lake.gold.list(STAGING_PREFIX)}
    if isinstance(lake.gold, LocalLayerStore) and lake.gold.path(STAGING_PREFIX).is_dir():
        runs.update(d.name for d in lake.gold.path(STAGING_PREFIX).iterdir() if d.is_dir())  # empty: not listed
    removed: list[str] = []
    for run in sorted(runs):
        started = run_started(run)
        if started is None or now - started < older_than:
            continue
        _clean_staging(lake, f"{STAGING_PREFIX}{run}")
        removed.append(run)
    if removed:
        log.info("removed the staging prefixes of %d interrupted gold build(s): %s", len(removed), ", ".join(removed))
    return removed
