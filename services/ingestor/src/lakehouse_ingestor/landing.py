"""Landing fetched payloads in bronze: byte for byte, with metadata, never the same content twice.

For one payload of ``<source>`` (``sha`` = the SHA-256 of its bytes):

1. ``_meta/<key>.json``: the metadata sidecar (source, fetched_at, the requests made with their
   URLs and non-secret headers, statuses, content hash and size, run id, window and page);
2. ``<key>`` = ``<source>/ingest_date=YYYY-MM-DD/<utc timestamp>-<sha[:16]>.<ext>``: the payload;
3. ``_index/<source>/<sha>``: the content-index marker (its body is the key), created only if absent.

Before step 1 the payload's hash is looked up in the index (listed once per run, so the
ingestor needs no read access to it); a hash already there means the identical payload is in
bronze and nothing is written. Every object is written atomically (see
:mod:`lakehouse_common.storage`).

The order never loses data: the marker comes last, so it only ever names a payload that is
already in bronze. The crash windows: between 1 and 2 a sidecar names an object that does not
exist (harmless; the rerun lands the payload under a new key); between 2 and 3 the payload has
no marker, so a rerun that fetches the same content lands it once more under a new timestamp: a
duplicate object, whose rows the silverizer de-duplicates on the primary key. Two ingestors
running the same source at once could do the same; run one per source.

Bookkeeping lives under top-level prefixes starting with ``_`` (``_meta``, ``_index``,
``_state``, ``_rejected``), which the silverizer never treats as sources.

A payload that fails validation (not JSON, no items list) is kept aside, not landed:
``_rejected/<key>`` holds the bytes and ``_rejected/<key>.reason.json`` the reason and request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from lakehouse_common.exceptions import StorageError
from lakehouse_common.storage import Lake, LayerStore, copy_stream
from lakehouse_ingestor import __version__
from lakehouse_ingestor.exceptions import BronzeWriteError
from lakehouse_ingestor.keys import bronze_key_for_digest
from lakehouse_ingestor.writers import BronzeWriter

META_PREFIX = "_meta"
INDEX_PREFIX = "_index"
REJECTED_PREFIX = "_rejected"
SENSITIVE_HEADER_WORDS = ("authorization", "cookie", "token", "secret", "api-key", "apikey", "password")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def public_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to record: anything that looks like a credential is dropped (defence in depth;
    the auth header is never passed here in the first place)."""
    return {k: v for k, v in headers.items() if not any(word in k.lower() for word in SENSITIVE_HEADER_WORDS)}


@dataclass(frozen=True)
class RequestRecord:
    """One request behind a payload, as recorded in its metadata (no credentials)."""

    method: str
    url: str
    status: int | None = None
    attempts: int = 1
    elapsed_s: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    response_headers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["headers"] = public_headers(self.headers)
        doc["response_headers"] = dict(self.response_headers)
        return doc


@dataclass(frozen=True)
class Payload:
    source: str
    data: bytes
    ext: str
    fetched_at: datetime
    requests: Sequence[RequestRecord]
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Landed:
    """``written`` is False when the identical content was already in bronze (``key`` is then None)."""

    source: str
    sha256: str
    size: int
    key: str | None
    written: bool


class ContentIndex:
    """The SHA-256 of every payload landed for one source, from one listing of ``_index/<source>/``."""

    def __init__(self, store: LayerStore, source: str) -> None:
        self.store = store
        self.source = source
        self._digests: set[str] | None = None

    @property
    def prefix(self) -> str:
        return f"{INDEX_PREFIX}/{self.source}/"

    def _loaded(self) -> set[str]:
        if self._digests is None:
            try:
                self._digests = {info.key.rsplit("/", 1)[-1] for info in self.store.list(self.prefix)}
            except StorageError as exc:
                raise BronzeWriteError(f"cannot list the content index {self.store.uri(self.prefix)}: {exc}") from exc
        return self._digests

    def __contains__(self, digest: object) -> bool:
        return digest in self._loaded()

    def __len__(self) -> int:
        return len(self._loaded())

    def add(self, digest: str, key: str) -> None:
        marker = f"{self.prefix}{digest}"
        try:
            self.store.put_bytes(marker, key.encode(), if_absent=True)
        except StorageError as exc:
            raise BronzeWriteError(f"cannot write the content-index marker {self.store.uri(marker)}: {exc}") from exc
        self._loaded().add(digest)


class Lander:
    """Lands payloads of any source in one bronze layer (see the module docstring)."""

    def __init__(self, lake: Lake, run_id: str, indexes: dict[str, ContentIndex] | None = None) -> None:
        self.writer = BronzeWriter(lake)
        self.store: LayerStore = self.writer.store
        self.run_id = run_id
        # Shared by the runs of one process (serve): each source's index is listed once.
        self._indexes: dict[str, ContentIndex] = {} if indexes is None else indexes

    def index(self, source: str) -> ContentIndex:
        if source not in self._indexes:
            self._indexes[source] = ContentIndex(self.store, source)
        return self._indexes[source]

    def has(self, source: str, data: bytes) -> bool:
        return sha256_hex(data) in self.index(source)

    def _meta(self, key: str, payload: Payload, digest: str, size: int, extra: Mapping[str, Any]) -> bytes:
        doc = {
            "source": payload.source,
            "key": key,
            "fetched_at": payload.fetched_at.astimezone(UTC).isoformat(),
            "sha256": digest,
            "size": size,
            "ext": payload.ext,
            "requests": [r.to_json() for r in payload.requests],
            "context": dict(payload.context),
            "ingestor": {"version": __version__, "run_id": self.run_id},
            **extra,
        }
        return json.dumps(doc, ensure_ascii=False, indent=1, default=str).encode("utf-8")

    def _put(self, key: str, data: bytes) -> None:
        try:
            self.store.put_bytes(key, data)
        except StorageError as exc:
            raise BronzeWriteError(f"cannot write {self.store.uri(key)}: {exc}") from exc

    def land(self, payload: Payload) -> Landed:
        digest = sha256_hex(payload.data)
        index = self.index(payload.source)
        if digest in index:
            return Landed(payload.source, digest, len(payload.data), None, False)
        key = bronze_key_for_digest(payload.source, digest, payload.ext, payload.fetched_at)
        self._put(f"{META_PREFIX}/{key}.json", self._meta(key, payload, digest, len(payload.data), {}))
        result = self.writer.write(payload.source, payload.data, ext=payload.ext, fetched_at=payload.fetched_at)
        index.add(digest, result.key)
        return Landed(payload.source, digest, len(payload.data), result.key, True)

    def land_file(self, payload: Payload, path: Path) -> Landed:
        """Land a local file streamed from disk (``payload.data`` is ignored): constant memory."""
        digest, size = _file_digest(path)
        index = self.index(payload.source)
        if digest in index:
            return Landed(payload.source, digest, size, None, False)
        key = bronze_key_for_digest(payload.source, digest, payload.ext, payload.fetched_at)
        self._put(f"{META_PREFIX}/{key}.json", self._meta(key, payload, digest, size, {}))
        try:
            with path.open("rb") as source, self.store.open_output(key) as target:
                copied = copy_stream(source, target)
        except (OSError, StorageError) as exc:
            raise BronzeWriteError(f"cannot copy {path} to {self.store.uri(key)}: {exc}") from exc
        if copied != size:
            raise BronzeWriteError(f"{path} changed while it was imported ({size} bytes hashed, {copied} copied)")
        index.add(digest, key)
        return Landed(payload.source, digest, size, key, True)

    def reject(self, payload: Payload, reason: str) -> str:
        """Keep a payload that failed validation aside with its reason; returns its key."""
        digest = sha256_hex(payload.data)
        key = f"{REJECTED_PREFIX}/{bronze_key_for_digest(payload.source, digest, payload.ext, payload.fetched_at)}"
        self._put(key, payload.data)
        self._put(f"{key}.reason.json", self._meta(key, payload, digest, len(payload.data), {"reason": reason}))
        return key


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in _blocks(handle):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _blocks(handle: BinaryIO, size: int = 8 << 20) -> Iterator[bytes]:
    while block := handle.read(size):
        yield block


def iter_files(root: Path, pattern: str, recursive: bool) -> Iterable[Path]:
    """Regular files under ``root`` matching ``pattern`` (or ``root`` itself), sorted, hidden ones skipped."""
    if root.is_file():
        return [root]
    found = root.rglob(pattern) if recursive else root.glob(pattern)
    return sorted(
        p for p in found if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
