"""The gold manifest, ``_manifest.json``: what the last successful build published.

Gold is committed the way Delta and Iceberg commit a table: each mart of a run is written to an
immutable, run-versioned key, ``marts/<mart>/run=<run_id>.parquet`` (:func:`mart_run_key`), and the
manifest, written last in one atomic put, names those keys. That put is the commit: until it lands,
a reader following the manifest reads the previous run's files, which a publish never overwrites.
So a reader sees the whole old run or the whole new one, never a mixture.

``marts/<mart>.parquet`` (:func:`mart_key`) is a convenience copy of the latest mart, refreshed right
after each commit, for people, BI tools and the Airflow assets. For a consistent set across marts,
follow the manifest. :func:`read_mart_bytes` still checks each file's sha256 against the manifest.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from lakehouse_common.storage import Lake
from lakehouse_gold.exceptions import GoldInconsistentError, ManifestError, ManifestNotFoundError

MANIFEST_KEY = "_manifest.json"
MARTS_PREFIX = "marts/"
STAGING_PREFIX = "_staging/"


RUN_STAMP = "%Y%m%dT%H%M%SZ"
"""The time stamp a build's run id starts with (``20240131T120000Z-1a2b3c``)."""
_RUN_FILE_PREFIX = "run="


def mart_key(name: str) -> str:
    """The mart's stable key, ``marts/<name>.parquet``: the latest mart, refreshed after each commit."""
    return f"{MARTS_PREFIX}{name}.parquet"


def mart_run_key(name: str, run_id: str) -> str:
    """The immutable key of one run's version of a mart, ``marts/<name>/run=<run_id>.parquet``."""
    return f"{MARTS_PREFIX}{name}/{_RUN_FILE_PREFIX}{run_id}.parquet"


def parse_mart_run_key(key: str) -> tuple[str, str] | None:
    """``(mart, run_id)`` of a key made by :func:`mart_run_key`; None for any other key."""
    if not key.startswith(MARTS_PREFIX):
        return None
    parts = key[len(MARTS_PREFIX) :].split("/")
    if len(parts) != 2 or not parts[0]:
        return None
    name, file = parts
    if not (file.startswith(_RUN_FILE_PREFIX) and file.endswith(".parquet")):
        return None
    run_id = file[len(_RUN_FILE_PREFIX) : -len(".parquet")]
    return (name, run_id) if run_id else None


def run_started(run_id: str) -> datetime | None:
    """When a run started, from its id (``lakehouse_gold.build.new_run_id``); None for an id in another shape."""
    try:
        return datetime.strptime(run_id.split("-", 1)[0], RUN_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MartColumn(_Frozen):
    name: str
    type: str


class MartEntry(_Frozen):
    name: str
    key: str
    rows: int
    size_bytes: int
    sha256: str
    columns: tuple[MartColumn, ...]


class GoldManifest(_Frozen):
    run_id: str
    published_at: datetime
    backend: str
    marts: tuple[MartEntry, ...]
    dbt_status_counts: dict[str, int]
    dbt_warnings: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, origin: str) -> GoldManifest:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise ManifestError(f"{origin} is not a valid gold manifest: {exc}") from exc

    def mart(self, name: str) -> MartEntry:
        for entry in self.marts:
            if entry.name == name:
                return entry
        valid = ", ".join(m.name for m in self.marts) or "(none)"
        raise ManifestError(f"no mart {name!r} in gold run {self.run_id}; valid marts are: {valid}")


def read_manifest(lake: Lake) -> GoldManifest:
    gold = lake.gold
    if not gold.exists(MANIFEST_KEY):
        raise ManifestNotFoundError(gold.uri(MANIFEST_KEY))
    return GoldManifest.from_json(gold.read_bytes(MANIFEST_KEY), gold.uri(MANIFEST_KEY))


def read_mart_bytes(lake: Lake, entry: MartEntry, run_id: str | None = None) -> bytes:
    """The mart's bytes, checked against the manifest's sha256 (``run_id`` only names the manifest in errors)."""
    data = lake.gold.read_bytes(entry.key)
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise GoldInconsistentError(run_id, [(entry.key, entry.sha256, actual)])
    return data
