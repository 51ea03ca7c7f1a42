"""S3 answers 503 SlowDown or 500 some of the time, then all of the time; the endpoint is down or
hangs. Transient errors are retried (boto3, pyarrow and delta-rs alike) and the run's silver
equals a clean run's; persistent ones fail with a message naming the bucket and key, no table
gets a row, and the object stays pending."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.exceptions import LakehouseError, StorageError
from lakehouse_common.settings import Settings, get_settings
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import SilverizerSettings

from .conftest import FaultProxy, delta_rows, silver_state, silver_table_names, wipe_silver

pytestmark = pytest.mark.slow

RATES = (
    "date,currency,rate\n"
    + "".join(
        f"2025-0{1 + i % 3}-{1 + i % 28:02d},{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}X,{90 + i % 7}.5\n"
        for i in range(3000)
    )
    + "2025-01-01,USD,-3\n"
)


def silverizer() -> Silverizer:
    settings = get_settings()
    return Silverizer(
        settings, ContractRegistry.from_dir(settings.contracts_dir), SilverizerSettings(block_size=1 << 16)
    )


def direct(s3_env: Settings) -> Any:
    """A client that bypasses the proxy: what is really in the buckets."""
    return boto3.client(
        "s3",
        endpoint_url=s3_env.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="lake-key",
        aws_secret_access_key="lake-secret",
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [pytest.param(503, "SlowDown", id="503-slowdown"), pytest.param(500, "InternalError", id="500-internal")],
)
def test_transient_errors_are_retried_and_the_result_equals_a_clean_run(
    s3_env: Settings, fault_proxy: FaultProxy, status: int, code: str
) -> None:
    run = silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    run.lake.bronze.put_bytes("currency_rates/b.csv", RATES.replace("X,", "Y,").encode())
    # Every other request fails, on every method and bucket: each one succeeds when retried.
    fault = fault_proxy.fail("*", "/", status, code, rate=0.5)
    entries = run.run_source("currency_rates").entries
    assert fault.failed >= 10
    assert [(e.status, e.rows_in) for e in entries] == [("loaded", 3001)] * 2
    fault_proxy.clear()
    flaky = silver_state(run)
    assert flaky["currency_rates"] and len(flaky["_quarantine"]) == 2 and len(flaky["_load_history"]) == 2
    wipe_silver(run)
    silverizer().run_source("currency_rates")  # the same run without faults
    assert silver_state(run) == flaky
    assert run.pending("currency_rates") == []


@pytest.mark.parametrize(
    ("method", "where", "status", "code", "names", "detail"),
    [
        pytest.param(
            "PUT",
            "silver",
            503,
            "SlowDown",
            "currency_rates/rate_month=",
            "503 SlowDown",
            id="staged-file-writes-503",
        ),
        # pyarrow reads the bronze object; its message names the operation, not the HTTP status.
        pytest.param("GET", "bronze", 500, "InternalError", "currency_rates/a.csv", "GetObject", id="bronze-reads-500"),
    ],
)
def test_persistent_errors_fail_clearly_and_commit_no_rows(
    s3_env: Settings,
    fault_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    where: str,
    status: int,
    code: str,
    names: str,
    detail: str,
) -> None:
    monkeypatch.setenv("LAKEHOUSE_S3_MAX_ATTEMPTS", "3")
    run = silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    bucket = s3_env.bronze_bucket if where == "bronze" else s3_env.silver_bucket
    path = f"^/{bucket}/" + ("currency_rates/rate_month" if method == "PUT" else "")
    fault = fault_proxy.fail(method, path, status, code)
    with pytest.raises(StorageError) as raised:
        run.run_source("currency_rates")
    message = str(raised.value)
    assert bucket in message and names in message, message
    assert detail in message, message
    assert fault.failed >= 3  # retried before giving up
    fault_proxy.clear()
    after = silverizer()
    for name in silver_table_names(after):
        if name != tables.LOAD_HISTORY:
            assert delta_rows(after.lake.silver, name) == [], name  # every table exists, none got a row
    (failed,) = tables.history_rows(after.lake.silver, "currency_rates")
    assert failed["status"] == "failed" and names in failed["reason"]
    client = direct(s3_env)
    staged = client.list_objects_v2(Bucket=s3_env.silver_bucket, Prefix="currency_rates/rate_month").get("Contents")
    assert not staged  # the failed object's staged files were removed
    assert client.list_multipart_uploads(Bucket=s3_env.silver_bucket).get("Uploads", []) == []
    assert [o.key for o in after.pending("currency_rates")] == ["currency_rates/a.csv"]
    (entry,) = after.run_source("currency_rates").entries  # once S3 is back, the rerun loads it
    assert entry.status == "loaded" and entry.rows_in == 3001


def test_silver_unavailable_fails_before_anything_is_staged(
    s3_env: Settings, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_S3_MAX_ATTEMPTS", "2")
    run = silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    fault = fault_proxy.fail("*", f"^/{s3_env.silver_bucket}", 503, "SlowDown")
    with pytest.raises(LakehouseError) as raised:
        run.run_source("currency_rates")
    assert s3_env.silver_bucket in str(raised.value), raised.value
    assert fault.failed >= 2
    fault_proxy.clear()
    assert direct(s3_env).list_objects_v2(Bucket=s3_env.silver_bucket).get("Contents") is None
    assert [o.key for o in silverizer().pending("currency_rates")] == ["currency_rates/a.csv"]


@pytest.fixture
def hanging_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def refused_endpoint() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param("refused", "Could not connect", id="connection-refused"),
        pytest.param("hangs", "timeout", id="endpoint-hangs"),
    ],
)
def test_endpoint_down_or_hanging_times_out_with_a_clear_error(
    s3_env: Settings, monkeypatch: pytest.MonkeyPatch, hanging_endpoint: str, kind: str, expected: str
) -> None:
    endpoint = refused_endpoint() if kind == "refused" else hanging_endpoint
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(get_settings().contracts_dir.resolve()))
    monkeypatch.setenv("LAKEHOUSE_S3_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("LAKEHOUSE_S3_READ_TIMEOUT_S", "1")
    monkeypatch.setenv("LAKEHOUSE_S3_MAX_ATTEMPTS", "2")
    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        silverizer().run_source("currency_rates")
    assert time.monotonic() - started < 20
    message = str(raised.value)
    # The first request goes to silver (is it an earlier version's layer?) or bronze.
    assert (s3_env.bronze_bucket in message or s3_env.silver_bucket in message) and endpoint in message, message
    assert expected.lower() in message.lower(), message
