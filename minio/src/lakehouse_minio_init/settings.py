"""The init's settings, read from the environment only when :func:`get_settings` runs.

The variable names are the stack's (``.env.example``): ``MINIO_ROOT_*`` for the root account the
init alone uses, ``MINIO_<ROLE>_ACCESS_KEY``/``_SECRET_KEY`` for the service users,
``LAKEHOUSE_*_BUCKET`` for the buckets, ``LAKEHOUSE_BRIDGE_WEBHOOK_*`` for the event bridge. The
``MINIO_INIT_*`` variables tune the init itself and have defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_minio_init.exceptions import InitSettingsError

ROLES = ("ingestor", "pipeline", "reader", "metrics")
"""One MinIO user per role; each gets the policy ``minio/policies/<role>.json``. The pipeline user is
what Airflow's tasks (silverizer, dbt, silver maintenance) use; the reader reads gold
only; the metrics user is the pipeline exporter's (read-only: listings of
every layer, silver's load history and Delta logs, the gold manifest). The event bridge has no role:
it needs no MinIO identity."""

BUCKET_NAME = re.compile(r"(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
WEBHOOK_TARGET = "bridge"
"""The ``notify_webhook`` target name; the bucket notification's ARN is ``arn:minio:sqs::bridge:webhook``."""
PLACEHOLDER_PREFIX = "change-me"


@dataclass(frozen=True)
class ServiceUser:
    """A service's MinIO user: its role (the policy file's stem), access key and secret key."""

    role: str
    access_key: str
    secret_key: str = field(repr=False)

    @property
    def policy_name(self) -> str:
        return f"lakehouse-{self.role}"


@dataclass(frozen=True)
class Endpoint:
    """Where MinIO's S3 and admin APIs answer, as the ``minio`` SDK wants it (``host:port`` and TLS)."""

    url: str
    host: str
    secure: bool


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class InitSettings(BaseSettings):
    """Everything the init needs; secrets are :class:`~pydantic.SecretStr` so they never print."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True, case_sensitive=False)

    minio_url: str = Field(default="http://minio:9000", validation_alias=_env("MINIO_URL"))
    root_user: str = Field(validation_alias=_env("MINIO_ROOT_USER"))
    root_password: SecretStr = Field(validation_alias=_env("MINIO_ROOT_PASSWORD"))
    region: str = Field(default="us-east-1", validation_alias=_env("LAKEHOUSE_S3_REGION"))

    ingestor_access_key: str = Field(validation_alias=_env("MINIO_INGESTOR_ACCESS_KEY"))
    ingestor_secret_key: SecretStr = Field(validation_alias=_env("MINIO_INGESTOR_SECRET_KEY"))
    pipeline_access_key: str = Field(validation_alias=_env("MINIO_PIPELINE_ACCESS_KEY"))
    pipeline_secret_key: SecretStr = Field(validation_alias=_env("MINIO_PIPELINE_SECRET_KEY"))
    reader_access_key: str = Field(validation_alias=_env("MINIO_READER_ACCESS_KEY"))
    reader_secret_key: SecretStr = Field(validation_alias=_env("MINIO_READER_SECRET_KEY"))
    metrics_access_key: str = Field(validation_alias=_env("MINIO_METRICS_ACCESS_KEY"))
    metrics_secret_key: SecretStr = Field(validation_alias=_env("MINIO_METRICS_SECRET_KEY"))

    bronze_bucket: str = Field(default="bronze", validation_alias=_env("LAKEHOUSE_BRONZE_BUCKET"))
    silver_bucket: str = Field(default="silver", validation_alias=_env("LAKEHOUSE_SILVER_BUCKET"))
    gold_bucket: str = Field(default="gold", validation_alias=_env("LAKEHOUSE_GOLD_BUCKET"))

    bridge_webhook_url: str = Field(default="", validation_alias=_env("LAKEHOUSE_BRIDGE_WEBHOOK_URL"))
    bridge_webhook_token: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN")
    )

    policy_dir: Path | None = Field(default=None, validation_alias=_env("MINIO_INIT_POLICY_DIR"))
    abort_uploads_after_days: int = Field(
        default=1, ge=1, le=365, validation_alias=_env("MINIO_INIT_ABORT_UPLOADS_AFTER_DAYS")
    )
    webhook_queue_dir: str = Field(default="/data/.minio-events", validation_alias=_env("MINIO_INIT_WEBHOOK_QUEUE_DIR"))
    webhook_queue_limit: int = Field(
        default=100_000, ge=1, le=10_000_000, validation_alias=_env("MINIO_INIT_WEBHOOK_QUEUE_LIMIT")
    )
    ready_timeout_s: float = Field(default=120.0, gt=0, le=3600, validation_alias=_env("MINIO_INIT_READY_TIMEOUT_S"))

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = [
            *self._endpoint_problems(),
            *self._credential_problems(),
            *self._bucket_problems(),
            *self._webhook_problems(),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- derived views ----------------------------------------------------------------------------
    @property
    def endpoint(self) -> Endpoint:
        parts = urlsplit(self.minio_url)
        return Endpoint(url=self.minio_url.rstrip("/"), host=parts.netloc, secure=parts.scheme == "https")

    @property
    def buckets(self) -> dict[str, str]:
        """Layer name (as the policy files spell the bucket) to the configured bucket name."""
        return {"bronze": self.bronze_bucket, "silver": self.silver_bucket, "gold": self.gold_bucket}

    @property
    def users(self) -> tuple[ServiceUser, ...]:
        return tuple(
            ServiceUser(
                role=role,
                access_key=getattr(self, f"{role}_access_key"),
                secret_key=getattr(self, f"{role}_secret_key").get_secret_value(),
            )
            for role in ROLES
        )

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.bridge_webhook_url)

    @property
    def notification_arn(self) -> str:
        return f"arn:minio:sqs::{WEBHOOK_TARGET}:webhook"

    def resolved_policy_dir(self) -> Path:
        """``MINIO_INIT_POLICY_DIR``, else ``minio/policies`` of the source tree this package runs from."""
        if self.policy_dir is not None:
            return self.policy_dir
        return Path(__file__).resolve().parents[2] / "policies"

    # -- validation -------------------------------------------------------------------------------
    def _endpoint_problems(self) -> list[str]:
        parts = urlsplit(self.minio_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
            return [
                "MINIO_URL must be http(s)://host[:port] of MinIO's S3 API (e.g. http://minio:9000), "
                f"not {self.minio_url!r}"
            ]
        return []

    def _credential_problems(self) -> list[str]:
        problems: list[str] = []
        if len(self.root_user) < 3:
            problems.append("MINIO_ROOT_USER must be at least 3 characters")
        if len(self.root_password.get_secret_value()) < 8:
            problems.append("MINIO_ROOT_PASSWORD must be at least 8 characters")
        for user in self.users:
            prefix = f"MINIO_{user.role.upper()}"
            if len(user.access_key) < 3 or any(c in user.access_key for c in "=, "):
                problems.append(f"{prefix}_ACCESS_KEY must be at least 3 characters, without '=', ',' or spaces")
            if len(user.secret_key) < 8:
                problems.append(f"{prefix}_SECRET_KEY must be at least 8 characters")
            if user.access_key == self.root_user:
                problems.append(
                    f"{prefix}_ACCESS_KEY must differ from MINIO_ROOT_USER: services never use the root user"
                )
        keys = [user.access_key for user in self.users]
        if len(set(keys)) != len(keys):
            names = ", ".join(f"MINIO_{role.upper()}_ACCESS_KEY" for role in ROLES)
            problems.append(f"{names} must all differ")
        return problems

    def _bucket_problems(self) -> list[str]:
        problems = [
            f"LAKEHOUSE_{layer.upper()}_BUCKET {name!r} is not a valid bucket name "
            "(3-63 characters: lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)"
            for layer, name in self.buckets.items()
            if not BUCKET_NAME.fullmatch(name) or ".." in name
        ]
        if len(set(self.buckets.values())) != len(self.buckets):
            problems.append(
                "LAKEHOUSE_BRONZE_BUCKET, LAKEHOUSE_SILVER_BUCKET and LAKEHOUSE_GOLD_BUCKET must all differ"
            )
        return problems

    def _webhook_problems(self) -> list[str]:
        if not self.bridge_webhook_url:
            return []
        problems: list[str] = []
        parts = urlsplit(self.bridge_webhook_url)
        if (
            parts.scheme not in {"http", "https"}
            or not parts.hostname
            or any(c.isspace() for c in self.bridge_webhook_url)
        ):
            problems.append(
                "LAKEHOUSE_BRIDGE_WEBHOOK_URL must be an http(s) URL without spaces "
                f"(e.g. http://bridge:8090/minio/events), or empty to skip the webhook; got {self.bridge_webhook_url!r}"
            )
        token = self.bridge_webhook_token.get_secret_value()
        if len(token) < 16 or any(c.isspace() or c in "\"'" for c in token):
            problems.append(
                "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN must be at least 16 characters without spaces or quotes when "
                "LAKEHOUSE_BRIDGE_WEBHOOK_URL is set "
                "(generate one: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        elif token.startswith(PLACEHOLDER_PREFIX):
            problems.append("LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN is still the .env.example placeholder; set a real token")
        return problems


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]).upper() or "settings"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(message if location == "SETTINGS" or not error["loc"] else f"{location}: {message}")
    return "; ".join(lines)


def get_settings(**overrides: object) -> InitSettings:
    """Read the settings from the environment (plus explicit overrides, for tests)."""
    try:
        return InitSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InitSettingsError(f"invalid minio-init settings: {_describe(exc)} (see .env.example)") from exc
