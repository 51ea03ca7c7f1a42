"""Fixtures of the MinIO init's unit tests: a recorded MinIO (fake_minio.FakeMinio) served by
pytest-httpserver, the init's settings pointing at it, and a provisioner that does not sleep."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

# With --import-mode=importlib this directory is not on sys.path: make fake_minio importable.
sys.path.insert(0, str(Path(__file__).parent))

from fake_minio import FakeMinio
from init_env import ROOT_PASSWORD, ROOT_USER, make_settings

from lakehouse_minio_init.provision import Provisioner, credentials_work
from lakehouse_minio_init.server import Readiness
from lakehouse_minio_init.settings import InitSettings


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeMinio:
    minio = FakeMinio(root_user=ROOT_USER, root_password=ROOT_PASSWORD)
    httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(minio.handle)
    return minio


@pytest.fixture
def settings(httpserver: HTTPServer) -> InitSettings:
    built: InitSettings = make_settings(httpserver)
    return built


@pytest.fixture
def provisioner_for() -> Callable[[InitSettings], Provisioner]:
    def build(settings: InitSettings) -> Provisioner:
        provisioner = Provisioner.from_settings(settings)
        provisioner.readiness = Readiness(settings.endpoint.url, 5.0, sleep=lambda _: None)
        provisioner.credentials_work = credentials_work(settings)
        return provisioner

    return build
