"""The whole gold command line on a local lake (tmp_path): build, show, replicate without a replica."""

from __future__ import annotations

import logging

import pytest
from gold_silver_factory import assert_marts_match, make_silver, write_silver

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
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
