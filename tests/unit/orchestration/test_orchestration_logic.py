"""The orchestration package's own logic: what counts as pending, sensor decisions, the silver
event's extra, the maintenance task, the Assets of each layer, settings and alert messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse_common import tables
from lakehouse_common.exceptions import SettingsError
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake, LayerStore, ObjectInfo
from lakehouse_orchestration import registry
from lakehouse_orchestration.alerts import failure_message, notify_failure
from lakehouse_orchestration.sensors import PendingFilesTrigger, pending_pairs, satisfied
from lakehouse_orchestration.settings import get_settings as orchestration_settings
from lakehouse_orchestration.tasks import (
    advance_listing,
    event_keys,
    maintain_silver,
    pending_batches,
    silverize_batch,
    summarize_silver,
)
from lakehouse_silverizer.commits import DeltaCommitter, StagedObject, history_spec
from lakehouse_silverizer.listing import read_cursor

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2025, 6, 1, tzinfo=UTC)
A = ObjectInfo("vacancies/d=1/a.json", 10, "etag-a", T0)
B = ObjectInfo("vacancies/d=1/b.json", 20, "etag-b", T0)
PA, PB = (A.key, A.etag), (B.key, B.etag)


@pytest.fixture
def silver(settings: Settings) -> LayerStore:
    lake = Lake(settings)
    lake.ensure()
    return lake.silver


def record(store: LayerStore, source: str, info: ObjectInfo) -> None:
    """Commit one load-history row with the object version's app transaction, as the silverizer does."""
    row = {
        "source": source, "bronze_key": info.key, "bronze_etag": info.etag, "bronze_size": info.size,
        "bronze_modified": info.modified, "version_id": info.etag, "status": "loaded", "rows_in": 1,
        "rows_out": 1, "rows_quarantined": 0, "rows_deduplicated": 0, "run_id": "test",
        "started_at": info.modified, "finished_at": info.modified, "seconds": 0.1,
    }  # fmt: skip
    committer = DeltaCommitter(store, "test")
    committer.ensure(history_spec())
    committer.record(pa.Table.from_pylist([row], schema=tables.load_history_schema()), [StagedObject(info, source)])


def later(info: ObjectInfo, **changes: Any) -> ObjectInfo:
    return ObjectInfo(info.key, info.size, changes.get("etag", info.etag), info.modified + timedelta(seconds=1))


@pytest.mark.parametrize(
    ("objects", "recorded", "expected"),
    [
        pytest.param([A, B], [], [A, B], id="nothing-recorded"),
        pytest.param([B, A], [("vacancies", A)], [B], id="one-recorded"),
        pytest.param([later(A, etag="new-etag")], [("vacancies", A)], [later(A, etag="new-etag")], id="changed-etag"),
        pytest.param([later(A)], [("vacancies", A)], [], id="same-bytes-put-again-not-pending"),
        pytest.param(
            [later(later(A))],
            [("vacancies", A), ("vacancies", later(A, etag="new-etag"))],
            [later(later(A))],
            id="older-bytes-restored-pending-again",
        ),
        pytest.param(
            [ObjectInfo("vacancies/d=1/_SUCCESS", 0, "e", T0), ObjectInfo("vacancies/.tmp-x", 0, "e", T0)],
            [],
            [],
            id="bookkeeping-ignored",
        ),
        pytest.param([A], [("other", A)], [A], id="other-source-recorded"),
    ],
)
def test_pending_pairs_are_the_versions_the_load_history_lacks(
    silver: LayerStore,
    objects: list[ObjectInfo],
    recorded: list[tuple[str, ObjectInfo]],
    expected: list[ObjectInfo],
) -> None:
    for source, info in recorded:
        record(silver, source, info)
    assert pending_pairs(silver, "vacancies", objects) == [(o.key, o.etag) for o in expected]


def test_file_trigger_fires_with_what_the_load_history_lacks(
    settings: Settings, silver: LayerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(settings.data_dir))
    bronze = Lake(settings).bronze
    for name in ("a", "b"):
        bronze.put_bytes(f"vacancies/d=1/{name}.json", b"{}")
    record(silver, "vacancies", bronze.stat("vacancies/d=1/a.json"))  # type: ignore[arg-type]
    trigger = PendingFilesTrigger(source="vacancies", prefix="vacancies/", filepath="unused", poke_interval=0.01)

    async def first_event() -> Any:  # asyncio.run closes the trigger's generator afterwards
        return await asyncio.wait_for(anext(trigger.run()), timeout=30)

    event = asyncio.run(first_event())
    b = bronze.stat("vacancies/d=1/b.json")
    assert b is not None
    assert event.payload == {"status": "success", "pending": [[b.key, b.etag]]}


def test_maintenance_task_compacts_and_checkpoints_every_silver_table(
    settings: Settings, silver: LayerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S", "7200")
    record(silver, "vacancies", A)
    record(silver, "vacancies", B)
    for i in range(3):
        write_deltalake(silver.table_uri("currency_rates"), pa.table({"rate": [float(i)]}), mode="append")

    summary = maintain_silver()

    assert summary["retention_hours"] == 2.0
    assert sorted(summary["tables"]) == ["_load_history", "currency_rates"]
    assert summary["files_compacted"] == 5 and summary["files_removed"] == 0
    assert summary["checkpoints"] == 2
    assert len(DeltaTable(silver.table_uri("currency_rates")).file_uris()) == 1
    assert tables.pending(silver, "vacancies", [A, B]) == []


def test_the_silver_dag_moves_the_listing_cursor_only_once_every_batch_is_done(
    settings: Settings, silver: LayerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(REPO / "contracts"))
    bronze = Lake(settings).bronze
    first, second = "currency_rates/ingest_date=2024-03-01/a.csv", "currency_rates/ingest_date=2024-03-02/b.csv"
    bronze.put_bytes(first, b"date,currency,rate\n2024-03-01,USD,90.1\n")
    work = pending_batches("currency_rates")
    assert work["batches"] == [[first]] and work["listing"] is not None
    assert advance_listing("currency_rates", work["listing"], [None]) is False  # the batch failed
    skipped = [{"key": first, "status": "skipped"}]
    assert advance_listing("currency_rates", work["listing"], [skipped]) is False  # still pending
    assert read_cursor(silver, "currency_rates") is None
    results = silverize_batch("currency_rates", [first])
    assert advance_listing("currency_rates", work["listing"], [results]) is True
    cursor = read_cursor(silver, "currency_rates")
    assert cursor is not None and cursor.start_after == first

    bronze.put_bytes(second, b"date,currency,rate\n2024-03-02,USD,90.2\n")
    work = pending_batches("currency_rates", hints=[first])  # a hint for a loaded key adds nothing
    assert work["batches"] == [[second]]
    assert advance_listing("currency_rates", work["listing"], [silverize_batch("currency_rates", [second])])
    cursor = read_cursor(silver, "currency_rates")
    assert cursor is not None and cursor.start_after == second
    assert pending_batches("currency_rates") == {"batches": [], "listing": None}  # nothing after it


@pytest.mark.parametrize(
    ("pending", "announced", "done"),
    [
        pytest.param([], None, False, id="new-mode-nothing"),
        pytest.param([PA], None, True, id="new-mode-something"),
        pytest.param([PA], {PA}, False, id="loaded-mode-still-pending"),
        pytest.param([PB], {PA}, True, id="loaded-mode-only-newer-pending"),
        pytest.param([], {PA, PB}, True, id="loaded-mode-all-taken"),
        pytest.param([(PA[0], "new-etag")], {PA}, True, id="loaded-mode-replaced-object"),
    ],
)
def test_sensor_decision(pending: list[tuple[str, str]], announced: set[tuple[str, str]] | None, done: bool) -> None:
    assert satisfied(pending, announced) is done


@pytest.mark.parametrize(
    ("extras", "keys"),
    [
        pytest.param([], [], id="no-events"),
        pytest.param([{"key": "vacancies/a.json", "via": "bridge"}], ["vacancies/a.json"], id="bridge"),
        pytest.param(
            [{"keys": ["vacancies/a.json", "vacancies/b.json"], "via": "sensor"}],
            ["vacancies/a.json", "vacancies/b.json"],
            id="sensor",
        ),
        pytest.param(
            [{"key": "vacancies/a.json"}, {"keys": ["vacancies/a.json", "vacancies/c.json"]}, {}],
            ["vacancies/a.json", "vacancies/c.json"],
            id="duplicates-once-in-order",
        ),
        pytest.param([{"key": 7, "keys": "not-a-list-of-keys"}, None], [], id="malformed-extra-ignored"),
    ],
)
def test_event_keys_are_the_objects_the_triggering_events_name(
    extras: list[dict[str, Any] | None], keys: list[str]
) -> None:
    events = {"bronze/vacancies": [SimpleNamespace(extra=extra) for extra in extras]}
    assert event_keys(events) == keys


def test_summarize_silver_counts_processed_objects_and_rows() -> None:
    results: list[dict[str, Any] | None] = [
        {"key": "k1", "status": "loaded", "rows_in": 11, "rows_out": 8, "rows_quarantined": 2, "rows_deduplicated": 1},
        {"key": "k2", "status": "quarantined", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0},
        {"key": "k3", "status": "skipped", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0},
        {"key": "k4", "status": "duplicate", "rows_in": 0, "rows_out": 0, "rows_quarantined": 0},
        None,  # a mapped task that failed has no result
    ]
    extra = summarize_silver("vacancies", results)
    assert extra == {
        "source": "vacancies",
        "objects": 2,
        "keys": ["k1", "k2"],
        "statuses": {"loaded": 1, "quarantined": 1},
        "rows_in": 11,
        "rows_out": 8,
        "rows_quarantined": 2,
        "rows_deduplicated": 1,  # in = out + quarantined + de-duplicated
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
