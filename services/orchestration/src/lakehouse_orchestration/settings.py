"""Orchestration settings, read from ``LAKEHOUSE_AIRFLOW_*`` when :func:`get_settings` is called.

They shape every DAG: owner and tags, retries with exponential backoff, execution timeouts,
the landing sensors' poke interval, and where failure alerts go.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lakehouse_common.exceptions import SettingsError


class OrchestrationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_AIRFLOW_", extra="ignore", frozen=True)

    owner: str = "data-platform"
    tags: Annotated[tuple[str, ...], NoDecode] = ("lakehouse",)
    retries: int = Field(default=3, ge=0, le=20, description="Retries of every task.")
    retry_delay_s: float = Field(default=20.0, gt=0, description="First retry delay; doubles after each try.")
    max_retry_delay_s: float = Field(default=600.0, gt=0, description="Cap of the exponential backoff.")
    silver_timeout_s: float = Field(default=3600.0, gt=0, description="Execution timeout of one silverizer task.")
    gold_timeout_s: float = Field(default=3600.0, gt=0, description="Execution timeout of the dbt build.")
    replicate_timeout_s: float = Field(default=1800.0, gt=0, description="Execution timeout of replication.")
    poke_interval_s: float = Field(default=5.0, gt=0, description="How often the landing sensors look at bronze.")
    handoff_timeout_s: float = Field(
        default=1800.0, gt=0, description="How long a landing run waits for silver to take what it announced."
    )
    s3_conn_id: str = Field(
        default="lakehouse_s3", description="Airflow connection of the lake's S3 endpoint (AIRFLOW_CONN_LAKEHOUSE_S3)."
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="Failures are POSTed here as JSON (Slack-, Mattermost- or any JSON webhook)."
    )
    alert_telegram_bot_token: SecretStr | None = None
    alert_telegram_chat_id: str | None = None
    alert_telegram_api_url: str = "https://api.telegram.org"
    alert_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("alert_webhook_url", "alert_telegram_bot_token", "alert_telegram_chat_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value


def get_settings(**overrides: object) -> OrchestrationSettings:
    try:
        return OrchestrationSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid LAKEHOUSE_AIRFLOW_* settings: {exc}") from exc
