"""build_gold's orchestration, with dbt replaced by a fake that writes staged marts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold import build
from lakehouse_gold.build import build_gold, new_run_id
from lakehouse_gold.dbt_runner import DbtRunResult, NodeResult
from lakehouse_gold.exceptions import DbtBuildError
from lakehouse_gold.manifest import GoldManifest, read_manifest

PublishMarts = Callable[[dict[str, pa.Table]], GoldManifest]  # the publish_marts fixture
MART = pa.table({"area_id": ["1"], "vacancy_count": pa.array([5], pa.int64())})


def fake_dbt(monkeypatch: pytest.MonkeyPatch, nodes: tuple[NodeResult, ...], returncode: int) -> list[Path]:
    """Replace dbt: write one mart to the external root and a DuckDB file and a log to the run dir."""
    calls: list[Path] = []

    def run(settings: Settings, *, external_root: str, run_dir: Path) -> DbtRunResult:
        calls.append(run_dir)
        pq.write_table(MART.append_column("extra", pa.array(["new"])), Path(external_root) / "regions.parquet")
        (run_dir / "logs").mkdir(parents=True)
        (run_dir / "logs" / "dbt.log").write_text("log")
        (run_dir / "lakehouse.duckdb").write_bytes(b"db")
        return DbtRunResult(returncode=returncode, nodes=nodes, run_dir=run_dir)

    monkeypatch.setattr(build, "run_dbt", run)
    return calls


def test_a_passed_build_publishes_and_cleans_up(
    gold_settings: Settings, gold_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_dbt(monkeypatch, (NodeResult("model.lakehouse.regions", "success", "OK"),), 0)

    result = build_gold(gold_settings, lake=gold_lake, run_id="r1")

    assert read_manifest(gold_lake) == result.manifest
    assert result.manifest.marts[0].key == "marts/regions.parquet"
    assert [info.key for info in gold_lake.gold.list()] == ["_manifest.json", "marts/regions.parquet"]
    assert not (gold_settings.data_dir / "gold" / "_staging" / "r1").exists()
    assert not calls[0].exists()


def test_a_failed_test_raises_names_the_node_and_keeps_the_previous_gold(
    gold_settings: Settings, gold_lake: Lake, publish_marts: PublishMarts, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_marts({"regions": MART})
    before = {info.key: gold_lake.gold.read_bytes(info.key) for info in gold_lake.gold.list()}
    nodes = (
        NodeResult("model.lakehouse.stg_vacancies", "success", "OK"),
        NodeResult("test.lakehouse.accepted_values_stg_vacancies_salary_currency", "fail", "Got 1 result"),
        NodeResult("model.lakehouse.regions", "skipped", ""),
    )
    calls = fake_dbt(monkeypatch, nodes, 1)

    with pytest.raises(DbtBuildError) as failure:
        build_gold(gold_settings, lake=gold_lake, run_id="r2")

    assert failure.value.failed_ids == ["test.lakehouse.accepted_values_stg_vacancies_salary_currency"]
    assert failure.value.skipped == ("model.lakehouse.regions",)
    assert "accepted_values_stg_vacancies_salary_currency (fail: Got 1 result)" in str(failure.value)
    assert {info.key: gold_lake.gold.read_bytes(info.key) for info in gold_lake.gold.list()} == before
    assert not (gold_settings.data_dir / "gold" / "_staging" / "r2").exists()
    assert (calls[0] / "logs" / "dbt.log").exists()  # kept to diagnose the failure
    assert not (calls[0] / "lakehouse.duckdb").exists()


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == len("20240131T120000Z-1a2b3c") for i in ids)
