"""Bridge settings, read from ``LAKEHOUSE_BRIDGE_*`` variables only when :func:`get_settings` runs.

Which bucket is bronze is not configured here: that is :mod:`lakehouse_common.settings`
(``LAKEHOUSE_BRONZE_BUCKET``). These settings say where Airflow is, how to log in to it, how hard
to retry, and where the bridge listens, for example ``LAKEHOUSE_BRIDGE_AIRFLOW_URL=http://127.0.0.1:8080``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_bridge.exceptions import BridgeSettingsError


@dataclass(frozen=True)
class AirflowConnection:
    """What the Airflow client needs; built by :meth:`BridgeSettings.airflow` once all of it is set."""

    url: str
    username: str
    password: SecretStr


class BridgeSettings(BaseSettings):
    """Where Airflow is and how the bridge talks to it and to MinIO."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_BRIDGE_", extra="ignore", frozen=True)

    airflow_url: str | None = Field(default=None, description="Airflow's API server, e.g. http://127.0.0.1:8080.")
    airflow_username: str | None = Field(default=None, description="A user that may read assets and post events.")
    airflow_password: SecretStr | None = None
    webhook_token: SecretStr | None = Field(
        default=None, description="When set, MinIO must send it (notify_webhook auth_token) in Authorization."
    )
    host: str = Field(default="127.0.0.1", description="Address `lakehouse-bridge serve` binds.")
    port: int = Field(default=8090, ge=0, le=65535, description="Its port; 0 picks a free one.")
    state_path: Path = Field(
        default=Path(".lakehouse/bridge.sqlite"), description="SQLite file of the events Airflow accepted."
    )
    retries: int = Field(default=5, ge=0, le=50, description="Retries of one Airflow request after the first try.")
    backoff_s: float = Field(default=0.5, ge=0, le=60, description="First retry delay; doubles each retry.")
    backoff_max_s: float = Field(default=8.0, ge=0, le=300, description="Cap of one retry delay.")
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="Timeout of one Airflow request.")
    log_format: Literal["text", "json"] = Field(default="text", description="logfmt lines, or JSON lines.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("airflow_url", "airflow_username", "airflow_password", "webhook_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("airflow_url")
    @classmethod
    def _check_airflow_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ValueError(f"must look like http://host:port (Airflow's API server), got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_credentials(self) -> BridgeSettings:
        if (self.airflow_username is None) != (self.airflow_password is None):
            raise ValueError("set both LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME and LAKEHOUSE_BRIDGE_AIRFLOW_PASSWORD")
        return self

    def airflow(self) -> AirflowConnection:
        """Airflow's URL and credentials, or a :class:`BridgeSettingsError` naming what is missing."""
        missing = [
            f"LAKEHOUSE_BRIDGE_{name.upper()}"
            for name in ("airflow_url", "airflow_username", "airflow_password")
            if getattr(self, name) is None
        ]
        if missing or self.airflow_url is None or self.airflow_username is None or self.airflow_password is None:
            raise BridgeSettingsError(f"the bridge needs Airflow's API server and a user: set {', '.join(missing)}")
        return AirflowConnection(self.airflow_url, self.airflow_username, self.airflow_password)


def get_settings(**overrides: object) -> BridgeSettings:
    """Read the settings from the environment (plus explicit overrides, for tests and CLIs)."""
    try:
        return BridgeSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise BridgeSettingsError(f"invalid LAKEHOUSE_BRIDGE_* settings: {exc}") from exc
