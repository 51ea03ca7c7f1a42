"""Publish the marts of a passed dbt build: run-versioned files, then the manifest (the commit).

1. Each staged mart is written to its immutable key ``marts/<mart>/run=<run_id>.parquet``. A mart
   whose content (sha256) equals the previous manifest's keeps that manifest's file: nothing is
   written, and the new manifest names the same file again.
2. ``_manifest.json`` is written in one atomic put: that is the commit. A crash before it leaves
   the previous manifest and every file it names untouched; the new run's files are unreferenced.
3. After the commit the convenience copies ``marts/<mart>.parquet`` are refreshed, then old files
   are collected (:func:`collect_old_files`): run files named by neither the new manifest nor the
   previous one (a reader that read the previous manifest a moment ago can still open its files),
   and convenience copies of marts the project no longer builds. A crash there leaves only
   unreferenced files, which the next build removes.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from lakehouse_common.exceptions import StorageError
from lakehouse_common.storage import Lake, LocalLayerStore, copy_stream
from lakehouse_gold.exceptions import ManifestError, ManifestNotFoundError, PublishError
from lakehouse_gold.manifest import (
    MANIFEST_KEY,
    MARTS_PREFIX,
    GoldManifest,
    MartColumn,
    MartEntry,
    mart_key,
    mart_run_key,
    parse_mart_run_key,
    read_manifest,
    run_started,
)
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


def published_manifest(lake: Lake) -> GoldManifest | None:
    """The manifest of the published gold, or None when there is none (or it cannot be read)."""
    try:
        return read_manifest(lake)
    except ManifestNotFoundError:
        return None
    except ManifestError as exc:
        log.warning("the published gold manifest is unreadable; publishing over it: %s", exc)
        return None


def publish_staged(
    lake: Lake,
    *,
    run_id: str,
    staging_prefix: str,
    spool_dir: Path,
    dbt_status_counts: dict[str, int],
    dbt_warnings: list[str],
) -> GoldManifest:
    """Publish every ``<staging_prefix>/<model>.parquet`` as run ``run_id``; the manifest write commits it."""
    gold = lake.gold
    prefix = staging_prefix.rstrip("/") + "/"
    staged = [info.key for info in gold.list(prefix) if info.key.endswith(".parquet")]
    if not staged:
        raise PublishError(
            f"dbt wrote no Parquet mart under {gold.uri(prefix)}; marts must be materialized 'external' "
            "at the profile's external_root (LAKEHOUSE_DBT_EXTERNAL_ROOT)"
        )
    previous = published_manifest(lake)
    entries: list[MartEntry] = []
    with contextlib.ExitStack() as spools:
        local_files: dict[str, Path] = {}
        try:
            for key in staged:
                name = PurePosixPath(key).stem
                local = spools.enter_context(spooled(gold, key, spool_dir))
                entries.append(_publish_one(lake, local.path, name, run_id, previous))
                local_files[name] = local.path
            manifest = GoldManifest(
                run_id=run_id,
                published_at=datetime.now(UTC),
                backend=lake.settings.backend,
                marts=tuple(entries),
                dbt_status_counts=dbt_status_counts,
                dbt_warnings=tuple(dbt_warnings),
            )
            gold.put_bytes(MANIFEST_KEY, manifest.to_json())  # the commit
        except StorageError as exc:
            raise PublishError(
                f"publishing gold run {run_id} failed before its commit, after {len(entries)} mart(s); "
                f"the published gold is unchanged: {exc}"
            ) from exc
        try:
            for entry in entries:
                with open(local_files[entry.name], "rb") as source, gold.open_output(mart_key(entry.name)) as target:
                    copy_stream(source, target)
        except StorageError as exc:
            raise PublishError(
                f"gold run {run_id} is committed ({MANIFEST_KEY}), but refreshing the convenience copies "
                f"{MARTS_PREFIX}<mart>.parquet failed: {exc}. Readers following the manifest are not affected; "
                "the next build refreshes them"
            ) from exc
    try:
        collect_old_files(lake, manifest, previous)
    except StorageError as exc:  # only unreferenced files are left: the next build removes them
        log.warning("gold run %s is committed, but removing old run files failed: %s", run_id, exc)
    log.info("published gold run %s: %s", run_id, ", ".join(f"{e.key} ({e.rows} rows)" for e in entries))
    return manifest


def _publish_one(lake: Lake, path: Path, name: str, run_id: str, previous: GoldManifest | None) -> MartEntry:
    gold = lake.gold
    if is_empty_placeholder(path):
        log.warning("mart %s is empty; publishing it without dbt-duckdb's all-NULL placeholder row", name)
        _strip_placeholder(path)
    size, sha256 = file_digest(path)
    metadata = pq.read_metadata(path)
    schema = pq.read_schema(path)
    key = _unchanged_file(lake, previous, name, size, sha256)
    if key is None:
        key = mart_run_key(name, run_id)
        if previous is not None and key in {entry.key for entry in previous.marts}:
            raise PublishError(
                f"{gold.uri(key)} is named by the published manifest (run {previous.run_id}) with other content; "
                "a published run file is never overwritten: publish under a new run id"
            )
        with open(path, "rb") as source, gold.open_output(key) as target:
            copy_stream(source, target)
    return MartEntry(
        name=name,
        key=key,
        rows=metadata.num_rows,
        size_bytes=size,
        sha256=sha256,
        columns=tuple(MartColumn(name=field.name, type=str(field.type)) for field in schema),
    )


def _unchanged_file(lake: Lake, previous: GoldManifest | None, name: str, size: int, sha256: str) -> str | None:
    """The previous manifest's run file of this mart when its content is the same (and it is there)."""
    if previous is None:
        return None
    entry = next((e for e in previous.marts if e.name == name), None)
    if entry is None or entry.sha256 != sha256 or entry.size_bytes != size or parse_mart_run_key(entry.key) is None:
        return None
    info = lake.gold.stat(entry.key)
    return entry.key if info is not None and info.size == size else None


def collect_old_files(lake: Lake, manifest: GoldManifest, previous: GoldManifest | None) -> list[str]:
    """Remove what neither ``manifest`` nor ``previous`` needs under ``marts/``; returns the removed keys.

    Kept: the run files both manifests name, and the convenience copies of ``manifest``'s marts.
    Run files of a run that started no earlier than ``manifest``'s (by run id) are left alone too:
    they may belong to a build still running elsewhere; a later build removes them.
    """
    gold = lake.gold
    keep = {entry.key for entry in manifest.marts} | {mart_key(entry.name) for entry in manifest.marts}
    if previous is not None:
        keep |= {entry.key for entry in previous.marts if parse_mart_run_key(entry.key) is not None}
    current_start = run_started(manifest.run_id)
    stale: list[str] = []
    for info in gold.list(MARTS_PREFIX):
        if info.key in keep:
            continue
        parsed = parse_mart_run_key(info.key)
        if parsed is not None and parsed[1] != manifest.run_id and current_start is not None:
            started = run_started(parsed[1])
            if started is not None and started >= current_start:
                continue
        stale.append(info.key)
    if stale:
        log.info("removing %d old gold file(s): %s", len(stale), ", ".join(stale))
        gold.delete(stale)
        if isinstance(gold, LocalLayerStore):  # empty mart folders of the local lake
            for folder in sorted({gold.path(str(PurePosixPath(key).parent)) for key in stale}, reverse=True):
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return stale
