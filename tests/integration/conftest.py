"""Shared fixtures for the integration tests: a moto S3 server and an S3-backed lake on it."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lakehouse_common.settings import Settings, get_settings

MOTO_REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    """A running moto S3 endpoint (accepts any credentials)."""

    endpoint_url: str

    def client(self, key_id: str = "lake-key", secret: str = "lake-secret") -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=MOTO_REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def create_bucket(self, prefix: str) -> str:
        """Create a bucket with a unique name (tests share the server) and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """LAKEHOUSE_* variables for an S3 lake on the moto server, with fresh bronze/silver/gold buckets.

    Any LAKEHOUSE_* variable of the calling shell is removed first. Returns the Settings that
    ``get_settings()`` now reads from the environment.
    """
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(name)
    env = {
        "LAKEHOUSE_BACKEND": "s3",
        "LAKEHOUSE_S3_ENDPOINT_URL": moto_server.endpoint_url,
        "LAKEHOUSE_S3_REGION": MOTO_REGION,
        "LAKEHOUSE_S3_PATH_STYLE": "true",
        "LAKEHOUSE_S3_ACCESS_KEY_ID": "lake-key",
        "LAKEHOUSE_S3_SECRET_ACCESS_KEY": "lake-secret",
        "LAKEHOUSE_SCRATCH_DIR": str(tmp_path / "scratch"),
    }
    for layer in ("bronze", "silver", "gold"):
        env[f"LAKEHOUSE_{layer.upper()}_BUCKET"] = moto_server.create_bucket(layer)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return get_settings()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration carries the ``integration`` marker (``-m "not integration"``)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)
