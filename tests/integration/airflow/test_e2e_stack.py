"""End to end through a real Airflow: API server, scheduler, dag-processor and triggerer on PostgreSQL.

A moto server stands in for MinIO (bronze, silver, gold) and for AWS (the replica bucket, written
with other credentials); the real event bridge runs as a subprocess. The lake starts with history:
a small hh.ru-shaped sample, silverized before Airflow starts, with a few vacancy pages held back.

1. a page put into bronze and announced through the bridge (landing DAGs paused, so the sensors
   cannot take it) goes bronze -> silver -> gold -> replica;
2. the same page dropped again (same key and bytes; then the same bytes under a new key) adds no
   silver rows;
3. a page put with no event is found by the landing sensor and reaches gold and the replica.

The three tests share one stack and run in file order (each starts from the state the previous
one left).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse_orchestration.stack import AirflowStack
from lakehouse_orchestration.testbed import BridgeProcess, BronzeObject, S3Lake, landing_parked, settled

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]

REPO = Path(__file__).resolve().parents[3]
SOURCE = "vacancies"
SOURCES = ("vacancies", "vacancy_details", "currency_rates")
CHAIN_TIMEOUT_S = 120.0
"""One file from drop to replica: silver, a dbt build and the copy, each a scheduler hop."""


@pytest.fixture(scope="module")
def held_back(sample: list[BronzeObject]) -> list[BronzeObject]:
    """Vacancy pages kept out of the seeded history, dropped by the tests."""
    return [o for o in sample if o.source == SOURCE][-2:]


def finished_runs(stack: AirflowStack, dag_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.dag_runs(dag_id) if r["state"] in {"success", "failed"}]


def test_file_announced_by_the_bridge_reaches_the_replica(
    stack: AirflowStack, bridge: BridgeProcess, lake: S3Lake, held_back: list[BronzeObject]
) -> None:
    # The sensors must not take the file: only the bridge announces it. Pausing stops new tasks,
    # not a sensor already poking in a worker, so wait until every landing sensor is deferred.
    for source in SOURCES:
        stack.set_paused(f"landing__{source}", True)
    stack.wait_for(lambda: landing_parked(stack, SOURCES), 60, "the landing sensors to defer")
    assert lake.replica_run_id() is None
    page = held_back[0]

    etag = lake.put(page.key, page.data)
    answer = bridge.announce(lake, page.key, page.data)
    assert answer["posted"] == 1, answer
    assert answer["records"][0]["asset"] == f"bronze/{SOURCE}"

    entry = stack.wait_for(lambda: lake.history_entry(SOURCE, page.key, etag), CHAIN_TIMEOUT_S, "the load-history row")
    assert entry is not None and entry.status == "loaded"
    assert entry.rows_out > 0
    run_id = stack.wait_for(lake.replica_run_id, CHAIN_TIMEOUT_S, "the replica's _manifest.json")
    replica = lake.replica_keys()
    assert {k.rsplit("/", 1)[-1] for k in replica} >= {"_manifest.json", "vacancies_by_region_month.parquet"}

    # The bronze Asset event came from the bridge, and silver's event carries the load history's figures.
    bronze_events = stack.asset_events(f"bronze/{SOURCE}")
    assert [e["extra"].get("via") for e in bronze_events] == ["minio-bridge"], bronze_events
    assert bronze_events[0]["extra"]["key"] == page.key
    silver_events = stack.asset_events(f"silver/{SOURCE}")
    assert len(silver_events) == 1
    extra = silver_events[0]["extra"]
    assert extra["objects"] == 1
    assert extra["keys"] == [page.key]
    assert (extra["rows_in"], extra["rows_out"], extra["rows_quarantined"]) == (
        entry.rows_in,
        entry.rows_out,
        entry.rows_quarantined,
    )
    assert silver_events[0]["source_dag_id"] == f"silver__{SOURCE}"
    runs = finished_runs(stack, f"silver__{SOURCE}")
    assert [r["state"] for r in runs] == ["success"]
    assert runs[0]["triggered_by"] == "asset"
    gold_events = stack.asset_events("gold/vacancies_by_region_month")
    assert gold_events and gold_events[-1]["extra"]["run_id"] == run_id
    stack.wait_for(lambda: settled(stack, SOURCES), 60, "the chain to settle")


def test_the_same_file_dropped_again_adds_no_silver_rows(
    stack: AirflowStack, bridge: BridgeProcess, lake: S3Lake, held_back: list[BronzeObject]
) -> None:
    page = held_back[0]
    silver_before = lake.silver_objects()
    rows_before = lake.silver_rows()
    events_before = len(stack.asset_events(f"silver/{SOURCE}"))
    runs_before = len(stack.dag_runs(f"silver__{SOURCE}"))

    # Same key, same bytes: a new PUT and a new notification (a new sequencer, so the bridge posts it).
    lake.put(page.key, page.data)
    assert bridge.announce(lake, page.key, page.data)["posted"] == 1

    def new_runs() -> list[dict[str, Any]] | None:
        done = finished_runs(stack, f"silver__{SOURCE}")
        return done if len(done) > runs_before else None

    runs = stack.wait_for(new_runs, CHAIN_TIMEOUT_S, "the silver run of the repeated event")
    assert runs[-1]["state"] == "success"
    states = {t["task_id"]: t["state"] for t in stack.task_instances(f"silver__{SOURCE}", runs[-1]["dag_run_id"])}
    assert states["list_pending"] == "success"
    assert states["commit"] == "skipped"  # nothing processed: no silver Asset event, no gold run
    assert lake.silver_objects() == silver_before
    assert lake.silver_rows() == rows_before
    assert len(stack.asset_events(f"silver/{SOURCE}")) == events_before

    # Same bytes under a new key (someone drops a copy).
    ingest_date, name = page.key.split("/")[1:]
    copy_key = f"{SOURCE}/{ingest_date}/copy-of-{name}"
    etag = lake.put(copy_key, page.data)
    assert bridge.announce(lake, copy_key, page.data)["posted"] == 1
    entry = stack.wait_for(lambda: lake.history_entry(SOURCE, copy_key, etag), CHAIN_TIMEOUT_S, "the copy's entry")
    assert entry is not None
    # S3's ETag of a single-part upload is the MD5 of the bytes: the copy is a recorded duplicate.
    assert entry.status == "duplicate", entry
    assert entry.rows_out == 0
    assert lake.silver_rows() == rows_before
    stack.wait_for(lambda: settled(stack, SOURCES), 60, "the chain to settle")


def test_file_put_without_an_event_is_found_by_the_sensor(
    stack: AirflowStack, lake: S3Lake, held_back: list[BronzeObject]
) -> None:
    # A landing run paused since test 1 may now act on what its trigger saw back then: it announces
    # an object silver already took, and that silver run commits nothing (no gold run follows).
    for source in SOURCES:
        stack.set_paused(f"landing__{source}", False)
    run_id_before = lake.replica_run_id()
    page = held_back[1]

    etag = lake.put(page.key, page.data)
    entry = stack.wait_for(lambda: lake.history_entry(SOURCE, page.key, etag), CHAIN_TIMEOUT_S, "the load-history row")
    assert entry is not None and entry.status == "loaded" and entry.rows_out > 0
    stack.wait_for(lambda: lake.replica_run_id() != run_id_before, CHAIN_TIMEOUT_S, "gold replicated")

    sensor_events = [e for e in stack.asset_events(f"bronze/{SOURCE}") if e["extra"].get("via") == "sensor"]
    assert any(page.key in e["extra"]["keys"] for e in sensor_events), sensor_events
    assert any(page.key in e["extra"].get("keys", []) for e in stack.asset_events(f"silver/{SOURCE}"))
