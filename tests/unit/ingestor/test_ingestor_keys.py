from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from lakehouse_ingestor.exceptions import BronzeKeyError
from lakehouse_ingestor.keys import bronze_key, content_digest, parse_bronze_key

MSK = timezone(timedelta(hours=3))
PAYLOAD = b'{"items":[],"found":0}'
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()[:16]


@pytest.mark.parametrize(
    ("source", "ext", "fetched_at", "expected"),
    [
        pytest.param(
            "vacancies", "json", datetime(2025, 7, 8, 13, 17, 21, tzinfo=UTC),
            f"vacancies/ingest_date=2025-07-08/20250708T131721Z-{DIGEST}.json", id="utc",
        ),
        pytest.param(
            "vacancy_details", ".ndjson", datetime(2025, 7, 9, 1, 0, 0, tzinfo=MSK),
            f"vacancy_details/ingest_date=2025-07-08/20250708T220000Z-{DIGEST}.ndjson", id="msk-crosses-utc-midnight",
        ),
        pytest.param(
            "currency_rates", "CSV.GZ", datetime(2026, 1, 1, tzinfo=UTC),
            f"currency_rates/ingest_date=2026-01-01/20260101T000000Z-{DIGEST}.csv.gz", id="compound-ext-lowercased",
        ),
    ],
)  # fmt: skip
def test_bronze_key_layout(source: str, ext: str, fetched_at: datetime, expected: str) -> None:
    assert bronze_key(source, PAYLOAD, ext, fetched_at) == expected


def test_digest_is_first_16_hex_of_sha256() -> None:
    assert content_digest(PAYLOAD) == DIGEST
    assert len(DIGEST) == 16


def test_parse_round_trip() -> None:
    at = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    key = bronze_key("vacancies", PAYLOAD, "json", at)
    parsed = parse_bronze_key(key)
    assert (parsed.source, parsed.ingest_date, parsed.fetched_at, parsed.digest, parsed.ext) == (
        "vacancies", date(2025, 3, 4), at, DIGEST, "json",
    )  # fmt: skip
    assert parsed.key == key


@pytest.mark.parametrize(
    ("source", "ext", "fetched_at"),
    [
        pytest.param("Vacancies", "json", datetime(2025, 1, 1, tzinfo=UTC), id="source-not-snake-case"),
        pytest.param("vacancies/x", "json", datetime(2025, 1, 1, tzinfo=UTC), id="source-with-slash"),
        pytest.param("vacancies", "js on", datetime(2025, 1, 1, tzinfo=UTC), id="bad-extension"),
        pytest.param("vacancies", "json", datetime(2025, 1, 1), id="naive-datetime"),
    ],
)
def test_bronze_key_rejects(source: str, ext: str, fetched_at: datetime) -> None:
    with pytest.raises(BronzeKeyError):
        bronze_key(source, PAYLOAD, ext, fetched_at)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("vacancies/x.json", id="no-partition"),
        pytest.param(f"vacancies/ingest_date=2025-01-02/20250101T000000Z-{DIGEST}.json", id="date-mismatch"),
        pytest.param("vacancies/ingest_date=2025-01-01/20250101T000000Z-abc.json", id="short-digest"),
    ],
)
def test_parse_rejects(key: str) -> None:
    with pytest.raises(BronzeKeyError):
        parse_bronze_key(key)
