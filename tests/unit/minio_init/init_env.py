"""The init's settings for the unit tests: the root account of the recorded MinIO, the service users,
the bridge webhook, pointed at a pytest-httpserver."""

from __future__ import annotations

from pathlib import Path

from pytest_httpserver import HTTPServer

from lakehouse_minio_init.settings import InitSettings, get_settings

REPO = Path(__file__).resolve().parents[3]
ROOT_USER = "test-root"
ROOT_PASSWORD = "test-root-password"
WEBHOOK_TOKEN = "test-bridge-token-0123456789"


def make_settings(httpserver: HTTPServer, **overrides: object) -> InitSettings:
    values: dict[str, object] = {
        "minio_url": httpserver.url_for("/").rstrip("/"),
        "root_user": ROOT_USER,
        "root_password": ROOT_PASSWORD,
        "ingestor_access_key": "lakehouse-ingestor",
        "ingestor_secret_key": "ingestor-secret-key",
        "pipeline_access_key": "lakehouse-pipeline",
        "pipeline_secret_key": "pipeline-secret-key",
        "reader_access_key": "lakehouse-reader",
        "reader_secret_key": "reader-secret-key",
        "metrics_access_key": "lakehouse-metrics",
        "metrics_secret_key": "metrics-secret-key",
        "bridge_webhook_url": "http://bridge:8090/minio/events",
        "bridge_webhook_token": WEBHOOK_TOKEN,
        "policy_dir": REPO / "minio" / "policies",
    }
    values.update(overrides)
    return get_settings(**values)
