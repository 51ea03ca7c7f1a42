"""The init's settings: read from the environment only by get_settings(), validated with messages
that say what is valid, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse_minio_init.exceptions import InitSettingsError
from lakehouse_minio_init.settings import get_settings

REPO = Path(__file__).resolve().parents[3]
VALID_ENV = {
    "MINIO_URL": "http://minio:9000",
    "MINIO_ROOT_USER": "lake-root",
    "MINIO_ROOT_PASSWORD": "root-password-1234",
    "MINIO_INGESTOR_ACCESS_KEY": "lakehouse-ingestor",
    "MINIO_INGESTOR_SECRET_KEY": "ingestor-secret-1234",
    "MINIO_PIPELINE_ACCESS_KEY": "lakehouse-pipeline",
    "MINIO_PIPELINE_SECRET_KEY": "pipeline-secret-1234",
    "MINIO_READER_ACCESS_KEY": "lakehouse-reader",
    "MINIO_READER_SECRET_KEY": "reader-secret-1234",
    "MINIO_METRICS_ACCESS_KEY": "lakehouse-metrics",
    "MINIO_METRICS_SECRET_KEY": "metrics-secret-1234",
    "LAKEHOUSE_BRIDGE_WEBHOOK_URL": "http://bridge:8090/minio/events",
    "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": "bridge-token-0123456789",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in VALID_ENV.items():
        monkeypatch.setenv(name, value)
    for name in (
        "LAKEHOUSE_BRONZE_BUCKET",
        "LAKEHOUSE_SILVER_BUCKET",
        "LAKEHOUSE_GOLD_BUCKET",
        "MINIO_INIT_POLICY_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_reads_the_stack_variables(env: pytest.MonkeyPatch) -> None:
    env.setenv("LAKEHOUSE_SILVER_BUCKET", "lake-silver")
    settings = get_settings()
    assert settings.endpoint.host == "minio:9000" and settings.endpoint.secure is False
    assert settings.buckets == {"bronze": "bronze", "silver": "lake-silver", "gold": "gold"}
    assert [(user.role, user.access_key, user.policy_name) for user in settings.users] == [
        ("ingestor", "lakehouse-ingestor", "lakehouse-ingestor"),
        ("pipeline", "lakehouse-pipeline", "lakehouse-pipeline"),
        ("reader", "lakehouse-reader", "lakehouse-reader"),
        ("metrics", "lakehouse-metrics", "lakehouse-metrics"),
    ]
    assert settings.notification_arn == "arn:minio:sqs::bridge:webhook"
    assert settings.resolved_policy_dir() == REPO / "minio" / "policies"


def test_secrets_never_print(env: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    shown = repr(settings) + str(settings) + "".join(repr(user) for user in settings.users)
    for name, value in VALID_ENV.items():
        if "SECRET" in name or "PASSWORD" in name or "TOKEN" in name:
            assert value not in shown, name


def test_the_environment_is_read_when_asked_not_at_import(env: pytest.MonkeyPatch) -> None:
    first = get_settings()
    env.setenv("MINIO_URL", "https://minio.example:9443")
    second = get_settings()
    assert (first.endpoint.secure, second.endpoint.secure) == (False, True)
    assert second.endpoint.host == "minio.example:9443"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"MINIO_ROOT_PASSWORD": None}, "MINIO_ROOT_PASSWORD", id="missing-root-password"),
        pytest.param({"MINIO_URL": "minio:9000"}, "MINIO_URL must be http(s)://host[:port]", id="url-without-scheme"),
        pytest.param({"MINIO_URL": "http://minio:9000/path"}, "MINIO_URL must be", id="url-with-path"),
        pytest.param({"MINIO_READER_SECRET_KEY": "short"}, "MINIO_READER_SECRET_KEY must be at least 8", id="short"),
        pytest.param({"MINIO_PIPELINE_ACCESS_KEY": "lake-root"}, "never use the root user", id="service-is-root"),
        pytest.param({"MINIO_READER_ACCESS_KEY": "lakehouse-pipeline"}, "must all differ", id="shared-access-key"),
        pytest.param({"MINIO_INGESTOR_ACCESS_KEY": "a,b"}, "without '=', ','", id="comma-in-access-key"),
        pytest.param({"LAKEHOUSE_GOLD_BUCKET": "Gold_Marts"}, "not a valid bucket name", id="bad-bucket-name"),
        pytest.param(
            {"LAKEHOUSE_GOLD_BUCKET": "silver", "LAKEHOUSE_SILVER_BUCKET": "silver"}, "must all differ", id="same"
        ),
        pytest.param({"LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": ""}, "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN must be", id="no-token"),
        pytest.param(
            {"LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": "change-me-bridge-webhook-token"}, "placeholder", id="placeholder-token"
        ),
        pytest.param(
            {"LAKEHOUSE_BRIDGE_WEBHOOK_URL": "bridge:8090"}, "LAKEHOUSE_BRIDGE_WEBHOOK_URL must", id="bad-url"
        ),
        pytest.param(
            {"MINIO_INIT_ABORT_UPLOADS_AFTER_DAYS": "0"}, "MINIO_INIT_ABORT_UPLOADS_AFTER_DAYS", id="zero-days"
        ),
    ],
)
def test_invalid_settings_say_what_is_valid(
    env: pytest.MonkeyPatch, changes: dict[str, str | None], message: str
) -> None:
    for name, value in changes.items():
        if value is None:
            env.delenv(name)
        else:
            env.setenv(name, value)
    with pytest.raises(InitSettingsError, match="invalid minio-init settings") as raised:
        get_settings()
    assert message in str(raised.value)
    for name, value in VALID_ENV.items():
        if "SECRET" in name or "PASSWORD" in name:
            assert value not in str(raised.value)


def test_an_empty_webhook_url_turns_the_webhook_off(env: pytest.MonkeyPatch) -> None:
    env.setenv("LAKEHOUSE_BRIDGE_WEBHOOK_URL", "")
    env.setenv("LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN", "")
    assert get_settings().webhook_enabled is False
