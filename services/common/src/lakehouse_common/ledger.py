"""The load ledger: one JSON entry per processed bronze object version, stored in the lake.

Entries live in the silver layer under ``_ledger/<source>/<key id>-<etag id>.json``. The name
encodes the bronze key and its ETag, so the set of pending objects is one listing away, a
changed object (new ETag) is pending again, and older entries stay as load history.
An entry is written last, after the object's outputs are visible: a crash before it means
the object is still pending, and a rerun rewrites the same deterministically named outputs.

On S3, a single-part upload's ETag is the MD5 of its bytes: ``_content/<source>/<etag>.json``
remembers which key loaded them, so a copy of a loaded object under another key is recorded as
a ``duplicate`` and adds nothing to silver.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # storage pulls in pyarrow and boto3; the DAG files use this module at parse time
    from lakehouse_common.storage import LayerStore, ObjectInfo

LEDGER_PREFIX = "_ledger"
# ``_content/<source>/<md5 etag>.json``: which key first loaded these bytes (S3 single-part ETags only).
CONTENT_PREFIX = "_content"
Status = Literal["loaded", "rejected", "unreadable", "duplicate"]
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")


def key_id(key: str) -> str:
    """A stable, path-safe id of a bronze key (also used to name its silver outputs)."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def is_data_object(key: str) -> bool:
    """Whether a bronze key holds data: names starting with ``.`` or ``_`` are bookkeeping or temporary."""
    return not key.rsplit("/", 1)[-1].startswith((".", "_"))


def content_etag(etag: str) -> str | None:
    """The ETag when it identifies the bytes: S3's ETag of a single-part upload is their MD5.

    Multipart ETags (``<md5>-<parts>``) depend on the part size, and the local lake's
    (``<size>-<mtime>``) on the file's timestamp: neither says two objects hold the same bytes.
    """
    return etag if _MD5_ETAG.fullmatch(etag) else None


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

    @staticmethod
    def content_key(source: str, etag: str) -> str:
        return f"{CONTENT_PREFIX}/{source}/{etag}.json"

    def loaded_with_same_content(self, source: str, key: str, etag: str, size: int) -> LedgerEntry | None:
        """The entry of another key of ``source`` that loaded these very bytes, if any (one lookup)."""
        if content_etag(etag) is None:
            return None
        pointer_key = self.content_key(source, etag)
        if self.store.stat(pointer_key) is None:
            return None
        original = str(json.loads(self.store.read_bytes(pointer_key))["key"])
        if original == key:
            return None
        # The pointer is written before the entry, so trust the entry only, and only while it is
        # that key's newest version (a newer version of the key replaced those silver outputs).
        history = self.history_of(source, original)
        latest = history[-1] if history else None
        if latest is None or latest.etag != etag or latest.status != "loaded" or latest.size != size:
            return None
        return latest

    def record(self, entry: LedgerEntry) -> None:
        if entry.status == "loaded" and content_etag(entry.etag) is not None:
            pointer = json.dumps({"key": entry.key, "size": entry.size}).encode()
            self.store.put_bytes(self.content_key(entry.source, entry.etag), pointer)
        self.store.put_bytes(self.entry_key(entry.source, entry.key, entry.etag), entry.to_json())

    def entries(self, source: str | None = None) -> Iterator[LedgerEntry]:
        prefix = self._prefix(source) if source else f"{LEDGER_PREFIX}/"
        for info in self.store.list(prefix):
            if info.key.endswith(".json"):
                yield LedgerEntry.from_json(self.store.read_bytes(info.key))
