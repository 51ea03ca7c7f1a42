"""Pipeline metrics: what the lake says about bronze, silver (its load history) and gold.

:class:`LakeReader` reads the lake into a :class:`LakeReading` (bronze listings, silver's load
history, the gold manifest); the functions below turn a reading into Prometheus metric families
and are pure, so the tests feed them :class:`Load` rows directly.

Silver is read from the Delta table ``silver/_load_history`` (:mod:`lakehouse_common.tables`),
once per reading at most: the reader keeps the table open and, on later readings, reads only the
log entries added since (``update_incremental``), and the rows only when the table's version
changed. The same snapshot answers what is pending: a bronze object version is pending while the
load history lacks its Delta app transaction (no data read). Every metric counts each object
version once, by its newest load-history row (a version that failed and then loaded is loaded).

Freshness lag is measured at scrape time against the newest bronze object, the newest load-history
row (``finished_at``) and the gold manifest's ``published_at``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from deltalake.exceptions import DeltaError
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel, ConfigDict, ValidationError

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.storage import Lake

if TYPE_CHECKING:
    from deltalake import DeltaTable

PREFIX = "lakehouse_pipeline"
STATUSES = tables.STATUSES  # loaded, quarantined, duplicate, failed
ROW_KINDS = ("in", "out", "quarantined", "deduplicated")
SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
MANIFEST_KEY = "_manifest.json"
LAYER_ERRORS = (LakehouseError, ClientError, BotoCoreError, DeltaError, OSError, ValueError)
# The load-history columns the metrics use (lakehouse_common.tables.load_history_schema).
HISTORY_COLUMNS = (
    "source",
    "bronze_key",
    "bronze_etag",
    "status",
    "rows_in",
    "rows_out",
    "rows_quarantined",
    "rows_deduplicated",
    "seconds",
    "finished_at",
)


@dataclass(frozen=True)
class BronzeSource:
    """One source's bronze objects, and how many of their versions silver has not taken yet."""

    source: str
    objects: int
    bytes: int
    pending: int
    newest: datetime | None


class _Mart(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str
    rows: int


class GoldState(BaseModel):
    """The part of gold's ``_manifest.json`` the exporter reads (it does not import the dbt side)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    run_id: str
    published_at: datetime
    marts: tuple[_Mart, ...] = ()


@dataclass(frozen=True)
class Load:
    """One row of silver's load history: what became of one bronze object version."""

    source: str
    key: str
    etag: str
    status: str  # loaded | quarantined | duplicate | failed
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    seconds: float = 0.0
    finished_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Load:
        return cls(
            source=row["source"],
            key=row["bronze_key"],
            etag=row["bronze_etag"],
            status=row["status"],
            rows_in=int(row["rows_in"]),
            rows_out=int(row["rows_out"]),
            rows_quarantined=int(row["rows_quarantined"]),
            rows_deduplicated=int(row["rows_deduplicated"]),
            seconds=float(row["seconds"]),
            finished_at=row["finished_at"],
        )


def newest_per_version(loads: Iterable[Load]) -> tuple[Load, ...]:
    """The newest row of each object version (source, key, ETag), from rows oldest first."""
    newest: dict[tuple[str, str, str], Load] = {}
    for load in loads:
        newest.pop((load.source, load.key, load.etag), None)  # keep the order of the newest rows
        newest[(load.source, load.key, load.etag)] = load
    return tuple(newest.values())


@dataclass(frozen=True)
class LakeReading:
    """One reading of the lake; ``errors`` names the layers that could not be read, and why."""

    taken_at: datetime
    seconds: float
    bronze: tuple[BronzeSource, ...] = ()
    loads: tuple[Load, ...] = ()  # the newest load-history row of each object version
    gold: GoldState | None = None
    errors: dict[str, str] = field(default_factory=dict)


# -- pure: readings -> metric families ------------------------------------------------------------


def bronze_families(bronze: Sequence[BronzeSource]) -> list[Metric]:
    objects = GaugeMetricFamily(f"{PREFIX}_bronze_objects", "Data objects in bronze, by source.", labels=["source"])
    size = GaugeMetricFamily(f"{PREFIX}_bronze_bytes", "Bytes of bronze data objects, by source.", labels=["source"])
    pending = GaugeMetricFamily(
        f"{PREFIX}_pending_objects",
        "Bronze object versions whose transaction silver's load history lacks (not taken yet), by source.",
        labels=["source"],
    )
    for item in sorted(bronze, key=lambda b: b.source):
        objects.add_metric([item.source], item.objects)
        size.add_metric([item.source], item.bytes)
        pending.add_metric([item.source], item.pending)
    return [objects, size, pending]


def silver_families(entries: Iterable[Load]) -> list[Metric]:
    """Objects by status, rows by kind and processing durations, per source, from load-history rows."""
    by_status: dict[tuple[str, str], int] = defaultdict(int)
    rows: dict[tuple[str, str], int] = defaultdict(int)
    seconds: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        by_status[(entry.source, entry.status)] += 1
        rows[(entry.source, "in")] += entry.rows_in
        rows[(entry.source, "out")] += entry.rows_out
        rows[(entry.source, "quarantined")] += entry.rows_quarantined
        rows[(entry.source, "deduplicated")] += entry.rows_deduplicated
        seconds[entry.source].append(entry.seconds)
    objects = GaugeMetricFamily(
        f"{PREFIX}_silver_objects",
        "Bronze object versions in silver's load history, by source and newest status "
        "(loaded, quarantined, duplicate, failed).",
        labels=["source", "status"],
    )
    for source in sorted(seconds):
        for status in STATUSES:
            objects.add_metric([source, status], by_status.get((source, status), 0))
    row_families = []
    for kind in ROW_KINDS:
        family = GaugeMetricFamily(
            f"{PREFIX}_rows_{kind}", f"Rows {kind} over silver's load history, by source.", labels=["source"]
        )
        for source in sorted(seconds):
            family.add_metric([source], rows[(source, kind)])
        row_families.append(family)
    durations = HistogramMetricFamily(
        f"{PREFIX}_silver_processing_seconds",
        "Seconds the silverizer took per bronze object (the load history's seconds), by source.",
        labels=["source"],
    )
    for source in sorted(seconds):
        durations.add_metric([source], histogram_buckets(seconds[source]), sum_value=sum(seconds[source]))
    return [objects, *row_families, durations]


def histogram_buckets(values: Sequence[float], bounds: Sequence[float] = SECONDS_BUCKETS) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, ``+Inf`` last, as Prometheus histograms expose them."""
    buckets = [(_bound(bound), float(sum(1 for v in values if v <= bound))) for bound in bounds]
    return [*buckets, ("+Inf", float(len(values)))]


def _bound(value: float) -> str:
    return repr(float(value))


def newest_load_time(loads: Iterable[Load]) -> datetime | None:
    times = [_aware(load.finished_at) for load in loads if load.finished_at is not None]
    return max(times, default=None)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def layer_times(reading: LakeReading) -> dict[str, datetime | None]:
    """When each layer last changed: newest bronze object, newest load-history row, gold's publish."""
    return {
        "bronze": max((b.newest for b in reading.bronze if b.newest is not None), default=None),
        "silver": newest_load_time(reading.loads),
        "gold": reading.gold.published_at if reading.gold else None,
    }


def freshness_families(reading: LakeReading, now: datetime) -> list[Metric]:
    lag = GaugeMetricFamily(
        f"{PREFIX}_freshness_lag_seconds",
        "Seconds since the layer changed "
        "(bronze: newest object, silver: newest load-history finished_at, gold: published_at).",
        labels=["layer"],
    )
    stamp = GaugeMetricFamily(
        f"{PREFIX}_layer_updated_timestamp_seconds", "Unix time the layer last changed.", labels=["layer"]
    )
    for layer, when in layer_times(reading).items():
        if when is None:
            continue  # an empty layer has no age: absent, so alerts use absent() or the object gauges
        lag.add_metric([layer], max(0.0, (now - when).total_seconds()))
        stamp.add_metric([layer], when.timestamp())
    return [lag, stamp]


def gold_families(gold: GoldState | None) -> list[Metric]:
    rows = GaugeMetricFamily(f"{PREFIX}_gold_mart_rows", "Rows of each published gold mart.", labels=["mart"])
    for mart in sorted(gold.marts if gold else (), key=lambda m: m.name):
        rows.add_metric([mart.name], mart.rows)
    return [rows]


def families(reading: LakeReading, now: datetime) -> list[Metric]:
    """Every metric family of one reading, lags measured at ``now``."""
    up = GaugeMetricFamily(
        f"{PREFIX}_layer_readable", "1 when the exporter could read the layer at the last reading.", labels=["layer"]
    )
    for layer in ("bronze", "silver", "gold"):
        up.add_metric([layer], 0.0 if layer in reading.errors else 1.0)
    took = GaugeMetricFamily(f"{PREFIX}_read_seconds", "Seconds the last reading of the lake took.")
    took.add_metric([], reading.seconds)
    when = GaugeMetricFamily(f"{PREFIX}_read_timestamp_seconds", "Unix time of the last reading (cached between).")
    when.add_metric([], reading.taken_at.timestamp())
    return [
        *bronze_families(reading.bronze),
        *silver_families(reading.loads),
        *freshness_families(reading, now),
        *gold_families(reading.gold),
        up,
        took,
        when,
    ]


# -- reading the lake ------------------------------------------------------------------------------


class LakeReader:
    """Reads bronze listings, silver's load history (again only when it changed) and the gold manifest."""

    def __init__(
        self, lake: Lake, registry: ContractRegistry, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.lake = lake
        self.registry = registry
        self.clock = clock
        self.history_reads = 0  # how often the load history's rows were read (not only its log)
        self._history: DeltaTable | None = None
        self._version: int | None = None
        self._loads: tuple[Load, ...] = ()

    def read(self) -> LakeReading:
        started = time.perf_counter()
        errors: dict[str, str] = {}
        history: DeltaTable | None = None
        loads: tuple[Load, ...] = ()
        try:
            history, loads = self._silver()
        except LAYER_ERRORS as exc:
            errors["silver"] = f"{type(exc).__name__}: {exc}"
        bronze: tuple[BronzeSource, ...] = ()
        try:
            bronze = self._bronze(history)
        except LAYER_ERRORS as exc:
            errors["bronze"] = f"{type(exc).__name__}: {exc}"
        gold = None
        try:
            gold = self._gold()
        except (*LAYER_ERRORS, ValidationError) as exc:
            errors["gold"] = f"{type(exc).__name__}: {exc}"
        return LakeReading(self.clock(), time.perf_counter() - started, bronze, loads, gold, errors)

    def _silver(self) -> tuple[DeltaTable | None, tuple[Load, ...]]:
        """The load history's newest snapshot and its rows (read again only when its version changed)."""
        try:
            if self._history is None:
                self._history = tables.open_table(self.lake.silver, tables.LOAD_HISTORY)
            else:
                self._history.update_incremental()  # the log entries since the last reading only
        except Exception:
            self._history, self._version, self._loads = None, None, ()  # open it afresh next time
            raise
        history = self._history
        if history is None:  # no silver run yet: nothing loaded, everything pending
            return None, ()
        version = history.version()
        if version != self._version:
            data = history.to_pyarrow_table(columns=list(HISTORY_COLUMNS))
            data = data.sort_by([("finished_at", "ascending")])
            self._loads = newest_per_version(Load.from_row(row) for row in data.to_pylist())
            self._version = version
            self.history_reads += 1
        return history, self._loads

    def sources(self) -> list[str]:
        """Declared sources plus bronze top-level folders (not ``_``/``.`` ones), as the silverizer has them."""
        found = set(self.registry.names())
        found.update(f for f in self.lake.bronze.folders() if not f.startswith(("_", ".")))
        return sorted(found)

    def _bronze(self, history: DeltaTable | None) -> tuple[BronzeSource, ...]:
        bronze = self.lake.bronze
        result = []
        for source in self.sources():
            prefix = self.registry.get(source).prefix if source in self.registry else f"{source}/"
            objects = [o for o in bronze.list(prefix) if tables.is_data_object(o.key)]
            pending = len(tables.pending(self.lake.silver, source, objects, history)) if history else len(objects)
            newest = max((o.modified for o in objects), default=None)
            result.append(BronzeSource(source, len(objects), sum(o.size for o in objects), pending, newest))
        return tuple(result)

    def _gold(self) -> GoldState | None:
        gold = self.lake.gold
        if gold.stat(MANIFEST_KEY) is None:
            return None
        return GoldState.model_validate(json.loads(gold.read_bytes(MANIFEST_KEY)))
