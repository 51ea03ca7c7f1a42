"""Issue 6's fault matrix, row 6 (the Airflow side): the S3 endpoint is down or hangs.

Each DAG task carries retries (tests/unit/orchestration/test_dag_integrity.py::
test_every_task_retries_with_backoff_timeout_and_alert). Here: while the endpoint is refused or
hangs, the task's callable fails within the configured timeouts with an error that names the
endpoint and the bucket; the next try, once the endpoint is back, succeeds and does the work. The
deferred landing sensor turns a storage error in the triggerer into a task failure (so it retries).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, cast

import pytest
from airflow.sdk import Context

from lakehouse_common.exceptions import StorageError
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.exceptions import ReplicationError
from lakehouse_orchestration import tasks
from lakehouse_orchestration.sensors import BronzeS3KeySensor, PendingS3KeyTrigger
from lakehouse_orchestration.testbed import hanging_endpoint, refused_endpoint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[3]
FAIL_WITHIN_S = 15.0
"""Two attempts with 0.5 s timeouts, plus botocore's backoff: far below a task's execution timeout."""


OUTAGES = [pytest.param(refused_endpoint, id="endpoint-down"), pytest.param(hanging_endpoint, id="endpoint-hangs")]


@pytest.fixture
def lake_env(s3_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(REPO / "contracts"))
    monkeypatch.setenv("LAKEHOUSE_S3_CONNECT_TIMEOUT_S", "0.5")
    monkeypatch.setenv("LAKEHOUSE_S3_READ_TIMEOUT_S", "0.5")
    monkeypatch.setenv("LAKEHOUSE_S3_MAX_ATTEMPTS", "2")
    Lake(s3_env).bronze.put_bytes("vacancies/ingest_date=2026-01-05/page-1.json", b'{"items": []}')
    return s3_env


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_silver_task_fails_clearly_then_its_retry_succeeds(
    lake_env: Settings, moto_server: Any, monkeypatch: pytest.MonkeyPatch, outage: Any
) -> None:
    with outage() as endpoint:
        monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT_URL", endpoint)
        started = time.monotonic()
        with pytest.raises(StorageError) as failure:
            tasks.pending_keys("vacancies")  # silver__<source>.list_pending: the first try
        assert time.monotonic() - started < FAIL_WITHIN_S
    message = str(failure.value)
    assert endpoint in message and lake_env.bronze_bucket in message, message

    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT_URL", moto_server.endpoint_url)  # the endpoint is back
    assert tasks.pending_keys("vacancies") == ["vacancies/ingest_date=2026-01-05/page-1.json"]  # the retry


@pytest.mark.parametrize("outage", OUTAGES)
def test_replication_fails_clearly_while_the_replica_is_unreachable(
    lake_env: Settings, moto_server: Any, monkeypatch: pytest.MonkeyPatch, outage: Any
) -> None:
    replica = moto_server.create_bucket("replica")
    lake = Lake(lake_env)
    lake.gold.put_bytes("_manifest.json", _empty_manifest())
    monkeypatch.setenv("LAKEHOUSE_REPLICA_URI", f"s3://{replica}/gold")
    monkeypatch.setenv("LAKEHOUSE_REPLICA_ACCESS_KEY_ID", "replica-key")
    monkeypatch.setenv("LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY", "replica-secret")
    with outage() as endpoint:
        monkeypatch.setenv("LAKEHOUSE_REPLICA_ENDPOINT_URL", endpoint)
        started = time.monotonic()
        with pytest.raises(ReplicationError, match=f"replica bucket '{replica}' is not reachable at {endpoint}"):
            tasks.replicate_gold()  # replicate_gold.replicate: the first try
        assert time.monotonic() - started < FAIL_WITHIN_S

    monkeypatch.setenv("LAKEHOUSE_REPLICA_ENDPOINT_URL", moto_server.endpoint_url)
    assert tasks.replicate_gold()["copied"] == ["_manifest.json"]  # the retry


def _empty_manifest() -> bytes:
    return json.dumps(
        {"run_id": "r1", "published_at": "2026-01-05T00:00:00Z", "backend": "s3", "marts": [], "dbt_status_counts": {}}
    ).encode()


def test_the_deferred_landing_sensor_fails_its_try_when_s3_is_down(
    lake_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with refused_endpoint() as endpoint:
        connection = {
            "conn_type": "aws",
            "login": "lake-key",
            "password": "lake-secret",
            "extra": {
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "config_kwargs": {"retries": {"total_max_attempts": 2}},
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_S3", json.dumps(connection))
        trigger = PendingS3KeyTrigger(
            source="vacancies",
            prefix="vacancies/",
            bucket_name=lake_env.bronze_bucket,
            bucket_key=f"s3://{lake_env.bronze_bucket}/vacancies/*",
            wildcard_match=True,
            aws_conn_id="lakehouse_s3",
            poke_interval=0.1,
        )

        async def first_event() -> Any:
            async for event in trigger.run():
                return event.payload
            return None

        started = time.monotonic()
        payload = asyncio.run(asyncio.wait_for(first_event(), 60))
    assert time.monotonic() - started < 60
    assert payload["status"] == "error"
    assert endpoint in payload["message"] and lake_env.bronze_bucket in payload["message"], payload
    # Back in the worker, the sensor turns the trigger's error into a failed try (which Airflow retries).
    sensor = BronzeS3KeySensor(
        task_id="wait_for_new_objects",
        source="vacancies",
        prefix="vacancies/",
        bronze_bucket=lake_env.bronze_bucket,
        aws_conn_id="lakehouse_s3",
    )
    with pytest.raises(RuntimeError, match=f"landing sensor of 'vacancies' failed in the triggerer: .*{endpoint}"):
        sensor.execute_complete(cast(Context, {}), payload)
