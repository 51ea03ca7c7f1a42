"""rest_json sources against a real local HTTP server: pages, windows, the cap, details, the cursor,
duplicates. Runs on the local lake and on S3 (the moto server) where the storage matters."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from ingest_fakes import (
    DAY0,
    FakeClock,
    FakeHh,
    Vacancy,
    bronze,
    dumps,
    make_runner,
    payloads,
    spread,
    status,
    vacancies_contracts,
    write_contract,
)
from werkzeug import Response

from lakehouse_common.storage import Lake
from lakehouse_ingestor.exceptions import ResultCapError
from lakehouse_ingestor.landing import INDEX_PREFIX, META_PREFIX
from lakehouse_ingestor.state import StateStore


def env(hh: FakeHh) -> dict[str, str]:
    return {"LAKEHOUSE_INGESTOR_HH_BASE_URL": hh.url}


def items_of(lake: Lake) -> list[str]:
    """Every vacancy id in the landed search pages, in landing order of the pages' keys."""
    return [item["id"] for body in payloads(lake, "vacancies") for item in json.loads(body)["items"]]


def detail_lines(lake: Lake) -> list[bytes]:
    return [line for body in payloads(lake, "vacancy_details") for line in body.splitlines()]


# -- page-number pagination ---------------------------------------------------------------------
def test_page_number_pagination_lands_every_page_byte_for_byte(
    any_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(250, DAY0, timedelta(hours=20))
    vacancies_contracts(contracts_dir, details=None)
    clock.set(DAY0 + timedelta(days=1, minutes=30))  # one whole day window, lag 10 min
    report = make_runner(any_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert report.status == "ok", report.error
    served = [body for target, body in fake_hh.served if target.startswith("/vacancies?")]
    assert len(served) == 4  # pages 0-2 of the day window, plus the short window up to now - lag
    assert payloads(any_lake, "vacancies") == sorted(served[:3])  # byte for byte; the empty page is not kept
    assert report.counters["pages_empty"] == 1
    assert sorted(items_of(any_lake)) == sorted(v.id for v in fake_hh.vacancies)
    pages = [q for q in fake_hh.search_requests() if q["date_from"] == "2025-03-01T00:00:00+0300"]
    assert [q["page"] for q in pages] == ["0", "1", "2"]
    assert {q["per_page"] for q in pages} == {"100"}
    assert report.counters["pages_written"] == 3


def test_each_payload_has_metadata_and_an_index_marker(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(120, DAY0, timedelta(hours=20))
    vacancies_contracts(contracts_dir, details=None)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    objects = bronze(local_lake, "vacancies/")
    assert len(objects) == 2
    for key, data in objects.items():
        meta = json.loads(local_lake.bronze.read_bytes(f"{META_PREFIX}/{key}.json"))
        assert meta["source"] == "vacancies"
        assert meta["key"] == key
        assert meta["size"] == len(data)
        assert meta["sha256"].startswith(key.rsplit("-", 1)[1].split(".")[0])
        (request,) = meta["requests"]
        assert request["method"] == "GET"
        assert request["url"].startswith(f"{fake_hh.url}/vacancies?")
        assert "per_page=100" in request["url"]
        assert request["headers"]["User-Agent"].startswith("lakehouse-tests/")
        assert meta["context"]["window"]["from"] == "2025-03-01T00:00:00+03:00"
        assert meta["fetched_at"].startswith("2025-03-0")
        marker = local_lake.bronze.read_bytes(f"{INDEX_PREFIX}/vacancies/{meta['sha256']}")
        assert marker.decode() == key


def test_bronze_keys_follow_the_layout(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(5, DAY0, timedelta(hours=1))
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(hours=23, minutes=59, seconds=59))
    make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    keys = sorted(bronze(local_lake, "vacancies/")) + sorted(bronze(local_lake, "vacancy_details/"))
    assert keys
    pattern = r"^(vacancies|vacancy_details)/ingest_date=2025-03-01/20250301T2\d{5}Z-[0-9a-f]{16}\.(json|ndjson)$"
    for key in keys:
        assert re.match(pattern, key), key


# -- windows and the 2000-result cap --------------------------------------------------------------
def test_a_window_past_the_cap_is_split_until_every_slice_fits(
    any_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(4500, DAY0, timedelta(days=1))
    vacancies_contracts(contracts_dir, details=None)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    report = make_runner(any_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert report.status == "ok", report.error
    ids = items_of(any_lake)
    assert sorted(ids) == sorted(v.id for v in fake_hh.vacancies)  # nothing cut off
    assert len(ids) == len(set(ids))  # and nothing twice
    assert report.counters["windows_split"] == 3  # the day, then both of its halves
    assert report.counters["windows"] == 4
    for query in fake_hh.search_requests():
        assert (int(query["page"]) + 1) * int(query["per_page"]) <= 2000
    assert StateStore(any_lake.bronze).load("vacancies").cursor == DAY0 + timedelta(days=1)


def test_a_slice_that_cannot_fit_fails_clearly_and_keeps_the_cursor(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    burst = DAY0 + timedelta(hours=5)
    fake_hh.vacancies = [Vacancy(str(5000 + i), burst) for i in range(2001)]  # all in the same second
    vacancies_contracts(contracts_dir, details=None)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    report = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert report.status == "failed"
    assert isinstance(report.exception, ResultCapError)
    assert "min_span" in str(report.error)
    assert "2025-03-01T05:00:00+03:00" in str(report.error)
    # The slices before the dense second are complete, so the cursor stops right at it.
    assert StateStore(local_lake.bronze).load("vacancies").cursor == burst
    assert items_of(local_lake) == []


def test_unwindowed_query_past_the_cap_fails_instead_of_cutting(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(2100, DAY0, timedelta(days=1))
    vacancies_contracts(contracts_dir, details=None, window=None)
    report = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    assert report.status == "failed"
    assert "finds 2100 results" in str(report.error)
    assert "add an ingest.window" in str(report.error)


# -- the incremental cursor -------------------------------------------------------------------------
def test_the_second_run_fetches_only_the_new_window(
    any_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(30, DAY0, timedelta(days=3))
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=2))
    first = make_runner(any_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    assert first.status == "ok", first.error
    cursor = DAY0 + timedelta(days=2) - timedelta(minutes=10)
    assert first.cursor_after == cursor
    assert StateStore(any_lake.bronze).load("vacancies").cursor == cursor
    fake_hh.served.clear()

    clock.set(DAY0 + timedelta(days=3))
    second = make_runner(any_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    assert second.status == "ok", second.error
    queries = fake_hh.search_requests()
    assert {q["date_from"] for q in queries} == {"2025-03-02T23:50:00+0300"}
    assert {q["date_to"] for q in queries} == {"2025-03-03T23:50:00+0300"}
    assert second.cursor_before == cursor
    assert second.cursor_after == DAY0 + timedelta(days=3) - timedelta(minutes=10)
    ids = items_of(any_lake)
    published = {v.id for v in fake_hh.vacancies if v.published < second.cursor_after}
    assert sorted(ids) == sorted(published)


def test_nothing_to_do_when_the_cursor_is_current(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=1))
    make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    fake_hh.served.clear()
    again = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    assert again.status == "ok"
    assert fake_hh.served == []


def test_until_bounds_the_windows(local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path) -> None:
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=10))
    report = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once(
        "vacancies", until=DAY0 + timedelta(days=2)
    )
    assert report.cursor_after == DAY0 + timedelta(days=2)
    assert report.counters["windows"] == 2


# -- details fan-out ------------------------------------------------------------------------------
def test_details_of_each_page_land_as_one_ndjson_object(
    any_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(150, DAY0, timedelta(hours=20))
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    report = make_runner(any_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert report.status == "ok", report.error
    objects = bronze(any_lake, "vacancy_details/")
    assert len(objects) == 2  # pages of 100 and 50 items
    assert sorted(len(body.splitlines()) for body in objects.values()) == [50, 100]
    served = {target.rsplit("/", 1)[-1]: body for target, body in fake_hh.served if target.startswith("/vacancies/")}
    assert sorted(detail_lines(any_lake)) == sorted(served.values())  # each body byte for byte, one per line
    docs = [json.loads(line) for line in detail_lines(any_lake)]
    assert all(d["key_skills"] for d in docs)
    assert report.counters["details_fetched"] == 150


def test_known_details_are_not_fetched_again(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(10, DAY0, timedelta(hours=20))
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    # The next day: two new vacancies, and one of yesterday's republished (same id, new date).
    republished = Vacancy(fake_hh.vacancies[3].id, DAY0 + timedelta(days=1, hours=2))
    fake_hh.vacancies += [*spread(2, DAY0 + timedelta(days=1, hours=3), timedelta(hours=1), first_id=9000), republished]
    fake_hh.served.clear()
    clock.set(DAY0 + timedelta(days=2, minutes=10))
    report = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert report.status == "ok", report.error
    assert sorted(fake_hh.requests_to("/vacancies/")) == ["/vacancies/9000", "/vacancies/9001"]
    assert report.counters["details_known"] == 1
    ids = [json.loads(line)["id"] for line in detail_lines(local_lake)]
    assert sorted(ids) == sorted({*(v.id for v in fake_hh.vacancies)})
    state = StateStore(local_lake.bronze).load("vacancies")
    assert sum(len(day) for day in state.details.values()) == 12


def test_a_removed_vacancy_is_skipped_and_a_pretty_printed_detail_stays_one_line(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    plain, pretty, removed = fake_hh.vacancies = spread(3, DAY0, timedelta(hours=3))
    fake_hh.fail(f"/vacancies/{removed.id}", status(404, dumps({"errors": [{"type": "not_found"}]})))
    fake_hh.detail_bodies[pretty.id] = json.dumps(pretty.detail(), ensure_ascii=False, indent=2).encode() + b"\r\n"
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=1))
    report = make_runner(local_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")

    assert report.status == "ok", report.error
    assert report.counters["details_missing"] == 1
    ((key, body),) = bronze(local_lake, "vacancy_details/").items()
    docs = {json.loads(line)["id"]: json.loads(line) for line in body.splitlines()}
    assert set(docs) == {plain.id, pretty.id}
    assert docs[pretty.id] == pretty.detail()  # same value, line breaks now spaces
    meta = json.loads(local_lake.bronze.read_bytes(f"{META_PREFIX}/{key}.json"))
    assert meta["context"]["missing_ids"] == [removed.id]
    assert meta["context"]["line_breaks_replaced_by_spaces"] == [pretty.id]
    assert len(meta["requests"]) == 2
    # The removed one is remembered too: it is not asked for again.
    remembered = StateStore(local_lake.bronze).load("vacancies").details
    assert remembered == {"2025-03-01": sorted([plain.id, pretty.id, removed.id])}  # by UTC fetch day


# -- duplicates -------------------------------------------------------------------------------------
def test_identical_payloads_are_not_written_twice(
    any_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    fake_hh.vacancies = spread(150, DAY0, timedelta(hours=20))
    vacancies_contracts(contracts_dir)
    clock.set(DAY0 + timedelta(days=1, minutes=10))
    make_runner(any_lake, contracts_dir, clock, env(fake_hh)).run_once("vacancies")
    before = bronze(any_lake, "")
    # Forget the cursor and the known details: the same windows are fetched again, an hour later.
    any_lake.bronze.delete([StateStore.key("vacancies")])
    clock.set(DAY0 + timedelta(days=1, hours=1))
    again = make_runner(any_lake, contracts_dir, clock, env(fake_hh)).run_once(
        "vacancies", until=DAY0 + timedelta(days=1, minutes=10) - timedelta(minutes=10)
    )

    assert again.status == "ok", again.error
    assert again.counters["pages_fetched"] >= 2
    assert again.counters["pages_written"] == 0
    assert again.counters["detail_objects_written"] == 0
    after = bronze(any_lake, "")
    data_keys = {k for k in after if not k.startswith("_state/")}
    assert data_keys == {k for k in before if not k.startswith("_state/")}


# -- other pagination styles -------------------------------------------------------------------------
def _events_contract(directory: Path, base_url: str, pagination: dict[str, Any], path: str) -> None:
    write_contract(
        directory,
        {
            "name": "events",
            "format": {"type": "json", "records_path": "data"},
            "columns": [{"name": "event_id", "source": "id"}],
            "ingest": {
                "kind": "rest_json",
                "base_url": base_url,
                "path": path,
                "headers": {"User-Agent": "lakehouse-tests/1.0"},
                "params": {"kind": "all"},
                "pagination": pagination,
            },
        },
    )


def test_next_link_pagination_follows_links_until_none(
    any_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    server = fake_hh.server
    pages = [
        {"data": [{"id": 1}, {"id": 2}], "links": {"next": "/events/p2?token=b"}},
        {"data": [{"id": 3}], "links": {"next": f"{fake_hh.url}/events/p3"}},
        {"data": [{"id": 4}], "links": {"next": None}},
    ]
    server.expect_request("/events", query_string="kind=all").respond_with_data(dumps(pages[0]))
    server.expect_request("/events/p2", query_string="token=b").respond_with_data(dumps(pages[1]))
    server.expect_request("/events/p3").respond_with_data(dumps(pages[2]))
    _events_contract(
        contracts_dir, fake_hh.url, {"type": "next_link", "next_field": "links.next", "items_field": "data"}, "/events"
    )
    report = make_runner(any_lake, contracts_dir, clock, {}).run_once("events")

    assert report.status == "ok", report.error
    assert payloads(any_lake, "events") == sorted(dumps(p) for p in pages)
    assert [r.path for r, _ in server.log] == ["/events", "/events/p2", "/events/p3"]


def test_cursor_pagination_sends_the_cursor_back(
    local_lake: Lake, fake_hh: FakeHh, clock: FakeClock, contracts_dir: Path
) -> None:
    server = fake_hh.server
    pages = {
        "": {"data": [{"id": 1}], "meta": {"next_cursor": "c2", "has_more": True}},
        "c2": {"data": [{"id": 2}], "meta": {"next_cursor": "c3", "has_more": True}},
        "c3": {"data": [{"id": 3}], "meta": {"next_cursor": "c4", "has_more": False}},
    }
    server.expect_request("/feed").respond_with_handler(
        lambda request: Response(dumps(pages[request.args.get("cursor", "")]))
    )
    pagination = {
        "type": "cursor",
        "cursor_field": "meta.next_cursor",
        "cursor_param": "cursor",
        "has_more_field": "meta.has_more",
        "items_field": "data",
    }
    _events_contract(contracts_dir, fake_hh.url, pagination, "/feed")
    report = make_runner(local_lake, contracts_dir, clock, {}).run_once("events")

    assert report.status == "ok", report.error
    assert [r.args.get("cursor") for r, _ in server.log] == [None, "c2", "c3"]
    assert all(r.args.get("kind") == "all" for r, _ in server.log)
    assert len(payloads(local_lake, "events")) == 3
