"""Fixtures of the silverizer's integration tests: a lake on either backend, and silver read back
the way any engine reads it (deltalake's log reader, DuckDB's ``delta_scan``), not through the
silverizer's own code."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import duckdb_extensions
import pytest
from deltalake import DeltaTable

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake, LayerStore
from lakehouse_silverizer.commits import table_specs
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import SilverizerSettings

REPO = Path(__file__).resolve().parents[3]
# Columns that name a run or the time a run did something: two runs over the same bronze differ only there.
VOLATILE = frozenset({"run_id", "started_at", "finished_at", "seconds", "quarantined_at", "table_versions"})


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
    """A new Silverizer (its own run id, like a separate run) on the lake of ``lake_env``."""

    def make(**options: object) -> Silverizer:
        return Silverizer(
            lake_env,
            ContractRegistry.from_dir(lake_env.contracts_dir),
            SilverizerSettings(block_size=1 << 16, **options),  # type: ignore[arg-type]
        )

    return make


# -- silver as any engine reads it ----------------------------------------------------------------
def silver_table_names(silverizer: Silverizer) -> list[str]:
    """The bookkeeping tables and every declared source's tables."""
    names = [tables.LOAD_HISTORY, tables.QUARANTINE]
    for source in silverizer.registry.names():
        names += [spec.name for spec in table_specs(silverizer.registry.get(source))]
    return names


def delta_rows(store: LayerStore, name: str, *, drop: frozenset[str] = VOLATILE) -> list[dict[str, Any]]:
    """Table ``name``'s rows as deltalake reads its log (no project code), in a stable order,
    without the ``drop`` columns; [] when the table does not exist."""
    try:
        table = DeltaTable(store.table_uri(name), storage_options=store.delta_options or None)
    except Exception as exc:  # deltalake's TableNotFoundError
        if type(exc).__name__ != "TableNotFoundError":
            raise
        return []
    rows = table.to_pyarrow_table().to_pylist()
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows), key=repr)


def silver_state(silverizer: Silverizer, *, drop: frozenset[str] = VOLATILE) -> dict[str, list[dict[str, Any]]]:
    """Every silver table's rows (run ids and run times left out): equal for two lakes that
    processed the same bronze object versions, however many attempts it took."""
    return {name: delta_rows(silverizer.lake.silver, name, drop=drop) for name in silver_table_names(silverizer)}


def wipe_silver(silverizer: Silverizer) -> None:
    """Delete every silver object: the next run rebuilds silver from bronze (a clean run's reference)."""
    store = silverizer.lake.silver
    keys = [info.key for info in store.list()]
    for start in range(0, len(keys), 500):
        store.delete(keys[start : start + 500])
    assert not list(store.list())


def duckdb_lake(settings: Settings) -> duckdb.DuckDBPyConnection:
    """DuckDB with the delta extension (from its PyPI wheel: offline), on S3 with httpfs and a secret
    for the lake's endpoint, as an analyst's session would set it up."""
    con = duckdb.connect()
    names = ["delta"] if settings.backend == "local" else ["httpfs", "delta"]
    for name in names:
        try:
            con.execute(f"LOAD {name}")
        except duckdb.Error:
            duckdb_extensions.import_extension(name, con=con)
            con.execute(f"LOAD {name}")
    if settings.backend == "s3":
        assert settings.s3_endpoint_url and settings.s3_access_key_id and settings.s3_secret_access_key
        endpoint = urlparse(settings.s3_endpoint_url)
        con.execute(
            "CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
            [
                settings.s3_access_key_id.get_secret_value(),
                settings.s3_secret_access_key.get_secret_value(),
                settings.s3_region,
                endpoint.netloc,
                endpoint.scheme == "https",
            ],
        )
    return con


Rows = Callable[[str], list[dict[str, Any]]]


@contextlib.contextmanager
def scan_reader(settings: Settings) -> Iterator[Rows]:
    """A silver table's rows as DuckDB's ``delta_scan`` reads them (the committed snapshot, over
    httpfs on S3), as dicts in a stable order."""
    con = duckdb_lake(settings)
    store = Lake(settings).silver

    def rows(table: str) -> list[dict[str, Any]]:
        cursor = con.execute(f"SELECT * FROM delta_scan('{store.table_uri(table)}')")
        names = [d[0] for d in cursor.description]
        return sorted((dict(zip(names, r, strict=True)) for r in cursor.fetchall()), key=repr)

    try:
        yield rows
    finally:
        con.close()


@pytest.fixture
def reader_rows(lake_env: Settings) -> Iterator[Rows]:
    """:func:`scan_reader` on the lake of ``lake_env``."""
    with scan_reader(lake_env) as rows:
        yield rows


# -- a fault-injecting proxy in front of the moto server ----------------------------------------
@dataclass
class Fault:
    """Answer matching requests with an S3 error: ``rate`` of them (1.0: all), spread evenly.

    With ``action``, a matching request is not answered with an error: ``action`` runs first
    (e.g. SIGKILL the client), then the request is forwarded when ``forward`` is set, else the
    connection is dropped unanswered."""

    method: str  # "*" for any
    path: re.Pattern[str]
    status: int
    code: str
    rate: float = 1.0
    seen: int = 0
    failed: int = 0
    action: Callable[[], None] | None = None
    forward: bool = False
    matched: list[str] = field(default_factory=list)

    def hit(self, method: str, path: str) -> bool:
        if self.method not in {"*", method} or not self.path.search(path):
            return False
        self.seen += 1
        due = int(self.seen * self.rate) > int((self.seen - 1) * self.rate)
        self.failed += due
        if due:
            self.matched.append(f"{method} {path}")
        return due


class FaultProxy:
    """A threaded HTTP proxy to an S3 endpoint that injects faults (a test double of a flaky S3)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlparse(upstream)
        self.faults: list[Fault] = []
        self.log: list[str] = []  # every request, "<method> <path>"
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

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes, str | None]:
                upstream = http.client.HTTPConnection(proxy.upstream.hostname or "", proxy.upstream.port, timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in {"transfer-encoding", "expect"}
                    }
                    headers["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    return answer.status, answer.getheaders(), answer.read(), answer.getheader("Content-Length")
                finally:
                    upstream.close()

            def _handle(self) -> None:
                body = self._body()
                with proxy.lock:
                    proxy.log.append(f"{self.command} {self.path}")
                    fault = next((f for f in proxy.faults if f.hit(self.command, self.path)), None)
                if fault is not None and fault.action is not None:
                    if fault.forward:
                        self._forward(body)
                    fault.action()
                    self.close_connection = True
                    return
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
                status, headers, data, length = self._forward(body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in {"transfer-encoding", "content-length", "connection", "date", "server"}:
                        self.send_header(name, value)
                # A HEAD answer states the object's length, with no body.
                self.send_header("Content-Length", (length if self.command == "HEAD" else None) or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

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

    def intercept(self, method: str, path: str, action: Callable[[], None], *, forward: bool) -> Fault:
        """Run ``action`` on the first matching request instead of answering it (see :class:`Fault`)."""
        fault = Fault(method, re.compile(path), 0, "", rate=1.0, action=action, forward=forward)
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
