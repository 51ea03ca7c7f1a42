"""Ingestor settings, read from ``LAKEHOUSE_INGESTOR_*`` variables only when :func:`get_settings` runs.

Where the lake lives is not configured here: that is :mod:`lakehouse_common.settings`
(``LAKEHOUSE_*``). These settings only shape what the ingestor produces, for example
``LAKEHOUSE_INGESTOR_SAMPLE_SIZE=500``.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_common.contracts import Duration
from lakehouse_ingestor.exceptions import IngestorSettingsError

HH_MAX_PER_PAGE = 100
"""hh.ru answers at most 100 items per search page."""


class IngestorSettings(BaseSettings):
    """What the sample generator writes (the defaults give ~3000 vacancies over 2025), and how
    ``run``/``serve`` log and pace themselves (the sources themselves are in the contracts)."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_INGESTOR_", extra="ignore", frozen=True)

    sample_seed: int = Field(default=20250101, description="Seed of the sample's random.Random.")
    sample_size: int = Field(default=3000, ge=1, le=1_000_000, description="Number of vacancies.")
    sample_start: date = Field(default=date(2025, 1, 1), description="First publication day (Moscow time).")
    sample_days: int = Field(default=365, ge=1, le=3660, description="Length of the publication period.")
    sample_window_days: int = Field(default=14, ge=1, le=366, description="Length of one search date window.")
    sample_per_page: int = Field(default=HH_MAX_PER_PAGE, ge=1, le=HH_MAX_PER_PAGE)
    sample_bad_records: bool = Field(default=True, description="Inject the documented bad records.")
    sample_api_host: str = Field(default="127.0.0.1", description="Address `lakehouse-ingest sample-api` binds.")
    sample_api_port: int = Field(default=8765, ge=0, le=65535, description="Its port; 0 picks a free one.")
    sample_api_fault_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Share of sample API requests answered 429, 500 or 503 first."
    )

    # -- lakehouse-ingest run / serve / import ---------------------------------------------------
    log_format: Literal["text", "json"] = Field(default="text", description="logfmt lines, or JSON lines.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, le=10_000, description="Overrides every source's rate limit (the local sample API)."
    )
    intervals: dict[str, Duration] = Field(
        default_factory=dict, description='serve: intervals overriding the contracts\', e.g. {"vacancies": "15 min"}.'
    )
    serve_retry_s: float = Field(default=300.0, gt=0, description="serve: a failed source is tried again this soon.")
    metrics_host: str = Field(
        default="127.0.0.1", description="serve: address of /metrics (0.0.0.0 in a container Prometheus scrapes)."
    )
    metrics_port: int = Field(default=9108, ge=0, le=65535, description="serve: port of /metrics; 0 turns it off.")


def get_settings(**overrides: object) -> IngestorSettings:
    """Read the settings from the environment (plus explicit overrides, for tests and CLIs)."""
    try:
        return IngestorSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise IngestorSettingsError(f"invalid LAKEHOUSE_INGESTOR_* settings: {exc}") from exc
