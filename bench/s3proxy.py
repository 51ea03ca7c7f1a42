"""A counting reverse proxy for an S3 endpoint (a moto server, in the benches).

:class:`CountingProxy` listens on a free local port, forwards every request to the upstream
endpoint unchanged (method, path, query, headers and body; the response likewise) and counts
it under the current *phase* (:meth:`CountingProxy.phase`), by method and by path class
(:func:`path_class`): Delta logs (``_delta_log/``), silver data files, bronze listings, and so on.
Clients point their endpoint URL at :attr:`CountingProxy.endpoint_url`; path-style addressing
(``/<bucket>/<key>``) is assumed, as the project configures for MinIO and moto.

Signatures still match: the ``Host`` header is forwarded as the client sent it, and moto does not
check signatures anyway. Each proxy thread keeps its own keep-alive connection to the upstream.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Hop-by-hop headers (RFC 9110 section 7.6.1) are not forwarded; the body is re-framed by length.
HOP_BY_HOP = frozenset(
    {"connection", "expect", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


class ProxyError(Exception):
    """The proxy could not start or forward (its message says to where)."""


def path_class(path: str, buckets: Mapping[str, str]) -> str:
    """Which kind of object a request touches: ``<layer> <kind>``, e.g. ``silver _delta_log/``.

    ``buckets`` maps bucket names to layer names (``{"bronze-1a2b": "bronze", ...}``). Kinds:
    ``list`` (a bucket listing; ``_delta_log/ list`` when it lists a Delta log), ``_delta_log/``
    (a log entry, checkpoint or ``_last_checkpoint``), ``data`` (a ``.parquet`` data file),
    ``bucket`` (bucket-level calls such as HEAD bucket or multi-object delete), ``object``.
    """
    parts = urlsplit(path)
    bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    layer = buckets.get(bucket, "other")
    query = parse_qs(parts.query, keep_blank_values=True)
    if not key:
        if "list-type" in query or "prefix" in query or "delimiter" in query or not query:
            prefix = query.get("prefix", [""])[0]
            return f"{layer} _delta_log/ list" if "_delta_log/" in prefix else f"{layer} list"
        return f"{layer} bucket"
    if "/_delta_log/" in f"/{key}":
        return f"{layer} _delta_log/"
    if key.endswith(".parquet"):
        return f"{layer} data"
    return f"{layer} object"


class CountingProxy:
    """A threaded reverse proxy that forwards to ``upstream`` and counts requests per phase."""

    def __init__(self, upstream: str, buckets: Mapping[str, str] | None = None) -> None:
        target = urlsplit(upstream)
        if target.scheme != "http" or not target.hostname or not target.port:
            raise ProxyError(f"the upstream must look like http://host:port, got {upstream!r}")
        self.upstream_host, self.upstream_port = target.hostname, target.port
        self.buckets: dict[str, str] = dict(buckets or {})
        self.counts: Counter[tuple[str, str, str]] = Counter()  # (phase, method, path class) -> requests
        self.errors: Counter[tuple[str, int]] = Counter()  # (phase, status >= 500) -> responses
        self._phase = "idle"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- phases and counts -----------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the requests made inside the block under ``name`` (then back to the previous phase)."""
        previous, self._phase = self._phase, name
        try:
            yield
        finally:
            self._phase = previous

    def _count(self, method: str, path: str) -> None:
        with self._lock:
            self.counts[(self._phase, method, path_class(path, self.buckets))] += 1

    def phase_counts(self, phase: str) -> dict[str, Any]:
        """One phase's requests: ``total``, ``by_method`` and ``by_class`` (``"GET silver _delta_log/"``)."""
        with self._lock:
            mine = {(m, c): n for (p, m, c), n in self.counts.items() if p == phase}
        by_method: Counter[str] = Counter()
        by_class: Counter[str] = Counter()
        for (method, klass), n in mine.items():
            by_method[method] += n
            by_class[f"{method} {klass}"] += n
        return {
            "total": sum(mine.values()),
            "by_method": dict(sorted(by_method.items())),
            "by_class": dict(sorted(by_class.items())),
        }

    # -- the server ------------------------------------------------------------------------------
    def start(self) -> CountingProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-counting-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _upstream(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
            self._local.connection = connection
        if getattr(connection, "sock", None) is None:  # new, or closed by the upstream ("Connection: close")
            connection.connect()
            # No Nagle: a request's pieces must not wait for the peer's delayed ACK (40 ms each).
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send one request upstream (retrying once on a stale keep-alive connection); the response."""
        self._count(method, path)
        for attempt in (1, 2):
            connection = self._upstream()
            try:
                connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    connection.putheader(name, value)
                if body is not None:
                    connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                response = connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise ProxyError(
                        f"cannot forward {method} {path} to {self.upstream_host}:{self.upstream_port}: {exc}"
                    ) from exc
                continue
            if response.status >= 500:
                with self._lock:
                    self.errors[(self._phase, response.status)] += 1
            return response.status, response.reason, response.getheaders(), data
        raise AssertionError("unreachable")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, not after a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    pieces: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline().strip():  # trailers, then the blank line
                                pass
                            return b"".join(pieces)
                        pieces.append(self.rfile.read(size))
                        self.rfile.readline()
                length = self.headers.get("Content-Length")
                return self.rfile.read(int(length)) if length is not None else None

            def _relay(self) -> None:
                body = self._body()
                headers = [
                    (name, value)
                    for name, value in self.headers.items()
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
                ]
                try:
                    status, reason, response_headers, data = proxy.forward(self.command, self.path, headers, body)
                except ProxyError as exc:
                    self.send_error(502, str(exc))
                    return
                self.send_response(status, reason)
                has_length = False
                for name, value in response_headers:
                    lowered = name.lower()
                    if lowered in HOP_BY_HOP or lowered in ("server", "date"):
                        continue
                    if lowered == "content-length":
                        if self.command != "HEAD":
                            continue  # re-framed below from the bytes actually read
                        has_length = True
                    self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                elif not has_length:
                    self.send_header("Content-Length", "0")
                self.end_headers()
                if self.command != "HEAD" and data:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler


__all__ = ["CountingProxy", "ProxyError", "path_class"]
