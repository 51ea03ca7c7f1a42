"""Silverizer tuning, read from ``LAKEHOUSE_SILVERIZER_*`` when :func:`get_settings` is called."""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_common.exceptions import SettingsError


class SilverizerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_SILVERIZER_", extra="ignore", frozen=True)

    block_size: int = Field(default=8 << 20, ge=1 << 16, description="Bytes of bronze parsed per chunk.")
    row_group_rows: int = Field(default=128 * 1024, ge=1024, description="Rows buffered per Parquet row group.")
    threads: int = Field(default=2, ge=1, le=64, description="Chunks parsed and converted in parallel.")
    compression: str = "zstd"
    compression_level: int | None = None
    max_document_mb: int = Field(default=512, ge=1, description="Largest single JSON document (format json).")
    max_line_mb: int = Field(
        default=256, ge=1, description="Longest CSV/NDJSON line; a longer one is quarantined without being read."
    )
    batch_objects: int = Field(
        default=500,
        ge=1,
        description="Bronze objects staged per batch: each silver table gets one Delta commit per batch.",
    )
    batch_mb: int = Field(
        default=1024,
        ge=1,
        description="Bronze megabytes per batch at most (a larger object is a batch of its own).",
    )
    full_listing_interval_s: float = Field(
        default=600,
        ge=0,
        description="A run lists only bronze keys after its source's listing cursor, and all of bronze when "
        "the last full listing is older than this (0: always in full). A full listing finds files dropped "
        "under names that sort before the cursor; files announced by events are found at once.",
    )
    vacuum_retention_s: float = Field(
        default=6 * 3600,
        ge=0,
        description="Delta's vacuum retention: files no current snapshot names (replaced by a MERGE or "
        "compaction, staged by a killed run) and unfinished writes are deleted once this old; time travel "
        "reaches back this far. Longer than any reader (a dbt build, a BI query) runs.",
    )


def get_settings(**overrides: object) -> SilverizerSettings:
    try:
        return SilverizerSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid LAKEHOUSE_SILVERIZER_* settings: {exc}") from exc
