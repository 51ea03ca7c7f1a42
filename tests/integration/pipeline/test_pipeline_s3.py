"""The whole flow on the s3 backend, against a moto server standing in for MinIO and AWS S3.

MinIO itself cannot run on the CI machine (no Docker engine, no server binary from the
package registries), so a moto server is the S3 endpoint: bronze, silver and gold buckets,
the real CLIs as subprocesses, the ingestor fetching over HTTP from the local sample API
(with injected 429/5xx), dbt reading silver through DuckDB httpfs, and the gold replica
going to a second bucket with other credentials.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import duckdb
import polars
import pytest
from deltalake import DeltaTable

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor.sample import SampleConfig
from lakehouse_ingestor.sample_api import start_sample_api

from .conftest import REPO, duckdb_with, run, silver_table_names

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def lake_duckdb(settings: Settings) -> duckdb.DuckDBPyConnection:
    """DuckDB as an analyst would open the S3 lake: httpfs and delta (from their PyPI wheels:
    offline) and a secret for the lake's endpoint, in this session only."""
    con = duckdb_with("httpfs", "delta")
    assert settings.s3_endpoint_url and settings.s3_access_key_id and settings.s3_secret_access_key
    con.execute(
        "CREATE TEMPORARY SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false)",
        [
            settings.s3_access_key_id.get_secret_value(),
            settings.s3_secret_access_key.get_secret_value(),
            settings.s3_region,
            settings.s3_endpoint_url.removeprefix("http://"),
        ],
    )
    return con


def objects(client: Any, bucket: str) -> dict[str, str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture
def sample_api() -> Iterator[str]:
    with start_sample_api(SampleConfig(size=600), fault_rate=0.01) as api:
        yield api.url


@pytest.fixture
def pipeline_env(s3_env: Settings, moto_server: Any, sample_api: str) -> dict[str, str]:
    replica = moto_server.create_bucket("aws-replica")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("LAKEHOUSE_")})
    env.update(
        {
            "LAKEHOUSE_CONTRACTS_DIR": str(REPO / "contracts"),
            "LAKEHOUSE_DBT_PROJECT_DIR": str(REPO / "dbt"),
            "LAKEHOUSE_INGESTOR_HH_BASE_URL": sample_api,
            "LAKEHOUSE_INGESTOR_API_URL": sample_api,
            "LAKEHOUSE_INGESTOR_RATE_LIMIT_PER_S": "1000",
            "LAKEHOUSE_REPLICA_URI": f"s3://{replica}/lakehouse/gold",
            "LAKEHOUSE_REPLICA_ENDPOINT_URL": moto_server.endpoint_url,
            "LAKEHOUSE_REPLICA_ACCESS_KEY_ID": "aws-replica-writer",
            "LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY": "aws-replica-secret",
        }
    )
    env["REPLICA_BUCKET"] = replica
    return env


def test_bronze_to_gold_to_replica_on_s3_exactly_once(
    pipeline_env: dict[str, str], s3_env: Settings, moto_server: Any
) -> None:
    env = pipeline_env
    client = moto_server.client()
    ingest = ["lakehouse-ingest", "run", "--once", "--until", "2026-01-01T00:00:00+03:00"]
    assert "retries" in run(ingest, env)
    bronze = {k: v for k, v in objects(client, s3_env.bronze_bucket).items() if not k.startswith("_")}
    assert {key.split("/")[0] for key in bronze} == {"vacancies", "vacancy_details", "currency_rates"}

    run(["lakehouse-silverize", "run"], env)
    ledger = [
        json.loads(line)
        for line in run(["lakehouse-silverize", "history", "--json", "--limit", "0"], env).splitlines()
        if line.startswith("{")
    ]
    assert len(ledger) == len(bronze)
    assert all(entry["status"] == "loaded" for entry in ledger)
    assert sum(e["rows_quarantined"] for e in ledger) > 0  # the sample's deliberate bad records
    assert sum(e["rows_deduplicated"] for e in ledger) == 0
    # Nothing lost: every row read is written, quarantined, or a duplicate of a written row.
    for entry in ledger:
        assert entry["rows_in"] == entry["rows_out"] + entry["rows_quarantined"] + entry["rows_deduplicated"]

    run(["lakehouse-gold", "build"], env)
    gold = objects(client, s3_env.gold_bucket)
    manifest = json.loads(client.get_object(Bucket=s3_env.gold_bucket, Key="_manifest.json")["Body"].read())
    run_id = manifest["run_id"]
    names = ["load_history", "salary_by_role_month", "skills_demand_by_month", "vacancies_by_region_month"]
    # Per mart: the run file the manifest names (the commit), and the latest copy at the stable key.
    assert sorted(m["key"] for m in manifest["marts"]) == [f"marts/{n}/run={run_id}.parquet" for n in names]
    marts = sorted(k for k in gold if k.startswith("marts/"))
    assert marts == sorted([*(f"marts/{n}.parquet" for n in names), *(m["key"] for m in manifest["marts"])])
    assert not [k for k in gold if k.startswith("_staging/")]

    # The marts agree with silver, read independently by DuckDB's delta_scan over httpfs.
    con = lake_duckdb(s3_env)
    silver_ids = con.execute(
        f"SELECT count(DISTINCT vacancy_id) FROM delta_scan('s3://{s3_env.silver_bucket}/vacancies')"
    ).fetchone()
    mart_total = con.execute(
        f"SELECT sum(vacancy_count) FROM read_parquet('s3://{s3_env.gold_bucket}/marts/vacancies_by_region_month.parquet')"
    ).fetchone()
    assert silver_ids is not None and mart_total is not None
    assert int(mart_total[0]) == int(silver_ids[0]) > 500

    out = run(["lakehouse-gold", "replicate"], env)
    replica = objects(client, env["REPLICA_BUCKET"])
    assert sorted(k.removeprefix("lakehouse/gold/") for k in replica) == sorted([*marts, "_manifest.json"])
    assert "copied" in out

    # The merge table holds one row per key: no "latest version" step needed downstream.
    counts = con.execute(
        f"SELECT count(*), count(DISTINCT vacancy_id) FROM delta_scan('s3://{s3_env.silver_bucket}/vacancies')"
    ).fetchone()
    assert counts is not None and counts[0] == counts[1]
    con.close()

    # A second run of everything duplicates nothing and changes nothing (but the time of the last
    # full listing in each source's listing cursor, silver/_listing/: it listed bronze again).
    def silver_objects() -> dict[str, str]:
        return {k: v for k, v in objects(client, s3_env.silver_bucket).items() if not k.startswith("_listing/")}

    silver_before = silver_objects()
    run(ingest, env)
    assert {k: v for k, v in objects(client, s3_env.bronze_bucket).items() if not k.startswith("_")} == bronze
    assert "nothing pending" in run(["lakehouse-silverize", "run"], env)
    assert silver_objects() == silver_before
    run(["lakehouse-gold", "build"], env)
    assert {k: v for k, v in objects(client, s3_env.gold_bucket).items() if k.startswith("marts/")} == {
        k: v for k, v in gold.items() if k.startswith("marts/")
    }
    # Only the new manifest (a new run id) is copied: the marts are byte-identical, so it names the
    # same run files as the first run's.
    assert f"copied 1, unchanged {2 * len(names)}" in run(["lakehouse-gold", "replicate"], env)
    replica_after = objects(client, env["REPLICA_BUCKET"])
    assert {k: v for k, v in replica_after.items() if "marts/" in k} == {
        k: v for k, v in replica.items() if "marts/" in k
    }


def test_every_silver_table_reads_the_same_in_duckdb_deltalake_and_polars(
    pipeline_env: dict[str, str], s3_env: Settings
) -> None:
    """The S3 lake is plain Delta: three engines with nothing of the project's code read every
    silver table (the sources', their children and the bookkeeping tables) and agree."""
    env = pipeline_env
    run(["lakehouse-ingest", "run", "--once", "--until", "2026-01-01T00:00:00+03:00"], env)
    run(["lakehouse-silverize", "run"], env)
    silver = Lake(s3_env).silver
    names = silver_table_names()
    assert {"vacancies", "vacancy_details", "vacancy_skills", "currency_rates"} <= set(names)
    # Polars reads the files with its own object store, which takes the AWS_* options only
    # (not delta-rs's retry and timeout settings).
    polars_options = {k: v for k, v in silver.delta_options.items() if k.startswith("AWS_")}
    con = lake_duckdb(s3_env)
    counts: dict[str, tuple[int, int, int]] = {}
    try:
        for name in names:
            uri = silver.table_uri(name)
            found = con.execute(f"SELECT count(*) FROM delta_scan('{uri}')").fetchone()
            assert found is not None
            by_deltalake = DeltaTable(uri, storage_options=silver.delta_options).to_pyarrow_table().num_rows
            by_polars = polars.read_delta(uri, storage_options=polars_options).height
            counts[name] = (int(found[0]), by_deltalake, by_polars)
    finally:
        con.close()
    for name, (duck, delta, polar) in counts.items():
        assert duck == delta == polar, f"{name}: duckdb {duck}, deltalake {delta}, polars {polar}"
    assert all(counts[name][0] > 0 for name in names), counts  # the sample has rows for every table
