"""Failure alerts: every task's ``on_failure_callback`` posts one message to a webhook.

Two targets, both optional and both from the environment (``LAKEHOUSE_AIRFLOW_*``):

- ``ALERT_WEBHOOK_URL``: a JSON POST ``{"text": ..., "dag_id", "task_id", "run_id", "try_number",
  "exception", "log_url"}``; Slack and Mattermost incoming webhooks read ``text``;
- ``ALERT_TELEGRAM_BOT_TOKEN`` + ``ALERT_TELEGRAM_CHAT_ID``: the Bot API's ``sendMessage``
  (the seed's alerting channel); ``ALERT_TELEGRAM_API_URL`` points it at another Bot API server.

An alert that cannot be delivered is logged; it never fails or retries the task.
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from lakehouse_orchestration.settings import get_settings

log = logging.getLogger(__name__)


def failure_message(context: Any) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    exception = context.get("exception")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    try_number = getattr(ti, "try_number", None)
    log_url = getattr(ti, "log_url", None)
    reason = f"{type(exception).__name__}: {exception}" if exception is not None else "unknown error"
    text = f"Mini-Lakehouse: task {dag_id}.{task_id} failed (run {run_id}, try {try_number}): {reason}"
    if log_url:
        text += f"\nLog: {log_url}"
    return {
        "text": text,
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number,
        "exception": reason,
        "log_url": log_url,
    }


def notify_failure(context: Any) -> None:
    """``on_failure_callback`` of every lakehouse task."""
    settings = get_settings()
    message = failure_message(context)
    log.error("%s", message["text"])
    if settings.alert_webhook_url is not None:
        _post(settings.alert_webhook_url.get_secret_value(), message, settings.alert_timeout_s, "webhook")
    if settings.alert_telegram_bot_token is not None and settings.alert_telegram_chat_id:
        api = settings.alert_telegram_api_url.rstrip("/")
        token = settings.alert_telegram_bot_token.get_secret_value()
        body = {"chat_id": settings.alert_telegram_chat_id, "text": message["text"], "disable_web_page_preview": True}
        _post(f"{api}/bot{token}/sendMessage", body, settings.alert_timeout_s, "telegram")


def _post(url: str, body: dict[str, Any], timeout: float, target: str) -> None:
    try:
        response = requests.post(url, json=body, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        # The URL may carry a token (Telegram, Slack): name the target, not the URL.
        log.warning("failure alert to the %s target was not delivered: %s", target, type(exc).__name__)
