"""Exporter settings, read from ``LAKEHOUSE_METRICS_*`` only when :func:`get_settings` runs.

Where the lake lives is :mod:`lakehouse_common.settings` (``LAKEHOUSE_*``); the exporter needs
read access to bronze, silver and gold.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_monitoring.exceptions import MonitoringSettingsError


class MonitoringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_METRICS_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address of /metrics (0.0.0.0 in a container).")
    port: int = Field(default=9109, ge=0, le=65535, description="Port of /metrics; 0 picks a free one.")
    cache_s: float = Field(
        default=15.0, ge=0, le=3600, description="A scrape within this many seconds of the last reuses its reading."
    )


def get_settings(**overrides: object) -> MonitoringSettings:
    """Read the settings from the environment (plus explicit overrides, for tests and CLIs)."""
    try:
        return MonitoringSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise MonitoringSettingsError(f"invalid LAKEHOUSE_METRICS_* settings: {exc}") from exc
