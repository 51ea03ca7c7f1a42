"""Settings of the Postgres serving layer, read from ``LAKEHOUSE_SERVING_*`` when :func:`get_settings` is called.

Where the lake is comes from :mod:`lakehouse_common.settings`; these only say where gold is served.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_common.exceptions import SettingsError

# NAMEDATALEN - 1: PostgreSQL truncates longer identifiers.
MAX_IDENTIFIER_BYTES = 63


class ServingSettings(BaseSettings):
    """Where and how the marts are served to BI tools. No DSN: serving is off (one log line, no error)."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEHOUSE_SERVING_", extra="ignore", frozen=True, populate_by_name=True
    )

    postgres_dsn: SecretStr | None = Field(
        default=None,
        description="libpq connection string or URI of the serving database, e.g. postgresql://user:pw@host:5432/db.",
    )
    # ``schema`` would shadow a BaseModel attribute: the field has another name, the variable does not.
    schema_name: str = Field(default="gold", validation_alias="LAKEHOUSE_SERVING_SCHEMA")
    reader_role: str = Field(default="lakehouse_bi_reader", description="NOLOGIN role granted read-only access.")
    connect_timeout_s: int = Field(default=10, ge=1, le=300)
    lock_timeout_s: float = Field(
        default=5.0, gt=0, le=600, description="How long one swap attempt waits for BI queries on the old table."
    )
    swap_attempts: int = Field(default=5, ge=1, le=100)

    @field_validator("postgres_dsn", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("schema_name", "reader_role")
    @classmethod
    def _check_identifier(cls, value: str) -> str:
        if not value or "\x00" in value or len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
            raise ValueError(
                f"{value!r} is not a usable Postgres identifier: use 1 to {MAX_IDENTIFIER_BYTES} bytes without NUL"
            )
        return value


def get_settings(**overrides: object) -> ServingSettings:
    try:
        return ServingSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid LAKEHOUSE_SERVING_* settings: {exc}") from exc
