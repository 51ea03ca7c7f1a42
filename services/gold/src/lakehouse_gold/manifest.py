"""The gold manifest, ``_manifest.json``: what the last successful build published.

Readers use it to find the marts and to check them (row count, size, sha256); the publisher
writes it after every mart is in place, and the replicator copies it last.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from lakehouse_common.storage import Lake
from lakehouse_gold.exceptions import ManifestError, ManifestNotFoundError

MANIFEST_KEY = "_manifest.json"
MARTS_PREFIX = "marts/"
STAGING_PREFIX = "_staging/"


def mart_key(name: str) -> str:
    """Final key of a mart in the gold layer."""
    return f"{MARTS_PREFIX}{name}.parquet"


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
