"""Fixtures of the event-bridge tests: the real bridge HTTP server, started in the test, in front of
Airflow's REST API played by pytest-httpserver (helpers in bridge_fakes.py).

The real Airflow (scheduler, dag-processor, API server on Postgres) end to end is covered by the
pipeline's end-to-end test; here the bridge's side of the contract is pinned, fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

# With --import-mode=importlib this directory is not on sys.path: make the helpers importable
# (by a name no other test directory uses), with pytest's assertion details.
sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("bridge_fakes")

from bridge_fakes import PASSWORD, USERNAME, WEBHOOK_TOKEN, FakeAirflow, RunningBridge  # noqa: E402

from lakehouse_bridge.relay import EventRelay  # noqa: E402
from lakehouse_bridge.server import BridgeServer  # noqa: E402
from lakehouse_bridge.settings import get_settings  # noqa: E402

BRONZE = "bronze"


@pytest.fixture(autouse=True)
def _no_bridge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the tests, not from the calling shell."""
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_BRIDGE_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def airflow(httpserver: HTTPServer) -> FakeAirflow:
    fake = FakeAirflow(httpserver).install()
    fake.add_asset("bronze/vacancies_archive", 3)  # matches name_pattern=bronze/vacancies too
    fake.add_asset("bronze/vacancies", 7)
    fake.add_asset("bronze/currency_rates", 9)
    return fake


BridgeFactory = Callable[..., RunningBridge]


@pytest.fixture
def start_bridge(tmp_path: Path, airflow: FakeAirflow) -> Iterator[BridgeFactory]:
    """Start a bridge on a free port (stopped after the test, even when it fails)."""
    started: list[BridgeServer] = []

    def start(**overrides: Any) -> RunningBridge:
        values: dict[str, Any] = {
            "airflow_url": airflow.url,
            "airflow_username": USERNAME,
            "airflow_password": PASSWORD,
            "webhook_token": WEBHOOK_TOKEN,
            "state_path": tmp_path / "bridge.sqlite",
            "retries": 2,
            "backoff_s": 0.01,
            "backoff_max_s": 0.05,
            "timeout_s": 2.0,
        }
        values.update(overrides)
        settings = get_settings(**values)
        relay = EventRelay.from_settings(settings, BRONZE)
        token = settings.webhook_token.get_secret_value() if settings.webhook_token else None
        server = BridgeServer(relay, host="127.0.0.1", port=0, webhook_token=token).start()
        started.append(server)
        return RunningBridge(server, settings)

    try:
        yield start
    finally:
        for server in started:
            server.stop()
