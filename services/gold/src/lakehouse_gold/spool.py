"""Local spool copies of lake objects, with their size and sha256, for checking and re-uploading."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lakehouse_common.storage import LayerStore

CHUNK = 8 << 20


@dataclass(frozen=True)
class SpooledObject:
    key: str
    path: Path
    size: int
    sha256: str


def file_digest(path: Path) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a local file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@contextlib.contextmanager
def spooled(store: LayerStore, key: str, spool_dir: Path) -> Iterator[SpooledObject]:
    """Download ``key`` to a temporary file in ``spool_dir``; the file is removed on exit."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix="gold-") as tmp:
        path = Path(tmp) / "object"
        digest = hashlib.sha256()
        size = 0
        with store.open_input(key) as source, open(path, "wb") as target:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                target.write(chunk)
                size += len(chunk)
        yield SpooledObject(key=key, path=path, size=size, sha256=digest.hexdigest())
