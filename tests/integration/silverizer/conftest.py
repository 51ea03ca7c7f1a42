"""Fixtures of the silverizer's integration tests: a lake on either backend."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.ledger import logical_key
from lakehouse_common.settings import Settings, get_settings
from lakehouse_gold.catalog import build_catalog, connect_lake
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import SilverizerSettings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["local", "s3"])
def lake_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """LAKEHOUSE_* for a local lake under tmp_path or an S3 lake on the moto server (subprocesses inherit it)."""
    if request.param == "s3":
        request.getfixturevalue("s3_env")
    else:
        for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
        monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("LAKEHOUSE_SCRATCH_DIR", str(tmp_path / "scratch"))
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(REPO / "contracts"))
    return get_settings()


SilverizerFactory = Callable[..., Silverizer]


@pytest.fixture
def make_silverizer(lake_env: Settings) -> SilverizerFactory:
    """A new Silverizer (its own claim owner, like a separate run) on the lake of ``lake_env``."""

    def make(**options: object) -> Silverizer:
        return Silverizer(
            lake_env,
            ContractRegistry.from_dir(lake_env.contracts_dir),
            SilverizerSettings(block_size=1 << 16, **options),  # type: ignore[arg-type]
        )

    return make


def committed_state(silverizer: Silverizer) -> dict[str, str]:
    """Silver as readers see it: each committed file (by name without the attempt) and its sha256."""
    store = silverizer.lake.silver
    return {
        logical_key(key): hashlib.sha256(store.read_bytes(key)).hexdigest() for key in silverizer.ledger.committed()
    }


@pytest.fixture
def silver_state() -> Callable[[Silverizer], dict[str, str]]:
    """:func:`committed_state`: what readers see, equal for two runs that loaded the same objects."""
    return committed_state


@pytest.fixture
def reader_rows(lake_env: Settings, tmp_path: Path) -> Callable[[str], list[dict[str, Any]]]:
    """A silver table's rows as a real reader gets them: a DuckDB query of the catalog's view
    (committed files only, through httpfs on S3), as dicts in a stable order."""

    def rows(table: str) -> list[dict[str, Any]]:
        path = tmp_path / f"reader-{uuid.uuid4().hex[:8]}.duckdb"
        result = build_catalog(lake_env, path)
        if f"silver.{table}" not in {o.qualified for o in result.objects}:
            return []
        con = connect_lake(lake_env, path)
        try:
            cursor = con.execute(f"SELECT * FROM silver.{table}")
            names = [d[0] for d in cursor.description]
            return sorted((dict(zip(names, r, strict=True)) for r in cursor.fetchall()), key=repr)
        finally:
            con.close()
            path.unlink(missing_ok=True)

    return rows


# -- a fault-injecting proxy in front of the moto server ----------------------------------------
@dataclass
class Fault:
    """Answer matching requests with an S3 error: ``rate`` of them (1.0: all), spread evenly."""

    method: str  # "*" for any
    path: re.Pattern[str]
    status: int
    code: str
    rate: float = 1.0
    seen: int = 0
    failed: int = 0

    def hit(self, method: str, path: str) -> bool:
        if self.method not in {"*", method} or not self.path.search(path):
            return False
        self.seen += 1
        due = int(self.seen * self.rate) > int((self.seen - 1) * self.rate)
        self.failed += due
        return due


class FaultProxy:
    """A threaded HTTP proxy to an S3 endpoint that injects faults (a test double of a flaky S3)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlparse(upstream)
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                with proxy.lock:
                    fault = next((f for f in proxy.faults if f.hit(self.command, self.path)), None)
                if fault is not None:
                    xml = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                        f"<Message>injected {fault.code}</Message><Resource>{self.path}</Resource>"
                        "<RequestId>fault</RequestId></Error>"
                    ).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(xml)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(xml)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"transfer-encoding", "expect"}}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in {"transfer-encoding", "content-length", "connection", "date", "server"}:
                        self.send_header(name, value)
                # A HEAD answer states the object's length, with no body.
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, method: str, path: str, status: int = 503, code: str = "SlowDown", rate: float = 1.0) -> Fault:
        fault = Fault(method, re.compile(path), status, code, rate)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(s3_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The S3 lake of ``s3_env``, reached through a :class:`FaultProxy` (LAKEHOUSE_S3_ENDPOINT_URL points at it)."""
    assert s3_env.s3_endpoint_url is not None
    proxy = FaultProxy(s3_env.s3_endpoint_url)
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(REPO / "contracts"))
    monkeypatch.setenv("LAKEHOUSE_S3_CONNECT_TIMEOUT_S", "2")
    monkeypatch.setenv("LAKEHOUSE_S3_READ_TIMEOUT_S", "5")
    try:
        yield proxy
    finally:
        proxy.close()
