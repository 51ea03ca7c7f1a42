"""Landing sensors: fire when a source has bronze objects that silver has not taken yet.

Two variants with one behaviour:

- :class:`BronzeS3KeySensor`, an S3KeySensor on ``s3://<bronze>/<prefix>*`` through an Airflow
  AWS connection (MinIO, AWS, any S3-compatible endpoint), deferrable with
  :class:`PendingS3KeyTrigger`;
- :class:`BronzeFileSensor`, its equivalent on the local lake (``data/bronze/<prefix>``),
  deferrable with :class:`PendingFilesTrigger`.

Only object versions that are pending count: those whose Delta app transaction the load history
(``silver/_load_history``) lacks (:func:`lakehouse_common.tables.pending`: one read of the table's
log, no data read). An already processed bronze prefix does not keep a sensor firing. The bronze
listing goes through the Airflow connection (S3) or the file system (local); the load history is
read with ``deltalake`` and the lake's settings (``LAKEHOUSE_*``), as the silverizer reads it.
Each sensor has two modes:

- *new* (default): done as soon as something is pending; returns the pending ``[key, etag]``
  pairs (the task's XCom) and, as the task's outlet, marks the source's bronze Asset updated;
- *loaded* (``announced_from=<task id>``): done once none of the objects that task announced
  is pending any more, i.e. silver has taken them. A landing run waits in this mode so that it
  announces each object once, instead of re-firing until silver catches up.

Both compute the same thing, in the worker when poked and in the triggerer while deferred
(there ``deltalake``, which is synchronous, runs in a thread: the triggerer's event loop is shared).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger
from airflow.providers.standard.triggers.file import FileTrigger
from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.triggers.base import BaseTrigger, TriggerEvent

from lakehouse_common import tables
from lakehouse_common.settings import Settings
from lakehouse_orchestration.registry import SourceSpec
from lakehouse_orchestration.settings import OrchestrationSettings

if TYPE_CHECKING:  # storage imports boto3 and pyarrow: only when a sensor runs, never at DAG parse time
    from lakehouse_common.storage import LayerStore, ObjectInfo

# Asset event extras and trigger payloads carry at most this many keys (the metadata DB stores them).
MAX_LISTED = 1000
Pair = tuple[str, str]


def pending_pairs(silver: LayerStore, source: str, objects: Iterable[ObjectInfo]) -> list[Pair]:
    """``(key, etag)`` of the data objects whose version ``silver/_load_history`` has no app
    transaction for, sorted by key."""
    data = [info for info in objects if tables.is_data_object(info.key)]
    return sorted((info.key, info.etag) for info in tables.pending(silver, source, data))


def lake_silver() -> LayerStore:
    """The silver layer as the settings in the environment (``LAKEHOUSE_*``) name it."""
    from lakehouse_common.settings import get_settings
    from lakehouse_common.storage import Lake

    return Lake(get_settings()).silver


def satisfied(pending: Sequence[Pair], announced: set[Pair] | None) -> bool:
    """*new* mode: something is pending. *loaded* mode: nothing announced is still pending."""
    if announced is None:
        return bool(pending)
    return not announced.intersection(pending)


def _as_pairs(raw: Iterable[Sequence[str]] | None) -> set[Pair] | None:
    return None if raw is None else {(str(k), str(e)) for k, e in raw}


# -- triggers (run in the triggerer) -----------------------------------------------------------
class PendingS3KeyTrigger(S3KeyTrigger):
    """S3KeyTrigger that lists the bronze prefix, checks the load history's transactions, and
    fires per :func:`satisfied`."""

    def __init__(
        self,
        *,
        source: str,
        prefix: str,
        announced: list[list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.prefix = prefix
        self.announced = announced

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        kwargs.update(source=self.source, prefix=self.prefix, announced=self.announced)
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced = _as_pairs(self.announced)
        try:
            silver = await asyncio.to_thread(lake_silver)
            async with await self.hook.get_async_conn() as client:
                while True:
                    objects = await _list_async(client, self.bucket_name, self.prefix)
                    pending = await asyncio.to_thread(pending_pairs, silver, self.source, objects)
                    if satisfied(pending, announced):
                        yield TriggerEvent({"status": "success", "pending": [list(p) for p in pending[:MAX_LISTED]]})
                        return
                    await asyncio.sleep(self.poke_interval)
        except Exception as exc:  # the sensor turns this into a task failure, and Airflow retries
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})


def _object_info(item: dict[str, Any]) -> ObjectInfo:
    """One ``list_objects_v2`` item as the lake describes objects (the version's time is part of
    its transaction: :func:`lakehouse_common.tables.txn_version`)."""
    from lakehouse_common.storage import ObjectInfo

    return ObjectInfo(
        key=item["Key"], size=int(item["Size"]), etag=str(item["ETag"]).strip('"'), modified=item["LastModified"]
    )


async def _list_async(client: Any, bucket: str, prefix: str) -> list[ObjectInfo]:
    found: list[ObjectInfo] = []
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        found.extend(_object_info(item) for item in page.get("Contents", []))
    return found


class PendingFilesTrigger(FileTrigger):
    """FileTrigger's local-lake counterpart of :class:`PendingS3KeyTrigger` (same rule, same payload)."""

    def __init__(self, *, source: str, prefix: str, announced: list[list[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.prefix = prefix
        self.announced = announced

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        kwargs.update(source=self.source, prefix=self.prefix, announced=self.announced)
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced = _as_pairs(self.announced)
        try:
            while True:
                pending = await asyncio.to_thread(local_pending, self.source, self.prefix)
                if satisfied(pending, announced):
                    yield TriggerEvent({"status": "success", "pending": [list(p) for p in pending[:MAX_LISTED]]})
                    return
                await asyncio.sleep(self.poke_interval)
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})


def local_pending(source: str, prefix: str) -> list[Pair]:
    """Pending objects of a source on the local lake (the settings come from the environment)."""
    from lakehouse_common.settings import get_settings
    from lakehouse_common.storage import Lake  # boto3 only when a local sensor runs

    lake = Lake(get_settings())
    return pending_pairs(lake.silver, source, lake.bronze.list(prefix))


# -- sensors (run in the worker) ---------------------------------------------------------------
class _LandingMixin:
    """What both landing sensors share: the decision, the outlet event's extra, deferral."""

    source: str
    announced_from: str | None
    deferrable: bool
    poke_interval: float
    timeout: float
    outlets: list[Any]

    def _pending_now(self, context: Context) -> list[Pair]:
        raise NotImplementedError

    def _trigger(self, announced: list[list[str]] | None) -> BaseTrigger:
        raise NotImplementedError

    def _announced(self, context: Context) -> list[list[str]] | None:
        if self.announced_from is None:
            return None
        pulled = context["ti"].xcom_pull(task_ids=self.announced_from)
        return [list(p) for p in (pulled or [])]

    def _decide(self, pending: Sequence[Sequence[str]], context: Context) -> PokeReturnValue:
        pairs = [(str(k), str(e)) for k, e in pending]
        announced = self._announced(context)
        if not satisfied(pairs, _as_pairs(announced)):
            return PokeReturnValue(is_done=False)
        if announced is not None:
            return PokeReturnValue(is_done=True, xcom_value=len(announced))
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "source": self.source,
                "pending": len(pairs),
                "keys": [k for k, _ in pairs[:100]],
                "via": "sensor",
            }
        return PokeReturnValue(is_done=True, xcom_value=[list(p) for p in pairs[:MAX_LISTED]])

    def poke(self, context: Context) -> PokeReturnValue:
        return self._decide(self._pending_now(context), context)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return BaseSensorOperator.execute(self, context)  # type: ignore[arg-type]
        result = self.poke(context)
        if result.is_done:
            return result.xcom_value
        self._defer_now(context)
        return None

    def _defer_now(self, context: Context) -> None:
        self.defer(  # type: ignore[attr-defined]
            trigger=self._trigger(self._announced(context)),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if event.get("status") == "error":
            raise RuntimeError(f"landing sensor of {self.source!r} failed in the triggerer: {event.get('message')}")
        # Decide on the lake as it is now, not on the trigger's list: a task resumed late (a paused
        # DAG, a busy executor) must not announce objects that silver has taken in the meantime.
        result = self.poke(context)
        if not result.is_done:  # the state moved on between the trigger and now: wait again
            self._defer_now(context)
        return result.xcom_value


class BronzeS3KeySensor(_LandingMixin, S3KeySensor):
    """Waits on ``s3://<bronze>/<prefix>*`` for objects silver has not taken (see the module doc)."""

    def __init__(
        self,
        *,
        source: str,
        prefix: str,
        bronze_bucket: str,
        announced_from: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("deferrable", True)
        super().__init__(bucket_key=f"s3://{bronze_bucket}/{prefix}*", wildcard_match=True, **kwargs)
        self.source = source
        self.prefix = prefix
        self.bronze_bucket = bronze_bucket
        self.announced_from = announced_from

    def _pending_now(self, context: Context) -> list[Pair]:
        objects = _list_sync(self.hook.conn, self.bronze_bucket, self.prefix)
        return pending_pairs(lake_silver(), self.source, objects)

    def _trigger(self, announced: list[list[str]] | None) -> BaseTrigger:
        return PendingS3KeyTrigger(
            source=self.source,
            prefix=self.prefix,
            announced=announced,
            bucket_name=self.bronze_bucket,
            bucket_key=self.bucket_key,
            wildcard_match=True,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
            poke_interval=self.poke_interval,
        )


def _list_sync(client: Any, bucket: str, prefix: str) -> list[ObjectInfo]:
    found: list[ObjectInfo] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(_object_info(item) for item in page.get("Contents", []))
    return found


class BronzeFileSensor(_LandingMixin, BaseSensorOperator):
    """The local lake's equivalent of :class:`BronzeS3KeySensor`: waits on ``data/bronze/<prefix>``."""

    def __init__(
        self,
        *,
        source: str,
        prefix: str,
        filepath: str,
        announced_from: str | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.prefix = prefix
        self.filepath = filepath
        self.announced_from = announced_from
        self.deferrable = deferrable

    def _pending_now(self, context: Context) -> list[Pair]:
        return local_pending(self.source, self.prefix)

    def _trigger(self, announced: list[list[str]] | None) -> BaseTrigger:
        return PendingFilesTrigger(
            source=self.source,
            prefix=self.prefix,
            announced=announced,
            filepath=self.filepath,
            recursive=True,
            poke_interval=self.poke_interval,
        )


def landing_sensor(
    lake: Settings,
    orchestration: OrchestrationSettings,
    source: SourceSpec,
    *,
    task_id: str,
    announced_from: str | None = None,
    **kwargs: Any,
) -> BaseSensorOperator:
    """The landing sensor for the configured backend: an S3KeySensor on s3, a file sensor on local."""
    kwargs.setdefault("poke_interval", orchestration.poke_interval_s)
    if lake.backend == "s3":
        return BronzeS3KeySensor(
            task_id=task_id,
            source=source.name,
            prefix=source.prefix,
            bronze_bucket=lake.bronze_bucket,
            aws_conn_id=orchestration.s3_conn_id,
            announced_from=announced_from,
            **kwargs,
        )
    return BronzeFileSensor(
        task_id=task_id,
        source=source.name,
        prefix=source.prefix,
        filepath=str(Path(lake.data_dir).resolve() / "bronze" / source.prefix / "**"),
        announced_from=announced_from,
        **kwargs,
    )
