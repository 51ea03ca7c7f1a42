"""The bridge's HTTP endpoints, on the standard library's threading HTTP server.

=====================  ======================================================================
``POST /minio/events``  MinIO's webhook: 200 when every record was posted, a duplicate or
                        ignorable; 503 when Airflow could not be reached after the retries (MinIO
                        keeps the event in its ``queue_dir`` and sends it again); 400 for a body
                        that is not a MinIO notification; 401 for a missing or wrong token.
``HEAD /minio/events``  MinIO's liveness probe of the target (200, or 401 for a wrong token).
``GET /healthz``        200 while the process serves.
``GET /readyz``         200 when Airflow's API server answers and the state file can be read.
``GET /metrics``        Prometheus text format.
=====================  ======================================================================

MinIO sends its ``notify_webhook`` ``auth_token`` in ``Authorization``: as ``Bearer <token>`` when
the token is one word, verbatim when it already has a scheme (``Bearer x``), and verbatim in
older releases; :func:`token_matches` accepts each form.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, cast

from lakehouse_bridge.events import parse_notification
from lakehouse_bridge.exceptions import EventFormatError, StateStoreError
from lakehouse_bridge.logs import EventLog
from lakehouse_bridge.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from lakehouse_bridge.relay import EventRelay

EVENTS_PATH = "/minio/events"
MAX_BODY_BYTES = 8 * 1024 * 1024
JSON_TYPE = "application/json"


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``, as ``Bearer <token>`` or verbatim.

    A token configured with its scheme (``Bearer abc``) matches ``Bearer abc`` as well.
    """
    if not header:
        return False
    expected = token.strip()
    scheme, _, rest = expected.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        expected = rest.strip()
    given = header.strip()
    scheme, _, rest = given.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        given = rest.strip()
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE

    @classmethod
    def json(cls, status: int, doc: Mapping[str, Any]) -> Reply:
        return cls(status, (json.dumps(doc, ensure_ascii=False) + "\n").encode())


class BridgeApp:
    """What each endpoint answers, apart from the socket (the handler below only moves bytes)."""

    def __init__(self, relay: EventRelay, webhook_token: str | None = None, log: EventLog | None = None) -> None:
        self.relay = relay
        self.metrics = relay.metrics
        self.webhook_token = webhook_token
        self.log = log or EventLog()

    def authorized(self, header: str | None) -> bool:
        return self.webhook_token is None or token_matches(header, self.webhook_token)

    def unauthorized(self) -> Reply:
        self.metrics.errors.labels(kind="unauthorized").inc()
        self.log.warning("webhook.unauthorized", hint="the Authorization header does not carry the webhook token")
        return Reply.json(
            401,
            {
                "error": "missing or wrong Authorization: send the token of LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN "
                "as 'Bearer <token>' (MinIO: notify_webhook auth_token)"
            },
        )

    def events(self, body: bytes, authorization: str | None) -> Reply:
        if not self.authorized(authorization):
            return self.unauthorized()
        try:
            records = parse_notification(body)
        except EventFormatError as exc:
            self.metrics.errors.labels(kind="bad_request").inc()
            self.log.warning("webhook.bad_request", error=str(exc), bytes=len(body))
            return Reply.json(400, {"error": str(exc)})
        result = self.relay.relay(records)
        return Reply.json(result.status, result.as_dict())

    def ready(self) -> Reply:
        ok, detail = self.relay.client.health()
        checks: dict[str, Any] = {"airflow": {"ok": ok, "detail": detail}}
        try:
            self.relay.store.check()
            checks["state"] = {"ok": True, "detail": str(self.relay.store.path)}
        except StateStoreError as exc:
            checks["state"] = {"ok": False, "detail": str(exc)}
        ready = all(check["ok"] for check in checks.values())
        return Reply.json(200 if ready else 503, {"ready": ready, "checks": checks})

    def metrics_page(self) -> Reply:
        return Reply(200, self.metrics.render(), METRICS_CONTENT_TYPE)


class _Server(ThreadingHTTPServer):
    """Waits for the requests in flight on close (a webhook request ends within its retries), and
    closes idle keep-alive connections (MinIO keeps them open) instead of waiting for them."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.stopping = False
        self._lock = threading.Lock()
        self._idle: dict[socket.socket, bool] = {}

    def mark(self, conn: socket.socket, *, idle: bool) -> bool:
        """Record whether a connection waits for a request; False when the server is stopping."""
        with self._lock:
            self._idle[conn] = idle
            return not self.stopping

    def forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._idle.pop(conn, None)

    def close_idle_connections(self) -> None:
        with self._lock:
            self.stopping = True
            idle = [conn for conn, waiting in self._idle.items() if waiting]
        for conn in idle:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _handler(app: BridgeApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "lakehouse-bridge/0.1"
        protocol_version = "HTTP/1.1"

        def _server(self) -> _Server:
            return cast(_Server, self.server)

        def setup(self) -> None:
            super().setup()
            self._server().mark(self.connection, idle=True)

        def finish(self) -> None:
            self._server().forget(self.connection)
            super().finish()

        def parse_request(self) -> bool:
            self._server().mark(self.connection, idle=False)  # a request line arrived
            return super().parse_request()

        def _send(self, reply: Reply, *, head: bool = False) -> None:
            if self._is_events():
                app.metrics.webhook_requests.labels(status=str(reply.status)).inc()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            if self._server().stopping:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(reply.body)
            if not self._server().mark(self.connection, idle=True):
                self.close_connection = True  # stopping: do not wait for another request

        def _path(self) -> str:
            return self.path.split("?", 1)[0]

        def _is_events(self) -> bool:
            return self._path() == EVENTS_PATH

        def _read_body(self) -> bytes | Reply:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self.close_connection = True
                return Reply.json(411, {"error": "send the body with a Content-Length (chunked is not accepted)"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                self.close_connection = True
                return Reply.json(400, {"error": "Content-Length must be an integer"})
            if length < 0 or length > MAX_BODY_BYTES:
                self.close_connection = True
                return Reply.json(413, {"error": f"the body must be at most {MAX_BODY_BYTES} bytes, got {length}"})
            body = self.rfile.read(length)
            app.metrics.received_bytes.inc(len(body))
            return body

        def do_POST(self) -> None:
            body = self._read_body()
            if not self._is_events():
                self._send(Reply.json(404, {"error": f"no such endpoint; POST {EVENTS_PATH}"}))
                return
            if isinstance(body, Reply):
                self._send(body)
                return
            try:
                reply = app.events(body, self.headers.get("Authorization"))
            except Exception as exc:  # an unexpected bug: answer 500 (MinIO sends the event again)
                app.metrics.errors.labels(kind="internal").inc()
                app.log.error("webhook.internal_error", error=f"{type(exc).__name__}: {exc}")
                reply = Reply.json(500, {"error": f"internal error: {type(exc).__name__}"})
            self._send(reply)

        def do_HEAD(self) -> None:
            if self._is_events():
                authorized = app.authorized(self.headers.get("Authorization"))
                self._send(Reply(200) if authorized else app.unauthorized(), head=True)
            elif self._path() in {"/healthz", "/readyz", "/metrics"}:
                self._send(Reply(200), head=True)
            else:
                self._send(Reply(404), head=True)

        def do_GET(self) -> None:
            routes: dict[str, Callable[[], Reply]] = {
                "/healthz": lambda: Reply.json(200, {"status": "ok"}),
                "/readyz": app.ready,
                "/metrics": app.metrics_page,
            }
            route = routes.get(self._path())
            if route is not None:
                self._send(route())
            elif self._is_events():
                self._send(Reply.json(405, {"error": f"use POST {EVENTS_PATH}"}))
            else:
                self._send(Reply.json(404, {"error": f"no such endpoint; try POST {EVENTS_PATH}, GET /healthz"}))

        def log_message(self, format: str, *args: Any) -> None:
            app.log.debug("http.request", client=self.client_address[0], line=format % args)

    return Handler


class BridgeServer:
    """The bridge listening on ``host:port`` (0 picks a free port), served from a background thread."""

    def __init__(self, relay: EventRelay, *, host: str, port: int, webhook_token: str | None = None) -> None:
        self.app = BridgeApp(relay, webhook_token)
        self.httpd = _Server((host, port), _handler(self.app))
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def start(self) -> BridgeServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="lakehouse-bridge", daemon=True
        )
        self._thread.start()
        self.app.log.info("bridge.listening", url=self.url, endpoint=f"{self.url}{EVENTS_PATH}")
        return self

    def stop(self) -> None:
        """Stop listening, wait for the requests in flight, close the state file (a second call does nothing)."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.close_idle_connections()
        self.httpd.server_close()
        self.app.relay.close()
        self.app.log.info("bridge.stopped")

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_signalled(server: BridgeServer) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and stop."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        server.app.log.info("bridge.signal", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
