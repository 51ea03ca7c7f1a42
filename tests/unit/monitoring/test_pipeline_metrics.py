"""The pipeline exporter's metric computation: ledger entries, bronze listings and gold -> samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.metrics_core import Metric

from lakehouse_common.ledger import LedgerEntry
from lakehouse_monitoring.pipeline import (
    BronzeSource,
    GoldState,
    LakeReading,
    bronze_families,
    families,
    freshness_families,
    gold_families,
    histogram_buckets,
    ledger_families,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def entry(source: str, status: str = "loaded", **fields: object) -> LedgerEntry:
    defaults: dict[str, object] = {"key": f"{source}/x.json", "etag": "e", "size": 10, "contract_version": "1"}
    return LedgerEntry(source=source, status=status, **{**defaults, **fields})  # type: ignore[arg-type]


def samples(metrics: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples}


def value(metrics: list[Metric], name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


@pytest.mark.parametrize(
    ("entries", "source", "expected"),
    [
        pytest.param([], "vacancies", None, id="empty-ledger-no-series"),
        pytest.param(
            [entry("vacancies", rows_in=10, rows_out=8, rows_quarantined=2)],
            "vacancies",
            {"in": 10, "out": 8, "quarantined": 2, "deduplicated": 0},
            id="one-entry",
        ),
        pytest.param(
            [
                entry("vacancies", rows_in=10, rows_out=8, rows_quarantined=2),
                entry("vacancies", rows_in=5, rows_out=4, rows_deduplicated=1),
                entry("currency_rates", rows_in=100, rows_out=100),
            ],
            "vacancies",
            {"in": 15, "out": 12, "quarantined": 2, "deduplicated": 1},
            id="sums-per-source",
        ),
    ],
)
def test_rows_are_the_ledger_sums(entries: list[LedgerEntry], source: str, expected: dict[str, int] | None) -> None:
    metrics = ledger_families(entries)
    found = samples(metrics)
    if expected is None:
        assert not any(labels for _, labels in found)
        return
    for kind, rows in expected.items():
        assert value(metrics, f"lakehouse_pipeline_rows_{kind}", source=source) == rows


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param(["loaded"], {"loaded": 1, "rejected": 0, "unreadable": 0, "duplicate": 0}, id="loaded"),
        pytest.param(
            ["loaded", "rejected", "unreadable", "duplicate", "loaded"],
            {"loaded": 2, "rejected": 1, "unreadable": 1, "duplicate": 1},
            id="every-status",
        ),
    ],
)
def test_objects_by_status(statuses: list[str], expected: dict[str, int]) -> None:
    metrics = ledger_families([entry("vacancies", status) for status in statuses])
    for status, count in expected.items():
        assert value(metrics, "lakehouse_pipeline_ledger_objects", source="vacancies", status=status) == count


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param([], [0, 0, 0], id="none"),
        pytest.param([0.05, 0.3, 7.0], [1, 2, 3], id="cumulative"),
        pytest.param([0.1], [1, 1, 1], id="bound-is-inclusive"),
    ],
)
def test_histogram_buckets_are_cumulative(seconds: list[float], expected: list[int]) -> None:
    assert [count for _, count in histogram_buckets(seconds, (0.1, 1.0))] == expected
    assert histogram_buckets(seconds, (0.1, 1.0))[-1][0] == "+Inf"


def test_processing_seconds_histogram_counts_and_sums() -> None:
    metrics = ledger_families([entry("vacancies", seconds=s) for s in (0.2, 0.4, 20.0)])
    assert value(metrics, "lakehouse_pipeline_silver_processing_seconds_count", source="vacancies") == 3
    assert value(metrics, "lakehouse_pipeline_silver_processing_seconds_sum", source="vacancies") == pytest.approx(20.6)
    assert value(metrics, "lakehouse_pipeline_silver_processing_seconds_bucket", source="vacancies", le="0.5") == 2


def test_bronze_objects_bytes_and_pending() -> None:
    bronze = [BronzeSource("vacancies", 3, 300, 1, NOW), BronzeSource("currency_rates", 1, 50, 0, None)]
    metrics = bronze_families(bronze)
    assert value(metrics, "lakehouse_pipeline_bronze_objects", source="vacancies") == 3
    assert value(metrics, "lakehouse_pipeline_bronze_bytes", source="vacancies") == 300
    assert value(metrics, "lakehouse_pipeline_pending_objects", source="vacancies") == 1
    assert value(metrics, "lakehouse_pipeline_pending_objects", source="currency_rates") == 0


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        pytest.param(LakeReading(NOW, 0.1), {}, id="empty-lake-no-lag"),
        pytest.param(
            LakeReading(
                NOW,
                0.1,
                bronze=(BronzeSource("vacancies", 1, 1, 0, NOW - timedelta(minutes=10)),),
                ledger=(entry("vacancies", finished_at=(NOW - timedelta(minutes=5)).isoformat()),),
                gold=GoldState(run_id="r", published_at=NOW - timedelta(hours=1)),
            ),
            {"bronze": 600.0, "silver": 300.0, "gold": 3600.0},
            id="every-layer",
        ),
        pytest.param(
            LakeReading(NOW, 0.1, ledger=(entry("vacancies", finished_at="not a time"),)),
            {},
            id="unparsable-finished-at-ignored",
        ),
    ],
)
def test_freshness_lag_per_layer(reading: LakeReading, expected: dict[str, float]) -> None:
    metrics = freshness_families(reading, NOW)
    lags = {s.labels["layer"]: s.value for m in metrics for s in m.samples if s.name.endswith("_lag_seconds")}
    assert lags == expected


def test_gold_mart_rows_and_readable_layers() -> None:
    gold = GoldState.model_validate(
        {"run_id": "r", "published_at": NOW.isoformat(), "marts": [{"name": "a", "rows": 7, "sha256": "x"}]}
    )
    assert value(gold_families(gold), "lakehouse_pipeline_gold_mart_rows", mart="a") == 7
    assert gold_families(None)[0].samples == []
    metrics = families(LakeReading(NOW, 0.25, errors={"gold": "AccessDenied"}), NOW)
    assert value(metrics, "lakehouse_pipeline_layer_readable", layer="gold") == 0
    assert value(metrics, "lakehouse_pipeline_layer_readable", layer="bronze") == 1
    assert value(metrics, "lakehouse_pipeline_read_seconds") == 0.25
