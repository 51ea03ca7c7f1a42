"""The sample API's logic without sockets: hh.ru's query rules, the catalog, the fault schedule."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from lakehouse_ingestor.exceptions import SampleApiError
from lakehouse_ingestor.sample import AREAS, MSK, Sample, SampleConfig, generate_sample
from lakehouse_ingestor.sample_api import (
    COUNTRY_OF_AREA,
    ApiRefusal,
    FaultInjector,
    SampleApi,
    SampleCatalog,
    SearchQuery,
    parse_hh_datetime,
)

SMALL = SampleConfig(seed=3, size=300, days=45)


@pytest.fixture(scope="module")
def small_sample() -> Sample:
    return generate_sample(SMALL)


@pytest.fixture(scope="module")
def catalog(small_sample: Sample) -> SampleCatalog:
    return SampleCatalog.from_sample(small_sample)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2025-03-01T10:00:00+0300", datetime(2025, 3, 1, 10, tzinfo=MSK), id="basic-offset"),
        pytest.param("2025-03-01T10:00:00+03:00", datetime(2025, 3, 1, 10, tzinfo=MSK), id="extended-offset"),
        pytest.param("2025-03-01T07:00:00Z", datetime(2025, 3, 1, 10, tzinfo=MSK), id="zulu"),
        pytest.param("2025-03-01T10:00:00", datetime(2025, 3, 1, 10, tzinfo=MSK), id="naive-is-moscow"),
        pytest.param("2025-03-01", datetime(2025, 3, 1, tzinfo=MSK), id="bare-date-is-moscow-midnight"),
        pytest.param("2025-03-01T10:00:00 0300", datetime(2025, 3, 1, 10, tzinfo=MSK), id="unescaped-plus"),
        pytest.param(
            "2025-03-01T10:00:00-0500",
            datetime(2025, 3, 1, 10, tzinfo=timezone(timedelta(hours=-5))),
            id="negative-offset",
        ),
    ],
)
def test_parse_hh_datetime(text: str, expected: datetime) -> None:
    parsed = parse_hh_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", [pytest.param("yesterday", id="word"), pytest.param("2025-13-01", id="month-13")])
def test_parse_hh_datetime_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hh_datetime(text)


@pytest.mark.parametrize(
    ("pairs", "argument"),
    [
        pytest.param([("per_page", "101")], "per_page", id="per-page-over-100"),
        pytest.param([("per_page", "0")], "per_page", id="per-page-zero"),
        pytest.param([("per_page", "many")], "per_page", id="per-page-not-a-number"),
        pytest.param([("page", "-1")], "page", id="negative-page"),
        pytest.param([("page", "20"), ("per_page", "100")], "page", id="past-the-2000-cap"),
        pytest.param([("page", "66"), ("per_page", "30")], "page", id="past-the-cap-uneven"),
        pytest.param([("page", "100")], "page", id="past-the-cap-default-per-page"),
        pytest.param([("date_from", "soon")], "date_from", id="bad-date"),
        pytest.param([("date_from", "2025-03-02"), ("date_to", "2025-03-01")], "date_from", id="reversed-window"),
        pytest.param([("order_by", "salary_desc")], "order_by", id="other-order"),
    ],
)
def test_search_query_refusals(pairs: list[tuple[str, str]], argument: str) -> None:
    with pytest.raises(ApiRefusal) as caught:
        SearchQuery.parse(pairs)
    assert caught.value.status == 400
    body = json.loads(caught.value.body())
    assert body["errors"] == [{"type": "bad_argument", "value": argument}]
    assert body["bad_argument"] == argument
    assert body["description"]


@pytest.mark.parametrize(
    ("pairs", "page", "per_page"),
    [
        pytest.param([], 0, 20, id="defaults"),
        pytest.param([("page", "19"), ("per_page", "100")], 19, 100, id="last-page-under-the-cap"),
        pytest.param([("page", "65"), ("per_page", "30")], 65, 30, id="last-uneven-page-under-the-cap"),
        pytest.param([("order_by", "publication_time")], 0, 20, id="publication-order"),
    ],
)
def test_search_query_accepts(pairs: list[tuple[str, str]], page: int, per_page: int) -> None:
    query = SearchQuery.parse(pairs)
    assert (query.page, query.per_page) == (page, per_page)


def test_catalog_holds_every_vacancy_and_detail(small_sample: Sample, catalog: SampleCatalog) -> None:
    assert len(catalog.vacancies) == small_sample.vacancies
    lines = [
        line
        for o in small_sample.objects
        if o.source == "vacancy_details"
        for line in o.data.rstrip(b"\n").split(b"\n")
    ]
    served = {v.detail for v in catalog.vacancies}
    broken = [line for line in lines if line not in served]
    assert len(broken) == 1  # the line the generator cut in half ...
    for vacancy in catalog.vacancies:  # ... is served whole, like every other detail
        assert json.loads(vacancy.detail)["id"] == vacancy.id
    assert catalog.rates_csv == next(o.data for o in small_sample.objects if o.source == "currency_rates")


def test_search_windows_are_half_open_and_newest_first(catalog: SampleCatalog) -> None:
    start = datetime(2025, 1, 10, tzinfo=MSK)
    middle = catalog.vacancies[len(catalog.vacancies) // 2].published  # a publication instant: the edge case
    end = datetime(2025, 2, 10, tzinfo=MSK)
    whole = catalog.search(SearchQuery(date_from=start, date_to=end, per_page=100, page=0))
    left = catalog.search(SearchQuery(date_from=start, date_to=middle, per_page=100))
    right = catalog.search(SearchQuery(date_from=middle, date_to=end, per_page=100))
    assert whole.found == left.found + right.found
    assert whole.found == sum(1 for v in catalog.vacancies if start <= v.published < end)
    stamps = [datetime.fromisoformat(i["published_at"]) for i in right.items]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[-1] == middle  # date_from is inclusive
    assert all(datetime.fromisoformat(i["published_at"]) < middle for i in left.items)  # date_to is exclusive


def test_search_filters_by_area_role_and_text(catalog: SampleCatalog) -> None:
    moscow = catalog.search(SearchQuery(areas=frozenset({"1"}), per_page=100))
    assert moscow.found == sum(1 for v in catalog.vacancies if v.area == "1") > 0
    assert {i["area"]["id"] for i in moscow.items} == {"1"}
    devops = catalog.search(SearchQuery(roles=frozenset({"160"}), per_page=100))
    assert devops.found > 0
    assert all("160" in {r["id"] for r in i["professional_roles"]} for i in devops.items)
    python = catalog.search(SearchQuery(text="PYTHON", per_page=100))
    assert 0 < python.found < len(catalog.vacancies)
    assert catalog.search(SearchQuery(text="python no-such-word")).found == 0


def test_area_filter_knows_the_countries(catalog: SampleCatalog) -> None:
    assert {a.id for a in AREAS} <= set(COUNTRY_OF_AREA)
    total = len(catalog.vacancies)
    russia = catalog.search(SearchQuery(areas=frozenset({"113"}), per_page=100))
    assert 0 < russia.found < total
    assert all(COUNTRY_OF_AREA[i["area"]["id"]] == "113" for i in russia.items)
    countries = ("113", "40", "16", "97")
    assert sum(catalog.search(SearchQuery(areas=frozenset({c}))).found for c in countries) == total
    assert catalog.search(SearchQuery(areas=frozenset(countries))).found == total


def test_respond_without_user_agent(catalog: SampleCatalog) -> None:
    api = SampleApi(catalog, FaultInjector(0.0, seed=1))
    for agent in (None, "", "  "):
        response = api.respond("/vacancies", agent)
        assert response.status == 400
        assert json.loads(response.body)["errors"] == [{"type": "bad_user_agent", "value": "header_missing"}]
    assert api.statuses() == {400: 3}


# -- fault injection --------------------------------------------------------------------------------
REQUESTS = [f"GET /vacancies/{n}?" for n in range(400)]


def _schedule(injector: FaultInjector, rounds: int) -> list[int | None]:
    return [injector.next_fault(r) for _ in range(rounds) for r in REQUESTS]


def test_faults_are_deterministic() -> None:
    first = _schedule(FaultInjector(0.3, seed=7), rounds=3)
    assert first == _schedule(FaultInjector(0.3, seed=7), rounds=3)
    assert first != _schedule(FaultInjector(0.3, seed=8), rounds=3)


@pytest.mark.parametrize(
    "rate", [pytest.param(0.05, id="demo-like"), pytest.param(0.5, id="half"), pytest.param(1.0, id="always")]
)
def test_faults_never_hit_a_request_twice_in_a_row(rate: float) -> None:
    injector = FaultInjector(rate, seed=11)
    history: dict[str, list[int | None]] = {r: [] for r in REQUESTS}
    for _ in range(6):
        for request in REQUESTS:
            history[request].append(injector.next_fault(request))
    for outcomes in history.values():
        assert all(a is None or b is None for a, b in itertools.pairwise(outcomes))
    if rate == 1.0:  # every attempt that may fail does: fault, data, fault, data, ...
        for outcomes in history.values():
            assert None not in outcomes[0::2]
            assert set(outcomes[1::2]) == {None}


def test_fault_rate_and_statuses() -> None:
    injector = FaultInjector(0.1, seed=5)
    first_attempts = [injector.next_fault(f"GET /vacancies?page={n}") for n in range(20_000)]
    counts = Counter(first_attempts)
    assert 0.09 < (len(first_attempts) - counts[None]) / len(first_attempts) < 0.11
    assert set(counts) == {None, 429, 500, 503}
    assert counts[429] > counts[500]  # half of the faults are 429


def test_zero_rate_never_faults() -> None:
    assert set(_schedule(FaultInjector(0.0, seed=1), rounds=2)) == {None}


@pytest.mark.parametrize("rate", [pytest.param(-0.1, id="negative"), pytest.param(1.5, id="above-one")])
def test_fault_rate_out_of_range(rate: float) -> None:
    with pytest.raises(SampleApiError, match="fault rate"):
        FaultInjector(rate, seed=1)


def test_fault_answers(catalog: SampleCatalog) -> None:
    api = SampleApi(catalog, FaultInjector(1.0, seed=2))
    first = api.respond("/rates.csv", "tests")
    assert first.status in {429, 500, 503}
    assert json.loads(first.body)["errors"][0]["type"] in {"too_many_requests", "internal_error", "service_unavailable"}
    assert (("Retry-After", "1") in first.headers) == (first.status == 429)
    assert api.respond("/rates.csv", "tests").status == 200
