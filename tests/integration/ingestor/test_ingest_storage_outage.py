"""Issue 6's fault matrix, row 6 (the ingestor): the bronze S3 endpoint is down or hangs.

The run fails within the S3 timeouts (it does not hang), its report and its ``run.end`` event
name the storage error with the endpoint and the bucket, and a rerun once S3 is back lands the
same day.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ingest_fakes import DAY0, FakeClock, FakeHh, make_runner, payloads, spread, vacancies_contracts

from lakehouse_common.exceptions import LakehouseError, StorageError
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_orchestration.testbed import hanging_endpoint, refused_endpoint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.mark.parametrize(
    "outage", [pytest.param(refused_endpoint, id="endpoint-down"), pytest.param(hanging_endpoint, id="endpoint-hangs")]
)
def test_a_storage_outage_fails_the_run_naming_endpoint_and_bucket(
    s3_env: Settings,
    fake_hh: FakeHh,
    clock: FakeClock,
    contracts_dir: Path,
    events: list[tuple[str, dict[str, Any]]],
    outage: Any,
) -> None:
    fake_hh.vacancies = spread(30, DAY0, timedelta(hours=20))
    vacancies_contracts(contracts_dir, details=None)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    api = {"LAKEHOUSE_INGESTOR_HH_BASE_URL": fake_hh.url}
    timeouts: dict[str, Any] = {"s3_connect_timeout_s": 0.5, "s3_read_timeout_s": 0.5, "s3_max_attempts": 2}

    with outage() as endpoint:
        lake = Lake(get_settings(s3_endpoint_url=endpoint, **timeouts))
        started = time.monotonic()
        report = make_runner(lake, contracts_dir, clock, api).run_once("vacancies")
        assert time.monotonic() - started < 20

    assert report.status == "failed"
    # The first storage call reads the source's cursor: a StateError wrapping the StorageError.
    assert isinstance(report.exception, LakehouseError)
    assert isinstance(report.exception.__cause__ or report.exception, StorageError)
    assert endpoint in str(report.error) and s3_env.bronze_bucket in str(report.error), report.error
    (end,) = [fields for name, fields in events if name == "run.end"]
    assert end["status"] == "failed" and end["error_type"] == type(report.exception).__name__
    assert endpoint in end["error"] and s3_env.bronze_bucket in end["error"]

    # S3 is back: the rerun lands the day.
    back = Lake(get_settings(**timeouts))
    assert make_runner(back, contracts_dir, clock, api).run_once("vacancies").status == "ok"
    assert payloads(back, "vacancies")
