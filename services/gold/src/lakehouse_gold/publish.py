"""Publish the marts of a passed dbt build from the run's staging location to their final keys.

Each mart goes to ``marts/<model>.parquet`` with an atomic per-object write, then
``_manifest.json`` is replaced, then marts that the project no longer builds are removed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from lakehouse_common.exceptions import StorageError
from lakehouse_common.storage import Lake, copy_stream
from lakehouse_gold.exceptions import PublishError
from lakehouse_gold.manifest import MANIFEST_KEY, MARTS_PREFIX, GoldManifest, MartColumn, MartEntry, mart_key
from lakehouse_gold.spool import file_digest, spooled

log = logging.getLogger(__name__)


def is_empty_placeholder(path: Path) -> bool:
    """True for the file dbt-duckdb writes for an empty mart: one row, every column NULL.

    dbt-duckdb's external materialization inserts that row so the file has a schema; its own
    view filters it out. A real mart row is never all NULL (the grain columns are tested not null).
    """
    parquet = pq.ParquetFile(path)
    if parquet.metadata.num_rows != 1:
        return False
    table = parquet.read()
    return all(column.null_count == 1 for column in table.columns)


def _strip_placeholder(path: Path) -> None:
    schema = pq.read_schema(path)
    pq.write_table(schema.empty_table(), path, compression="zstd")


def publish_staged(
    lake: Lake,
    *,
    run_id: str,
    staging_prefix: str,
    spool_dir: Path,
    dbt_status_counts: dict[str, int],
    dbt_warnings: list[str],
) -> GoldManifest:
    """Copy every ``<staging_prefix>/<model>.parquet`` to ``marts/<model>.parquet`` and write the manifest."""
    gold = lake.gold
    prefix = staging_prefix.rstrip("/") + "/"
    staged = [info.key for info in gold.list(prefix) if info.key.endswith(".parquet")]
    if not staged:
        raise PublishError(
            f"dbt wrote no Parquet mart under {gold.uri(prefix)}; marts must be materialized 'external' "
            "at the profile's external_root (LAKEHOUSE_DBT_EXTERNAL_ROOT)"
        )
    entries: list[MartEntry] = []
    try:
        for key in staged:
            name = PurePosixPath(key).stem
            entries.append(_publish_one(lake, key, mart_key(name), name, spool_dir))
        manifest = GoldManifest(
            run_id=run_id,
            published_at=datetime.now(UTC),
            backend=lake.settings.backend,
            marts=tuple(entries),
            dbt_status_counts=dbt_status_counts,
            dbt_warnings=tuple(dbt_warnings),
        )
        gold.put_bytes(MANIFEST_KEY, manifest.to_json())
    except StorageError as exc:
        raise PublishError(f"publishing gold run {run_id} failed after {len(entries)} mart(s): {exc}") from exc
    published = {entry.key for entry in entries}
    stale = [info.key for info in gold.list(MARTS_PREFIX) if info.key not in published]
    if stale:
        log.info("removing marts the project no longer builds: %s", ", ".join(stale))
        gold.delete(stale)
    log.info("published gold run %s: %s", run_id, ", ".join(f"{e.key} ({e.rows} rows)" for e in entries))
    return manifest


def _publish_one(lake: Lake, staged_key: str, final_key: str, name: str, spool_dir: Path) -> MartEntry:
    gold = lake.gold
    with spooled(gold, staged_key, spool_dir) as local:
        if is_empty_placeholder(local.path):
            log.warning("mart %s is empty; publishing it without dbt-duckdb's all-NULL placeholder row", name)
            _strip_placeholder(local.path)
        size, sha256 = file_digest(local.path)
        metadata = pq.read_metadata(local.path)
        schema = pq.read_schema(local.path)
        with open(local.path, "rb") as source, gold.open_output(final_key) as target:
            copy_stream(source, target)
    return MartEntry(
        name=name,
        key=final_key,
        rows=metadata.num_rows,
        size_bytes=size,
        sha256=sha256,
        columns=tuple(MartColumn(name=field.name, type=str(field.type)) for field in schema),
    )
