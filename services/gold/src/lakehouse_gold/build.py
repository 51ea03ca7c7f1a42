"""``lakehouse-gold build``: run dbt into a fresh staging location, publish only if every node passed.

1. dbt writes the marts to ``<gold>/_staging/<run_id>/<model>.parquet`` (the profile's
   ``external_root``); its target, logs and DuckDB file go to ``<scratch>/dbt/<run_id>/``.
2. If every model, data test and unit test passed, :func:`publish_staged` copies the marts to
   ``marts/<model>.parquet`` and writes ``_manifest.json``.
3. Otherwise :class:`DbtBuildError` names the failed nodes, and the published gold is untouched.

The staging objects are removed in every case.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, LocalLayerStore
from lakehouse_gold.dbt_runner import DbtRunResult, ensure_httpfs, run_dbt
from lakehouse_gold.exceptions import DbtBuildError
from lakehouse_gold.manifest import STAGING_PREFIX, GoldManifest
from lakehouse_gold.publish import publish_staged

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildResult:
    run_id: str
    manifest: GoldManifest
    dbt: DbtRunResult


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20240131T120000Z-1a2b3c``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def build_gold(settings: Settings, *, lake: Lake | None = None, run_id: str | None = None) -> BuildResult:
    lake = lake or Lake(settings)
    lake.ensure(["silver", "gold"])
    run_id = run_id or new_run_id()
    staging = f"{STAGING_PREFIX}{run_id}"
    external_root = lake.gold.uri(staging)
    scratch = settings.scratch_dir.resolve()
    run_dir = scratch / "dbt" / run_id
    if isinstance(lake.gold, LocalLayerStore):
        Path(external_root).mkdir(parents=True, exist_ok=True)  # DuckDB's COPY does not create directories
    if settings.backend == "s3":
        ensure_httpfs()
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
