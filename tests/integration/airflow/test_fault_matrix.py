"""Issue 6's fault matrix, the rows that need a real scheduler and triggerer (one shared stack).

- row 13: the triggerer is killed and restarted while ``landing__vacancies.wait_for_new_objects``
  is deferred; a file then dropped without an event is still found, announced once and loaded once;
- row 12: N bronze events arrive (through the real bridge) while a silver run is in progress:
  with ``max_active_runs=1`` they collapse into at most N runs, every object gets exactly one
  load-history row, is listed in exactly one silver Asset event, and nothing is left pending.

A moto server stands in for MinIO and AWS, as in test_e2e_stack.py. The tests share one stack
(start-up is paid once) and run in file order.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lakehouse_orchestration.stack import AirflowStack
from lakehouse_orchestration.testbed import BridgeProcess, BronzeObject, S3Lake, landing_parked, settled

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[3]
SOURCE = "vacancies"
SOURCES = ("vacancies", "vacancy_details", "currency_rates")
N_EVENTS = 4
CHAIN_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def held_back(sample: list[BronzeObject]) -> list[BronzeObject]:
    """Vacancy pages kept out of the seeded history: one for the sensor, N for the burst of events."""
    pages = [o for o in sample if o.source == SOURCE][-(N_EVENTS + 1) :]
    assert len(pages) == N_EVENTS + 1
    return pages


@pytest.fixture(scope="module")
def lake_env(lake: S3Lake) -> dict[str, str]:
    env = lake.env(poke_interval_s="2", retry_delay_s="1", retries="2")
    # A killed triggerer's triggers go to another one once its heartbeat is this old (default 30 s).
    env["AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC"] = "2"
    env["AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"] = "8"
    return env


# -- helpers -----------------------------------------------------------------------------------


def deferred_sensor_run(stack: AirflowStack, source: str) -> str | None:
    """The run id of the landing run whose ``wait_for_new_objects`` is deferred, if any."""
    for run in stack.dag_runs(f"landing__{source}"):
        if run["state"] != "running":
            continue
        for ti in stack.task_instances(f"landing__{source}", run["dag_run_id"]):
            if ti["task_id"] == "wait_for_new_objects" and ti["state"] == "deferred":
                return str(run["dag_run_id"])
    return None


def task_state(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> str | None:
    for ti in stack.task_instances(dag_id, run_id):
        if ti["task_id"] == task_id:
            return str(ti["state"])
    return None


def keys_in_events(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(key for event in events for key in event["extra"].get("keys", []))


# -- row 13 ------------------------------------------------------------------------------------
def test_triggerer_restart_while_the_sensor_is_deferred(
    stack: AirflowStack, lake: S3Lake, held_back: list[BronzeObject]
) -> None:
    for source in SOURCES:
        if source != SOURCE:
            stack.set_paused(f"landing__{source}", True)
    run_id = stack.wait_for(lambda: deferred_sensor_run(stack, SOURCE), 90, "the landing sensor to defer")
    assert lake.pending(SOURCE) == []

    stack.restart("triggerer")
    assert task_state(stack, f"landing__{SOURCE}", run_id, "wait_for_new_objects") == "deferred"
    page = held_back[0]
    etag = lake.put(page.key, page.data)  # no event: only the sensor can find it

    entry = stack.wait_for(lambda: lake.history_entry(SOURCE, page.key, etag), CHAIN_TIMEOUT_S, "the load-history row")
    assert entry is not None and entry.status == "loaded" and entry.rows_out > 0
    # The very sensor that was deferred across the restart resolved (not a later landing run).
    assert task_state(stack, f"landing__{SOURCE}", run_id, "wait_for_new_objects") == "success"
    stack.wait_for(
        lambda: task_state(stack, f"landing__{SOURCE}", run_id, "wait_until_loaded") == "success",
        60,
        "the landing run to see its object loaded",
    )
    stack.wait_for(lambda: settled(stack, SOURCES), CHAIN_TIMEOUT_S, "the chain to settle")

    # No side effects from the trigger running twice: one announcement, one entry, one silver event.
    sensor_events = [e for e in stack.asset_events(f"bronze/{SOURCE}") if e["extra"].get("via") == "sensor"]
    assert keys_in_events(sensor_events)[page.key] == 1, sensor_events
    assert [e.key for e in lake.history(SOURCE)].count(page.key) == 1
    assert keys_in_events(stack.asset_events(f"silver/{SOURCE}"))[page.key] == 1
    assert lake.pending(SOURCE) == []


# -- row 12 ------------------------------------------------------------------------------------
def test_events_arriving_during_a_silver_run_are_each_processed_once(
    stack: AirflowStack, bridge: BridgeProcess, lake: S3Lake, held_back: list[BronzeObject]
) -> None:
    # Only the bridge announces: the landing sensors are paused and parked (deferred or done).
    for source in SOURCES:
        stack.set_paused(f"landing__{source}", True)
    stack.wait_for(lambda: landing_parked(stack, SOURCES), 60, "the landing sensors to park")
    burst = held_back[1:]
    runs_before = {r["dag_run_id"] for r in stack.dag_runs(f"silver__{SOURCE}")}
    silver_events_before = len(stack.asset_events(f"silver/{SOURCE}"))

    etags = {burst[0].key: lake.put(burst[0].key, burst[0].data)}
    assert bridge.announce(lake, burst[0].key, burst[0].data)["posted"] == 1

    def active_run() -> dict[str, Any] | None:
        runs = [r for r in stack.dag_runs(f"silver__{SOURCE}") if r["dag_run_id"] not in runs_before]
        return next((r for r in runs if r["state"] == "running"), None)

    first = stack.wait_for(active_run, 60, "the first silver run to start", interval=0.1)
    for page in burst[1:]:
        etags[page.key] = lake.put(page.key, page.data)
        assert bridge.announce(lake, page.key, page.data)["posted"] == 1
    states_now = {r["dag_run_id"]: r["state"] for r in stack.dag_runs(f"silver__{SOURCE}")}
    assert states_now[first["dag_run_id"]] == "running", "the burst must arrive while the first run is active"

    def all_loaded() -> bool:
        return all(lake.history_entry(SOURCE, key, etag) is not None for key, etag in etags.items())

    stack.wait_for(all_loaded, CHAIN_TIMEOUT_S, "every object of the burst in the load history")
    stack.wait_for(lambda: settled(stack, SOURCES), CHAIN_TIMEOUT_S, "the chain to settle")
    time.sleep(3)  # a collapsed event queued behind the last run would start now
    stack.wait_for(lambda: settled(stack, SOURCES), CHAIN_TIMEOUT_S, "the chain to settle")

    entries = Counter(e.key for e in lake.history(SOURCE))
    assert {key: entries[key] for key in etags} == dict.fromkeys(etags, 1)
    assert all(lake.history_entry(SOURCE, key, etag).status == "loaded" for key, etag in etags.items())  # type: ignore[union-attr]
    assert lake.pending(SOURCE) == []
    new_runs = [r for r in stack.dag_runs(f"silver__{SOURCE}") if r["dag_run_id"] not in runs_before]
    assert 1 <= len(new_runs) <= N_EVENTS, new_runs
    assert all(r["state"] == "success" for r in new_runs), new_runs
    bronze_events = [e for e in stack.asset_events(f"bronze/{SOURCE}") if e["extra"].get("via") == "minio-bridge"]
    assert {e["extra"]["key"] for e in bronze_events} >= set(etags)
    # Each object is in exactly one silver Asset event: processed once, whatever run took it.
    silver_events = stack.asset_events(f"silver/{SOURCE}")[silver_events_before:]
    assert keys_in_events(silver_events) == Counter(dict.fromkeys(etags, 1))
