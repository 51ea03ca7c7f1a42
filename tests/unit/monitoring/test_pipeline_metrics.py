"""The pipeline exporter: load-history rows, bronze listings and gold -> samples; and its reader
over a local lake whose load history is a real Delta table (written with deltalake here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from deltalake.transaction import CommitProperties, Transaction
from prometheus_client.metrics_core import Metric

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, ObjectInfo
from lakehouse_monitoring.pipeline import (
    BronzeSource,
    GoldState,
    LakeReader,
    LakeReading,
    Load,
    bronze_families,
    families,
    freshness_families,
    gold_families,
    histogram_buckets,
    newest_per_version,
    silver_families,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_keys = count()


def entry(source: str, status: str = "loaded", **fields: Any) -> Load:
    """A load-history row of a new object version (unless ``key``/``etag`` say which)."""
    n = next(_keys)
    defaults: dict[str, Any] = {"key": f"{source}/{n}.json", "etag": f"e{n}"}
    return Load(source=source, status=status, **{**defaults, **fields})


def samples(metrics: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples}


def value(metrics: list[Metric], name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


@pytest.mark.parametrize(
    ("entries", "source", "expected"),
    [
        pytest.param([], "vacancies", None, id="empty-history-no-series"),
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
def test_rows_are_the_load_history_sums(entries: list[Load], source: str, expected: dict[str, int] | None) -> None:
    metrics = silver_families(entries)
    found = samples(metrics)
    if expected is None:
        assert not any(labels for _, labels in found)
        return
    for kind, rows in expected.items():
        assert value(metrics, f"lakehouse_pipeline_rows_{kind}", source=source) == rows


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param(["loaded"], {"loaded": 1, "quarantined": 0, "duplicate": 0, "failed": 0}, id="loaded"),
        pytest.param(
            ["loaded", "quarantined", "duplicate", "failed", "loaded"],
            {"loaded": 2, "quarantined": 1, "duplicate": 1, "failed": 1},
            id="every-status",
        ),
    ],
)
def test_objects_by_status(statuses: list[str], expected: dict[str, int]) -> None:
    metrics = silver_families([entry("vacancies", status) for status in statuses])
    for status, objects in expected.items():
        assert value(metrics, "lakehouse_pipeline_silver_objects", source="vacancies", status=status) == objects


def test_each_object_version_counts_once_by_its_newest_row() -> None:
    failed = entry("vacancies", "failed", key="vacancies/a.json", etag="e1", rows_in=5)
    loaded = entry("vacancies", "loaded", key="vacancies/a.json", etag="e1", rows_in=5, rows_out=5)
    changed = entry("vacancies", "loaded", key="vacancies/a.json", etag="e2", rows_in=7, rows_out=7)
    assert newest_per_version([failed, changed, loaded]) == (changed, loaded)
    metrics = silver_families(newest_per_version([failed, loaded, changed]))
    assert value(metrics, "lakehouse_pipeline_silver_objects", source="vacancies", status="loaded") == 2
    assert value(metrics, "lakehouse_pipeline_silver_objects", source="vacancies", status="failed") == 0
    assert value(metrics, "lakehouse_pipeline_rows_in", source="vacancies") == 12


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
    metrics = silver_families([entry("vacancies", seconds=s) for s in (0.2, 0.4, 20.0)])
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
                loads=(
                    entry("vacancies", finished_at=NOW - timedelta(minutes=5)),
                    entry("currency_rates", finished_at=NOW - timedelta(minutes=50)),
                ),
                gold=GoldState(run_id="r", published_at=NOW - timedelta(hours=1)),
            ),
            {"bronze": 600.0, "silver": 300.0, "gold": 3600.0},
            id="every-layer-silver-by-newest-finished-at",
        ),
        pytest.param(LakeReading(NOW, 0.1, loads=(entry("vacancies"),)), {}, id="no-finished-at-no-silver-lag"),
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


# -- the reader, over a real Delta load history -------------------------------------------------------


def record(lake: Lake, info: ObjectInfo, status: str = "loaded", rows: int = 3) -> None:
    """Append one load-history row with the object version's app transaction, as the silverizer commits it."""
    row = {
        "source": "currency_rates", "bronze_key": info.key, "bronze_etag": info.etag, "bronze_size": info.size,
        "bronze_modified": info.modified, "version_id": info.etag, "status": status, "rows_in": rows,
        "rows_out": rows, "rows_quarantined": 0, "rows_deduplicated": 0, "run_id": "test",
        "started_at": NOW, "finished_at": NOW, "seconds": 0.5,
    }  # fmt: skip
    write_deltalake(
        lake.silver.table_uri(tables.LOAD_HISTORY),
        pa.Table.from_pylist([row], schema=tables.load_history_schema()),
        mode="append",
        partition_by=["source"],
        commit_properties=CommitProperties(
            app_transactions=[
                Transaction(tables.app_id("currency_rates", info.key, info.etag), tables.txn_version(info.modified))
            ]
        ),
    )


def test_reader_counts_what_the_load_history_holds_and_rereads_it_only_when_it_changed(settings: Settings) -> None:
    lake = Lake(settings)
    lake.ensure()
    reader = LakeReader(lake, ContractRegistry.from_dir(settings.contracts_dir))
    for name in ("a", "b"):
        lake.bronze.put_bytes(f"currency_rates/{name}.csv", b"date,currency,rate\n")

    empty = reader.read()  # no silver run yet: nothing loaded, everything pending
    assert empty.errors == {} and empty.loads == ()
    assert {b.source: b.pending for b in empty.bronze}["currency_rates"] == 2

    record(lake, lake.bronze.stat("currency_rates/a.csv"))  # type: ignore[arg-type]
    first = reader.read()
    again = reader.read()
    assert reader.history_reads == 1  # the second reading found the same version: no rows read
    assert first.loads == again.loads and [load.key for load in first.loads] == ["currency_rates/a.csv"]
    assert {b.source: b.pending for b in again.bronze}["currency_rates"] == 1

    record(lake, lake.bronze.stat("currency_rates/b.csv"), status="quarantined", rows=0)  # type: ignore[arg-type]
    last = reader.read()
    assert reader.history_reads == 2
    assert {b.source: b.pending for b in last.bronze}["currency_rates"] == 0
    metrics = families(last, NOW)
    assert value(metrics, "lakehouse_pipeline_silver_objects", source="currency_rates", status="quarantined") == 1
    assert value(metrics, "lakehouse_pipeline_rows_out", source="currency_rates") == 3
    assert value(metrics, "lakehouse_pipeline_layer_readable", layer="silver") == 1
