"""The real dbt build over DuckDB httpfs and delta_scan against a moto S3 server, publish, and replication."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gold_silver_factory import (
    assert_marts_match,
    make_silver,
    negative_rate,
    refetched_details,
    write_silver,
)

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import build_gold
from lakehouse_gold.exceptions import DbtBuildError
from lakehouse_gold.manifest import MANIFEST_KEY, mart_key, read_manifest
from lakehouse_gold.publish import publish_staged
from lakehouse_gold.replicate import gold_objects, replicate_gold

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = ("load_history", "salary_by_role_month", "skills_demand_by_month", "vacancies_by_region_month")
MARTS = {f"marts/{name}.parquet" for name in NAMES}  # the latest copies, at the stable keys


def _replica(settings: Settings):  # type: ignore[no-untyped-def]
    assert settings.replica_access_key_id is not None and settings.replica_secret_access_key is not None
    return boto3.client(
        "s3",
        endpoint_url=settings.replica_endpoint_url,
        region_name=settings.replica_region,
        aws_access_key_id=settings.replica_access_key_id.get_secret_value(),
        aws_secret_access_key=settings.replica_secret_access_key.get_secret_value(),
    )


def test_build_publish_and_replicate_on_s3(gold_s3_settings: Settings) -> None:
    settings = gold_s3_settings
    lake = Lake(settings)
    silver = make_silver()
    write_silver(lake.silver, silver)

    result = build_gold(settings)

    manifest = read_manifest(lake)
    assert manifest.run_id == result.run_id
    run_files = {f"marts/{name}/run={result.run_id}.parquet" for name in NAMES}
    assert {m.key for m in manifest.marts} == run_files
    assert {info.key for info in lake.gold.list()} == {*MARTS, *run_files, MANIFEST_KEY}  # staging removed
    assert_marts_match(lake.gold, silver)  # reads the latest copies
    assert all(m.rows > 0 for m in manifest.marts)
    assert manifest.dbt_status_counts.get("error", 0) == 0

    first = replicate_gold(settings)
    assert first.copied == gold_objects(lake)  # the run files, the manifest, then the latest copies
    assert first.copied.index(MANIFEST_KEY) == len(NAMES)
    assert first.verified == first.copied
    bucket, prefix = settings.replica_bucket_and_prefix or ("", "")
    replica = _replica(settings)
    for entry in manifest.marts:
        for key in (entry.key, mart_key(entry.name)):
            head = replica.head_object(Bucket=bucket, Key=f"{prefix}/{key}")
            assert head["Metadata"]["sha256"] == entry.sha256
            body = replica.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()
            assert body == lake.gold.read_bytes(entry.key)

    second = replicate_gold(settings)
    assert (second.copied, sorted(second.unchanged)) == ([], sorted(gold_objects(lake)))

    # A newer detail document changes the skills mart, and its load-history row the load history; the other
    # marts are rebuilt byte-identical.
    changed = refetched_details(silver)
    write_silver(lake.silver, changed, only_bronze_keys={"vacancy_details/2024-03-10/again.ndjson"})
    rebuilt = build_gold(settings).manifest
    assert_marts_match(lake.gold, changed)
    moved = ("load_history", "skills_demand_by_month")
    runs = [rebuilt.mart(name).key for name in moved]
    assert runs == [f"marts/{name}/run={rebuilt.run_id}.parquet" for name in moved]
    unchanged = {m.key for m in rebuilt.marts} - set(runs)
    assert unchanged == {m.key for m in manifest.marts if m.name not in moved}  # the first run's

    third = replicate_gold(settings)
    assert third.copied == [*runs, MANIFEST_KEY, *(f"marts/{name}.parquet" for name in moved)]
    assert set(third.unchanged) == unchanged | (MARTS - {f"marts/{name}.parquet" for name in moved})


def _seed_previous_gold(lake: Lake, settings: Settings) -> None:
    """A published gold from an earlier run, made without dbt (so this test runs dbt only once)."""
    table = pa.table({"area_id": ["1"], "vacancy_count": [7]})
    with lake.gold.open_output("_staging/earlier/vacancies_by_region_month.parquet") as out:
        pq.write_table(table, out)
    publish_staged(
        lake,
        run_id="earlier",
        staging_prefix="_staging/earlier",
        spool_dir=settings.scratch_dir / "spool",
        dbt_status_counts={"success": 1},
        dbt_warnings=[],
    )
    lake.gold.delete(["_staging/earlier/vacancies_by_region_month.parquet"])


def test_failing_data_test_keeps_previous_gold_on_s3(gold_s3_settings: Settings) -> None:
    settings = gold_s3_settings
    lake = Lake(settings)
    _seed_previous_gold(lake, settings)
    before = {info.key: info.etag for info in lake.gold.list()}
    assert set(before) == {
        "marts/vacancies_by_region_month.parquet",
        "marts/vacancies_by_region_month/run=earlier.parquet",
        MANIFEST_KEY,
    }
    write_silver(lake.silver, negative_rate(make_silver()))

    with pytest.raises(DbtBuildError) as failure:
        build_gold(settings)

    test = "accepted_range_stg_currency_rates_rub_per_unit__0"
    assert any(test in node for node in failure.value.failed_ids), failure.value.failed_ids
    assert test in str(failure.value)
    assert failure.value.skipped  # everything downstream of the failed test was skipped
    assert {info.key: info.etag for info in lake.gold.list()} == before  # no staging left, gold untouched
    assert read_manifest(lake).run_id == "earlier"
