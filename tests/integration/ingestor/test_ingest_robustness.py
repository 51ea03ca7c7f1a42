"""Retries, Retry-After, errors that must not be retried, timeouts, connection errors, malformed
bodies, rate limits and credentials, against a real local HTTP server. Time is fake: the
sleeps the client asks for are recorded, not slept."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from ingest_fakes import (
    DAY0,
    FakeClock,
    FakeHh,
    bronze,
    dumps,
    make_runner,
    payloads,
    search_page,
    spread,
    status,
    vacancies_contracts,
    write_contract,
)
from werkzeug import Request, Response

from lakehouse_common.storage import Lake
from lakehouse_ingestor.exceptions import (
    HttpStatusError,
    IngestConfigError,
    MalformedResponseError,
    RetriesExhaustedError,
)
from lakehouse_ingestor.landing import META_PREFIX, REJECTED_PREFIX
from lakehouse_ingestor.state import StateStore

TOKEN = "s3cr3t-t0ken-value"


def env(hh: FakeHh) -> dict[str, str]:
    return {"LAKEHOUSE_INGESTOR_HH_BASE_URL": hh.url}


@pytest.fixture
def retry_waits(events: list[tuple[str, dict[str, Any]]]) -> Callable[[], list[float]]:
    """The waits the HTTP client chose before its retries (from its http.retry events)."""
    return lambda: [fields["wait_s"] for name, fields in events if name == "http.retry"]


@pytest.fixture
def one_day(fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path) -> FakeHh:
    """150 vacancies on the first day, and a run that sees exactly that day."""
    fake_hh.vacancies = spread(150, DAY0, timedelta(hours=20))
    vacancies_contracts(contracts_dir, details=None)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    return fake_hh


FIRST_PAGE = search_page(0)


# -- retries --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("replies", "expected_sleeps"),
    [
        pytest.param([status(429, headers={"Retry-After": "1"})], [1.0], id="429-retry-after-seconds"),
        pytest.param(
            [status(503, headers={"Retry-After": "7"}), status(502)], [7.0, None], id="503-retry-after-then-502"
        ),
        pytest.param([status(500), status(500), status(504)], [None, None, None], id="5xx-backoff"),
        pytest.param([status(429)], [None], id="429-without-retry-after"),
    ],
)
def test_429_and_5xx_are_retried_honouring_retry_after(
    local_lake: Lake,
    one_day: FakeHh,
    clock: FakeClock,
    contracts_dir: Path,
    replies: list[object],
    expected_sleeps: list[float | None],
    retry_waits: Callable[[], list[float]],
) -> None:
    one_day.fail(FIRST_PAGE, *replies)  # type: ignore[arg-type]
    started = time.monotonic()
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")

    assert report.status == "ok", report.error
    assert report.counters["retries"] == len(replies)
    assert time.monotonic() - started < 1.0, "Retry-After must be slept on the injected clock"
    waits = retry_waits()
    assert sum(clock.sleeps) >= sum(waits)  # slept on the fake clock
    for wait, expected in zip(waits, expected_sleeps, strict=True):
        if expected is not None:
            assert wait == expected
    # Backoff with full jitter: uniform in [0, min(max, base * 2**(n-1))], base 0.5 s in the contract.
    backoffs = [w for w, e in zip(waits, expected_sleeps, strict=True) if e is None]
    for n, wait in enumerate(backoffs, start=1):
        assert 0.0 <= wait <= 0.5 * 2 ** (n - 1)
    assert sorted(i["id"] for b in payloads(local_lake, "vacancies") for i in json.loads(b)["items"]) == sorted(
        v.id for v in one_day.vacancies
    )


def test_retry_after_as_an_http_date(
    local_lake: Lake, one_day: FakeHh, clock: FakeClock, contracts_dir: Path, retry_waits: Callable[[], list[float]]
) -> None:
    when = format_datetime(clock.now() + timedelta(seconds=42), usegmt=True)
    one_day.fail(FIRST_PAGE, status(429, headers={"Retry-After": when}))
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")
    assert report.status == "ok", report.error
    (wait,) = retry_waits()
    assert 41.0 <= wait <= 42.0


def test_a_retry_after_beyond_the_limit_fails_at_once(
    local_lake: Lake, one_day: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    one_day.fail(FIRST_PAGE, status(429, headers={"Retry-After": "3600"}))
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")
    assert report.status == "failed"
    assert isinstance(report.exception, RetriesExhaustedError)
    assert "asks to wait 3600 s" in str(report.error)
    assert "retry_after_max_s" in str(report.error)
    assert clock.sleeps == []


def test_a_page_that_keeps_failing_fails_the_run_and_keeps_what_was_written(
    local_lake: Lake, one_day: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    one_day.fail(search_page(1), *[status(500, b"upstream down")] * 6)
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")

    assert report.status == "failed"
    assert isinstance(report.exception, RetriesExhaustedError)
    assert "after 6 attempts" in str(report.error)
    assert "page=1" in str(report.error)
    assert "500" in str(report.error) and "upstream down" in str(report.error)
    assert len(payloads(local_lake, "vacancies")) == 1  # page 0 stays
    assert StateStore(local_lake.bronze).load("vacancies").cursor is None  # the window is not complete


def test_connection_errors_are_retried_then_fail_clearly(
    local_lake: Lake, clock: FakeClock, contracts_dir: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    vacancies_contracts(contracts_dir, retries={"attempts": 3})
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    report = make_runner(
        local_lake, contracts_dir, clock, {"LAKEHOUSE_INGESTOR_HH_BASE_URL": f"http://127.0.0.1:{port}"}
    ).run_once("vacancies")

    assert report.status == "failed"
    assert isinstance(report.exception, RetriesExhaustedError)
    assert "after 3 attempts" in str(report.error)
    assert "connection error" in str(report.error)
    assert report.counters["retries"] == 2
    assert bronze(local_lake, "vacancies/") == {}


def test_a_slow_response_times_out_and_is_retried(
    local_lake: Lake,
    one_day: FakeHh,
    clock: FakeClock,
    contracts_dir: Path,
    events: list[tuple[str, dict[str, Any]]],
) -> None:
    def slow(_request: Request) -> Response | None:
        time.sleep(0.6)
        return Response(b"{}", 200)

    one_day.fail(FIRST_PAGE, slow)
    vacancies_contracts(contracts_dir, details=None, timeout_s=0.3)
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")
    assert report.status == "ok", report.error
    # The test server answers one request at a time, so the retry may wait behind the slow answer too.
    assert report.counters["retries"] >= 1
    whys = [fields["why"] for name, fields in events if name == "http.retry"]
    assert whys and all("timeout" in why or "longer than" in why for why in whys), whys


# -- no retry on other 4xx ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "body"),
    [
        pytest.param(404, b'{"errors":[{"type":"not_found"}]}', id="404"),
        pytest.param(400, b'{"errors":[{"type":"bad_argument","value":"date_from"}]}', id="400"),
        pytest.param(403, b"<html><body>Forbidden</body></html>", id="403"),
    ],
)
def test_client_errors_are_not_retried_and_say_why(
    local_lake: Lake, one_day: FakeHh, clock: FakeClock, contracts_dir: Path, code: int, body: bytes
) -> None:
    one_day.fail(FIRST_PAGE, status(code, body))
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")

    assert report.status == "failed"
    error = report.exception
    assert isinstance(error, HttpStatusError)
    assert error.status == code
    assert error.url.startswith(f"{one_day.url}/vacancies?")
    assert body.decode()[:40] in str(report.error)
    assert "not retried" in str(report.error)
    assert clock.sleeps == []
    assert report.counters["requests"] == 1


# -- malformed bodies ------------------------------------------------------------------------------
def test_a_page_that_is_not_json_is_kept_aside_and_fails_the_run(
    local_lake: Lake, one_day: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    garbage = b"<html><body>Service temporarily unavailable</body></html>"
    one_day.fail(FIRST_PAGE, status(200, garbage))
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")

    assert report.status == "failed"
    error = report.exception
    assert isinstance(error, MalformedResponseError)
    assert "not valid JSON" in str(error)
    assert error.rejected_key is not None and error.rejected_key.startswith(f"{REJECTED_PREFIX}/vacancies/")
    assert local_lake.bronze.read_bytes(error.rejected_key) == garbage  # byte for byte
    reason = json.loads(local_lake.bronze.read_bytes(f"{error.rejected_key}.reason.json"))
    assert "not valid JSON" in reason["reason"]
    assert reason["requests"][0]["url"].startswith(f"{one_day.url}/vacancies?")
    assert bronze(local_lake, "vacancies/") == {}
    assert StateStore(local_lake.bronze).load("vacancies").cursor is None


def test_a_page_without_its_items_list_is_kept_aside(
    local_lake: Lake, one_day: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    one_day.fail(FIRST_PAGE, status(200, b'{"error":"maintenance"}'))
    report = make_runner(local_lake, contracts_dir, clock, env(one_day)).run_once("vacancies")
    assert isinstance(report.exception, MalformedResponseError)
    assert "no list at 'items'" in str(report.error)


def test_a_detail_that_is_not_json_is_kept_aside_and_its_page_is_not_landed(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(3, DAY0, timedelta(hours=3))
    broken = fake_hh.vacancies[1]
    fake_hh.detail_bodies[broken.id] = dumps(broken.detail())[:40]
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=1))
    report = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert isinstance(report.exception, MalformedResponseError)
    assert f"/vacancies/{broken.id}" in str(report.error)
    rejected = bronze(local_lake, f"{REJECTED_PREFIX}/vacancy_details/")
    assert [v for k, v in rejected.items() if not k.endswith(".reason.json")] == [dumps(broken.detail())[:40]]
    assert bronze(local_lake, "vacancies/") == {}
    assert bronze(local_lake, "vacancy_details/") == {}


# -- rate limit -------------------------------------------------------------------------------------
def test_the_rate_limit_paces_pages_and_details_together(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(9, DAY0, timedelta(hours=9))
    vacancies_contracts(contracts_dir, rate_limit_per_s=4)
    clock.set(DAY0 + timedelta(days=1))
    report = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert report.status == "ok", report.error
    assert report.counters["requests"] == 10  # one page, nine details
    # burst 1 at 4/s: every request after the first waits for its token, 0.25 s apart on the fake clock.
    assert clock.sleeps == pytest.approx([0.25] * 9)


def test_the_rate_limit_setting_overrides_the_contracts(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(4, DAY0, timedelta(hours=4))
    vacancies_contracts(contracts_dir, rate_limit_per_s=1)
    clock.set(DAY0 + timedelta(days=1))
    make_runner(local_lake, contracts_dir, clock, env(fake_hh), rate_limit_per_s=100).run_once("vacancies")
    assert clock.sleeps == pytest.approx([0.01] * 4)


# -- credentials ------------------------------------------------------------------------------------
def _authed_contract(directory: Path, base_url: str) -> None:
    write_contract(
        directory,
        {
            "name": "rates_api",
            "format": {"type": "json", "records_path": "rates"},
            "columns": [{"name": "currency"}],
            "ingest": {
                "kind": "rest_json",
                "base_url": base_url,
                "path": "/private/rates",
                "headers": {"User-Agent": "lakehouse-tests/1.0"},
                "auth": {"type": "bearer", "token_env": "RATES_API_TOKEN"},
                "pagination": {"type": "none", "items_field": "rates"},
            },
        },
    )


def test_the_auth_token_is_sent_but_never_logged_or_stored(
    any_lake: Lake,
    fake_hh: FakeHh,
    clock: FakeClock,
    contracts_dir: Path,
    events: list[tuple[str, dict[str, Any]]],
) -> None:
    server = fake_hh.server
    server.expect_request("/private/rates", headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_data(
        dumps({"rates": [{"currency": "USD"}]})
    )
    _authed_contract(contracts_dir, fake_hh.url)
    report = make_runner(any_lake, contracts_dir, clock, {"RATES_API_TOKEN": TOKEN}).run_once("rates_api")

    assert report.status == "ok", report.error
    assert server.log[0][0].headers["Authorization"] == f"Bearer {TOKEN}"
    everything = b"".join(bronze(any_lake, "").values())
    assert TOKEN.encode() not in everything
    assert b"Authorization" not in everything
    (meta_key,) = [k for k in bronze(any_lake, f"{META_PREFIX}/rates_api/")]
    assert json.loads(any_lake.bronze.read_bytes(meta_key))["requests"][0]["headers"] == {
        "User-Agent": "lakehouse-tests/1.0"
    }
    logged = "\n".join(f"{name} {fields}" for name, fields in events)
    assert "payload.landed" in logged
    assert TOKEN not in logged


def test_a_missing_token_fails_before_any_request(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    _authed_contract(contracts_dir, fake_hh.url)
    report = make_runner(local_lake, contracts_dir, clock, {}).run_once("rates_api")
    assert report.status == "failed"
    assert isinstance(report.exception, IngestConfigError)
    assert "RATES_API_TOKEN" in str(report.error)
    assert fake_hh.server.log == []


def test_a_4xx_body_that_echoes_nothing_secret_is_quoted(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.server.expect_request("/private/rates").respond_with_data(b'{"error":"token expired"}', status=401)
    _authed_contract(contracts_dir, fake_hh.url)
    report = make_runner(local_lake, contracts_dir, clock, {"RATES_API_TOKEN": TOKEN}).run_once("rates_api")
    assert isinstance(report.exception, HttpStatusError)
    assert "401" in str(report.error) and "token expired" in str(report.error)
    assert TOKEN not in str(report.error)
