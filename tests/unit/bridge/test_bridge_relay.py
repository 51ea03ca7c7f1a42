"""The relay's decisions, with Airflow replaced by an in-memory stand-in (no servers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from lakehouse_bridge.airflow_client import AirflowClient
from lakehouse_bridge.events import ObjectEvent
from lakehouse_bridge.exceptions import AirflowUnavailableError
from lakehouse_bridge.relay import EventRelay
from lakehouse_bridge.settings import AirflowConnection
from lakehouse_bridge.state import DeliveryStore


class MemoryAirflow(AirflowClient):
    """Keeps the AirflowClient interface the relay uses, answers from memory."""

    def __init__(self, assets: dict[str, int]) -> None:
        super().__init__(AirflowConnection("http://airflow.invalid", "u", SecretStr("p")))
        self.assets = assets
        self.posted: list[tuple[int, dict[str, Any]]] = []
        self.lookups: list[str] = []
        self.down = False
        self.gone: set[int] = set()
        self.delay_s = 0.0
        self.cached: dict[str, int] = {}
        self.forgotten: list[str] = []

    def asset_id(self, name: str) -> int | None:
        self.lookups.append(name)
        return self.cached.get(name, self.assets.get(name))

    def forget_asset(self, name: str) -> None:
        self.forgotten.append(name)
        self.cached.pop(name, None)

    def post_asset_event(self, asset_id: int, extra: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.down:
            raise AirflowUnavailableError("POST /api/v2/assets/events failed 6 times")
        if asset_id in self.gone:
            return None
        time.sleep(self.delay_s)
        self.posted.append((asset_id, dict(extra)))
        return {"id": 100 + len(self.posted), "asset_id": asset_id}


def event(key: str, *, etag: str = "e1", sequencer: str = "S1", name: str = "s3:ObjectCreated:Put") -> ObjectEvent:
    return ObjectEvent(name, "2026-01-01T00:00:00Z", "bronze", key, etag, sequencer)


@pytest.fixture
def airflow() -> MemoryAirflow:
    return MemoryAirflow({"bronze/vacancies": 1, "bronze/currency_rates": 2})


@pytest.fixture
def relay(airflow: MemoryAirflow, tmp_path: Path) -> EventRelay:
    return EventRelay(airflow, DeliveryStore(tmp_path / "bridge.sqlite"), "bronze")


def sample(relay: EventRelay, name: str, labels: dict[str, str] | None = None) -> float:
    value = relay.metrics.registry.get_sample_value(f"lakehouse_bridge_{name}", labels or {})
    return 0.0 if value is None else value


def test_each_relevant_record_posts_to_its_sources_asset(relay: EventRelay, airflow: MemoryAirflow) -> None:
    result = relay.relay([event("vacancies/a.json"), event("currency_rates/r.csv"), event("_meta/vacancies/a.json")])

    assert result.status == 200
    assert [r.outcome for r in result.records] == ["posted", "posted", "ignored"]
    assert [(asset_id, extra["key"]) for asset_id, extra in airflow.posted] == [
        (1, "vacancies/a.json"),
        (2, "currency_rates/r.csv"),
    ]
    assert result.records[0].asset_event_id == 101
    assert sample(relay, "records_received_total") == 3
    assert sample(relay, "records_posted_total", {"source": "vacancies"}) == 1
    assert sample(relay, "records_ignored_total", {"reason": "bookkeeping"}) == 1
    assert sample(relay, "last_post_timestamp_seconds") == pytest.approx(time.time(), abs=60)


def test_the_same_record_posts_once(relay: EventRelay, airflow: MemoryAirflow) -> None:
    first = relay.relay([event("vacancies/a.json"), event("vacancies/a.json")])
    again = relay.relay([event("vacancies/a.json")])
    overwritten = relay.relay([event("vacancies/a.json", etag="e2", sequencer="S2")])

    assert [r.outcome for r in first.records] == ["posted", "duplicate"]
    assert [r.outcome for r in again.records] == ["duplicate"]
    assert [r.outcome for r in overwritten.records] == ["posted"], "a new version of the object is a new event"
    assert len(airflow.posted) == 2
    assert sample(relay, "records_duplicate_total") == 2


def test_concurrent_requests_with_the_same_record_post_once(relay: EventRelay, airflow: MemoryAirflow) -> None:
    airflow.delay_s = 0.05  # the first post is still in flight when the others arrive
    threads = [threading.Thread(target=relay.relay, args=([event("vacancies/a.json")],)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(airflow.posted) == 1
    assert sample(relay, "records_duplicate_total") == 3


def test_an_unknown_asset_is_settled_without_a_post(relay: EventRelay, airflow: MemoryAirflow) -> None:
    result = relay.relay([event("brand_new_source/a.json"), event("vacancies/a.json")])

    assert result.status == 200
    assert [(r.outcome, r.reason, r.asset) for r in result.records] == [
        ("ignored", "unknown_asset", "bronze/brand_new_source"),
        ("posted", None, "bronze/vacancies"),
    ]
    assert [asset_id for asset_id, _ in airflow.posted] == [1]
    assert airflow.lookups == ["bronze/brand_new_source", "bronze/vacancies"]
    assert not relay.store.seen(event("brand_new_source/a.json").delivery_key), (
        "not remembered: a later DAG may want it"
    )


def test_a_stale_asset_id_is_looked_up_again(relay: EventRelay, airflow: MemoryAirflow) -> None:
    airflow.cached["bronze/vacancies"] = 1  # cached before the Asset was recreated under a new id
    airflow.gone.add(1)
    airflow.assets["bronze/vacancies"] = 11

    result = relay.relay([event("vacancies/a.json")])

    assert [r.outcome for r in result.records] == ["posted"]
    assert airflow.forgotten == ["bronze/vacancies"]
    assert [asset_id for asset_id, _ in airflow.posted] == [11]


def test_airflow_down_stops_at_the_record_and_answers_503(relay: EventRelay, airflow: MemoryAirflow) -> None:
    relay.relay([event("vacancies/a.json")])
    airflow.down = True

    result = relay.relay([event("vacancies/a.json"), event("vacancies/b.json"), event("currency_rates/r.csv")])

    assert result.status == 503
    assert [r.outcome for r in result.records] == ["duplicate", "failed", "not_tried"]
    assert "failed 6 times" in result.as_dict()["error"]
    assert not relay.store.seen(event("vacancies/b.json").delivery_key), "only what Airflow accepted is remembered"
    assert sample(relay, "errors_total", {"kind": "airflow_unavailable"}) == 1

    airflow.down = False
    retried = relay.relay([event("vacancies/a.json"), event("vacancies/b.json"), event("currency_rates/r.csv")])
    assert [r.outcome for r in retried.records] == ["duplicate", "posted", "posted"]


def test_the_result_document(relay: EventRelay) -> None:
    doc = relay.relay([event("vacancies/a.json"), event("x.json", name="s3:ObjectRemoved:Delete")]).as_dict()
    assert doc == {
        "status": 200,
        "posted": 1,
        "duplicate": 0,
        "ignored": 1,
        "records": [
            {
                "bucket": "bronze",
                "key": "vacancies/a.json",
                "outcome": "posted",
                "asset": "bronze/vacancies",
                "asset_event_id": 101,
            },
            {"bucket": "bronze", "key": "x.json", "outcome": "ignored", "reason": "not_created"},
        ],
    }


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        pytest.param(0, 0.25, 0.5, id="first"),
        pytest.param(1, 0.5, 1.0, id="doubles"),
        pytest.param(3, 2.0, 4.0, id="third"),
        pytest.param(10, 2.5, 5.0, id="capped"),
    ],
)
def test_backoff_is_exponential_jittered_and_capped(attempt: int, low: float, high: float) -> None:
    client = AirflowClient(AirflowConnection("http://a", "u", SecretStr("p")), backoff_s=0.5, backoff_max_s=5.0)
    delays = [client.backoff(attempt) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1, "jittered"
    assert client.backoff(attempt, retry_after=1.5) == 1.5
    assert client.backoff(attempt, retry_after=600) == 5.0, "Retry-After is capped too"
