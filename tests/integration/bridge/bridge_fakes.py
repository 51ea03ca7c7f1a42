"""Airflow 3's REST API as the bridge uses it, played by pytest-httpserver.

Only the four endpoints the bridge calls, in the shapes of Airflow 3.3's OpenAPI document:
``POST /auth/token`` (201 ``{"access_token"}``), ``GET /api/v2/assets`` (``name_pattern`` is a
case-insensitive substring match, as Airflow's ``ILIKE '%pattern%'``), ``POST /api/v2/assets/events``
and ``GET /api/v2/monitor/health``. The real Airflow (scheduler, API server, Postgres) end to end
is covered by the pipeline's end-to-end test; these tests pin the bridge's side of the contract.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import requests
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from lakehouse_bridge.server import EVENTS_PATH, BridgeServer
from lakehouse_bridge.settings import BridgeSettings

USERNAME = "bridge"
PASSWORD = "bridge-password"
WEBHOOK_TOKEN = "minio-webhook-token"


def _json(status: int, doc: Any) -> Response:
    return Response(json.dumps(doc), status=status, content_type="application/json")


@dataclass
class FakeAirflow:
    """State of the fake: its assets, the tokens it issued, the events it accepted, scripted failures."""

    server: HTTPServer
    assets: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_auth: list[str] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    logins: int = 0
    asset_lookups: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    """Statuses answered, one per request, to the next requests of any endpoint."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> FakeAirflow:
        self.server.expect_request("/auth/token", method="POST").respond_with_handler(self._token)
        self.server.expect_request("/api/v2/assets", method="GET").respond_with_handler(self._assets)
        self.server.expect_request("/api/v2/assets/events", method="POST").respond_with_handler(self._post_event)
        self.server.expect_request("/api/v2/monitor/health", method="GET").respond_with_handler(self._health)
        return self

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def add_asset(self, name: str, asset_id: int) -> None:
        self.assets[name] = asset_id

    def _scripted_failure(self) -> Response | None:
        with self.lock:
            if self.fail_next:
                status = self.fail_next.pop(0)
                return _json(status, {"detail": f"scripted {status}"})
        return None

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        return header.startswith("Bearer ") and token in self.tokens_issued and token not in self.revoked

    def _token(self, request: Request) -> Response:
        failure = self._scripted_failure()
        if failure is not None:
            return failure
        body = request.get_json(silent=True) or {}
        if body.get("username") != USERNAME or body.get("password") != PASSWORD:
            return _json(401, {"detail": "Invalid credentials"})
        with self.lock:
            self.logins += 1
            token = f"token-{self.logins}"
            self.tokens_issued.append(token)
        return _json(201, {"access_token": token})

    def _assets(self, request: Request) -> Response:
        failure = self._scripted_failure()
        if failure is not None:
            return failure
        if not self._authorized(request):
            return _json(401, {"detail": "Not authenticated"})
        pattern = request.args.get("name_pattern", "")
        limit = int(request.args.get("limit", "50"))
        offset = int(request.args.get("offset", "0"))
        self.asset_lookups.append(pattern)
        matches = [
            {"id": asset_id, "name": name, "uri": f"s3://{name}", "group": "asset", "extra": {}}
            for name, asset_id in sorted(self.assets.items(), key=lambda item: item[1])
            if pattern.lower() in name.lower()
        ]
        return _json(200, {"assets": matches[offset : offset + limit], "total_entries": len(matches)})

    def _post_event(self, request: Request) -> Response:
        failure = self._scripted_failure()
        if failure is not None:
            return failure
        if not self._authorized(request):
            return _json(401, {"detail": "Not authenticated"})
        body = request.get_json()
        if set(body) - {"asset_id", "extra", "partition_key"} or not isinstance(body.get("asset_id"), int):
            return _json(422, {"detail": "invalid body"})
        if body["asset_id"] not in self.assets.values():
            return _json(404, {"detail": f"Asset with ID: `{body['asset_id']}` was not found"})
        with self.lock:
            self.events.append(body)
            self.event_auth.append(request.headers["Authorization"])
            event_id = len(self.events)
        name = next(n for n, i in self.assets.items() if i == body["asset_id"])
        return _json(
            200,
            {
                "id": event_id,
                "asset_id": body["asset_id"],
                "name": name,
                "extra": {**body.get("extra", {}), "from_rest_api": True},
                "source_map_index": -1,
                "created_dagruns": [],
                "timestamp": "2026-01-01T10:00:01Z",
            },
        )

    def _health(self, request: Request) -> Response:
        return _json(200, {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}})


def refused_url() -> str:
    """A URL nobody listens on (connection refused): a port the OS just handed out and took back."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def notification(
    key: str,
    *,
    bucket: str = "bronze",
    etag: str = "9b2cf535f27731c974343645a3985328",
    sequencer: str = "1881B4E2F5A3C2D1",
    event_name: str = "s3:ObjectCreated:Put",
) -> bytes:
    """A webhook body as MinIO sends it: one record, its key query-escaped (``/`` is ``%2F``)."""
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2026-01-01T10:00:00.123Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "1881B4E2F4F0A2C7", "x-minio-origin-endpoint": "http://minio:9000"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(key, safe=""),
                "size": 1234,
                "eTag": etag,
                "contentType": "application/json",
                "userMetadata": {"content-type": "application/json"},
                "sequencer": sequencer,
            },
        },
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"},
    }
    return json.dumps({"EventName": event_name, "Key": f"{bucket}/{key}", "Records": [record]}).encode()


@dataclass
class RunningBridge:
    server: BridgeServer
    settings: BridgeSettings

    @property
    def url(self) -> str:
        return self.server.url

    def post(self, body: bytes, token: str | None = WEBHOOK_TOKEN, *, bearer: bool = True) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}" if bearer else token
        return requests.post(f"{self.url}{EVENTS_PATH}", data=body, headers=headers, timeout=30)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """GET /metrics, parsed by prometheus_client: {(sample name, sorted labels): value}."""
        response = requests.get(f"{self.url}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


def response_json(response: requests.Response) -> Any:
    assert response.headers["Content-Type"] == "application/json", response.text
    return json.loads(response.text)
