"""``lakehouse-bridge replay`` and ``serve`` (a real process, stopped by SIGTERM), against the fake Airflow."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from bridge_fakes import PASSWORD, USERNAME, WEBHOOK_TOKEN, FakeAirflow, notification, refused_url

from lakehouse_bridge.cli import EXIT_OK, EXIT_RETRY_LATER, main

KEY = "vacancies/ingest_date=2026-01-01/replayed.json"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def bridge_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, airflow: FakeAirflow) -> dict[str, str]:
    env = {
        "LAKEHOUSE_BRIDGE_AIRFLOW_URL": airflow.url,
        "LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME": USERNAME,
        "LAKEHOUSE_BRIDGE_AIRFLOW_PASSWORD": PASSWORD,
        "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "LAKEHOUSE_BRIDGE_STATE_PATH": str(tmp_path / "bridge.sqlite"),
        "LAKEHOUSE_BRIDGE_RETRIES": "1",
        "LAKEHOUSE_BRIDGE_BACKOFF_S": "0.01",
        "LAKEHOUSE_BRONZE_BUCKET": "bronze",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_replay_posts_once_and_reports_each_record(
    bridge_env: dict[str, str], airflow: FakeAirflow, tmp_path: Path
) -> None:
    saved = tmp_path / "event.json"
    # JSON lines: a webhook body, then a bare record as MinIO's queue_dir keeps it.
    bare = json.loads(notification("currency_rates/r.csv"))["Records"][0]
    saved.write_text(notification(KEY).decode() + "\n" + json.dumps(bare) + "\n")

    out = io.StringIO()
    assert main(["replay", str(saved)], out=out) == EXIT_OK
    first = json.loads(out.getvalue())
    assert (first["status"], first["posted"]) == (200, 2)
    assert [e["asset_id"] for e in airflow.events] == [7, 9]

    out = io.StringIO()
    assert main(["replay", str(saved)], out=out) == EXIT_OK
    assert json.loads(out.getvalue())["duplicate"] == 2
    assert len(airflow.events) == 2


def test_replay_exits_1_when_airflow_is_down(
    bridge_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_AIRFLOW_URL", refused_url())
    saved = tmp_path / "event.json"
    saved.write_bytes(notification(KEY))

    out = io.StringIO()
    assert main(["replay", str(saved)], out=out) == EXIT_RETRY_LATER
    assert json.loads(out.getvalue())["records"][0]["outcome"] == "failed"


@pytest.fixture
def serve_process(bridge_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``lakehouse-bridge serve --port 0`` in its own process group, killed whole if the test fails."""
    env = {**os.environ, **bridge_env, "LAKEHOUSE_BRIDGE_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakehouse_bridge", "serve", "--port", "0"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    stream = proc.stderr
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        reader.join(timeout=5)


def _logged(lines: list[str], event: str, timeout_s: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in list(lines):
            doc = json.loads(line) if line.startswith("{") else {}
            if doc.get("event") == event:
                return doc
        time.sleep(0.05)
    raise AssertionError(f"no {event} log line in {timeout_s} s; stderr so far: {''.join(lines)}")


def test_serve_answers_minio_and_stops_cleanly_on_sigterm(
    serve_process: tuple[subprocess.Popen[str], list[str]], airflow: FakeAirflow
) -> None:
    proc, lines = serve_process
    endpoint = str(_logged(lines, "bridge.listening")["endpoint"])

    with requests.Session() as minio:  # keeps its connection alive, as MinIO does
        response = minio.post(endpoint, data=notification(KEY), headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
        assert response.status_code == 200, response.text
        assert [e["extra"]["key"] for e in airflow.events] == [KEY]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0

    assert _logged(lines, "asset_event.posted")["asset"] == "bronze/vacancies"
    _logged(lines, "bridge.stopped")
