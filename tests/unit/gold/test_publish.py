from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_common.storage import Lake
from lakehouse_gold.exceptions import ManifestError, PublishError
from lakehouse_gold.manifest import MANIFEST_KEY, GoldManifest, read_manifest
from lakehouse_gold.publish import is_empty_placeholder, publish_staged

PublishMarts = Callable[[dict[str, pa.Table]], GoldManifest]  # the publish_marts fixture

REGIONS = pa.table({"area_id": ["1", "2"], "vacancy_count": pa.array([3, 4], pa.int64())})
PLACEHOLDER = pa.table({"role": pa.array([None], pa.string()), "p50": pa.array([None], pa.float64())})


def test_publish_copies_each_mart_and_writes_the_manifest(gold_lake: Lake, publish_marts: PublishMarts) -> None:
    manifest = publish_marts({"regions": REGIONS, "roles": PLACEHOLDER})

    assert [(m.name, m.key, m.rows) for m in manifest.marts] == [
        ("regions", "marts/regions.parquet", 2),
        ("roles", "marts/roles.parquet", 0),  # dbt-duckdb's placeholder row is not published
    ]
    for entry in manifest.marts:
        data = gold_lake.gold.read_bytes(entry.key)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry.size_bytes, entry.sha256)
    roles = pq.read_table(pa.BufferReader(gold_lake.gold.read_bytes("marts/roles.parquet")))
    assert roles.num_rows == 0 and roles.schema.names == ["role", "p50"]
    assert [(c.name, c.type) for c in manifest.marts[0].columns] == [("area_id", "string"), ("vacancy_count", "int64")]
    assert read_manifest(gold_lake) == manifest
    assert json.loads(gold_lake.gold.read_bytes(MANIFEST_KEY))["run_id"] == manifest.run_id


def test_a_later_publish_replaces_marts_and_drops_those_no_longer_built(
    gold_lake: Lake, publish_marts: PublishMarts
) -> None:
    publish_marts({"regions": REGIONS, "old_mart": REGIONS})
    newer = REGIONS.slice(0, 1)

    manifest = publish_marts({"regions": newer})

    assert [info.key for info in gold_lake.gold.list("marts/")] == ["marts/regions.parquet"]
    assert manifest.mart("regions").rows == 1
    with pytest.raises(ManifestError, match="valid marts are: regions"):
        manifest.mart("old_mart")


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
