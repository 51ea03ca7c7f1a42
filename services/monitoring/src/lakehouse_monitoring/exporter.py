"""The exporter: a Prometheus collector over :class:`~lakehouse_monitoring.pipeline.LakeReader`,
with a short cache, on a registry of its own, served on ``/metrics``.

A scrape within ``cache_s`` of the last reading reuses it (Prometheus, a second Prometheus and a
person with curl do not each list the lake); lags are still measured at scrape time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from lakehouse_common.metrics_server import MetricsServer, serve_registry
from lakehouse_monitoring.exceptions import MetricsServerError
from lakehouse_monitoring.pipeline import LakeReader, LakeReading, families


class PipelineCollector(Collector):
    def __init__(
        self,
        reader: LakeReader,
        cache_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reader = reader
        self.cache_s = cache_s
        self.monotonic = monotonic
        self.clock = clock
        self.readings = 0
        self._reading: LakeReading | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def reading(self) -> LakeReading:
        """The cached reading, or a new one when it is older than ``cache_s``."""
        with self._lock:
            now = self.monotonic()
            if self._reading is None or now - self._read_at >= self.cache_s:
                self._reading = self.reader.read()
                self._read_at = now
                self.readings += 1
            return self._reading

    def collect(self) -> Iterator[Metric]:
        yield from families(self.reading(), self.clock())

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering must not read the lake


class PipelineExporter:
    """The collector on its own registry (tests run several exporters in one process)."""

    def __init__(self, collector: PipelineCollector) -> None:
        self.collector = collector
        self.registry = CollectorRegistry()
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve(exporter: PipelineExporter, host: str, port: int) -> MetricsServer:
    """Serve the exporter at ``http://host:port/metrics`` (port 0 picks a free one)."""
    try:
        return serve_registry(exporter.registry, host, port)
    except OSError as exc:
        raise MetricsServerError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
