"""The sample API over real HTTP: hh.ru's shapes and caps, details, User-Agent, faults, rates, the CLI."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.util import SKIP_HEADER

from lakehouse_ingestor.cli import EXIT_ERROR, main
from lakehouse_ingestor.sample import MSK, Sample, SampleConfig, generate_sample
from lakehouse_ingestor.sample_api import SampleApiHandle, SampleCatalog, start_sample_api

# 2500 vacancies in 30 days: more than hh.ru's 2000 reachable results for the whole period.
CONFIG = SampleConfig(seed=42, size=2500, days=30)
TIMEOUT = 10
UA = {"User-Agent": "lakehouse-tests/1.0 (tests@example.org)"}


@pytest.fixture(scope="module")
def sample() -> Sample:
    return generate_sample(CONFIG)


@pytest.fixture(scope="module")
def catalog(sample: Sample) -> SampleCatalog:
    return SampleCatalog.from_sample(sample)


@pytest.fixture(scope="module")
def api(catalog: SampleCatalog) -> Iterator[SampleApiHandle]:
    with start_sample_api(catalog, fault_rate=0.0) as handle:
        yield handle


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(UA)
        yield session


def search(http: requests.Session, api: SampleApiHandle, **params: Any) -> requests.Response:
    return http.get(f"{api.url}/vacancies", params=params, timeout=TIMEOUT)


def stamp(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["published_at"])


# -- GET /vacancies ---------------------------------------------------------------------------------
def test_search_page_shape(http: requests.Session, api: SampleApiHandle) -> None:
    response = search(http, api)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert b"\n" not in response.content  # compact JSON
    assert not response.content.isascii()  # UTF-8 Cyrillic, not \\u escapes
    doc = response.json()
    assert list(doc) == [
        "items",
        "found",
        "pages",
        "page",
        "per_page",
        "clusters",
        "arguments",
        "fixes",
        "suggests",
        "alternate_url",
    ]
    assert (doc["found"], doc["page"], doc["per_page"]) == (CONFIG.size, 0, 20)
    assert len(doc["items"]) == 20
    assert {"id", "name", "area", "salary", "published_at", "employer", "snippet"} <= set(doc["items"][0])


@pytest.mark.parametrize(
    ("params", "argument"),
    [
        pytest.param({"per_page": 101}, "per_page", id="per-page-over-100"),
        pytest.param({"per_page": 100, "page": 20}, "page", id="page-past-the-2000-cap"),
        pytest.param({"per_page": 30, "page": 66}, "page", id="uneven-page-past-the-cap"),
        pytest.param({"page": "first"}, "page", id="page-not-a-number"),
        pytest.param({"date_from": "last tuesday"}, "date_from", id="bad-date"),
    ],
)
def test_search_refusals(http: requests.Session, api: SampleApiHandle, params: dict[str, Any], argument: str) -> None:
    response = search(http, api, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [{"type": "bad_argument", "value": argument}]
    assert body["description"]


@pytest.mark.parametrize(
    ("per_page", "pages"),
    [
        pytest.param(100, 20, id="100-per-page"),
        pytest.param(30, 66, id="30-per-page"),
        pytest.param(7, 285, id="7-per-page"),
    ],
)
def test_found_is_the_true_total_and_pages_stop_at_the_cap(
    http: requests.Session, api: SampleApiHandle, per_page: int, pages: int
) -> None:
    doc = search(http, api, per_page=per_page).json()
    assert doc["found"] == CONFIG.size > 2000
    assert doc["pages"] == pages == min(math.ceil(CONFIG.size / per_page), 2000 // per_page)
    last = search(http, api, per_page=per_page, page=pages - 1)
    assert last.status_code == 200
    assert len(last.json()["items"]) == per_page
    assert search(http, api, per_page=per_page, page=pages).status_code == 400


def test_windows_filter_by_date_and_pages_cover_them_newest_first(
    http: requests.Session, api: SampleApiHandle, catalog: SampleCatalog
) -> None:
    date_from, date_to = "2025-01-08T00:00:00+0300", "2025-01-12T12:00:00+03:00"
    first = search(http, api, date_from=date_from, date_to=date_to, per_page=50).json()
    start, end = datetime(2025, 1, 8, tzinfo=MSK), datetime(2025, 1, 12, 12, tzinfo=MSK)
    assert first["found"] == sum(1 for v in catalog.vacancies if start <= v.published < end)
    assert 50 < first["found"] <= 2000
    items = list(first["items"])
    for page in range(1, first["pages"]):
        items += search(http, api, date_from=date_from, date_to=date_to, per_page=50, page=page).json()["items"]
    assert len(items) == len({i["id"] for i in items}) == first["found"]
    stamps = [stamp(i) for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert all(start <= s < end for s in stamps)
    beyond = search(http, api, date_from=date_from, date_to=date_to, per_page=50, page=first["pages"] + 2).json()
    assert beyond["items"] == []
    assert beyond["found"] == first["found"]


def test_adjacent_windows_split_without_overlap(http: requests.Session, api: SampleApiHandle) -> None:
    def found(date_from: str, date_to: str) -> int:
        return int(search(http, api, date_from=date_from, date_to=date_to, per_page=1).json()["found"])

    whole = found("2025-01-01", "2025-01-31")
    assert whole > 2000  # too many for one query: split it like the ingestor will
    assert found("2025-01-01", "2025-01-16") + found("2025-01-16", "2025-01-31") == whole


@pytest.mark.parametrize(
    "date_from",
    [
        pytest.param("2025-01-10", id="bare-date"),
        pytest.param("2025-01-10T00:00:00", id="naive"),
        pytest.param("2025-01-10T00:00:00+0300", id="basic-offset"),
        pytest.param("2025-01-10T00:00:00+03:00", id="extended-offset"),
        pytest.param("2025-01-09T21:00:00Z", id="utc"),
    ],
)
def test_date_formats_mean_the_same_instant(http: requests.Session, api: SampleApiHandle, date_from: str) -> None:
    doc = search(http, api, date_from=date_from, date_to="2025-01-11", per_page=100).json()
    reference = search(http, api, date_from="2025-01-10T00:00:00+03:00", date_to="2025-01-11", per_page=100).json()
    assert doc["found"] == reference["found"] > 0
    assert doc["items"] == reference["items"]


def test_area_and_text_filters(http: requests.Session, api: SampleApiHandle, catalog: SampleCatalog) -> None:
    doc = search(http, api, area="2", per_page=100).json()
    assert doc["found"] == sum(1 for v in catalog.vacancies if v.area == "2") > 0
    assert {i["area"]["id"] for i in doc["items"]} == {"2"}
    both = http.get(f"{api.url}/vacancies", params=[("area", "1"), ("area", "2")], timeout=TIMEOUT).json()
    assert both["found"] == doc["found"] + search(http, api, area="1").json()["found"]
    go = search(http, api, text="Go", per_page=100).json()
    assert 0 < go["found"] < CONFIG.size


# -- GET /vacancies/{id} ----------------------------------------------------------------------------
def test_details_of_a_page(http: requests.Session, api: SampleApiHandle, catalog: SampleCatalog) -> None:
    items = search(http, api, per_page=100, page=3).json()["items"]
    for item in items:
        response = http.get(f"{api.url}/vacancies/{item['id']}", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.content == catalog.by_id[item["id"]].detail
        doc = response.json()
        assert doc["id"] == item["id"]
        assert "key_skills" in doc
        assert "description" in doc


def test_the_cut_detail_is_served_whole(http: requests.Session, api: SampleApiHandle, sample: Sample) -> None:
    broken = next(b.record for b in sample.bad_records if b.rule == "not valid JSON")
    response = http.get(f"{api.url}/vacancies/{broken}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["id"] == broken


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/vacancies/1", id="unknown-id"),
        pytest.param("/vacancies/abc", id="not-an-id"),
        pytest.param("/employers/1", id="unknown-path"),
    ],
)
def test_not_found(http: requests.Session, api: SampleApiHandle, path: str) -> None:
    response = http.get(f"{api.url}{path}", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.json()["errors"] == [{"type": "not_found"}]


def test_other_methods_get_json_errors(http: requests.Session, api: SampleApiHandle) -> None:
    response = http.post(f"{api.url}/vacancies", json={}, timeout=TIMEOUT)
    assert response.status_code == 501
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["errors"] == [{"type": "not_implemented"}]


# -- headers ----------------------------------------------------------------------------------------
def test_user_agent_is_required(api: SampleApiHandle) -> None:
    without = {"User-Agent": SKIP_HEADER}  # requests and urllib3 would send their own otherwise
    response = requests.get(f"{api.url}/vacancies", headers=without, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"type": "bad_user_agent", "value": "header_missing"}]
    with_hh_header = requests.get(
        f"{api.url}/vacancies", headers={**without, "HH-User-Agent": "tests"}, timeout=TIMEOUT
    )
    assert with_hh_header.status_code == 200


# -- rates ------------------------------------------------------------------------------------------
def test_rates_csv_is_the_generators_bytes(http: requests.Session, api: SampleApiHandle, sample: Sample) -> None:
    response = http.get(f"{api.url}/rates.csv", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.content == next(o.data for o in sample.objects if o.source == "currency_rates")


def test_rates_json(http: requests.Session, api: SampleApiHandle, sample: Sample) -> None:
    rows = http.get(f"{api.url}/rates.json", timeout=TIMEOUT).json()["rates"]
    csv_lines = next(o.data for o in sample.objects if o.source == "currency_rates").decode().splitlines()
    assert len(rows) == len(csv_lines) - 1
    assert rows[0] == dict(zip(("date", "currency", "rate"), csv_lines[1].split(","), strict=True))


# -- faults -----------------------------------------------------------------------------------------
def statuses(api: SampleApiHandle, paths: list[str], rounds: int) -> list[int]:
    with requests.Session() as session:
        session.headers.update(UA)
        return [session.get(f"{api.url}{p}", timeout=TIMEOUT).status_code for _ in range(rounds) for p in paths]


PATHS = ["/rates.csv", "/vacancies?per_page=5", "/vacancies?per_page=5&page=1"] + [
    f"/vacancies?page={n}&date_from=2025-01-0{n}" for n in range(1, 8)
]


def test_faults_alternate_at_rate_one(catalog: SampleCatalog) -> None:
    with start_sample_api(catalog, fault_rate=1.0, fault_seed=1) as handle, requests.Session() as session:
        session.headers.update(UA)
        url = f"{handle.url}/vacancies?per_page=5"
        first, second, third = (session.get(url, timeout=TIMEOUT) for _ in range(3))
        assert first.status_code in {429, 500, 503}
        assert second.status_code == 200
        assert third.status_code in {429, 500, 503}
        assert first.json()["errors"][0]["type"] in {"too_many_requests", "internal_error", "service_unavailable"}
        for response in (first, third):
            assert (response.headers.get("Retry-After") == "1") == (response.status_code == 429)


def test_faults_are_deterministic_and_never_repeat(catalog: SampleCatalog) -> None:
    runs = []
    for _ in range(2):
        with start_sample_api(catalog, fault_rate=0.4, fault_seed=9) as handle:
            runs.append(statuses(handle, PATHS, rounds=4))
            counted = handle.api.statuses()
        assert sum(counted.values()) == len(PATHS) * 4
    assert runs[0] == runs[1]
    assert {429, 500, 503} & set(runs[0])
    per_path = [runs[0][i :: len(PATHS)] for i in range(len(PATHS))]
    for outcomes in per_path:
        assert all(a == 200 or b == 200 for a, b in itertools.pairwise(outcomes))


def test_a_retrying_client_always_gets_through(catalog: SampleCatalog) -> None:
    with start_sample_api(catalog, fault_rate=0.5, fault_seed=3) as handle, requests.Session() as session:
        session.headers.update(UA)
        for path in PATHS:
            attempts = [session.get(f"{handle.url}{path}", timeout=TIMEOUT) for _ in range(2)]
            assert 200 in {a.status_code for a in attempts}


# -- the CLI ----------------------------------------------------------------------------------------
def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {seconds} s")


@pytest.mark.parametrize("stop", [pytest.param(signal.SIGTERM, id="sigterm"), pytest.param(signal.SIGINT, id="sigint")])
def test_cli_serves_until_signalled(tmp_path: Path, stop: signal.Signals) -> None:
    ready = tmp_path / "run" / "sample-api.url"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_INGESTOR_")}
    command = [sys.executable, "-m", "lakehouse_ingestor", "sample-api", "--port", "0", "--ready-file", str(ready)]
    command += ["--size", "200", "--days", "20", "--fault-rate", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = wait_for(ready, process)
        doc = requests.get(f"{url}/vacancies", headers=UA, timeout=TIMEOUT).json()
        assert doc["found"] == 200
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert f"listening on {url}" in out
    assert "stopped: 1 responses (200: 1)" in out
    assert not ready.exists()


def test_cli_port_in_use(api: SampleApiHandle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample-api", "--port", str(api.port), "--size", "50", "--days", "5"]) == EXIT_ERROR
    assert "cannot listen" in capsys.readouterr().err


def test_handle_reports_its_url(api: SampleApiHandle) -> None:
    assert api.url == f"http://127.0.0.1:{api.port}"
    assert api.port > 0
    assert json.loads(requests.get(api.url, headers=UA, timeout=TIMEOUT).content)["vacancies"] == CONFIG.size
