"""The ``ingest:`` section of source contracts: the shipped configs, validation, durations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from lakehouse_common.contracts import (
    ContractRegistry,
    Duration,
    FromEnv,
    HttpFileSpec,
    PageNumberPagination,
    RestJsonSpec,
    parse_contract,
)
from lakehouse_common.exceptions import ContractError

REPO = Path(__file__).resolve().parents[3]


def contract(ingest: dict[str, Any] | None, fmt: str = "json", name: str = "things") -> str:
    doc: dict[str, Any] = {"name": name, "format": {"type": fmt}, "columns": [{"name": "thing_id", "source": "id"}]}
    if ingest is not None:
        doc["ingest"] = ingest
    return yaml.safe_dump(doc)


REST = {"kind": "rest_json", "base_url": "https://api.example.org", "path": "/things"}


def test_the_shipped_contracts_configure_vacancies_and_rates() -> None:
    registry = ContractRegistry.from_dir(REPO / "contracts")
    vacancies = registry.get("vacancies").ingest
    assert isinstance(vacancies, RestJsonSpec)
    assert vacancies.base_url == FromEnv(env="LAKEHOUSE_INGESTOR_HH_BASE_URL", default="https://api.hh.ru")
    assert "User-Agent" in vacancies.headers
    assert isinstance(vacancies.pagination, PageNumberPagination)
    assert vacancies.pagination.per_page == 100
    assert vacancies.pagination.reachable == 2000
    assert vacancies.window is not None and vacancies.window.step == timedelta(days=7)
    assert vacancies.details is not None and vacancies.details.source == "vacancy_details"
    rates = registry.get("currency_rates").ingest
    assert isinstance(rates, HttpFileSpec)
    assert rates.path == "/rates.csv"
    assert registry.get("vacancy_details").ingest is None


def test_how_a_source_is_fetched_does_not_change_its_contract_version() -> None:
    without = parse_contract(contract(None), "t")
    with_ingest = parse_contract(contract(REST), "t")
    assert with_ingest.fingerprint == without.fingerprint


@pytest.mark.parametrize(
    ("ingest", "fmt", "message"),
    [
        pytest.param(REST, "csv", "set format type json", id="rest-json-needs-json-format"),
        pytest.param({**REST, "kind": "soap"}, "json", "'rest_json', 'http_file', 'local_files'", id="unknown-kind"),
        pytest.param({**REST, "colour": "red"}, "json", "Extra inputs are not permitted", id="unknown-key"),
        pytest.param({**REST, "base_url": "ftp://files.example.org"}, "json", "http:// or https://", id="not-http"),
        pytest.param(
            {**REST, "base_url": {"env": "api_url"}}, "json", "UPPER_SNAKE_CASE", id="env-name-not-upper-snake"
        ),
        pytest.param({**REST, "headers": {"Authorization": "Bearer x"}}, "json", "use auth", id="secret-in-headers"),
        pytest.param({**REST, "auth": {"type": "header", "token_env": "T"}}, "json", "needs header", id="auth-header"),
        pytest.param(
            {**REST, "pagination": {"type": "page_number", "per_page": 100, "max_results": 50}},
            "json",
            "must be at least per_page",
            id="cap-below-page",
        ),
        pytest.param(
            {**REST, "pagination": {"type": "next_link", "next_field": "links..next"}},
            "json",
            "dotted names",
            id="bad-field-path",
        ),
        pytest.param(
            {**REST, "window": {"initial": "2025-01-01T00:00:00"}}, "json", "must carry a UTC offset", id="naive"
        ),
        pytest.param(
            {**REST, "window": {"initial": "2025-01-01T00:00:00Z", "step": "1h", "min_span": "2h"}},
            "json",
            "must not exceed step",
            id="min-span-over-step",
        ),
        pytest.param(
            {**REST, "window": {"initial": "2025-01-01T00:00:00Z", "step": "1 fortnight"}},
            "json",
            "unknown duration unit",
            id="bad-duration",
        ),
        pytest.param(
            {**REST, "details": {"source": "details", "path": "/things/id"}}, "json", "{id}", id="details-without-id"
        ),
        pytest.param(
            {**REST, "details": {"source": "things", "path": "/things/{id}"}}, "json", "another source", id="self"
        ),
        pytest.param(
            {"kind": "http_file", "base_url": "https://x.org", "format": "json"}, "csv", "differs", id="format"
        ),
        pytest.param({**REST, "rate_limit_per_s": 0}, "json", "greater than 0", id="zero-rate"),
        pytest.param({**REST, "retries": {"attempts": 0}}, "json", "greater than or equal to 1", id="no-attempts"),
    ],
)
def test_invalid_ingest_sections_say_what_is_valid(ingest: dict[str, Any], fmt: str, message: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_contract(contract(ingest, fmt), "contracts/things.yml")
    assert message in str(caught.value)
    assert "contracts/things.yml" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("90s", timedelta(seconds=90), id="seconds"),
        pytest.param("15 min", timedelta(minutes=15), id="minutes"),
        pytest.param("6h", timedelta(hours=6), id="hours"),
        pytest.param("1 day", timedelta(days=1), id="day"),
        pytest.param("2 weeks", timedelta(weeks=2), id="weeks"),
        pytest.param("1.5h", timedelta(minutes=90), id="fraction"),
        pytest.param(3600, timedelta(hours=1), id="number-of-seconds"),
        pytest.param("P1D", timedelta(days=1), id="iso-8601"),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert TypeAdapter(Duration).validate_python(text) == expected


def test_a_complete_rest_source_parses() -> None:
    spec = parse_contract(
        contract(
            {
                **REST,
                "headers": {"User-Agent": {"env": "UA", "default": "me/1.0"}},
                "params": {"text": "data", "role": [96, 165], "archived": False},
                "auth": {"type": "bearer", "token_env": "THINGS_TOKEN"},
                "pagination": {"type": "cursor", "cursor_field": "meta.next", "cursor_param": "after"},
                "window": {"initial": "2025-01-01T00:00:00+03:00", "step": "6h", "lag": "5 min"},
                "retries": {"attempts": 3, "backoff_base_s": 0.1, "jitter": "none"},
                "interval": "30 min",
            }
        ),
        "t",
    ).ingest
    assert isinstance(spec, RestJsonSpec)
    assert spec.params["role"] == (96, 165)
    assert spec.params["archived"] is False
    assert spec.interval == timedelta(minutes=30)
    assert spec.window is not None and spec.window.lag == timedelta(minutes=5)
