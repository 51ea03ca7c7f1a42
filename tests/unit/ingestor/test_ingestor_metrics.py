"""The serve mode's metrics, counted from the events the runner, sources and HTTP client log."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lakehouse_ingestor.logs import EventLog
from lakehouse_ingestor.metrics import IngestorMetrics, status_class


def scrape(metrics: IngestorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: IngestorMetrics, name: str, **labels: str) -> float:
    return scrape(metrics).get((f"lakehouse_ingestor_{name}", tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(200, "2xx", id="ok"),
        pytest.param(304, "3xx", id="redirect"),
        pytest.param(429, "4xx", id="too-many"),
        pytest.param(503, "5xx", id="unavailable"),
        pytest.param(None, "error", id="no-answer"),
        pytest.param(99, "error", id="not-a-status"),
    ],
)
def test_status_class(status: object, expected: str) -> None:
    assert status_class(status) == expected


@pytest.mark.parametrize(
    ("events", "name", "labels", "expected"),
    [
        pytest.param(
            [("http.response", {"status": 200, "size": 100}), ("http.response", {"status": 200, "size": 50})],
            "http_requests_total",
            {"source": "vacancies", "status_class": "2xx"},
            2,
            id="requests-by-class",
        ),
        pytest.param(
            [("http.response", {"status": 200, "size": 100}), ("http.response", {"status": 500, "size": 7})],
            "fetched_bytes_total",
            {"source": "vacancies"},
            107,
            id="bytes-fetched",
        ),
        pytest.param(
            [("http.failed", {"why": "timeout"})],
            "http_requests_total",
            {"source": "vacancies", "status_class": "error"},
            1,
            id="no-answer",
        ),
        pytest.param(
            [("http.retry", {}), ("http.retry", {})], "http_retries_total", {"source": "vacancies"}, 2, id="retries"
        ),
        pytest.param(
            [("payload.landed", {"target": "vacancy_details", "size": 10}), ("payload.landed", {"size": 5})],
            "objects_written_total",
            {"source": "vacancy_details"},
            1,
            id="objects-by-target",
        ),
        pytest.param(
            [("file.landed", {"size": 5}), ("payload.unchanged", {"size": 5})],
            "written_bytes_total",
            {"source": "vacancies"},
            5,
            id="unchanged-not-written",
        ),
        pytest.param(
            [("run.end", {"status": "failed", "seconds": 1.0, "error_type": "RetriesExhaustedError"})],
            "errors_total",
            {"source": "vacancies", "kind": "RetriesExhaustedError"},
            1,
            id="failed-run-error-kind",
        ),
        pytest.param(
            [("payload.rejected", {}), ("details.missing", {})],
            "errors_total",
            {"source": "vacancies", "kind": "rejected_payload"},
            1,
            id="rejected-payload",
        ),
        pytest.param(
            [("run.end", {"status": "ok", "seconds": 3.0}), ("run.end", {"status": "ok", "seconds": 4.0})],
            "run_duration_seconds_sum",
            {"source": "vacancies"},
            7.0,
            id="run-duration",
        ),
        pytest.param(
            [("run.end", {"status": "ok", "seconds": 1.0})],
            "last_success_timestamp_seconds",
            {"source": "vacancies"},
            1_750_000_000.0,
            id="last-success",
        ),
        pytest.param(
            [("run.end", {"status": "failed", "seconds": 1.0})],
            "last_success_timestamp_seconds",
            {"source": "vacancies"},
            0.0,
            id="no-success-no-timestamp",
        ),
    ],
)
def test_events_to_metrics(
    events: list[tuple[str, dict[str, Any]]], name: str, labels: dict[str, str], expected: float
) -> None:
    metrics = IngestorMetrics(wall=lambda: 1_750_000_000.0)
    log = EventLog(logging.getLogger("test.metrics"), listeners=(metrics.observe,)).bind(source="vacancies")
    for event, fields in events:
        log.debug(event, **fields)  # listeners see DEBUG events even when the logger drops them
    assert value(metrics, name, **labels) == expected


def test_registries_are_separate() -> None:
    first, second = IngestorMetrics(), IngestorMetrics()
    first.observe("http.retry", {"source": "a"})
    assert value(first, "http_retries_total", source="a") == 1
    assert value(second, "http_retries_total", source="a") == 0
