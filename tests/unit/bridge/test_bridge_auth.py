"""The webhook token: MinIO sends notify_webhook's auth_token as 'Bearer <token>' (one word) or verbatim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from lakehouse_bridge.airflow_client import AirflowClient
from lakehouse_bridge.relay import EventRelay
from lakehouse_bridge.server import BridgeApp, token_matches
from lakehouse_bridge.settings import AirflowConnection
from lakehouse_bridge.state import DeliveryStore


@pytest.mark.parametrize(
    ("header", "token", "ok"),
    [
        pytest.param("Bearer s3cret", "s3cret", True, id="bearer-one-word-token"),
        pytest.param("bearer s3cret", "s3cret", True, id="scheme-is-case-insensitive"),
        pytest.param("s3cret", "s3cret", True, id="verbatim-older-minio"),
        pytest.param("Bearer s3cret", "Bearer s3cret", True, id="token-configured-with-scheme"),
        pytest.param("s3cret", "Bearer s3cret", True, id="scheme-configured-verbatim-sent"),
        pytest.param("  Bearer   s3cret  ", "s3cret", True, id="surrounding-spaces"),
        pytest.param("Bearer wrong", "s3cret", False, id="wrong-token"),
        pytest.param("Bearer s3cret2", "s3cret", False, id="longer-token"),
        pytest.param("Bearer s3cre", "s3cret", False, id="prefix-of-token"),
        pytest.param("Basic s3cret", "s3cret", False, id="other-scheme"),
        pytest.param("Bearer", "s3cret", False, id="scheme-only"),
        pytest.param("", "s3cret", False, id="empty"),
        pytest.param(None, "s3cret", False, id="missing"),
    ],
)
def test_token_matches(header: str | None, token: str, ok: bool) -> None:
    assert token_matches(header, token) is ok


@pytest.fixture
def app(tmp_path: Path) -> BridgeApp:
    """A bridge whose Airflow is never reached: these requests are refused before that."""
    client = AirflowClient(AirflowConnection("http://127.0.0.1:9", "u", SecretStr("p")), retries=0)
    relay = EventRelay(client, DeliveryStore(tmp_path / "s.sqlite"), "bronze")
    return BridgeApp(relay, webhook_token="s3cret")


def test_a_wrong_token_is_a_401_before_the_body_is_read(app: BridgeApp) -> None:
    reply = app.events(b"not even json", "Bearer nope")
    assert reply.status == 401
    assert "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN" in json.loads(reply.body)["error"]
    assert app.metrics.registry.get_sample_value("lakehouse_bridge_errors_total", {"kind": "unauthorized"}) == 1


def test_the_right_token_reaches_the_parser(app: BridgeApp) -> None:
    reply = app.events(b"not even json", "Bearer s3cret")
    assert reply.status == 400
    assert "not JSON" in json.loads(reply.body)["error"]


def test_no_token_configured_means_open(tmp_path: Path) -> None:
    client = AirflowClient(AirflowConnection("http://127.0.0.1:9", "u", SecretStr("p")), retries=0)
    open_app = BridgeApp(EventRelay(client, DeliveryStore(tmp_path / "s.sqlite"), "bronze"))
    assert open_app.authorized(None)
    reply = open_app.events(b'{"Records": []}', None)
    assert (reply.status, json.loads(reply.body)["posted"]) == (200, 0)
