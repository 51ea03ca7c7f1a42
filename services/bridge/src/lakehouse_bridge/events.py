"""MinIO bucket notifications: parsing, key decoding, and which records wake which bronze Asset.

MinIO's webhook target POSTs one JSON document per event::

    {"EventName": "s3:ObjectCreated:Put", "Key": "bronze/vacancies/x.json",
     "Records": [{"eventName": "s3:ObjectCreated:Put", "eventTime": "...",
                  "s3": {"bucket": {"name": "bronze"},
                         "object": {"key": "vacancies%2Fx.json", "size": 1, "eTag": "...", "sequencer": "..."}}}]}

A record's ``s3.object.key`` is query-escaped (``/`` is ``%2F``, a space ``+``), so it is decoded
with :func:`urllib.parse.unquote_plus`. The queue store under MinIO's ``queue_dir`` keeps bare
records (the ``Records`` items), so a bare record is accepted too (``lakehouse-bridge replay``).

The source of ``vacancies/ingest_date=2026-01-01/x.json`` is ``vacancies``, and its bronze Asset
is named ``bronze/vacancies``. Bookkeeping prefixes (``_meta/``, ``_index/``, ``_state/``,
``_rejected/``), hidden files and other buckets are not data and wake nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from lakehouse_bridge.exceptions import EventFormatError

CREATED_PREFIX = "s3:ObjectCreated:"
ASSET_PREFIX = "bronze/"
VIA = "minio-bridge"
_SHAPE = (
    'a MinIO bucket notification is a JSON object {"EventName": ..., "Key": ..., "Records": [...]} whose records '
    'look like {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": ...}, "object": {"key": ...}}}'
)

DeliveryKey = tuple[str, str, str, str]
"""(bucket, key, etag, sequencer): what makes two records the same event."""


class IgnoreReason(StrEnum):
    """Why a record wakes no Asset (the ``reason`` label of the ignored-records counter)."""

    NOT_CREATED = "not_created"
    OTHER_BUCKET = "other_bucket"
    NO_SOURCE = "no_source"
    BOOKKEEPING = "bookkeeping"
    HIDDEN = "hidden"
    UNKNOWN_ASSET = "unknown_asset"


@dataclass(frozen=True)
class ObjectEvent:
    """One record of a notification, with its key decoded."""

    event_name: str
    event_time: str
    bucket: str
    key: str
    etag: str
    sequencer: str
    size: int | None = None

    @property
    def delivery_key(self) -> DeliveryKey:
        return (self.bucket, self.key, self.etag, self.sequencer)

    @property
    def source(self) -> str | None:
        return source_of(self.key)

    def extra(self) -> dict[str, Any]:
        """The Asset event's ``extra``: which object woke the Asset, and how."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "sequencer": self.sequencer,
            "event_name": self.event_name,
            "event_time": self.event_time,
            "via": VIA,
        }


def decode_key(raw: str) -> str:
    """A record's object key as stored: MinIO query-escapes it (``%2F``, ``+`` for a space)."""
    return unquote_plus(raw)


def source_of(key: str) -> str | None:
    """The source an object key belongs to (its first path segment), or None for a root-level key."""
    first, sep, _ = key.partition("/")
    return first if sep and first else None


def asset_name(source: str) -> str:
    """The Airflow Asset *name* of a source's bronze data."""
    return f"{ASSET_PREFIX}{source}"


def ignore_reason(event: ObjectEvent, bronze_bucket: str) -> IgnoreReason | None:
    """Why ``event`` wakes no bronze Asset, or None when it should."""
    if not event.event_name.startswith(CREATED_PREFIX):
        return IgnoreReason.NOT_CREATED
    if event.bucket != bronze_bucket:
        return IgnoreReason.OTHER_BUCKET
    source = source_of(event.key)
    if source is None:
        return IgnoreReason.NO_SOURCE
    if source[0] in "_.":
        return IgnoreReason.BOOKKEEPING
    basename = event.key.rsplit("/", 1)[-1]
    if not basename or basename[0] in "_.":
        return IgnoreReason.HIDDEN
    return None


def _field(doc: Mapping[str, Any], path: str, where: str, *, required: bool = True) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            if required:
                raise EventFormatError(f"{where}.{path} is missing; {_SHAPE}")
            return None
        value = value[part]
    return value


def _text(doc: Mapping[str, Any], path: str, where: str, *, required: bool = True) -> str:
    value = _field(doc, path, where, required=required)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise EventFormatError(f"{where}.{path} must be a non-empty string, got {value!r}; {_SHAPE}")
    return value


def parse_record(record: Any, where: str = "record") -> ObjectEvent:
    """One ``Records`` item (or one bare record of MinIO's queue store)."""
    if not isinstance(record, Mapping):
        raise EventFormatError(f"{where} must be a JSON object, got {type(record).__name__}; {_SHAPE}")
    size = _field(record, "s3.object.size", where, required=False)
    return ObjectEvent(
        event_name=_text(record, "eventName", where),
        event_time=_text(record, "eventTime", where, required=False),
        bucket=_text(record, "s3.bucket.name", where),
        key=decode_key(_text(record, "s3.object.key", where)),
        etag=_text(record, "s3.object.eTag", where, required=False).strip('"'),
        sequencer=_text(record, "s3.object.sequencer", where, required=False),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def parse_document(doc: Any) -> list[ObjectEvent]:
    """The records of one decoded notification (the webhook's body, or a bare record)."""
    if isinstance(doc, Mapping) and "Records" in doc:
        records = doc["Records"]
        if not isinstance(records, list):
            raise EventFormatError(f"Records must be a list, got {type(records).__name__}; {_SHAPE}")
        return [parse_record(record, f"Records[{i}]") for i, record in enumerate(records)]
    if isinstance(doc, Mapping) and "s3" in doc and "eventName" in doc:
        return [parse_record(doc)]
    got = f"an object with keys {sorted(doc)[:8]}" if isinstance(doc, Mapping) else type(doc).__name__
    raise EventFormatError(f"not a MinIO bucket notification (got {got}); {_SHAPE}")


def parse_notification(body: bytes | str) -> list[ObjectEvent]:
    """The records of one webhook body."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventFormatError(f"the body is not JSON ({exc}); {_SHAPE}") from exc
    return parse_document(doc)


def iter_documents(text: str) -> Iterator[Any]:
    """The JSON documents of a saved file: one document, or one per line (JSON lines)."""
    try:
        yield json.loads(text)
        return
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise EventFormatError(f"line {number} is not JSON ({exc}); {_SHAPE}") from exc
