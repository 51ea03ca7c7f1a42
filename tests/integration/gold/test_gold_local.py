"""The whole gold command line on a local lake (tmp_path): build, show, replicate without a replica."""

from __future__ import annotations

import logging

import pytest
from gold_silver_factory import (
    assert_marts_match,
    commit_silver,
    make_silver,
    read_mart,
    refetched_details,
    vacancy_without_area,
    write_silver,
)

from lakehouse_common.ledger import Ledger
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import build_gold
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


def test_gold_reads_only_the_silver_files_the_ledger_commits(gold_local_settings: Settings) -> None:
    """dbt's silver sources read the files each bronze key's newest ledger entry names: not a killed
    attempt's files (no entry), not a superseded version's (an older entry), whatever lies in silver."""
    lake = Lake(gold_local_settings)
    lake.ensure()
    silver = make_silver()
    write_silver(lake.silver, silver)
    # A version of one bronze file with a vacancy without an area (which fails a not_null test),
    # then a newer version of that file with no rows: the bad file is superseded, not deleted.
    bad_key = "vacancies/2024-03-09/bad.json"
    write_silver(lake.silver, vacancy_without_area(silver, bad_key), only_bronze_keys={bad_key})
    commit_silver(lake.silver, {("vacancies", bad_key): []})
    # A newer detail document written but never committed (its run was killed before the ledger).
    details_key = "vacancy_details/2024-03-10/again.ndjson"
    changed = refetched_details(silver, details_key)
    pending = write_silver(lake.silver, changed, only_bronze_keys={details_key}, commit=False)
    assert pending and all(lake.silver.exists(k) for keys in pending.values() for k in keys)

    build_gold(gold_local_settings)
    assert_marts_match(lake.gold, silver)  # as if neither file were there

    commit_silver(lake.silver, pending)  # the rerun's commit: now gold follows the new document
    build_gold(gold_local_settings)
    assert_marts_match(lake.gold, changed)

    # Gold's load_history mart: one row per ledger entry, the newest entry of each key current.
    ledger = Ledger(lake.silver)
    history = read_mart(lake.gold, read_manifest(lake).mart("load_history").key)
    entries = list(ledger.entries())
    assert sorted((r["source_name"], r["bronze_key"], r["bronze_etag"]) for r in history) == sorted(
        (e.source, e.key, e.etag) for e in entries
    )
    current = {(e.source, e.key, e.etag) for e in ledger.newest().values()}
    assert {(r["source_name"], r["bronze_key"], r["bronze_etag"]) for r in history if r["is_current"]} == current
    bad = [r for r in history if r["bronze_key"] == bad_key]
    assert [(r["rows_out"], r["is_current"]) for r in sorted(bad, key=lambda r: r["finished_at"])] == [
        (0, False),
        (0, True),
    ]
