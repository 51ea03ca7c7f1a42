"""The orchestration package's own logic: what counts as pending, sensor decisions, the silver
event's extra, the Assets of each layer, settings and alert messages."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_common.exceptions import SettingsError
from lakehouse_common.ledger import Ledger
from lakehouse_common.settings import get_settings
from lakehouse_orchestration import registry
from lakehouse_orchestration.alerts import failure_message, notify_failure
from lakehouse_orchestration.sensors import pending_pairs, satisfied
from lakehouse_orchestration.settings import get_settings as orchestration_settings
from lakehouse_orchestration.tasks import summarize_silver

REPO = Path(__file__).resolve().parents[3]
A = ("vacancies/d=1/a.json", "etag-a")
B = ("vacancies/d=1/b.json", "etag-b")


@pytest.mark.parametrize(
    ("objects", "recorded", "expected"),
    [
        pytest.param([A, B], set(), [A, B], id="nothing-recorded"),
        pytest.param([B, A], {Ledger.entry_key("vacancies", *A)}, [B], id="one-recorded"),
        pytest.param([A], {Ledger.entry_key("vacancies", A[0], "old-etag")}, [A], id="changed-etag-is-pending"),
        pytest.param([("vacancies/d=1/_SUCCESS", "e"), ("vacancies/.tmp-x", "e")], set(), [], id="bookkeeping-ignored"),
        pytest.param([A], {Ledger.entry_key("other", *A)}, [A], id="other-source-ledger"),
    ],
)
def test_pending_pairs(objects: list[tuple[str, str]], recorded: set[str], expected: list[tuple[str, str]]) -> None:
    assert pending_pairs("vacancies", objects, recorded) == expected


@pytest.mark.parametrize(
    ("pending", "announced", "done"),
    [
        pytest.param([], None, False, id="new-mode-nothing"),
        pytest.param([A], None, True, id="new-mode-something"),
        pytest.param([A], {A}, False, id="loaded-mode-still-pending"),
        pytest.param([B], {A}, True, id="loaded-mode-only-newer-pending"),
        pytest.param([], {A, B}, True, id="loaded-mode-all-taken"),
        pytest.param([(A[0], "new-etag")], {A}, True, id="loaded-mode-replaced-object"),
    ],
)
def test_sensor_decision(pending: list[tuple[str, str]], announced: set[tuple[str, str]] | None, done: bool) -> None:
    assert satisfied(pending, announced) is done


def test_summarize_silver_counts_processed_objects_and_rows() -> None:
    results: list[dict[str, Any] | None] = [
        {"key": "k1", "status": "loaded", "rows_in": 10, "rows_out": 8, "rows_quarantined": 2},
        {"key": "k2", "status": "unreadable", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0},
        {"key": "k3", "status": "skipped", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0},
        {"key": "k4", "status": "duplicate", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0},
        None,  # a mapped task that failed has no result
    ]
    extra = summarize_silver("vacancies", results)
    assert extra == {
        "source": "vacancies",
        "objects": 2,
        "keys": ["k1", "k2"],
        "statuses": {"loaded": 1, "unreadable": 1},
        "rows_in": 10,
        "rows_out": 8,
        "rows_quarantined": 2,
        "duplicates": 1,
        "skipped": 1,
    }


def test_assets_name_layers_and_point_at_the_backend(tmp_path: Path) -> None:
    s3 = get_settings(backend="s3", contracts_dir=REPO / "contracts", dbt_project_dir=REPO / "dbt", silver_bucket="sv")
    details = next(s for s in registry.sources(s3) if s.name == "vacancy_details")
    assert registry.bronze_asset(s3, details).name == "bronze/vacancy_details"
    assert {a.name: a.uri for a in registry.silver_assets(s3, details)} == {
        "silver/vacancy_details": "s3://sv/vacancy_details",
        "silver/vacancy_skills": "s3://sv/vacancy_skills",
    }
    local = get_settings(
        backend="local", data_dir=tmp_path, contracts_dir=REPO / "contracts", dbt_project_dir=REPO / "dbt"
    )
    gold = {a.name: a.uri for a in registry.gold_assets(local)}
    assert (
        gold["gold/vacancies_by_region_month"] == (tmp_path / "gold/marts/vacancies_by_region_month.parquet").as_uri()
    )
    assert registry.replica_asset(local) is None
    replica = registry.replica_asset(get_settings(replica_uri="s3://aws-bucket/lake/gold"))
    assert replica is not None and replica.name == "replica/gold"


def test_settings_parse_tags_and_reject_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_TAGS", "lakehouse, vacancies")
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_ALERT_WEBHOOK_URL", "")
    settings = orchestration_settings()
    assert settings.tags == ("lakehouse", "vacancies")
    assert settings.alert_webhook_url is None
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_RETRIES", "-1")
    with pytest.raises(SettingsError, match="LAKEHOUSE_AIRFLOW_"):
        orchestration_settings()


def test_failure_message_names_task_run_try_and_error() -> None:
    ti = SimpleNamespace(
        dag_id="silver__vacancies", task_id="silverize", run_id="r1", try_number=3, log_url="http://x/log"
    )
    message = failure_message({"ti": ti, "exception": ValueError("bad row 7")})
    assert message["text"].startswith("Mini-Lakehouse: task silver__vacancies.silverize failed (run r1, try 3)")
    assert "ValueError: bad row 7" in message["text"]
    assert message["log_url"] == "http://x/log"


def test_notify_failure_without_targets_only_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("ALERT_WEBHOOK_URL", "ALERT_TELEGRAM_BOT_TOKEN", "ALERT_TELEGRAM_CHAT_ID"):
        monkeypatch.delenv(f"LAKEHOUSE_AIRFLOW_{name}", raising=False)
    ti = SimpleNamespace(dag_id="gold", task_id="dbt_build", run_id="r", try_number=1)
    notify_failure({"ti": ti, "exception": RuntimeError("dbt test failed")})
    assert "gold.dbt_build failed" in caplog.text
