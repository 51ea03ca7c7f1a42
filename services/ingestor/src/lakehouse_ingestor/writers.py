"""Writing raw payloads into the bronze layer.

Bronze keeps payloads byte for byte. Keys are content-addressed (see :mod:`lakehouse_ingestor.keys`)
and every write is an atomic create-if-absent, so a retried or repeated ingestion never writes an
identical payload twice and a reader never sees a partial object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lakehouse_common.exceptions import StorageError
from lakehouse_common.storage import Lake, LayerStore
from lakehouse_ingestor.exceptions import BronzeWriteError
from lakehouse_ingestor.keys import bronze_key


@dataclass(frozen=True)
class WriteResult:
    """What happened to one payload: ``written`` is False when the identical object already existed."""

    key: str
    size: int
    written: bool


class BronzeWriter:
    """Lands payloads in the lake's bronze layer under content-addressed keys."""

    def __init__(self, lake: Lake) -> None:
        self._store: LayerStore = lake.bronze

    @property
    def store(self) -> LayerStore:
        return self._store

    def write(self, source: str, data: bytes, *, ext: str, fetched_at: datetime) -> WriteResult:
        """Write ``data`` unless the same payload fetched at the same instant is already there."""
        key = bronze_key(source, data, ext, fetched_at)
        try:
            written = self._store.put_bytes(key, data, if_absent=True)
        except StorageError as exc:
            target = self._store.uri(key)
            raise BronzeWriteError(f"cannot land {len(data)} bytes of {source} at {target}: {exc}") from exc
        return WriteResult(key=key, size=len(data), written=written)
