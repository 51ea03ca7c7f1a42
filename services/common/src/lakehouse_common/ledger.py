"""The load ledger: one JSON entry per processed bronze object version, stored in the lake.

Entries live in the silver layer under ``_ledger/<source>/<key id>-<etag id>.json``. The name
encodes the bronze key and its ETag, so the set of pending objects is one listing away, a
changed object (new ETag) is pending again, and older entries stay as load history.
An entry is written last, after the object's outputs are visible: a crash before it means
the object is still pending, and a rerun rewrites the same deterministically named outputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # storage pulls in pyarrow and boto3; the DAG files use this module at parse time
    from lakehouse_common.storage import LayerStore, ObjectInfo

LEDGER_PREFIX = "_ledger"
Status = Literal["loaded", "rejected", "unreadable"]


def key_id(key: str) -> str:
    """A stable, path-safe id of a bronze key (also used to name its silver outputs)."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def is_data_object(key: str) -> bool:
    """Whether a bronze key holds data: names starting with ``.`` or ``_`` are bookkeeping or temporary."""
    return not key.rsplit("/", 1)[-1].startswith((".", "_"))


def etag_id(etag: str) -> str:
    return hashlib.sha256(etag.encode()).hexdigest()[:8]


@dataclass
class LedgerEntry:
    source: str
    key: str
    etag: str
    size: int
    status: Status
    contract_version: str
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    warnings: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    quarantine: str | None = None
    reason: str | None = None
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LedgerEntry:
        return cls(**json.loads(data))


class Ledger:
    """Records which bronze object versions have been turned into silver."""

    def __init__(self, store: LayerStore) -> None:
        self.store = store

    @staticmethod
    def entry_key(source: str, key: str, etag: str) -> str:
        return f"{LEDGER_PREFIX}/{source}/{key_id(key)}-{etag_id(etag)}.json"

    def _prefix(self, source: str) -> str:
        return f"{LEDGER_PREFIX}/{source}/"

    def recorded(self, source: str) -> set[str]:
        """Entry keys present for a source (one listing, no reads)."""
        return {info.key for info in self.store.list(self._prefix(source))}

    def pending(self, source: str, objects: list[ObjectInfo]) -> list[ObjectInfo]:
        done = self.recorded(source)
        return [obj for obj in objects if self.entry_key(source, obj.key, obj.etag) not in done]

    def get(self, source: str, key: str, etag: str) -> LedgerEntry | None:
        entry_key = self.entry_key(source, key, etag)
        if self.store.stat(entry_key) is None:
            return None
        return LedgerEntry.from_json(self.store.read_bytes(entry_key))

    def history_of(self, source: str, key: str) -> list[LedgerEntry]:
        """Every recorded version of one bronze key, oldest first."""
        prefix = f"{self._prefix(source)}{key_id(key)}-"
        entries = [LedgerEntry.from_json(self.store.read_bytes(i.key)) for i in self.store.list(prefix)]
        return sorted(entries, key=lambda e: e.finished_at)

    def record(self, entry: LedgerEntry) -> None:
        self.store.put_bytes(self.entry_key(entry.source, entry.key, entry.etag), entry.to_json())

    def entries(self, source: str | None = None) -> Iterator[LedgerEntry]:
        prefix = self._prefix(source) if source else f"{LEDGER_PREFIX}/"
        for info in self.store.list(prefix):
            if info.key.endswith(".json"):
                yield LedgerEntry.from_json(self.store.read_bytes(info.key))
