"""What every lakehouse DAG and task shares: owner, tags, retries with backoff, timeouts, alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from lakehouse_orchestration.alerts import notify_failure
from lakehouse_orchestration.settings import OrchestrationSettings

START_DATE = datetime(2026, 1, 1)


def default_args(settings: OrchestrationSettings) -> dict[str, Any]:
    return {
        "owner": settings.owner,
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=settings.max_retry_delay_s),
        "execution_timeout": timedelta(seconds=settings.silver_timeout_s),
        "on_failure_callback": notify_failure,
    }


def dag_kwargs(settings: OrchestrationSettings, *tags: str) -> dict[str, Any]:
    """Keyword arguments of every lakehouse ``@dag``: one active run at a time, no backfill."""
    return {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": [*settings.tags, *tags],
        "default_args": default_args(settings),
    }
