"""Typed settings, read from the environment only when :func:`get_settings` is called.

Every variable carries the ``LAKEHOUSE_`` prefix, for example ``LAKEHOUSE_BACKEND=s3``.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_common.exceptions import SettingsError

Backend = Literal["local", "s3"]
LAYERS: tuple[str, ...] = ("bronze", "silver", "gold")


class Settings(BaseSettings):
    """Where the lake lives and how to reach it."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_", extra="ignore", frozen=True)

    backend: Backend = "local"
    data_dir: Path = Field(default=Path("data"), description="Root of the local lake.")
    contracts_dir: Path = Field(default=Path("contracts"))
    dbt_project_dir: Path = Field(default=Path("dbt"))
    scratch_dir: Path = Field(default=Path(".lakehouse"), description="Local working files (dbt's DuckDB file, logs).")

    # S3-compatible object storage (MinIO, AWS S3, a moto server).
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_path_style: bool = True
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    bronze_bucket: str = "bronze"
    silver_bucket: str = "silver"
    gold_bucket: str = "gold"
    # How long to wait for the endpoint, and how many times to try a request (the first attempt
    # included) before an error is reported: throttling (503 SlowDown), 500s and dropped
    # connections are retried with exponential backoff.
    s3_connect_timeout_s: float = Field(default=5.0, gt=0, description="Seconds to open a connection.")
    s3_read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds to wait for a response's bytes.")
    s3_max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per request, the first included.")
    s3_retry_mode: Literal["standard", "adaptive"] = "standard"

    # Replica of gold on AWS S3, with its own credentials.
    replica_uri: str | None = Field(default=None, description="s3://bucket/prefix of the gold replica.")
    replica_region: str = "us-east-1"
    replica_endpoint_url: str | None = None
    replica_access_key_id: SecretStr | None = None
    replica_secret_access_key: SecretStr | None = None

    @field_validator("replica_uri", "s3_endpoint_url", "replica_endpoint_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("replica_uri")
    @classmethod
    def _check_replica_uri(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme != "s3" or not parsed.netloc:
                raise ValueError(f"must look like s3://bucket/prefix, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_s3(self) -> Settings:
        if self.backend == "s3" and (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError(
                "set both LAKEHOUSE_S3_ACCESS_KEY_ID and LAKEHOUSE_S3_SECRET_ACCESS_KEY, or neither "
                "(then the default AWS credential chain is used)"
            )
        return self

    def bucket(self, layer: str) -> str:
        if layer not in LAYERS:
            raise SettingsError(f"unknown layer {layer!r}; valid layers are: {', '.join(LAYERS)}")
        return str(getattr(self, f"{layer}_bucket"))

    def layer_uri(self, layer: str) -> str:
        """Root of a layer as DuckDB and dbt see it: an absolute path or ``s3://bucket``."""
        if self.backend == "s3":
            return f"s3://{self.bucket(layer)}"
        return str((self.data_dir / layer).resolve())

    @property
    def replica_bucket_and_prefix(self) -> tuple[str, str] | None:
        if self.replica_uri is None:
            return None
        parsed = urlparse(self.replica_uri)
        return parsed.netloc, parsed.path.strip("/")


def get_settings(**overrides: object) -> Settings:
    """Read the settings from the environment (plus explicit overrides, for tests and CLIs)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid LAKEHOUSE_* settings: {exc}") from exc
