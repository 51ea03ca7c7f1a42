"""bench.latency's arithmetic and its merge into bench/results.json (no servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.latency import Drop, LatencyRow, merge_results, percentile, rows_for


def test_percentiles_interpolate_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.5
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile([3.0], 95) == 3.0


def test_rows_name_each_path_and_stage_and_carry_the_poke_interval_on_sensor_rows() -> None:
    drops = [Drop("bridge", f"k{i}", 1.0 + i, 10.0 + i) for i in range(3)]
    drops += [Drop("sensor", f"s{i}", 3.0 + i, 12.0 + i) for i in range(3)]
    rows = [(r.case, r.n, r.p50_s, r.p95_s, r.as_dict().get("poke_interval_s")) for r in rows_for(drops, 2.0)]
    assert rows == [
        ("latency drop->silver via bridge", 3, 2.0, 2.9, None),
        ("latency drop->gold replicated via bridge", 3, 11.0, 11.9, None),
        ("latency drop->silver via sensor", 3, 4.0, 4.9, 2.0),
        ("latency drop->gold replicated via sensor", 3, 13.0, 13.9, 2.0),
    ]


def test_merge_keeps_the_throughput_rows_and_replaces_its_own(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    throughput = {"case": "200MB csv", "method": "duckdb", "seconds": 0.5}
    old = {"case": "latency drop->silver via bridge", "n": 10, "p50_s": 9.0, "p95_s": 12.0}
    results.write_text(json.dumps([throughput, old]))
    merge_results(results, [LatencyRow("latency drop->silver via bridge", 12, 4.0, 6.0)])
    assert json.loads(results.read_text()) == [
        throughput,
        {"case": "latency drop->silver via bridge", "n": 12, "p50_s": 4.0, "p95_s": 6.0},
    ]


def test_merge_creates_the_file(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    merge_results(results, [LatencyRow("latency drop->silver via sensor", 10, 5.0, 7.0, poke_interval_s=2.0)])
    assert json.loads(results.read_text())[0]["poke_interval_s"] == 2.0
