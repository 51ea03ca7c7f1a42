"""``lakehouse-minio-init`` end to end against the recorded MinIO: what it prints, its exit status."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fake_minio import FakeMinio
from init_env import ROOT_PASSWORD, ROOT_USER, WEBHOOK_TOKEN
from pytest_httpserver import HTTPServer

from lakehouse_minio_init import cli

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> pytest.MonkeyPatch:
    values = {
        "MINIO_URL": httpserver.url_for("/").rstrip("/"),
        "MINIO_ROOT_USER": ROOT_USER,
        "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
        "MINIO_INGESTOR_ACCESS_KEY": "lakehouse-ingestor",
        "MINIO_INGESTOR_SECRET_KEY": "ingestor-secret-key",
        "MINIO_PIPELINE_ACCESS_KEY": "lakehouse-pipeline",
        "MINIO_PIPELINE_SECRET_KEY": "pipeline-secret-key",
        "MINIO_READER_ACCESS_KEY": "lakehouse-reader",
        "MINIO_READER_SECRET_KEY": "reader-secret-key",
        "MINIO_METRICS_ACCESS_KEY": "lakehouse-metrics",
        "MINIO_METRICS_SECRET_KEY": "metrics-secret-key",
        "LAKEHOUSE_BRIDGE_WEBHOOK_URL": "http://bridge:8090/minio/events",
        "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "MINIO_INIT_POLICY_DIR": str(REPO / "minio" / "policies"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("lakehouse_minio_init.server.RESTART_GRACE_S", 0.0)
    return monkeypatch


def run() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main([], out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_first_run_reports_changes_and_second_run_says_nothing_changed(
    env: pytest.MonkeyPatch, fake: FakeMinio
) -> None:
    status, out, err = run()
    assert (status, err) == (0, "")
    assert "minio-init: bucket bronze: created\n" in out
    assert "minio-init: server: updated (restarted to apply the new notify_webhook target)\n" in out
    assert out.splitlines()[-1].startswith("minio-init: done: ")

    status, out, err = run()
    assert (status, err) == (0, "")
    assert "minio-init: bucket bronze: unchanged\n" in out
    assert out.splitlines()[-1] == "minio-init: done: nothing changed: all 22 checks already matched the configuration"
    assert ROOT_PASSWORD not in out and WEBHOOK_TOKEN not in out


def test_bad_settings_exit_2_with_the_reason_before_any_request(env: pytest.MonkeyPatch, fake: FakeMinio) -> None:
    env.setenv("MINIO_READER_ACCESS_KEY", ROOT_USER)
    status, out, err = run()
    assert status == cli.EXIT_ERROR
    assert out == ""
    assert err.startswith("minio-init: ERROR: invalid minio-init settings: ")
    assert "MINIO_READER_ACCESS_KEY must differ from MINIO_ROOT_USER" in err
    assert fake.calls == []
