"""Stopping and resuming: a stop between pages (SIGTERM in the CLI, a stop request in-process) or a
hard kill, then a rerun, leaves bronze as one clean run would: no gaps, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from ingest_fakes import DAY0, UA_ENV, FakeClock, FakeHh, make_runner, payloads, spread, vacancies_contracts
from werkzeug import Request

from lakehouse_common.settings import get_settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor.control import StopToken
from lakehouse_ingestor.state import StateStore

NOW = DAY0 + timedelta(days=3, minutes=10)
UNTIL = DAY0 + timedelta(days=3)


@pytest.fixture
def three_days(fake_hh: FakeHh, contracts_dir: Path) -> FakeHh:
    """250 vacancies on day 1 (three pages), 40 on day 2, 120 on day 3 (two pages)."""
    fake_hh.vacancies = [
        *spread(250, DAY0, timedelta(hours=23)),
        *spread(40, DAY0 + timedelta(days=1), timedelta(hours=23), first_id=5000),
        *spread(120, DAY0 + timedelta(days=2), timedelta(hours=23), first_id=7000),
    ]
    vacancies_contracts(contracts_dir)
    return fake_hh


def clean_run(hh: FakeHh, contracts: Path, tmp_path: Path) -> Lake:
    """The reference: one uninterrupted run into a lake of its own."""
    lake = Lake(get_settings(backend="local", data_dir=tmp_path / "clean", scratch_dir=tmp_path / "clean-scratch"))
    lake.ensure(["bronze"])
    report = make_runner(lake, contracts, FakeClock(NOW), {"LAKEHOUSE_INGESTOR_HH_BASE_URL": hh.url}).run_once(
        "vacancies", until=UNTIL
    )
    assert report.status == "ok", report.error
    hh.served.clear()
    return lake


def assert_same_bronze(lake: Lake, clean: Lake) -> None:
    for source in ("vacancies", "vacancy_details"):
        got, want = payloads(lake, source), payloads(clean, source)
        duplicates = [body[:60] for body, n in Counter(got).items() if n > 1]
        assert not duplicates, f"{source}: duplicated payloads {duplicates}"
        assert got == want, f"{source}: {len(got)} payloads, one clean run has {len(want)}"
    assert StateStore(lake.bronze).load("vacancies").cursor == StateStore(clean.bronze).load("vacancies").cursor


def stop_at(hh: FakeHh, stop: StopToken, kind: str, number: int) -> None:
    """Request a stop while the ``number``-th request of ``kind`` (search or detail) is in flight."""
    seen = Counter[str]()

    def hook(request: Request) -> None:
        this = "search" if request.path == "/vacancies" else "detail"
        seen[this] += 1
        if this == kind and seen[this] == number:
            stop.request("SIGTERM (test)", signal.SIGTERM)

    hh.on_request = hook


@pytest.mark.parametrize(
    ("kind", "number"),
    [
        pytest.param("search", 1, id="during-the-first-page"),
        pytest.param("search", 2, id="between-pages-of-a-window"),
        pytest.param("detail", 150, id="in-the-middle-of-a-pages-details"),
        pytest.param("search", 4, id="at-the-next-window"),
        pytest.param("detail", 409, id="before-the-last-detail"),
    ],
)
def test_a_stop_then_a_rerun_equals_one_clean_run(
    any_lake: Lake, three_days: FakeHh, contracts_dir: Path, tmp_path: Path, kind: str, number: int
) -> None:
    clean = clean_run(three_days, contracts_dir, tmp_path)
    env = {"LAKEHOUSE_INGESTOR_HH_BASE_URL": three_days.url}
    stop = StopToken()
    stop_at(three_days, stop, kind, number)

    stopped = make_runner(any_lake, contracts_dir, FakeClock(NOW), env, stop=stop).run_once("vacancies", until=UNTIL)
    assert stopped.status == "stopped", stopped.error
    assert "SIGTERM" in str(stopped.error)
    three_days.on_request = None
    landed = {json.loads(line)["id"] for body in payloads(any_lake, "vacancy_details") for line in body.splitlines()}
    three_days.served.clear()
    rerun = make_runner(any_lake, contracts_dir, FakeClock(NOW + timedelta(minutes=5)), env).run_once(
        "vacancies", until=UNTIL
    )
    assert rerun.status == "ok", rerun.error
    assert_same_bronze(any_lake, clean)
    # Details landed before the stop are not fetched again.
    asked_again = {target.rsplit("/", 1)[-1] for target in three_days.requests_to("/vacancies/")} & landed
    assert not asked_again


# -- the real CLI, killed for real --------------------------------------------------------------------
def cli_env(tmp_path: Path, contracts: Path, hh: FakeHh) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(UA_ENV)
    env.update(
        {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
            "LAKEHOUSE_SCRATCH_DIR": str(tmp_path / "scratch"),
            "LAKEHOUSE_CONTRACTS_DIR": str(contracts),
            "LAKEHOUSE_INGESTOR_HH_BASE_URL": hh.url,
            "LAKEHOUSE_INGESTOR_RATE_LIMIT_PER_S": "1000",
            "LAKEHOUSE_INGESTOR_LOG_FORMAT": "json",
        }
    )
    return env


def run_cli(env: dict[str, str], hh: FakeHh, kill_at: int | None, signum: int) -> subprocess.CompletedProcess[str]:
    """``lakehouse-ingest run vacancies --once``, sent ``signum`` while its ``kill_at``-th request is served."""
    command = [sys.executable, "-m", "lakehouse_ingestor", "run", "vacancies", "--once", "--until", UNTIL.isoformat()]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    count = 0
    lock = threading.Lock()

    def hook(_request: Request) -> None:
        nonlocal count
        with lock:
            count += 1
            if count == kill_at:
                process.send_signal(signum)
                if signum == signal.SIGKILL:
                    process.wait(timeout=30)  # dead before it could read this answer

    hh.on_request = hook
    try:
        out, err = process.communicate(timeout=120)
    finally:
        hh.on_request = None
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "kill_at", "expected_rc"),
    [
        pytest.param(signal.SIGTERM, 3, 128 + signal.SIGTERM, id="sigterm-between-pages"),
        pytest.param(signal.SIGINT, 200, 128 + signal.SIGINT, id="ctrl-c-during-details"),
        pytest.param(signal.SIGKILL, 120, -signal.SIGKILL, id="sigkill"),
    ],
)
def test_the_cli_killed_then_rerun_equals_one_clean_run(
    three_days: FakeHh, contracts_dir: Path, tmp_path: Path, signum: int, kill_at: int, expected_rc: int
) -> None:
    clean = clean_run(three_days, contracts_dir, tmp_path)
    env = cli_env(tmp_path, contracts_dir, three_days)

    first = run_cli(env, three_days, kill_at, signum)
    assert first.returncode == expected_rc, first.stderr[-2000:]
    if signum != signal.SIGKILL:
        assert '"status": "stopped"' in first.stderr or "status=stopped" in first.stderr
        assert f"stopped by {signal.Signals(signum).name}" in first.stdout
    second = run_cli(env, three_days, None, signum)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "vacancies: ok" in second.stdout

    lake = Lake(get_settings(backend="local", data_dir=tmp_path / "data", scratch_dir=tmp_path / "scratch"))
    assert_same_bronze(lake, clean)
