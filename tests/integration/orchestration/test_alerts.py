"""Failure alerts reach a real HTTP endpoint (pytest-httpserver plays the webhook and the
Telegram Bot API, which cannot be reached from CI)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pytest_httpserver import HTTPServer

from lakehouse_orchestration.alerts import notify_failure

TI = SimpleNamespace(dag_id="silver__vacancies", task_id="silverize", run_id="r1", try_number=2, log_url=None)


def test_failure_posts_json_to_the_webhook(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_ALERT_WEBHOOK_URL", httpserver.url_for("/hooks/lakehouse"))
    httpserver.expect_oneshot_request("/hooks/lakehouse", method="POST").respond_with_data("ok")
    notify_failure({"ti": TI, "exception": ValueError("row 7: salary_from is not a number")})
    httpserver.check_assertions()
    (request, _), *_ = httpserver.log
    body = json.loads(request.data)
    assert body["dag_id"] == "silver__vacancies"
    assert body["task_id"] == "silverize"
    assert "ValueError: row 7: salary_from is not a number" in body["text"]


def test_failure_posts_to_telegram_send_message(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_ALERT_TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_ALERT_TELEGRAM_CHAT_ID", "-100200")
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_ALERT_TELEGRAM_API_URL", httpserver.url_for("/"))
    httpserver.expect_oneshot_request("/bot123:abc/sendMessage", method="POST").respond_with_json({"ok": True})
    notify_failure({"ti": TI, "exception": RuntimeError("boom")})
    httpserver.check_assertions()
    body = json.loads(httpserver.log[0][0].data)
    assert body["chat_id"] == "-100200"
    assert "silver__vacancies.silverize failed" in body["text"]


def test_an_unreachable_webhook_never_fails_the_callback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook?token=secret-token")
    monkeypatch.setenv("LAKEHOUSE_AIRFLOW_ALERT_TIMEOUT_S", "2")
    notify_failure({"ti": TI, "exception": RuntimeError("boom")})
    assert "was not delivered" in caplog.text
    assert "secret-token" not in caplog.text
