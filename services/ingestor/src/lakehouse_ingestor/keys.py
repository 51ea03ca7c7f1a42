"""The bronze key layout: where a raw payload lands.

``<source>/ingest_date=YYYY-MM-DD/<YYYYMMDDTHHMMSSZ>-<sha256[:16]>.<ext>``

The timestamp is the UTC instant the payload was fetched (for generated data: an instant
derived from the data itself), ``ingest_date`` is its UTC date, and the digest is the first
16 hex digits of the SHA-256 of the payload bytes. The same payload fetched at the same
instant therefore always maps to the same key, which is what makes writes idempotent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from lakehouse_ingestor.exceptions import BronzeKeyError

DIGEST_CHARS = 16
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

_SOURCE = re.compile(r"^[a-z][a-z0-9_]*$")
_EXT = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")
_KEY = re.compile(
    r"^(?P<source>[a-z][a-z0-9_]*)/ingest_date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<ts>\d{8}T\d{6}Z)-(?P<digest>[0-9a-f]{16})\.(?P<ext>[a-z0-9]+(\.[a-z0-9]+)*)$"
)


def content_digest(data: bytes) -> str:
    """First 16 hex digits of the payload's SHA-256."""
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def bronze_key(source: str, data: bytes, ext: str, fetched_at: datetime) -> str:
    """The bronze key of ``data`` fetched from ``source`` at ``fetched_at`` (timezone-aware)."""
    return bronze_key_for_digest(source, content_digest(data), ext, fetched_at)


def bronze_key_for_digest(source: str, digest: str, ext: str, fetched_at: datetime) -> str:
    """:func:`bronze_key` for a payload whose SHA-256 (hex, 16 digits or more) is already known."""
    if not re.fullmatch(r"[0-9a-f]{16,64}", digest):
        raise BronzeKeyError(f"digest {digest!r} must be 16 to 64 lowercase hex digits of a SHA-256")
    if not _SOURCE.match(source):
        raise BronzeKeyError(f"source name {source!r} must be snake_case ([a-z][a-z0-9_]*)")
    clean_ext = ext.lstrip(".").lower()
    if not _EXT.match(clean_ext):
        raise BronzeKeyError(f"extension {ext!r} must look like 'json', 'ndjson', 'csv' or 'csv.gz'")
    if fetched_at.tzinfo is None or fetched_at.utcoffset() is None:
        raise BronzeKeyError(f"fetched_at must be timezone-aware, got naive {fetched_at.isoformat()}")
    utc = fetched_at.astimezone(UTC)
    return f"{source}/ingest_date={utc:%Y-%m-%d}/{utc.strftime(TIMESTAMP_FORMAT)}-{digest[:DIGEST_CHARS]}.{clean_ext}"


@dataclass(frozen=True)
class BronzeKey:
    """The parts of a bronze key."""

    source: str
    ingest_date: date
    fetched_at: datetime
    digest: str
    ext: str

    @property
    def key(self) -> str:
        return (
            f"{self.source}/ingest_date={self.ingest_date.isoformat()}/"
            f"{self.fetched_at.strftime(TIMESTAMP_FORMAT)}-{self.digest}.{self.ext}"
        )


def parse_bronze_key(key: str) -> BronzeKey:
    """Split a key written by :func:`bronze_key` into its parts."""
    match = _KEY.match(key)
    if match is None:
        raise BronzeKeyError(
            f"{key!r} is not a bronze key like <source>/ingest_date=YYYY-MM-DD/YYYYMMDDTHHMMSSZ-<16 hex>.<ext>"
        )
    fetched_at = datetime.strptime(match["ts"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    ingest_date = date.fromisoformat(match["date"])
    if fetched_at.date() != ingest_date:
        raise BronzeKeyError(f"{key!r}: ingest_date {ingest_date} is not the UTC date of {match['ts']}")
    return BronzeKey(match["source"], ingest_date, fetched_at, match["digest"], match["ext"])
