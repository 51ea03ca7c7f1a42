"""Pipeline metrics: what the lake says about bronze, the ledger (silver) and gold.

:class:`LakeReader` reads the lake into a :class:`LakeReading` (bronze listings, the ledger's
entries, the gold manifest); the functions below turn a reading into Prometheus metric families
and are pure, so the tests feed them ledger entries directly. Ledger entries are read once: the
reader keeps them by ledger key and ETag and reads only new or rewritten ones on later scrapes.

Freshness lag is measured at scrape time against the newest bronze object, the newest ledger
entry (``finished_at``) and the gold manifest's ``published_at``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel, ConfigDict, ValidationError

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.ledger import LEDGER_PREFIX, Ledger, LedgerEntry, is_data_object
from lakehouse_common.storage import Lake

PREFIX = "lakehouse_pipeline"
STATUSES = ("loaded", "rejected", "unreadable", "duplicate")
ROW_KINDS = ("in", "out", "quarantined", "deduplicated")
SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
MANIFEST_KEY = "_manifest.json"
LAYER_ERRORS = (LakehouseError, ClientError, BotoCoreError, OSError, ValueError)


@dataclass(frozen=True)
class BronzeSource:
    """One source's bronze objects, and how many of them the ledger has not seen yet."""

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
class LakeReading:
    """One reading of the lake; ``errors`` names the layers that could not be read, and why."""

    taken_at: datetime
    seconds: float
    bronze: tuple[BronzeSource, ...] = ()
    ledger: tuple[LedgerEntry, ...] = ()
    gold: GoldState | None = None
    errors: dict[str, str] = field(default_factory=dict)


# -- pure: readings -> metric families ------------------------------------------------------------


def bronze_families(bronze: Sequence[BronzeSource]) -> list[Metric]:
    objects = GaugeMetricFamily(f"{PREFIX}_bronze_objects", "Data objects in bronze, by source.", labels=["source"])
    size = GaugeMetricFamily(f"{PREFIX}_bronze_bytes", "Bytes of bronze data objects, by source.", labels=["source"])
    pending = GaugeMetricFamily(
        f"{PREFIX}_pending_objects", "Bronze objects (versions) with no ledger entry yet, by source.", labels=["source"]
    )
    for item in sorted(bronze, key=lambda b: b.source):
        objects.add_metric([item.source], item.objects)
        size.add_metric([item.source], item.bytes)
        pending.add_metric([item.source], item.pending)
    return [objects, size, pending]


def ledger_families(entries: Iterable[LedgerEntry]) -> list[Metric]:
    """Objects by status, rows by kind and processing durations, per source, from ledger entries."""
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
        f"{PREFIX}_ledger_objects",
        "Bronze object versions in the ledger, by source and status (loaded, rejected, unreadable, duplicate).",
        labels=["source", "status"],
    )
    for source in sorted(seconds):
        for status in STATUSES:
            objects.add_metric([source, status], by_status.get((source, status), 0))
    row_families = []
    for kind in ROW_KINDS:
        family = GaugeMetricFamily(
            f"{PREFIX}_rows_{kind}", f"Rows {kind} over the ledger's entries, by source.", labels=["source"]
        )
        for source in sorted(seconds):
            family.add_metric([source], rows[(source, kind)])
        row_families.append(family)
    durations = HistogramMetricFamily(
        f"{PREFIX}_silver_processing_seconds",
        "Seconds the silverizer took per bronze object (the ledger's seconds), by source.",
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


def newest_ledger_time(entries: Iterable[LedgerEntry]) -> datetime | None:
    times = [t for t in (parse_time(e.finished_at) for e in entries) if t is not None]
    return max(times, default=None)


def layer_times(reading: LakeReading) -> dict[str, datetime | None]:
    """When each layer last changed: newest bronze object, newest ledger entry, gold's publish."""
    return {
        "bronze": max((b.newest for b in reading.bronze if b.newest is not None), default=None),
        "silver": newest_ledger_time(reading.ledger),
        "gold": reading.gold.published_at if reading.gold else None,
    }


def freshness_families(reading: LakeReading, now: datetime) -> list[Metric]:
    lag = GaugeMetricFamily(
        f"{PREFIX}_freshness_lag_seconds",
        "Seconds since the layer changed (bronze: newest object, silver: newest ledger entry, gold: published_at).",
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
        *ledger_families(reading.ledger),
        *freshness_families(reading, now),
        *gold_families(reading.gold),
        up,
        took,
        when,
    ]


def parse_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- reading the lake ------------------------------------------------------------------------------


class LakeReader:
    """Reads bronze listings, the ledger (new entries only) and the gold manifest."""

    def __init__(
        self, lake: Lake, registry: ContractRegistry, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.lake = lake
        self.registry = registry
        self.clock = clock
        self._entries: dict[str, tuple[str, LedgerEntry]] = {}  # ledger key -> (its etag, the entry)

    def read(self) -> LakeReading:
        started = time.perf_counter()
        errors: dict[str, str] = {}
        recorded: set[str] = set()
        entries: tuple[LedgerEntry, ...] = ()
        try:
            recorded, entries = self._ledger()
        except LAYER_ERRORS as exc:
            errors["silver"] = f"{type(exc).__name__}: {exc}"
        bronze: tuple[BronzeSource, ...] = ()
        try:
            bronze = self._bronze(recorded)
        except LAYER_ERRORS as exc:
            errors["bronze"] = f"{type(exc).__name__}: {exc}"
        gold = None
        try:
            gold = self._gold()
        except (*LAYER_ERRORS, ValidationError) as exc:
            errors["gold"] = f"{type(exc).__name__}: {exc}"
        return LakeReading(self.clock(), time.perf_counter() - started, bronze, entries, gold, errors)

    def _ledger(self) -> tuple[set[str], tuple[LedgerEntry, ...]]:
        silver = self.lake.silver
        listed = {i.key: i.etag for i in silver.list(f"{LEDGER_PREFIX}/") if i.key.endswith(".json")}
        for key in set(self._entries) - set(listed):
            del self._entries[key]
        for key, etag in listed.items():
            cached = self._entries.get(key)
            if cached is None or cached[0] != etag:
                self._entries[key] = (etag, LedgerEntry.from_json(silver.read_bytes(key)))
        return set(listed), tuple(entry for _, entry in self._entries.values())

    def sources(self) -> list[str]:
        """Declared sources plus bronze top-level folders (not ``_``/``.`` ones), as the silverizer has them."""
        found = set(self.registry.names())
        found.update(f for f in self.lake.bronze.folders() if not f.startswith(("_", ".")))
        return sorted(found)

    def _bronze(self, recorded: set[str]) -> tuple[BronzeSource, ...]:
        bronze = self.lake.bronze
        result = []
        for source in self.sources():
            prefix = self.registry.get(source).prefix if source in self.registry else f"{source}/"
            objects = [o for o in bronze.list(prefix) if is_data_object(o.key)]
            pending = sum(Ledger.entry_key(source, o.key, o.etag) not in recorded for o in objects)
            newest = max((o.modified for o in objects), default=None)
            result.append(BronzeSource(source, len(objects), sum(o.size for o in objects), pending, newest))
        return tuple(result)

    def _gold(self) -> GoldState | None:
        gold = self.lake.gold
        if gold.stat(MANIFEST_KEY) is None:
            return None
        return GoldState.model_validate(json.loads(gold.read_bytes(MANIFEST_KEY)))
