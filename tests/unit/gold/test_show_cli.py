from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.cli import main
from lakehouse_gold.manifest import GoldManifest
from lakehouse_gold.show import format_table, headline, preview_marts

PublishMarts = Callable[[dict[str, pa.Table]], GoldManifest]  # the publish_marts fixture
JAN, FEB = date(2024, 1, 1), date(2024, 2, 1)
SKILLS = pa.table(
    {
        "skill_name": ["SQL", "Python", "Git", "Excel"],
        "published_month": [JAN, FEB, FEB, JAN],
        "vacancy_count": pa.array([9, 3, 5, 1], pa.int64()),
        "vacancy_share": [0.9, 0.3, 0.5, 0.1],
    }
)


@pytest.fixture
def env_settings(gold_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Expose the gold_settings lake through the environment, as the CLI reads it."""
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(gold_settings.data_dir))
    monkeypatch.setenv("LAKEHOUSE_SCRATCH_DIR", str(gold_settings.scratch_dir))
    return gold_settings


@pytest.mark.parametrize(
    ("name", "first"),
    [
        pytest.param("skills_demand_by_month", ["Git", "Python", "SQL"], id="known-mart: latest month, most demanded"),
        pytest.param("some_new_mart", ["SQL", "Python", "Git"], id="unknown-mart: file order"),
    ],
)
def test_headline_rows(name: str, first: list[str]) -> None:
    assert headline(SKILLS, name, 3).column("skill_name").to_pylist() == first


def test_load_history_headline_is_the_latest_loads_in_a_few_columns() -> None:
    history = pa.table(
        {
            "source_name": ["s", "s", "t"],
            "bronze_key": ["a", "b", "c"],
            "bronze_etag": ["1", "2", "3"],
            "status": ["loaded", "quarantined", "loaded"],
            "rows_in": [1, 2, 3],
            "rows_out": [1, 0, 3],
            "rows_quarantined": [0, 2, 0],
            "finished_at": [JAN, FEB, JAN],
            "load_seconds": [0.1, 0.2, 0.3],
            "contract_version": ["v", "v", "v"],
        }
    )
    shown = headline(history, "load_history", 2)
    assert shown.column("bronze_key").to_pylist() == ["b", "a"]  # newest first, then by key
    assert "contract_version" not in shown.schema.names and shown.schema.names[0] == "finished_at"


def test_format_table_aligns_columns() -> None:
    text = format_table(SKILLS.slice(0, 2))
    assert text.splitlines() == [
        "skill_name  published_month  vacancy_count  vacancy_share",
        "----------  ---------------  -------------  -------------",
        "SQL         2024-01-01       9              0.9000       ",
        "Python      2024-02-01       3              0.3000       ",
    ]


def test_preview_gives_each_mart_with_its_location(gold_lake: Lake, publish_marts: PublishMarts) -> None:
    publish_marts({"skills_demand_by_month": SKILLS})
    [preview] = preview_marts(gold_lake, rows=2)
    # The location is the manifest's run file.
    assert preview.uri == str(Path(gold_lake.gold.uri("marts/skills_demand_by_month/run=run-1.parquet")))
    assert preview.headline.num_rows == 2


def test_cli_show_prints_marts(
    env_settings: Settings, publish_marts: PublishMarts, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_marts({"skills_demand_by_month": SKILLS})
    assert main(["show", "--rows", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("== skills_demand_by_month  (4 rows)  ")
    assert lines[3].startswith("Git ")


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        pytest.param(["show"], 1, "no gold manifest at", id="show-before-build"),
        pytest.param(["show", "--rows", "0"], 2, "--rows must be at least 1", id="bad-rows"),
        pytest.param(["replicate"], 1, "no gold manifest at", id="replicate-before-build"),
    ],
)
def test_cli_errors_have_exit_codes(
    env_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    argv: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.setenv("LAKEHOUSE_REPLICA_URI", "s3://replica-bucket/x")
    with caplog.at_level(logging.ERROR, logger="lakehouse_gold"):
        assert main(argv) == code
    assert message in caplog.text


def test_cli_build_without_a_dbt_project_is_a_configuration_error(
    env_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LAKEHOUSE_DBT_PROJECT_DIR", str(tmp_path / "nowhere"))
    with caplog.at_level(logging.ERROR, logger="lakehouse_gold"):
        assert main(["build"]) == 2
    assert "set LAKEHOUSE_DBT_PROJECT_DIR" in caplog.text
