"""The serve mode's Prometheus metrics, counted from the runner's events.

:class:`IngestorMetrics` is an :data:`~lakehouse_ingestor.logs.Listener`: ``lakehouse-ingest serve``
hands it to the :class:`~lakehouse_ingestor.logs.EventLog` the runner, the sources and the HTTP
client already log through, so nothing else counts twice. The events it reads:

``http.response`` / ``http.failed``
    one request answered (status class ``2xx`` … ``5xx``) or not (``error``), bytes fetched
``http.retry``
    a request tried again
``payload.landed`` / ``file.landed``
    a new bronze object (labelled by the source it lands in) and its bytes
``payload.rejected``, ``details.missing``
    errors that do not end the run
``run.end``
    runs by status, their duration, the last success per source, the error type of a failed run

Each instance owns its :class:`~prometheus_client.CollectorRegistry` (tests start several).
:func:`start_metrics_server` serves it on ``/metrics``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lakehouse_common.metrics_server import MetricsServer, serve_registry
from lakehouse_ingestor.exceptions import IngestConfigError

NAMESPACE = "lakehouse_ingestor"
RUN_SECONDS_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


def status_class(status: object) -> str:
    """``2xx`` … ``5xx`` for an HTTP status, ``error`` for none (timeout, connection refused)."""
    if isinstance(status, int) and 100 <= status < 600:
        return f"{status // 100}xx"
    return "error"


class IngestorMetrics:
    """Counters of the serve mode, fed by :meth:`observe` (an ``EventLog`` listener)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, wall: Callable[[], float] = time.time) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.wall = wall
        r = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests made (each attempt), by source and status class (2xx..5xx, error: no answer).",
            ["source", "status_class"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.retries = Counter(
            "http_retries", "HTTP requests tried again, by source.", ["source"], namespace=NAMESPACE, registry=r
        )
        self.fetched_bytes = Counter(
            "fetched_bytes",
            "Bytes of HTTP response bodies read, by source.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.written_bytes = Counter(
            "written_bytes",
            "Bytes of new bronze objects, by the source they land in.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.objects_written = Counter(
            "objects_written",
            "New bronze objects written (unchanged content is not written again), by the source they land in.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.errors = Counter(
            "errors",
            "Errors, by source and kind (a failed run's error type, rejected_payload, detail_missing).",
            ["source", "kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.runs = Counter(
            "runs",
            "Source runs ended, by source and status (ok, stopped, failed).",
            ["source", "status"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.run_duration = Histogram(
            "run_duration_seconds",
            "Duration of source runs, by source.",
            ["source"],
            buckets=RUN_SECONDS_BUCKETS,
            namespace=NAMESPACE,
            registry=r,
        )
        self.last_success = Gauge(
            "last_success_timestamp_seconds",
            "Unix time the last ok run of a source ended.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._lock = threading.Lock()

    def observe(self, event: str, fields: Mapping[str, Any]) -> None:
        """Count one event (see the module docstring for the events read; others are ignored)."""
        source = str(fields.get("source", "unknown"))
        with self._lock:
            if event == "http.response":
                self.requests.labels(source, status_class(fields.get("status"))).inc()
                self.fetched_bytes.labels(source).inc(_number(fields.get("size")))
            elif event == "http.failed":
                self.requests.labels(source, "error").inc()
            elif event == "http.retry":
                self.retries.labels(source).inc()
            elif event in ("payload.landed", "file.landed"):
                target = str(fields.get("target", source))
                self.objects_written.labels(target).inc()
                self.written_bytes.labels(target).inc(_number(fields.get("size")))
            elif event == "payload.rejected":
                self.errors.labels(source, "rejected_payload").inc()
            elif event == "details.missing":
                self.errors.labels(source, "detail_missing").inc()
            elif event == "run.end":
                self._run_end(source, fields)

    def _run_end(self, source: str, fields: Mapping[str, Any]) -> None:
        status = str(fields.get("status", "unknown"))
        self.runs.labels(source, status).inc()
        self.run_duration.labels(source).observe(_number(fields.get("seconds")))
        if status == "ok":
            self.last_success.labels(source).set(self.wall())
        elif status == "failed":
            self.errors.labels(source, str(fields.get("error_type", "unknown"))).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def start_metrics_server(metrics: IngestorMetrics, host: str, port: int) -> MetricsServer:
    """Serve ``metrics`` at ``http://host:port/metrics`` (port 0 picks a free one)."""
    try:
        return serve_registry(metrics.registry, host, port)
    except OSError as exc:
        raise IngestConfigError(
            f"cannot serve metrics on {host}:{port}: {exc} "
            "(set LAKEHOUSE_INGESTOR_METRICS_PORT to a free port, or 0 to turn the metrics off)"
        ) from exc
