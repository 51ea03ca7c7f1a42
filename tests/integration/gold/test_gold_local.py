"""The whole gold command line on a local lake (tmp_path): build, show, replicate without a replica."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gold_silver_factory import (
    assert_marts_match,
    ensure_silver,
    history_row,
    make_silver,
    negative_rate,
    read_mart,
    record_history,
    refetched_details,
    write_silver,
)

from lakehouse_common import tables
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, LocalLayerStore
from lakehouse_gold.build import SilverNotReadyError, build_gold
from lakehouse_gold.cli import main
from lakehouse_gold.manifest import MANIFEST_KEY, read_manifest

pytestmark = pytest.mark.slow


def test_cli_build_show_replicate_on_local_lake(
    gold_local_settings: Settings, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    lake = Lake(gold_local_settings)
    lake.ensure()
    silver = make_silver()
    write_silver(lake.silver, silver)

    assert main(["build"]) == 0

    manifest = read_manifest(lake)
    out = capsys.readouterr().out
    assert f"gold run {manifest.run_id} published" in out
    # The run files the manifest names, the latest copies at the stable keys, the manifest.
    assert all(m.key == f"marts/{m.name}/run={manifest.run_id}.parquet" for m in manifest.marts)
    assert {info.key for info in lake.gold.list()} == {
        *(m.key for m in manifest.marts),
        *(f"marts/{m.name}.parquet" for m in manifest.marts),
        MANIFEST_KEY,
    }
    assert not (gold_local_settings.data_dir / "gold" / "_staging" / manifest.run_id).exists()
    assert not (gold_local_settings.scratch_dir / "dbt" / manifest.run_id).exists()
    assert_marts_match(lake.gold, silver)

    assert main(["show", "--rows", "3"]) == 0
    out = capsys.readouterr().out
    for entry in manifest.marts:
        assert f"== {entry.name}  ({entry.rows} rows)  {lake.gold.uri(entry.key)}" in out
    # The headline of the skills mart is the most demanded skill of the latest month.
    assert "SQL" in out.split("== skills_demand_by_month")[1].splitlines()[3]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lakehouse_gold.replicate"):
        assert main(["replicate"]) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "lakehouse_gold.replicate"] == [
        "replication skipped: LAKEHOUSE_REPLICA_URI is not set"
    ]


def test_gold_reads_only_committed_delta_versions_and_the_load_history(gold_local_settings: Settings) -> None:
    """dbt's sources read each silver table's newest Delta version: a Parquet file lying in a table's
    directory that no commit names (a killed writer's) is not read; the next commit is."""
    lake = Lake(gold_local_settings)
    lake.ensure()
    silver = make_silver()
    write_silver(lake.silver, silver)
    # An uncommitted file of a writer that died before its commit, with a row that would fail a test.
    stray = negative_rate(silver).tables["currency_rates"][-1]
    assert isinstance(lake.silver, LocalLayerStore)
    stray_file = lake.silver.path("currency_rates/rate_month=2024-03/part-killed-writer.parquet")
    stray_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([stray]), stray_file)

    build_gold(gold_local_settings)
    assert_marts_match(lake.gold, silver)  # as if the stray file were not there

    changed = refetched_details(silver, "vacancy_details/2024-03-10/again.ndjson")
    write_silver(lake.silver, changed, only_bronze_keys={"vacancy_details/2024-03-10/again.ndjson"})
    # A newer version of one vacancies page, loaded, and an attempt at a still newer one that failed.
    page = silver.tables["vacancies"][0]["_bronze_key"]
    later = datetime.now(UTC) + timedelta(minutes=1)
    record_history(
        lake.silver,
        [
            history_row("vacancies", page, bronze_etag="v2", bronze_modified=later, finished_at=later),
            history_row(
                "vacancies",
                page,
                "failed",
                bronze_etag="v3",
                bronze_modified=later + timedelta(minutes=1),
                finished_at=later + timedelta(minutes=1),
                reason="S3 read timed out",
            ),
        ],
    )
    build_gold(gold_local_settings)
    assert_marts_match(lake.gold, changed)  # the commit is read at once

    # Gold's load_history mart: one row per load-history row; the newest version that did not fail is current.
    history = read_mart(lake.gold, read_manifest(lake).mart("load_history").key)
    recorded = tables.history_rows(lake.silver)
    assert sorted((r["source_name"], r["bronze_key"], r["bronze_etag"], r["status"]) for r in history) == sorted(
        (r["source"], r["bronze_key"], r["bronze_etag"], r["status"]) for r in recorded
    )
    of_page = sorted((r["bronze_etag"], r["is_current"]) for r in history if r["bronze_key"] == page)
    assert [current for etag, current in of_page if etag in {"v2", "v3"}] == [True, False]
    assert sum(current for _, current in of_page) == 1
    current = {(r["source_name"], r["bronze_key"]) for r in history if r["is_current"]}
    assert len(current) == sum(r["is_current"] for r in history)  # one current row per key


def test_empty_sources_build_gold_with_empty_marts(gold_local_settings: Settings) -> None:
    """A lake whose silver holds only currency_rates rows (every other declared table exists, empty)
    builds and publishes gold: the vacancy marts are empty, the load history has the rates' files."""
    lake = Lake(gold_local_settings)
    lake.ensure()
    silver = make_silver()
    rates_only = type(silver)(
        {name: (rows if name == "currency_rates" else []) for name, rows in silver.tables.items()}
    )
    loaded = write_silver(lake.silver, rates_only)
    assert {r["source"] for r in loaded} == {"currency_rates"}

    result = build_gold(gold_local_settings)

    rows = {m.name: m.rows for m in result.manifest.marts}
    assert rows == {
        "load_history": len(loaded),
        "salary_by_role_month": 0,
        "skills_demand_by_month": 0,
        "vacancies_by_region_month": 0,
    }
    empty = read_mart(lake.gold, result.manifest.mart("vacancies_by_region_month").key)
    assert empty == []
    history = read_mart(lake.gold, result.manifest.mart("load_history").key)
    assert {(r["source_name"], r["status"]) for r in history} == {("currency_rates", "loaded")}


def test_a_silver_table_that_does_not_exist_is_refused_with_what_to_run(gold_local_settings: Settings) -> None:
    lake = Lake(gold_local_settings)
    lake.ensure()
    ensure_silver(lake.silver)
    assert isinstance(lake.silver, LocalLayerStore)
    vacancies = lake.silver.path("vacancies")
    for path in sorted(vacancies.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    vacancies.rmdir()

    with pytest.raises(SilverNotReadyError, match="lakehouse-silverize run") as refused:
        build_gold(gold_local_settings)

    assert refused.value.missing == ["vacancies"]
    assert not list(lake.gold.list())  # nothing staged, nothing published
