from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import new_run_id
from lakehouse_gold.exceptions import ManifestError, PublishError
from lakehouse_gold.manifest import (
    MANIFEST_KEY,
    GoldManifest,
    mart_key,
    mart_run_key,
    parse_mart_run_key,
    read_manifest,
)
from lakehouse_gold.publish import is_empty_placeholder, publish_staged

PublishMarts = Callable[[dict[str, pa.Table]], GoldManifest]  # the publish_marts fixture

REGIONS = pa.table({"area_id": ["1", "2"], "vacancy_count": pa.array([3, 4], pa.int64())})
SKILLS = pa.table({"skill_name": ["SQL", "dbt"], "vacancy_count": pa.array([9, 5], pa.int64())})
PLACEHOLDER = pa.table({"role": pa.array([None], pa.string()), "p50": pa.array([None], pa.float64())})


def stage_marts(lake: Lake, staging: str, marts: dict[str, pa.Table]) -> None:
    for name, table in marts.items():
        with lake.gold.open_output(f"{staging}/{name}.parquet") as out:
            pq.write_table(table, out, compression="zstd")


def publish_run(lake: Lake, settings: Settings, run_id: str, marts: dict[str, pa.Table]) -> GoldManifest:
    stage_marts(lake, f"_staging/{run_id}", marts)
    return publish_staged(
        lake,
        run_id=run_id,
        staging_prefix=f"_staging/{run_id}",
        spool_dir=settings.scratch_dir / "spool",
        dbt_status_counts={"success": len(marts)},
        dbt_warnings=[],
    )


def marts_keys(lake: Lake) -> list[str]:
    return [info.key for info in lake.gold.list("marts/")]


def test_publish_writes_run_files_the_manifest_and_the_latest_copies(
    gold_lake: Lake, publish_marts: PublishMarts
) -> None:
    manifest = publish_marts({"regions": REGIONS, "roles": PLACEHOLDER})

    assert [(m.name, m.key, m.rows) for m in manifest.marts] == [
        ("regions", "marts/regions/run=run-1.parquet", 2),
        ("roles", "marts/roles/run=run-1.parquet", 0),  # dbt-duckdb's placeholder row is not published
    ]
    for entry in manifest.marts:
        data = gold_lake.gold.read_bytes(entry.key)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry.size_bytes, entry.sha256)
        assert gold_lake.gold.read_bytes(mart_key(entry.name)) == data  # the convenience copy
    roles = pq.read_table(pa.BufferReader(gold_lake.gold.read_bytes("marts/roles.parquet")))
    assert roles.num_rows == 0 and roles.schema.names == ["role", "p50"]
    assert [(c.name, c.type) for c in manifest.marts[0].columns] == [("area_id", "string"), ("vacancy_count", "int64")]
    assert read_manifest(gold_lake) == manifest
    assert json.loads(gold_lake.gold.read_bytes(MANIFEST_KEY))["run_id"] == manifest.run_id


def test_a_later_publish_keeps_the_previous_run_files_and_collects_older_ones(
    gold_lake: Lake, publish_marts: PublishMarts
) -> None:
    publish_marts({"regions": REGIONS, "old_mart": REGIONS})
    second = publish_marts({"regions": REGIONS.slice(0, 1)})

    # The previous manifest's files stay (a reader may have just read it); old_mart's latest copy goes.
    assert marts_keys(gold_lake) == [
        "marts/old_mart/run=run-1.parquet",
        "marts/regions.parquet",
        "marts/regions/run=run-1.parquet",
        "marts/regions/run=run-2.parquet",
    ]
    assert second.mart("regions").rows == 1
    with pytest.raises(ManifestError, match="valid marts are: regions"):
        second.mart("old_mart")

    publish_marts({"regions": REGIONS})
    assert marts_keys(gold_lake) == [
        "marts/regions.parquet",
        "marts/regions/run=run-2.parquet",
        "marts/regions/run=run-3.parquet",
    ]
    assert not (gold_lake.gold.path("marts") / "old_mart").exists()  # no empty folder left


def test_an_unchanged_mart_keeps_its_file(gold_lake: Lake, publish_marts: PublishMarts) -> None:
    first = publish_marts({"regions": REGIONS, "skills": SKILLS})
    second = publish_marts({"regions": REGIONS, "skills": SKILLS.slice(0, 1)})

    assert second.mart("regions").key == first.mart("regions").key == "marts/regions/run=run-1.parquet"
    assert second.mart("skills").key == "marts/skills/run=run-2.parquet"
    assert gold_lake.gold.read_bytes("marts/skills.parquet") == gold_lake.gold.read_bytes(second.mart("skills").key)


def test_publishing_the_same_run_again_completes_it_and_changes_no_file(
    gold_lake: Lake, gold_settings: Settings
) -> None:
    first = publish_run(gold_lake, gold_settings, "r1", {"regions": REGIONS})
    before = {info.key: gold_lake.gold.read_bytes(info.key) for info in gold_lake.gold.list("marts/")}

    again = publish_run(gold_lake, gold_settings, "r1", {"regions": REGIONS})

    assert again.marts == first.marts
    assert {info.key: gold_lake.gold.read_bytes(info.key) for info in gold_lake.gold.list("marts/")} == before


def test_a_published_run_file_is_never_overwritten(gold_lake: Lake, gold_settings: Settings) -> None:
    published = publish_run(gold_lake, gold_settings, "r1", {"regions": REGIONS})
    data = gold_lake.gold.read_bytes("marts/regions/run=r1.parquet")

    with pytest.raises(PublishError, match=r"run=r1\.parquet is named by the published manifest .* new run id"):
        publish_run(gold_lake, gold_settings, "r1", {"regions": REGIONS.slice(0, 1)})

    assert read_manifest(gold_lake) == published
    assert gold_lake.gold.read_bytes("marts/regions/run=r1.parquet") == data


def test_collection_spares_the_files_of_a_build_that_started_later(gold_lake: Lake, gold_settings: Settings) -> None:
    t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
    killed, current, running = (new_run_id(t0 + timedelta(minutes=m)) for m in (0, 10, 20))
    for run_id in (killed, running):  # a build killed before its commit, and one still writing
        with gold_lake.gold.open_output(mart_run_key("skills", run_id)) as out:
            pq.write_table(SKILLS, out)

    publish_run(gold_lake, gold_settings, current, {"skills": SKILLS.slice(0, 1)})

    assert marts_keys(gold_lake) == [
        "marts/skills.parquet",
        mart_run_key("skills", current),
        mart_run_key("skills", running),
    ]


def test_nothing_staged_is_an_error_that_names_the_location(gold_lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(PublishError, match=r"no Parquet mart under .*_staging/empty"):
        publish_staged(
            gold_lake,
            run_id="r",
            staging_prefix="_staging/empty",
            spool_dir=tmp_path,
            dbt_status_counts={},
            dbt_warnings=[],
        )
    assert not gold_lake.gold.exists(MANIFEST_KEY)


@pytest.mark.parametrize(
    ("table", "placeholder"),
    [
        pytest.param(PLACEHOLDER, True, id="one-all-null-row"),
        pytest.param(pa.table({"role": ["96"], "p50": pa.array([None], pa.float64())}), False, id="one-real-row"),
        pytest.param(PLACEHOLDER.slice(0, 0), False, id="empty"),
        pytest.param(pa.concat_tables([PLACEHOLDER, PLACEHOLDER]), False, id="two-null-rows"),
    ],
)
def test_empty_placeholder_detection(tmp_path: Path, table: pa.Table, placeholder: bool) -> None:
    path = tmp_path / "mart.parquet"
    pq.write_table(table, path)
    assert is_empty_placeholder(path) is placeholder


def test_an_invalid_manifest_is_reported_with_its_location() -> None:
    with pytest.raises(ManifestError, match=r"s3://gold/_manifest\.json is not a valid gold manifest"):
        GoldManifest.from_json(b'{"run_id": 1}', "s3://gold/_manifest.json")


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        pytest.param(
            "marts/regions/run=20260101T120000Z-abc123.parquet", ("regions", "20260101T120000Z-abc123"), id="run-file"
        ),
        pytest.param("marts/regions.parquet", None, id="latest-copy"),
        pytest.param("marts/regions/other.parquet", None, id="other-file"),
        pytest.param("marts/regions/run=.parquet", None, id="no-run-id"),
        pytest.param("marts/a/b/run=r.parquet", None, id="nested"),
        pytest.param("_staging/r/run=r.parquet", None, id="outside-marts"),
    ],
)
def test_run_file_keys(key: str, parsed: tuple[str, str] | None) -> None:
    assert parse_mart_run_key(key) == parsed
    if parsed is not None:
        assert mart_run_key(*parsed) == key
