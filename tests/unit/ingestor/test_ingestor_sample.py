from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import get_settings as get_lake_settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor.exceptions import SampleConfigError
from lakehouse_ingestor.keys import parse_bronze_key
from lakehouse_ingestor.sample import HH_MAX_DEPTH, MSK, Sample, SampleConfig, SampleObject, generate_sample
from lakehouse_ingestor.settings import HH_MAX_PER_PAGE, get_settings
from lakehouse_ingestor.writers import BronzeWriter

# Small but not trivial: several date windows, several pages per window, every bad record.
SMALL = SampleConfig(seed=7, size=600, days=60, window_days=14, per_page=40)
PUBLISHED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$")
PAGE_FIELDS = {"items", "found", "pages", "page", "per_page"}
ITEM_FIELDS = {
    "id", "name", "area", "salary", "employer", "snippet", "schedule", "experience", "professional_roles",
    "published_at", "url", "alternate_url", "type",
}  # fmt: skip
DETAIL_FIELDS = {
    "id", "name", "area", "salary", "employer", "description", "key_skills", "experience", "employment", "schedule",
    "professional_roles", "published_at",
}  # fmt: skip
EXPERIENCE_IDS = {"noExperience", "between1And3", "between3And6", "moreThan6"}


@pytest.fixture(scope="module")
def small_sample() -> Sample:
    return generate_sample(SMALL)


def pages(sample: Sample) -> list[dict[str, Any]]:
    return [json.loads(o.data) for o in sample.objects if o.source == "vacancies"]


def items(sample: Sample) -> list[dict[str, Any]]:
    return [item for page in pages(sample) for item in page["items"]]


def detail_lines(sample: Sample) -> list[bytes]:
    return [line for o in sample.objects if o.source == "vacancy_details" for line in o.data.splitlines()]


def write_all(lake: Lake, sample: Sample) -> dict[str, bytes]:
    writer = BronzeWriter(lake)
    for obj in sample.objects:
        writer.write(obj.source, obj.data, ext=obj.ext, fetched_at=obj.fetched_at)
    return {info.key: lake.bronze.read_bytes(info.key) for info in lake.bronze.list()}


# -- determinism ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config",
    [pytest.param(SMALL, id="small"), pytest.param(SampleConfig(bad_records=False), id="default-clean")],
)
def test_two_runs_write_identical_keys_and_bytes(tmp_path: Path, config: SampleConfig) -> None:
    first = write_all(Lake(get_lake_settings(data_dir=tmp_path / "a")), generate_sample(config))
    second = write_all(Lake(get_lake_settings(data_dir=tmp_path / "b")), generate_sample(config))
    assert list(first) == list(second)
    assert first == second
    assert len(first) > 3


def test_rerun_into_the_same_lake_writes_nothing(lake: Lake, small_sample: Sample) -> None:
    writer = BronzeWriter(lake)
    results = [writer.write(o.source, o.data, ext=o.ext, fetched_at=o.fetched_at) for o in small_sample.objects]
    again = [writer.write(o.source, o.data, ext=o.ext, fetched_at=o.fetched_at) for o in small_sample.objects]
    assert all(r.written for r in results)
    assert not any(r.written for r in again)
    assert [r.key for r in results] == [r.key for r in again]


def test_another_seed_gives_other_data() -> None:
    assert generate_sample(SMALL).objects != generate_sample(SampleConfig(**{**SMALL.__dict__, "seed": 8})).objects


def test_keys_come_from_the_data_not_the_clock(small_sample: Sample) -> None:
    end = SMALL.period_end
    for obj in small_sample.objects:
        # A window's page p is "fetched" p seconds after the window ends; the rates at the period's end.
        assert SMALL.period_start < obj.fetched_at <= end + timedelta(seconds=HH_MAX_DEPTH)
        if obj.source == "vacancies":
            page = json.loads(obj.data)
            window_end = datetime.fromisoformat(page["alternate_url"].split("date_to=")[1].split("&")[0])
            assert obj.fetched_at == window_end.replace(tzinfo=MSK) + timedelta(seconds=page["page"])
    (rates,) = [o for o in small_sample.objects if o.source == "currency_rates"]
    assert rates.fetched_at == end


def test_keys_follow_the_bronze_layout(lake: Lake, small_sample: Sample) -> None:
    keys = list(write_all(lake, small_sample))
    assert {parse_bronze_key(k).source for k in keys} == {"vacancies", "vacancy_details", "currency_rates"}
    assert {parse_bronze_key(k).ext for k in keys} == {"json", "ndjson", "csv"}


# -- hh.ru shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config",
    [
        pytest.param(SampleConfig(seed=1, size=800, days=30, window_days=7), id="hh-max-per-page"),
        pytest.param(SampleConfig(seed=2, size=500, days=30, window_days=10, per_page=20), id="hh-default-per-page"),
        pytest.param(SampleConfig(seed=3, size=4500, days=20, window_days=20), id="window-over-2000-is-split"),
        pytest.param(SampleConfig(seed=4, size=3, days=60, window_days=7), id="empty-windows"),
    ],
)
def test_search_pages_respect_hh_limits(config: SampleConfig) -> None:
    sample = generate_sample(config)
    by_window: dict[str, list[dict[str, Any]]] = {}
    for obj in sample.objects:
        if obj.source == "vacancies":
            page = json.loads(obj.data)
            by_window.setdefault(page["alternate_url"].split("&page=")[0], []).append(page)
    assert len(by_window) == sample.windows
    if config.size > HH_MAX_DEPTH:
        assert sample.windows > -(-config.days // config.window_days)  # some window was split
    for window_pages in by_window.values():
        found = window_pages[0]["found"]
        assert found <= HH_MAX_DEPTH
        assert [p["page"] for p in window_pages] == list(range(len(window_pages)))
        for page in window_pages:
            assert set(page) >= PAGE_FIELDS
            assert page["per_page"] == config.per_page <= HH_MAX_PER_PAGE
            assert page["page"] * page["per_page"] < HH_MAX_DEPTH
            assert len(page["items"]) <= page["per_page"]
            assert page["found"] == found
            assert page["pages"] == -(-found // config.per_page)
        assert sum(len(p["items"]) for p in window_pages) == found
    assert sum(len(p["items"]) for ps in by_window.values() for p in ps) == config.size


def test_items_have_hh_shapes(small_sample: Sample) -> None:
    all_items = items(small_sample)
    assert len(all_items) == SMALL.size
    assert len({i["id"] for i in all_items}) == SMALL.size
    for item in all_items:
        assert set(item) >= ITEM_FIELDS
        assert item["id"].isdigit()
        assert PUBLISHED_AT.match(item["published_at"]), item["published_at"]
        assert set(item["area"]) >= {"id", "name"}
        assert item["experience"]["id"] in EXPERIENCE_IDS
        assert item["professional_roles"] and all({"id", "name"} <= set(r) for r in item["professional_roles"])
        assert set(item["snippet"]) == {"requirement", "responsibility"}
        assert item["employer"] is None or {"id", "name"} <= set(item["employer"])
        if item["salary"] is not None:
            assert set(item["salary"]) >= {"from", "to", "currency", "gross"}
            assert item["salary"]["from"] is not None or item["salary"]["to"] is not None


def test_published_at_has_no_colon_in_the_offset(default_sample: Sample) -> None:
    stamps = [i["published_at"] for i in items(default_sample)]
    assert all(PUBLISHED_AT.match(s) for s in stamps)
    parsed = [datetime.strptime(s, "%Y-%m-%dT%H:%M:%S%z") for s in stamps]
    assert min(parsed).date() >= SampleConfig().start
    assert {s[-5:] for s in stamps} == {"+0300"}


def test_pages_are_newest_first(small_sample: Sample) -> None:
    for page in pages(small_sample):
        stamps = [datetime.strptime(i["published_at"], "%Y-%m-%dT%H:%M:%S%z") for i in page["items"]]
        assert stamps == sorted(stamps, reverse=True)


def test_default_sample_is_realistic(default_sample: Sample) -> None:
    all_items = items(default_sample)
    assert len(all_items) == 3000
    null_share = sum(i["salary"] is None for i in all_items) / len(all_items)
    assert 0.4 < null_share < 0.6
    currencies = {i["salary"]["currency"] for i in all_items if i["salary"]}
    assert {"RUR", "USD", "EUR", "KZT"} <= currencies
    rur = sum(1 for i in all_items if i["salary"] and i["salary"]["currency"] == "RUR")
    assert rur > 0.6 * sum(1 for i in all_items if i["salary"])
    assert any(i["salary"] and i["salary"]["from"] is None for i in all_items)
    assert any(i["salary"] and i["salary"]["to"] is None for i in all_items)
    assert any(i["employer"] is None for i in all_items)
    assert {"1", "2", "88", "160"} <= {i["area"]["id"] for i in all_items}
    assert {"96", "156", "165", "160", "114"} <= {r["id"] for i in all_items for r in i["professional_roles"]}
    assert any("<highlighttext>" in (i["snippet"]["requirement"] or "") for i in all_items)
    months = {i["published_at"][:7] for i in all_items}
    assert len(months) == 12
    assert any(page["pages"] > 1 for page in pages(default_sample))


def test_details_match_their_page(small_sample: Sample) -> None:
    searches = [o for o in small_sample.objects if o.source == "vacancies"]
    details = [o for o in small_sample.objects if o.source == "vacancy_details"]
    non_empty = [o for o in searches if json.loads(o.data)["items"]]
    assert len(details) == len(non_empty)
    bad_json = 0
    for search, detail in zip(non_empty, details, strict=True):
        assert search.fetched_at == detail.fetched_at
        page_ids = [i["id"] for i in json.loads(search.data)["items"]]
        lines = detail.data.decode().splitlines()
        assert len(lines) == len(page_ids)
        for page_id, line in zip(page_ids, lines, strict=True):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                bad_json += 1
                continue
            assert set(doc) >= DETAIL_FIELDS
            assert doc["id"] == page_id
            assert PUBLISHED_AT.match(doc["published_at"])
            assert all(set(skill) == {"name"} for skill in doc["key_skills"])
    assert bad_json == 1


def test_key_skills_are_role_dependent_and_sometimes_empty(default_sample: Sample) -> None:
    docs = [json.loads(line) for line in detail_lines(default_sample) if line.endswith(b"}")]
    skills = {s["name"] for d in docs for s in d["key_skills"]}
    assert {"Python", "SQL", "Docker", "Kubernetes", "Apache Airflow", "PostgreSQL", "Git", "Linux"} <= skills
    assert any(not d["key_skills"] for d in docs)
    devops = [d for d in docs if d["professional_roles"][0]["id"] == "160" and d["key_skills"]]
    assert devops and all("Power BI" not in {s["name"] for s in d["key_skills"]} for d in devops)


def test_currency_rates_are_daily_and_drifting(default_sample: Sample) -> None:
    (rates,) = [o for o in default_sample.objects if o.source == "currency_rates"]
    rows = list(csv.DictReader(io.StringIO(rates.data.decode())))
    assert list(rows[0]) == ["date", "currency", "rate"]
    assert len({r["date"] for r in rows}) == 365
    assert {r["currency"] for r in rows} >= {"USD", "EUR", "KZT", "RUR"}
    for currency, low, high in (("USD", 60, 130), ("EUR", 65, 140), ("KZT", 0.12, 0.28)):
        values = [float(r["rate"]) for r in rows if r["currency"] == currency and r["rate"] not in {"n/a", "0"}]
        assert len(values) >= 364
        assert all(low < v < high for v in values)
        assert len(set(values)) > 300


# -- bad records ----------------------------------------------------------------------------------
def test_bad_records_are_injected_as_documented(small_sample: Sample) -> None:
    all_items = items(small_sample)
    swapped = [i for i in all_items if i["salary"] and (i["salary"]["from"] or 0) > (i["salary"]["to"] or 10**12)]
    assert len(swapped) == 3
    assert sum(1 for i in all_items if i["salary"] and i["salary"]["currency"] is None) == 1
    assert sum(1 for i in all_items if i["salary"] and i["salary"]["currency"] == "UAH") == 1
    (rates,) = [o for o in small_sample.objects if o.source == "currency_rates"]
    values = [r["rate"] for r in csv.DictReader(io.StringIO(rates.data.decode()))]
    assert values.count("n/a") == 1
    assert values.count("0") == 1
    rules = [b.rule for b in small_sample.bad_records]
    assert rules.count("salary_range_ordered") == 3
    assert len(small_sample.bad_records) == 9


def test_bad_records_can_be_turned_off() -> None:
    sample = generate_sample(SampleConfig(**{**SMALL.__dict__, "bad_records": False}))
    assert sample.bad_records == ()
    for line in detail_lines(sample):
        assert json.loads(line)["description"]
    for item in items(sample):
        salary = item["salary"]
        if salary:
            assert salary["currency"] in {"RUR", "USD", "EUR", "KZT", "BYR", "UZS"}
            assert salary["from"] is None or salary["to"] is None or salary["from"] <= salary["to"]
    (rates,) = [o for o in sample.objects if o.source == "currency_rates"]
    assert all(float(r["rate"]) > 0 for r in csv.DictReader(io.StringIO(rates.data.decode())))


def test_silverizer_quarantines_exactly_the_dropped_bad_records(lake: Lake, small_sample: Sample) -> None:
    runner = pytest.importorskip("lakehouse_silverizer.runner")
    write_all(lake, small_sample)
    silverizer = runner.Silverizer(lake.settings, ContractRegistry.from_dir(lake.settings.contracts_dir))
    sources = ("vacancies", "vacancy_details", "currency_rates")
    entries = [entry for source in sources for entry in silverizer.run_source(source).entries]
    assert {(e.status, e.reason) for e in entries} == {("loaded", None)}
    dropped = [b for b in small_sample.bad_records if "(warn)" not in b.rule]
    assert sum(e.rows_quarantined for e in entries) == len(dropped) == 7


# -- configuration and speed ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"per_page": 101}, id="per-page-above-hh-cap"),
        pytest.param({"per_page": 0}, id="per-page-zero"),
        pytest.param({"size": 0}, id="no-vacancies"),
        pytest.param({"days": 0}, id="no-days"),
        pytest.param({"window_days": 0}, id="empty-window"),
    ],
)
def test_invalid_config_is_rejected(overrides: dict[str, int]) -> None:
    with pytest.raises(SampleConfigError):
        SampleConfig(**overrides)  # type: ignore[arg-type]


def test_settings_feed_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_INGESTOR_SAMPLE_SIZE", "123")
    monkeypatch.setenv("LAKEHOUSE_INGESTOR_SAMPLE_SEED", "5")
    config = SampleConfig.from_settings(get_settings())
    assert (config.size, config.seed, config.per_page) == (123, 5, 100)


def test_default_sample_is_fast() -> None:
    started = time.perf_counter()
    sample = generate_sample(SampleConfig())
    assert time.perf_counter() - started < 10
    assert sample.vacancies == 3000


def test_objects_are_bytes_in_utf8(small_sample: Sample) -> None:
    obj: SampleObject
    for obj in small_sample.objects:
        obj.data.decode("utf-8")
    assert any("Москва" in o.data.decode() for o in small_sample.objects if o.source == "vacancies")
