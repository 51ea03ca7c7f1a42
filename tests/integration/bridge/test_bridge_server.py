"""The real bridge HTTP server against Airflow's REST API played by pytest-httpserver.

Airflow itself (scheduler, API server, Postgres) end to end is covered by the pipeline's
end-to-end test; these tests pin what the bridge sends and what it answers MinIO.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import requests
from bridge_fakes import FakeAirflow, RunningBridge, notification, refused_url, response_json

from lakehouse_bridge.logs import LOGGER_NAME
from lakehouse_common.logs import record_fields

KEY = "vacancies/ingest_date=2026-01-01/20260101T100000Z-3f2a9c1d.json"


def test_a_created_object_posts_its_sources_asset_event(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge()

    response = bridge.post(notification(KEY))

    assert response.status_code == 200, response.text
    doc = response_json(response)
    assert (doc["posted"], doc["records"][0]["asset"], doc["records"][0]["asset_event_id"]) == (
        1,
        "bronze/vacancies",
        1,
    )
    assert airflow.events == [
        {
            "asset_id": 7,  # bronze/vacancies, not bronze/vacancies_archive that name_pattern matches too
            "extra": {
                "bucket": "bronze",
                "key": KEY,
                "etag": "9b2cf535f27731c974343645a3985328",
                "sequencer": "1881B4E2F5A3C2D1",
                "event_name": "s3:ObjectCreated:Put",
                "event_time": "2026-01-01T10:00:00.123Z",
                "via": "minio-bridge",
            },
        }
    ]
    assert airflow.event_auth == ["Bearer token-1"]
    assert airflow.asset_lookups == ["bronze/vacancies"]

    bridge.post(notification("vacancies/ingest_date=2026-01-01/second.json", sequencer="S2"))
    assert airflow.asset_lookups == ["bronze/vacancies"], "the asset id is cached"
    assert airflow.logins == 1, "the token is reused"


def test_a_key_with_spaces_is_decoded_before_it_is_posted(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge()
    key = "currency_rates/manual upload/rates 2026+Q1.csv"

    assert bridge.post(notification(key)).status_code == 200

    assert [(e["asset_id"], e["extra"]["key"]) for e in airflow.events] == [(9, key)]


def test_the_same_record_posts_once_also_after_a_restart(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge()
    body = notification(KEY)

    first, second = bridge.post(body), bridge.post(body)
    assert [first.status_code, second.status_code] == [200, 200]
    assert response_json(second)["records"][0]["outcome"] == "duplicate"
    assert bridge.metric("lakehouse_bridge_records_duplicate_total") == 1
    bridge.server.stop()

    restarted: RunningBridge = start_bridge()  # same state file
    again = restarted.post(body)
    assert again.status_code == 200
    assert response_json(again)["records"][0]["outcome"] == "duplicate"
    assert len(airflow.events) == 1

    overwritten = restarted.post(notification(KEY, etag="0cc175b9c0f1b6a831c399e269772661", sequencer="S9"))
    assert response_json(overwritten)["posted"] == 1, "a new version of the object wakes the Asset again"
    assert len(airflow.events) == 2


def test_an_expired_token_is_refreshed_once(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge()
    assert bridge.post(notification(KEY)).status_code == 200
    airflow.revoked.add("token-1")  # Airflow now answers 401 to it, as to an expired JWT

    response = bridge.post(notification(KEY, sequencer="S2"))

    assert response.status_code == 200, response.text
    assert airflow.logins == 2
    assert airflow.event_auth == ["Bearer token-1", "Bearer token-2"]


def test_bad_airflow_credentials_give_503_with_the_reason(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge(airflow_password="wrong")

    response = bridge.post(notification(KEY))

    assert response.status_code == 503
    assert "refused the credentials of user 'bridge'" in response_json(response)["error"]
    assert airflow.events == []
    assert bridge.metric("lakehouse_bridge_errors_total", kind="airflow_auth") == 1


def test_5xx_and_429_are_retried(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge(retries=3)
    airflow.fail_next = [503, 429, 500]  # the login, then the retried login twice

    response = bridge.post(notification(KEY))

    assert response.status_code == 200, response.text
    assert len(airflow.events) == 1
    assert bridge.metric("lakehouse_bridge_airflow_retries_total") == 3


def test_5xx_through_every_retry_gives_503_and_minio_sends_it_again(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge(retries=2)
    assert bridge.post(notification("vacancies/warm-up.json")).status_code == 200  # logged in, id cached
    airflow.fail_next = [502, 503, 500]

    response = bridge.post(notification(KEY))

    assert response.status_code == 503
    doc = response_json(response)
    assert doc["records"][0]["outcome"] == "failed"
    assert "failed 3 times, last: answered 500" in doc["error"]
    assert bridge.metric("lakehouse_bridge_airflow_retries_total") == 2
    assert bridge.metric("lakehouse_bridge_errors_total", kind="airflow_unavailable") == 1

    again = bridge.post(notification(KEY))  # MinIO's queue_dir replays the event
    assert again.status_code == 200
    assert response_json(again)["records"][0]["outcome"] == "posted", "a failed record was not remembered"
    assert [e["extra"]["key"] for e in airflow.events] == ["vacancies/warm-up.json", KEY]


def test_connection_refused_is_retried_then_503(start_bridge: Any) -> None:
    bridge: RunningBridge = start_bridge(airflow_url=refused_url(), retries=2)

    started = time.monotonic()
    response = bridge.post(notification(KEY))

    assert response.status_code == 503
    assert "ConnectionError" in response_json(response)["error"]
    assert bridge.metric("lakehouse_bridge_airflow_retries_total") == 2
    assert time.monotonic() - started < 5
    ready = requests.get(f"{bridge.url}/readyz", timeout=5)
    assert ready.status_code == 503
    assert response_json(ready)["checks"]["airflow"]["ok"] is False


def test_airflow_down_is_logged_with_its_url_and_the_record(
    start_bridge: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 6, row 6: the operator sees from the bridge's log alone that Airflow is unreachable, and where."""
    url = refused_url()
    bridge: RunningBridge = start_bridge(airflow_url=url, retries=1)

    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        assert bridge.post(notification(KEY)).status_code == 503

    logged = [(r.getMessage(), r.levelno, record_fields(r)) for r in caplog.records if r.name == LOGGER_NAME]
    retries = [fields for message, _, fields in logged if message == "airflow.retry"]
    assert retries and all(url in str(fields["url"]) for fields in retries), logged
    (failed,) = [(level, fields) for message, level, fields in logged if message == "record.failed"]
    level, fields = failed
    assert level == logging.ERROR
    assert fields["key"] == KEY and fields["kind"] == "airflow_unavailable" and fields["retry"] == "by MinIO"
    assert "ConnectionError" in fields["error"] and "127.0.0.1" in fields["error"], fields


def test_an_unknown_asset_is_a_200_without_a_post(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge()

    response = bridge.post(notification("brand_new_source/x.json"))

    assert response.status_code == 200
    record = response_json(response)["records"][0]
    assert (record["outcome"], record["reason"], record["asset"]) == (
        "ignored",
        "unknown_asset",
        "bronze/brand_new_source",
    )
    assert airflow.events == []
    assert bridge.metric("lakehouse_bridge_records_ignored_total", reason="unknown_asset") == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(notification("_meta/vacancies/x.json"), "bookkeeping", id="bookkeeping"),
        pytest.param(notification("vacancies/d=1/.x.json.tmp"), "hidden", id="hidden"),
        pytest.param(notification(KEY, bucket="silver"), "other_bucket", id="other-bucket"),
        pytest.param(notification(KEY, event_name="s3:ObjectRemoved:Delete"), "not_created", id="removed"),
    ],
)
def test_records_that_wake_nothing_are_200_without_airflow(
    start_bridge: Any, airflow: FakeAirflow, body: bytes, reason: str
) -> None:
    bridge: RunningBridge = start_bridge()

    response = bridge.post(body)

    assert response.status_code == 200
    assert response_json(response)["records"][0]["reason"] == reason
    assert (airflow.logins, airflow.events) == (0, [])


@pytest.mark.parametrize(
    ("token", "bearer", "status"),
    [
        pytest.param("minio-webhook-token", True, 200, id="bearer"),
        pytest.param("minio-webhook-token", False, 200, id="verbatim"),
        pytest.param("wrong", True, 401, id="wrong"),
        pytest.param(None, True, 401, id="missing"),
    ],
)
def test_the_webhook_token(
    start_bridge: Any, airflow: FakeAirflow, token: str | None, bearer: bool, status: int
) -> None:
    bridge: RunningBridge = start_bridge()

    response = bridge.post(notification(KEY), token, bearer=bearer)

    assert response.status_code == status
    assert len(airflow.events) == (1 if status == 200 else 0)
    head = requests.head(f"{bridge.url}/minio/events", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert head.status_code == status, "MinIO's liveness probe (HEAD) sees the same answer"


def test_a_body_that_is_not_a_notification_is_400(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge()

    response = bridge.post(b'{"hello": "world"}')

    assert response.status_code == 400
    assert "not a MinIO bucket notification" in response_json(response)["error"]
    assert bridge.metric("lakehouse_bridge_errors_total", kind="bad_request") == 1


def test_health_ready_and_unknown_paths(start_bridge: Any) -> None:
    bridge: RunningBridge = start_bridge()

    assert requests.get(f"{bridge.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{bridge.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"]["state"]["ok"] is True
    assert requests.get(f"{bridge.url}/nope", timeout=5).status_code == 404
    assert requests.get(f"{bridge.url}/minio/events", timeout=5).status_code == 405


def test_metrics_count_what_happened(start_bridge: Any, airflow: FakeAirflow) -> None:
    bridge: RunningBridge = start_bridge()
    bodies = [
        notification(KEY),
        notification(KEY),  # duplicate
        notification("currency_rates/r.csv"),
        notification("_state/vacancies.json"),
        notification("brand_new_source/x.json"),
    ]
    for body in bodies:
        assert bridge.post(body).status_code == 200
    assert bridge.post(b"nope").status_code == 400
    assert bridge.post(notification(KEY), "wrong").status_code == 401

    metrics = bridge.metrics()

    def value(name: str, **labels: str) -> float:
        return metrics.get((f"lakehouse_bridge_{name}", tuple(sorted(labels.items()))), 0.0)

    assert value("webhook_requests_total", status="200") == 5
    assert value("webhook_requests_total", status="400") == 1
    assert value("webhook_requests_total", status="401") == 1
    assert value("records_received_total") == 5
    assert value("records_posted_total", source="vacancies") == 1
    assert value("records_posted_total", source="currency_rates") == 1
    assert value("records_duplicate_total") == 1
    assert value("records_ignored_total", reason="bookkeeping") == 1
    assert value("records_ignored_total", reason="unknown_asset") == 1
    assert value("errors_total", kind="bad_request") == 1
    assert value("errors_total", kind="unauthorized") == 1
    assert value("airflow_retries_total") == 0
    assert value("received_bytes_total") == sum(len(b) for b in bodies) + len(b"nope") + len(notification(KEY))
    assert value("last_post_timestamp_seconds") == pytest.approx(time.time(), abs=60)
    assert len(airflow.events) == 2
