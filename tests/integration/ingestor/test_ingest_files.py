"""http_file (CSV or JSON documents over HTTP) and local_files / ``import`` sources."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from ingest_fakes import FakeClock, FakeHh, bronze, make_runner, payloads, repo_contract, write_contract
from werkzeug import Response

from lakehouse_common.storage import Lake
from lakehouse_ingestor.exceptions import IngestConfigError, MalformedResponseError
from lakehouse_ingestor.landing import META_PREFIX, REJECTED_PREFIX

RATES = b"date,currency,rate\n2025-03-01,RUR,1\n2025-03-01,USD,88.6512\n2025-03-01,EUR,95.1043\n"


@pytest.fixture
def rates_contract(contracts_dir: Path) -> Path:
    write_contract(contracts_dir, repo_contract("currency_rates"))
    return contracts_dir


def api_env(hh: FakeHh) -> dict[str, str]:
    return {"LAKEHOUSE_INGESTOR_API_URL": hh.url}


def test_a_csv_over_http_lands_byte_for_byte_once(
    any_lake: Lake, fake_hh: FakeHh, clock: FakeClock, rates_contract: Path
) -> None:
    document = {"body": RATES}
    fake_hh.server.expect_request("/rates.csv").respond_with_handler(
        lambda _request: Response(document["body"], mimetype="text/csv")
    )
    runner = make_runner(any_lake, rates_contract, clock, api_env(fake_hh))
    first = runner.run_once("currency_rates")
    assert first.status == "ok", first.error
    ((key, body),) = bronze(any_lake, "currency_rates/").items()
    assert body == RATES
    assert key.endswith(".csv")
    meta = json.loads(any_lake.bronze.read_bytes(f"{META_PREFIX}/{key}.json"))
    assert meta["requests"][0]["url"] == f"{fake_hh.url}/rates.csv"
    assert meta["requests"][0]["response_headers"]["Content-Type"].startswith("text/csv")

    clock.offset += 86400
    second = runner.run_once("currency_rates")
    assert second.counters["files_unchanged"] == 1
    assert len(payloads(any_lake, "currency_rates")) == 1  # unchanged: not written again

    document["body"] = RATES + b"2025-03-02,USD,88.9\n"
    clock.offset += 86400
    third = runner.run_once("currency_rates")
    assert third.counters["files_written"] == 1
    assert payloads(any_lake, "currency_rates") == sorted([RATES, document["body"]])


@pytest.mark.parametrize(
    ("fmt", "body", "reason"),
    [
        pytest.param("json", b'{"rates": [', "not valid JSON", id="json-truncated"),
        pytest.param("ndjson", b'{"a": 1}\n{"a": \n', "line 2 is not valid JSON", id="ndjson-bad-line"),
        pytest.param("csv", b"  \n", "empty", id="csv-empty"),
    ],
)
def test_a_bad_document_is_kept_aside(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path, fmt: str, body: bytes, reason: str
) -> None:
    fake_hh.server.expect_request("/feed").respond_with_data(body)
    write_contract(
        contracts_dir,
        {
            "name": "feed",
            "format": {"type": fmt},
            "columns": [{"name": "a"}],
            "ingest": {"kind": "http_file", "base_url": fake_hh.url, "path": "/feed", "headers": {"User-Agent": "t"}},
        },
    )
    report = make_runner(local_lake, contracts_dir, clock, {}).run_once("feed")
    assert isinstance(report.exception, MalformedResponseError)
    assert reason in str(report.error)
    rejected = bronze(local_lake, f"{REJECTED_PREFIX}/feed/")
    assert body in rejected.values()
    assert bronze(local_lake, "feed/") == {}


# -- local files ----------------------------------------------------------------------------------
@pytest.fixture
def drop_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    (folder / "older").mkdir(parents=True)
    (folder / "rates-2025-03.csv").write_bytes(RATES)
    (folder / "rates-2025-04.csv.gz").write_bytes(gzip.compress(RATES.replace(b"2025-03", b"2025-04")))
    (folder / ".partial.csv").write_bytes(b"date,cur")  # hidden: an upload in progress
    (folder / "README.txt").write_bytes(b"not a rates file")
    (folder / "older" / "rates-2025-02.csv").write_bytes(RATES.replace(b"2025-03", b"2025-02"))
    return folder


@pytest.mark.parametrize(
    ("recursive", "expected"),
    [
        pytest.param(False, ["rates-2025-03.csv", "rates-2025-04.csv.gz"], id="flat"),
        pytest.param(True, ["older/rates-2025-02.csv", "rates-2025-03.csv", "rates-2025-04.csv.gz"], id="recursive"),
    ],
)
def test_local_files_are_imported_once(
    any_lake: Lake, clock: FakeClock, contracts_dir: Path, drop_dir: Path, recursive: bool, expected: list[str]
) -> None:
    doc = repo_contract("currency_rates")
    doc["ingest"] = {
        "kind": "local_files",
        "path": {"env": "RATES_DROP_DIR"},
        "pattern": "*.csv*",
        "recursive": recursive,
    }
    write_contract(contracts_dir, doc)
    runner = make_runner(any_lake, contracts_dir, clock, {"RATES_DROP_DIR": str(drop_dir)})
    report = runner.run_once("currency_rates")

    assert report.status == "ok", report.error
    assert report.counters["files_written"] == len(expected)
    landed = bronze(any_lake, "currency_rates/")
    assert sorted(landed.values()) == sorted((drop_dir / name).read_bytes() for name in expected)
    assert sum(key.endswith(".csv.gz") for key in landed) == 1
    for key in landed:
        meta = json.loads(any_lake.bronze.read_bytes(f"{META_PREFIX}/{key}.json"))
        assert meta["requests"][0]["method"] == "FILE"
        assert meta["requests"][0]["url"].startswith("file:///")

    again = runner.run_once("currency_rates")
    assert again.counters["files_unchanged"] == len(expected)
    assert bronze(any_lake, "currency_rates/") == landed


def test_a_missing_folder_fails_clearly(
    local_lake: Lake, clock: FakeClock, contracts_dir: Path, tmp_path: Path
) -> None:
    doc = repo_contract("currency_rates")
    doc["ingest"] = {"kind": "local_files", "path": str(tmp_path / "nowhere")}
    write_contract(contracts_dir, doc)
    report = make_runner(local_lake, contracts_dir, clock, {}).run_once("currency_rates")
    assert isinstance(report.exception, IngestConfigError)
    assert "does not exist" in str(report.error)


def test_import_takes_files_for_any_source(
    local_lake: Lake, clock: FakeClock, rates_contract: Path, drop_dir: Path
) -> None:
    runner = make_runner(local_lake, rates_contract, clock, {})
    report = runner.import_path("currency_rates", drop_dir / "rates-2025-03.csv")
    assert report.status == "ok", report.error
    assert payloads(local_lake, "currency_rates") == [RATES]
    assert runner.import_path("currency_rates", drop_dir, pattern="*.csv").counters["files_unchanged"] == 1
