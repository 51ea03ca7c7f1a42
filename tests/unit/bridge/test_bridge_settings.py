"""LAKEHOUSE_BRIDGE_* settings: read only by get_settings(), typed, with messages that say what is valid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse_bridge.exceptions import BridgeSettingsError
from lakehouse_bridge.settings import get_settings
from lakehouse_common.exceptions import SettingsError


@pytest.fixture(autouse=True)
def _no_bridge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_BRIDGE_")]:
        monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = get_settings()
    assert settings.airflow_url is None
    assert settings.webhook_token is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8090)
    assert settings.state_path == Path(".lakehouse/bridge.sqlite")
    assert (settings.retries, settings.backoff_s, settings.timeout_s) == (5, 0.5, 10.0)


def test_the_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_AIRFLOW_URL", "http://airflow:8080/")
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME", "bridge")
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_AIRFLOW_PASSWORD", "s3cret")
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN", "hook-token")
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_PORT", "9999")
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_RETRIES", "2")
    settings = get_settings()

    connection = settings.airflow()
    assert connection.url == "http://airflow:8080", "the trailing slash is dropped"
    assert connection.username == "bridge"
    assert connection.password.get_secret_value() == "s3cret"
    assert settings.webhook_token is not None and settings.webhook_token.get_secret_value() == "hook-token"
    assert "s3cret" not in repr(settings) and "hook-token" not in repr(settings)
    assert (settings.port, settings.retries) == (9999, 2)


def test_an_empty_token_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN", "")
    assert get_settings().webhook_token is None


def test_serving_needs_airflow_and_names_what_is_missing() -> None:
    with pytest.raises(BridgeSettingsError, match="LAKEHOUSE_BRIDGE_AIRFLOW_URL, LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME"):
        get_settings().airflow()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"airflow_url": "airflow:8080"}, "must look like http://host:port", id="url-without-scheme"),
        pytest.param({"airflow_url": "ftp://airflow"}, "must look like http://host:port", id="url-other-scheme"),
        pytest.param({"airflow_username": "bridge"}, "set both LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME", id="user-only"),
        pytest.param({"port": 70000}, "port", id="port-too-big"),
        pytest.param({"retries": -1}, "retries", id="negative-retries"),
        pytest.param({"timeout_s": 0}, "timeout_s", id="zero-timeout"),
        pytest.param({"log_format": "xml"}, "log_format", id="log-format"),
    ],
)
def test_invalid_settings_raise_a_settings_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match="invalid LAKEHOUSE_BRIDGE_\\* settings") as info:
        get_settings(**overrides)
    assert isinstance(info.value, BridgeSettingsError)
    assert message in str(info.value)
