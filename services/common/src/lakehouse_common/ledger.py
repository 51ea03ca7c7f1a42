"""The load ledger: one JSON entry per processed bronze object version, stored in the lake.

Entries live in the silver layer under ``_ledger/<source>/<key id>-<etag id>.json``. The name
encodes the bronze key and its ETag, so the set of pending objects is one listing away, a
changed object (new ETag) is pending again, and older entries stay as load history.
The ledger is silver's commit log. An object's outputs are written under names of their own
(``part-<key id>-<etag id>-<attempt>.parquet``), never over another attempt's files, and its
entry, written last, commits them: readers (dbt's sources, the catalog) read only the files that
each bronze key's newest entry names (:meth:`Ledger.committed`), so they see an object's old
outputs or all of its new ones, never a mixture. A crash before the entry leaves the object
pending and its files unreferenced; superseded and unreferenced files are removed by the
silverizer's vacuum once no reader can still be using them.

"Newest" is one rule everywhere (:func:`version_rank`; the dbt macro ``ledger_newest`` in
``dbt/macros/silver_ledger.sql``; the catalog's ``load_history``): the entry of the latest bronze
version (its modification time), then the latest finished.

On S3, a single-part upload's ETag is the MD5 of its bytes: ``_content/<source>/<etag>.json``
remembers which key loaded them, so a copy of a loaded object under another key is recorded as
a ``duplicate`` and adds nothing to silver.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
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


def _attempt_parts(key: str) -> tuple[str, str, list[str]] | None:
    folder, _, name = key.rpartition("/")
    prefix = "part-" if name.startswith("part-") else ""
    stem, dot, ext = name.removeprefix(prefix).partition(".")
    parts = stem.split("-")
    if len(parts) != 3 or not dot:
        return None
    return f"{folder}/{prefix}" if folder else prefix, ext, parts


def version_of(key: str) -> str | None:
    """``<key id>-<etag id>`` of an attempt's file (``part-<key id>-<etag id>-<attempt>.parquet``,
    ``<key id>-<etag id>-<attempt>.jsonl``); None for other names."""
    found = _attempt_parts(key)
    return f"{found[2][0]}-{found[2][1]}" if found else None


def logical_key(key: str) -> str:
    """An attempt's file name without the attempt: the same for every attempt at one object version."""
    found = _attempt_parts(key)
    if found is None:
        return key
    head, ext, parts = found
    return f"{head}{parts[0]}-{parts[1]}.{ext}"


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
    # The bronze object version's modification time (ISO, UTC): orders versions of one key.
    bronze_modified: str = ""

    def files(self) -> list[str]:
        """The silver keys this entry commits: its outputs and its quarantine file."""
        return [*self.outputs, *([self.quarantine] if self.quarantine else [])]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LedgerEntry:
        return cls(**json.loads(data))


def version_rank(entry: LedgerEntry) -> tuple[str, str]:
    """Sort key of one bronze key's entries: the newest bronze version, then the latest finished.

    Entries written before ``bronze_modified`` existed rank below every entry that has it, and
    among themselves by finish time. Keep in step with ``dbt/macros/silver_ledger.sql``.
    """
    return (entry.bronze_modified, entry.finished_at)


def newest_per_key(entries: Iterable[LedgerEntry]) -> dict[tuple[str, str], LedgerEntry]:
    """The newest entry (:func:`version_rank`) of each ``(source, bronze key)``."""
    newest: dict[tuple[str, str], LedgerEntry] = {}
    for entry in entries:
        ident = (entry.source, entry.key)
        if ident not in newest or version_rank(entry) > version_rank(newest[ident]):
            newest[ident] = entry
    return newest


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
        return sorted(entries, key=version_rank)

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

    def newest(self, source: str | None = None) -> dict[tuple[str, str], LedgerEntry]:
        """The newest entry of each bronze key of ``source`` (default: every source)."""
        return newest_per_key(self.entries(source))

    def committed(self, source: str | None = None) -> set[str]:
        """The silver files readers see: those named by each bronze key's newest entry."""
        return {key for entry in self.newest(source).values() for key in entry.files()}

    def entries(self, source: str | None = None) -> Iterator[LedgerEntry]:
        prefix = self._prefix(source) if source else f"{LEDGER_PREFIX}/"
        for info in self.store.list(prefix):
            if info.key.endswith(".json"):
                yield LedgerEntry.from_json(self.store.read_bytes(info.key))
