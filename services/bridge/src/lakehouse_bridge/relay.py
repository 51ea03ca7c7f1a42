"""From MinIO records to Airflow Asset events: the one code path of the webhook and of ``replay``.

For each record of a notification, in order:

1. records that wake nothing are skipped (:func:`~lakehouse_bridge.events.ignore_reason`);
2. a record whose (bucket, key, etag, sequencer) Airflow already accepted is a duplicate;
3. the source's bronze Asset id is looked up (cached); an Asset Airflow does not have (no DAG for
   that source yet) is logged as a warning and skipped, so one unknown source never blocks
   MinIO's queue: the landing sensors reconcile it later;
4. the Asset event is posted, and only then remembered in the state file.

When Airflow cannot be reached (after the retries), the relay stops at that record and the result
says 503: MinIO keeps the event in its ``queue_dir`` and sends it again, and what was already
posted is then a duplicate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from lakehouse_bridge.airflow_client import AirflowClient
from lakehouse_bridge.events import DeliveryKey, IgnoreReason, ObjectEvent, asset_name, ignore_reason
from lakehouse_bridge.exceptions import AirflowError, BridgeError, StateStoreError
from lakehouse_bridge.logs import EventLog
from lakehouse_bridge.metrics import BridgeMetrics
from lakehouse_bridge.settings import BridgeSettings
from lakehouse_bridge.state import DeliveryStore

Outcome = Literal["posted", "duplicate", "ignored", "failed", "not_tried"]


@dataclass(frozen=True)
class RecordResult:
    """What became of one record."""

    bucket: str
    key: str
    outcome: Outcome
    reason: str | None = None
    asset: str | None = None
    asset_event_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"bucket": self.bucket, "key": self.key, "outcome": self.outcome}
        for name in ("reason", "asset", "asset_event_id"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        return doc


@dataclass
class RelayResult:
    """What became of one notification: 200 when every record is settled, 503 when one must be sent again."""

    records: list[RecordResult] = field(default_factory=list)
    error: BridgeError | None = None

    @property
    def status(self) -> int:
        return 503 if self.error is not None else 200

    def count(self, outcome: Outcome) -> int:
        return sum(record.outcome == outcome for record in self.records)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "status": self.status,
            "posted": self.count("posted"),
            "duplicate": self.count("duplicate"),
            "ignored": self.count("ignored"),
            "records": [record.as_dict() for record in self.records],
        }
        if self.error is not None:
            doc["error"] = str(self.error)
        return doc


class _KeyedLocks:
    """One lock per delivery key while it is in use, so two requests carrying the same record
    (MinIO retrying while the first is still posting) post it once."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[DeliveryKey, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: DeliveryKey) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class EventRelay:
    """Posts the bronze Asset events of MinIO records to Airflow, once per (bucket, key, etag, sequencer)."""

    def __init__(
        self,
        client: AirflowClient,
        store: DeliveryStore,
        bronze_bucket: str,
        metrics: BridgeMetrics | None = None,
        log: EventLog | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.bronze_bucket = bronze_bucket
        self.metrics = metrics or BridgeMetrics()
        self.log = log or EventLog()
        self._locks = _KeyedLocks()

    @classmethod
    def from_settings(
        cls, settings: BridgeSettings, bronze_bucket: str, metrics: BridgeMetrics | None = None
    ) -> EventRelay:
        metrics = metrics or BridgeMetrics()
        log = EventLog()
        client = AirflowClient(
            settings.airflow(),
            retries=settings.retries,
            backoff_s=settings.backoff_s,
            backoff_max_s=settings.backoff_max_s,
            timeout_s=settings.timeout_s,
            on_retry=metrics.airflow_retries.inc,
            log=log,
        )
        return cls(client, DeliveryStore(settings.state_path), bronze_bucket, metrics, log)

    def relay(self, events: Sequence[ObjectEvent]) -> RelayResult:
        result = RelayResult()
        self.metrics.records_received.inc(len(events))
        for index, event in enumerate(events):
            try:
                result.records.append(self._relay_one(event))
            except (AirflowError, StateStoreError) as exc:
                kind = exc.kind if isinstance(exc, AirflowError) else "state"
                self.metrics.errors.labels(kind=kind).inc()
                self.log.error(
                    "record.failed", bucket=event.bucket, key=event.key, kind=kind, error=str(exc), retry="by MinIO"
                )
                result.error = exc
                result.records.append(RecordResult(event.bucket, event.key, "failed", reason=kind))
                result.records.extend(RecordResult(e.bucket, e.key, "not_tried") for e in events[index + 1 :])
                break
        return result

    def _ignored(self, event: ObjectEvent, reason: IgnoreReason, asset: str | None = None) -> RecordResult:
        self.metrics.records_ignored.labels(reason=reason.value).inc()
        return RecordResult(event.bucket, event.key, "ignored", reason=reason.value, asset=asset)

    def _relay_one(self, event: ObjectEvent) -> RecordResult:
        reason = ignore_reason(event, self.bronze_bucket)
        if reason is not None:
            level = self.log.info if reason is IgnoreReason.NO_SOURCE else self.log.debug
            level(
                "record.ignored", reason=reason.value, event_name=event.event_name, bucket=event.bucket, key=event.key
            )
            return self._ignored(event, reason)
        source = event.source
        if source is None:  # ignore_reason() already said so; this tells the type checker
            return self._ignored(event, IgnoreReason.NO_SOURCE)
        asset = asset_name(source)
        with self._locks.hold(event.delivery_key):
            if self.store.seen(event.delivery_key):
                self.metrics.records_duplicate.inc()
                self.log.info(
                    "record.duplicate", asset=asset, key=event.key, etag=event.etag, sequencer=event.sequencer
                )
                return RecordResult(event.bucket, event.key, "duplicate", asset=asset)
            started = time.perf_counter()
            response = self._post(asset, event)
            if response is None:
                self.log.warning(
                    "asset.unknown",
                    asset=asset,
                    key=event.key,
                    hint=f"Airflow has no active Asset named {asset!r} (no DAG for source {source!r} yet?); "
                    "not retried, the landing sensor picks the object up once the DAG exists",
                )
                return self._ignored(event, IgnoreReason.UNKNOWN_ASSET, asset)
            event_id = response.get("id")
            event_id = event_id if isinstance(event_id, int) else None
            self.store.record(event.delivery_key, asset, event_id)
        self.metrics.records_posted.labels(source=source).inc()
        self.metrics.last_post.set_to_current_time()
        self.log.info(
            "asset_event.posted",
            asset=asset,
            key=event.key,
            etag=event.etag,
            sequencer=event.sequencer,
            asset_event_id=event_id,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return RecordResult(event.bucket, event.key, "posted", asset=asset, asset_event_id=event_id)

    def _post(self, asset: str, event: ObjectEvent) -> dict[str, Any] | None:
        """Post the event; None when Airflow has no such Asset (also after the cached id went stale)."""
        for _ in range(2):
            asset_id = self.client.asset_id(asset)
            if asset_id is None:
                return None
            response = self.client.post_asset_event(asset_id, event.extra())
            if response is not None:
                return response
            self.client.forget_asset(asset)  # 404: the Asset was removed or recreated under a new id
        return None

    def close(self) -> None:
        self.client.close()
        self.store.close()
