"""The bridge's Prometheus metrics (``GET /metrics``), on a registry of their own.

Each :class:`BridgeMetrics` owns its :class:`~prometheus_client.CollectorRegistry`, so two bridges
in one process (the tests start several) count separately.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

NAMESPACE = "lakehouse_bridge"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class BridgeMetrics:
    """Counters of what came in and what reached Airflow."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhook_requests = Counter(
            "webhook_requests",
            "Webhook requests answered, by status code.",
            ["status"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.received_bytes = Counter(
            "received_bytes", "Bytes of webhook request bodies read.", namespace=NAMESPACE, registry=r
        )
        self.records_received = Counter(
            "records_received", "Notification records parsed.", namespace=NAMESPACE, registry=r
        )
        self.records_ignored = Counter(
            "records_ignored", "Records that wake no Asset, by reason.", ["reason"], namespace=NAMESPACE, registry=r
        )
        self.records_duplicate = Counter(
            "records_duplicate",
            "Records whose (bucket, key, etag, sequencer) Airflow had already accepted.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.records_posted = Counter(
            "records_posted", "Asset events Airflow accepted, by source.", ["source"], namespace=NAMESPACE, registry=r
        )
        self.airflow_retries = Counter(
            "airflow_retries",
            "Airflow requests tried again (connection error, 429, 5xx).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.errors = Counter("errors", "Errors, by kind.", ["kind"], namespace=NAMESPACE, registry=r)
        self.last_post = Gauge(
            "last_post_timestamp_seconds",
            "Unix time of the last Asset event Airflow accepted.",
            namespace=NAMESPACE,
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
