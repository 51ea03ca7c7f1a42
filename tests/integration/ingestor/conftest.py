"""Fixtures of the ingestion-engine tests (helpers in ingest_fakes.py)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

# With --import-mode=importlib this directory is not on sys.path: make the helpers importable
# (by a name no other test directory uses), with pytest's assertion details.
sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("ingest_fakes")

from ingest_fakes import DAY0, FakeClock, FakeHh  # noqa: E402

from lakehouse_common.settings import Settings, get_settings  # noqa: E402
from lakehouse_common.storage import Lake  # noqa: E402
from lakehouse_ingestor.logs import LOGGER_NAME, record_fields  # noqa: E402


@pytest.fixture(autouse=True)
def _no_ingestor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the tests, not from the calling shell."""
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_INGESTOR_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return get_settings(
        backend="local", data_dir=tmp_path / "data", contracts_dir=tmp_path / "contracts", scratch_dir=tmp_path / "s"
    )


@pytest.fixture(params=[pytest.param("local", id="local"), pytest.param("s3", id="s3")])
def any_lake(request: pytest.FixtureRequest, local_settings: Settings) -> Lake:
    """A fresh lake on the local backend, or on S3 (the moto server)."""
    settings = local_settings if request.param == "local" else request.getfixturevalue("s3_env")
    lake = Lake(settings)
    lake.ensure(["bronze"])
    return lake


@pytest.fixture
def local_lake(local_settings: Settings) -> Lake:
    lake = Lake(local_settings)
    lake.ensure(["bronze"])
    return lake


@pytest.fixture
def fake_hh(httpserver: HTTPServer) -> FakeHh:
    return FakeHh(httpserver).install()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DAY0 + timedelta(days=2))


@pytest.fixture
def contracts_dir(tmp_path: Path) -> Path:
    return tmp_path / "contracts"


@pytest.fixture
def events() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every event the ingestor logs during the test, as (event, fields), DEBUG included."""
    seen: list[tuple[str, dict[str, Any]]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), record_fields(record)))

    logger = logging.getLogger(LOGGER_NAME)
    handler = Collect(logging.DEBUG)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(previous)
