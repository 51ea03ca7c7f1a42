"""``lakehouse-ingest run / serve / sources / import`` against a real local HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from ingest_fakes import (
    DAY0,
    UA_ENV,
    FakeClock,
    FakeHh,
    make_runner,
    payloads,
    repo_contract,
    spread,
    vacancies_contracts,
    write_contract,
)

from lakehouse_common.storage import Lake
from lakehouse_ingestor.cli import EXIT_ERROR, EXIT_OK, main
from lakehouse_ingestor.commands import EXIT_FAILED

RATES = b"date,currency,rate\n2025-03-01,USD,88.6512\n"
UNTIL = (DAY0 + timedelta(days=1)).isoformat()


@pytest.fixture
def both_sources(fake_hh: FakeHh, contracts_dir: Path) -> FakeHh:
    fake_hh.vacancies = spread(30, DAY0, timedelta(hours=20))
    fake_hh.server.expect_request("/rates.csv").respond_with_data(RATES, content_type="text/csv")
    vacancies_contracts(contracts_dir)
    write_contract(contracts_dir, repo_contract("currency_rates"))
    return fake_hh


@pytest.fixture
def cli_env(
    both_sources: FakeHh, contracts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(name)
    env = {
        **UA_ENV,
        "LAKEHOUSE_BACKEND": "local",
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_SCRATCH_DIR": str(tmp_path / "scratch"),
        "LAKEHOUSE_CONTRACTS_DIR": str(contracts_dir),
        "LAKEHOUSE_INGESTOR_HH_BASE_URL": both_sources.url,
        "LAKEHOUSE_INGESTOR_API_URL": both_sources.url,
        "LAKEHOUSE_INGESTOR_RATE_LIMIT_PER_S": "1000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_run_once_fetches_every_source_and_reports(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--once", "--json", "--until", UNTIL]) == EXIT_OK
    reports = {r["source"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(reports) == {"currency_rates", "vacancies"}
    assert all(r["status"] == "ok" for r in reports.values())
    assert reports["vacancies"]["cursor_after"] == UNTIL
    assert reports["vacancies"]["counters"]["details_fetched"] == 30
    assert reports["currency_rates"]["counters"]["files_written"] == 1

    assert main(["run", "vacancies", "--once", "--until", UNTIL]) == EXIT_OK
    assert "vacancies: ok" in capsys.readouterr().out


def test_sources_lists_kinds_targets_and_cursors(
    cli_env: dict[str, str], both_sources: FakeHh, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "vacancies", "--once", "--until", UNTIL]) == EXIT_OK
    capsys.readouterr()
    assert main(["sources"]) == EXIT_OK
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "rest_json" in lines["vacancies"] and f"{both_sources.url}/vacancies" in lines["vacancies"]
    assert "2025-03-02T00:00:00+03:00" in lines["vacancies"]
    assert "http_file" in lines["currency_rates"] and "1 d" in lines["currency_rates"]
    assert "filled by the details of vacancies" in lines["vacancy_details"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["run", "vacancy_details", "--once"], "filled by the details fan-out of vacancies", id="detail"),
        pytest.param(["run", "nope", "--once"], "valid sources are: currency_rates, vacancies", id="unknown"),
        pytest.param(["import", "currency_rates", "/nonexistent/rates"], "does not exist", id="import-missing"),
    ],
)
def test_configuration_errors_exit_2_with_a_clear_message(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert code in {EXIT_ERROR, EXIT_FAILED}
    assert message in captured.err + captured.out


def test_a_failed_run_exits_1(
    cli_env: dict[str, str], both_sources: FakeHh, capsys: pytest.CaptureFixture[str]
) -> None:
    both_sources.server.clear()
    both_sources.server.expect_request("/rates.csv").respond_with_data(b"gone", status=404)
    assert main(["run", "currency_rates", "--once"]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "currency_rates: failed" in out
    assert "404" in out and "not retried" in out


def test_import_lands_a_file(cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "rates.csv"
    source.write_bytes(RATES)
    assert main(["import", "currency_rates", str(source), "--json"]) == EXIT_OK
    (report,) = json.loads(capsys.readouterr().out)
    assert report["counters"]["files_written"] == 1
    landed = list((tmp_path / "data" / "bronze" / "currency_rates").rglob("*.csv"))
    assert [p.read_bytes() for p in landed] == [RATES]


# -- serve ------------------------------------------------------------------------------------------
def test_serve_runs_each_source_on_its_interval_until_stopped(
    local_lake: Lake, both_sources: FakeHh, contracts_dir: Path
) -> None:
    clock = FakeClock(DAY0 + timedelta(days=1))
    runner = make_runner(
        local_lake,
        contracts_dir,
        clock,
        {"LAKEHOUSE_INGESTOR_HH_BASE_URL": both_sources.url, "LAKEHOUSE_INGESTOR_API_URL": both_sources.url},
        intervals={"vacancies": "2h"},
    )
    clock.on_sleep = lambda _s: runner.stop.request("test") if clock.offset > 5 * 3600 else None
    reports = runner.serve()

    runs = [(r.source, r.status) for r in reports]
    assert runs.count(("vacancies", "ok")) == 3  # at 0 h, 2 h and 4 h
    assert runs.count(("currency_rates", "ok")) == 1  # every day
    assert len(payloads(local_lake, "currency_rates")) == 1


def test_serve_retries_a_failed_source_sooner(local_lake: Lake, fake_hh: FakeHh, contracts_dir: Path) -> None:
    fake_hh.server.expect_request("/rates.csv").respond_with_data(b"down", status=404)
    write_contract(contracts_dir, repo_contract("currency_rates"))
    clock = FakeClock(DAY0)
    runner = make_runner(
        local_lake, contracts_dir, clock, {"LAKEHOUSE_INGESTOR_API_URL": fake_hh.url}, serve_retry_s=600
    )
    clock.on_sleep = lambda _s: runner.stop.request("test") if clock.offset > 3000 else None
    reports = runner.serve(["currency_rates"])
    assert [r.status for r in reports] == ["failed"] * 6  # at 0, 10, 20, 30, 40 and 50 minutes


@pytest.mark.slow
def test_serve_stops_cleanly_on_sigterm(cli_env: dict[str, str], both_sources: FakeHh, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}, **cli_env}
    env["LAKEHOUSE_INGESTOR_LOG_FORMAT"] = "json"
    process = subprocess.Popen(
        [sys.executable, "-m", "lakehouse_ingestor", "serve", "currency_rates"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(request.path == "/rates.csv" for request, _ in both_sources.server.log):
            assert time.monotonic() < deadline, "serve never fetched the rates"
            time.sleep(0.05)
        time.sleep(0.3)  # let it land the file and go to sleep until the next run
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-2000:]
    assert "currency_rates: ok" in out
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events[0] == "serve.start" and events[-1] == "serve.stop"
