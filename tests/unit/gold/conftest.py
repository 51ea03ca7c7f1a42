"""Fixtures of the gold unit tests: a local lake under tmp_path and a way to publish marts into it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_gold.manifest import GoldManifest
from lakehouse_gold.publish import publish_staged

REPO = Path(__file__).resolve().parents[3]

PublishMarts = Callable[[dict[str, pa.Table]], GoldManifest]


@pytest.fixture
def gold_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A local lake under tmp_path; LAKEHOUSE_* variables of the calling shell are ignored."""
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(name)
    return get_settings(
        backend="local",
        data_dir=tmp_path / "data",
        scratch_dir=tmp_path / "scratch",
        dbt_project_dir=REPO / "dbt",
    )


@pytest.fixture
def gold_lake(gold_settings: Settings) -> Lake:
    lake = Lake(gold_settings)
    lake.ensure()
    return lake


def stage_marts(lake: Lake, staging: str, marts: dict[str, pa.Table]) -> None:
    for name, table in marts.items():
        with lake.gold.open_output(f"{staging}/{name}.parquet") as out:
            pq.write_table(table, out, compression="zstd")


@pytest.fixture
def publish_marts(gold_lake: Lake, gold_settings: Settings) -> PublishMarts:
    """Publish tables as marts the way a passed build does; returns the manifest."""
    runs = iter(range(1, 1000))

    def publish(marts: dict[str, pa.Table]) -> GoldManifest:
        run_id = f"run-{next(runs)}"
        stage_marts(gold_lake, f"_staging/{run_id}", marts)
        return publish_staged(
            gold_lake,
            run_id=run_id,
            staging_prefix=f"_staging/{run_id}",
            spool_dir=gold_settings.scratch_dir / "spool",
            dbt_status_counts={"success": len(marts)},
            dbt_warnings=[],
        )

    return publish
