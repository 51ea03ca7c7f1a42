"""``lakehouse-silverize`` on a local lake: run, history, pending, reconcile and maintain, through
its ``main`` (the same code the console script runs), reading silver's Delta tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse_common.settings import Settings
from lakehouse_silverizer.cli import main

RATES = "date,currency,rate\n2025-01-01,USD,90.5\n2025-01-02,USD,91\n2025-01-02,EUR,not-a-number\n"


@pytest.fixture
def lake(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(settings.contracts_dir))
    monkeypatch.setenv("LAKEHOUSE_SCRATCH_DIR", str(settings.scratch_dir))
    bronze = settings.data_dir / "bronze" / "currency_rates"
    bronze.mkdir(parents=True)
    (bronze / "a.csv").write_text(RATES)
    return settings.data_dir


def test_run_then_history_shows_one_loaded_row_and_nothing_is_pending(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "currency_rates"]) == 0
    out = capsys.readouterr().out
    assert "1 object(s): 3 rows in, 2 out, 1 quarantined" in out
    assert main(["history", "currency_rates", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["bronze_key"], row["status"], row["rows_out"]) == ("currency_rates/a.csv", "loaded", 2)
    assert main(["pending", "currency_rates"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["run", "currency_rates", "--key", "currency_rates/a.csv"]) == 3  # not pending: exit 3
    assert "use 'reprocess'" in capsys.readouterr().err


def test_history_says_when_it_shows_only_the_newest_rows(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (lake / "bronze" / "currency_rates" / "b.csv").write_text("date,currency,rate\n2025-02-01,USD,92\n")
    assert main(["run"]) == 0
    capsys.readouterr()
    assert main(["history", "--limit", "1"]) == 0
    assert "(the newest 1 of 2 rows; --limit 0 shows all)" in capsys.readouterr().out


def test_reconcile_reports_a_loaded_key_whose_bronze_object_is_gone(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "currency_rates"]) == 0
    (lake / "bronze" / "currency_rates" / "a.csv").unlink()
    capsys.readouterr()
    assert main(["reconcile", "currency_rates", "--json", "--strict"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["bronze_gone"] == ["currency_rates/a.csv"] and report["pending"] == [] and not report["ok"]


def test_maintain_checkpoints_every_silver_table(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 0
    assert main(["maintain", "--retention-s", "0"]) == 0
    out = capsys.readouterr().out
    for name in ("_load_history", "_quarantine", "currency_rates", "vacancies", "vacancy_skills"):
        assert f"{name}: version" in out
    rates = lake / "silver" / "currency_rates"
    assert list((rates / "_delta_log").glob("*.checkpoint.parquet"))
    assert DeltaTable(str(rates)).to_pyarrow_table().num_rows == 2
