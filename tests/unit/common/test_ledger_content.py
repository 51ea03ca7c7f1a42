"""Content identity in the ledger: which ETags name the bytes, and when a copy is a duplicate."""

from __future__ import annotations

import pytest

from lakehouse_common.ledger import Ledger, LedgerEntry, content_etag
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake

MD5 = "9e107d9d372bb6826bd81d3542a419d6"


@pytest.mark.parametrize(
    ("etag", "identifies_bytes"),
    [
        pytest.param(MD5, True, id="single-part-md5"),
        pytest.param(f"{MD5}-3", False, id="multipart"),
        pytest.param("5f0-18a9c3b2e1d4f000", False, id="local-size-mtime"),
        pytest.param(MD5.upper(), False, id="not-s3-lowercase-hex"),
    ],
)
def test_content_etag(etag: str, identifies_bytes: bool) -> None:
    assert (content_etag(etag) == etag) is identifies_bytes


def entry(key: str, etag: str, finished: str, status: str = "loaded", size: int = 10) -> LedgerEntry:
    return LedgerEntry(
        source="vacancies",
        key=key,
        etag=etag,
        size=size,
        status=status,
        contract_version="v1",
        finished_at=finished,  # type: ignore[arg-type]
    )


def test_a_copy_of_loaded_bytes_under_another_key_is_found(settings: Settings) -> None:
    ledger = Ledger(Lake(settings).silver)
    ledger.record(entry("vacancies/a.json", MD5, "2026-01-01T00:00:00Z"))
    found = ledger.loaded_with_same_content("vacancies", "vacancies/copy-of-a.json", MD5, 10)
    assert found is not None and found.key == "vacancies/a.json"
    assert ledger.loaded_with_same_content("vacancies", "vacancies/a.json", MD5, 10) is None  # itself
    assert ledger.loaded_with_same_content("vacancies", "vacancies/b.json", MD5, 11) is None  # other size
    assert ledger.loaded_with_same_content("other", "other/b.json", MD5, 10) is None  # other source


def test_no_duplicate_once_the_original_key_was_replaced_or_not_loaded(settings: Settings) -> None:
    ledger = Ledger(Lake(settings).silver)
    ledger.record(entry("vacancies/a.json", MD5, "2026-01-01T00:00:00Z"))
    # a.json was overwritten with other bytes: its silver outputs no longer hold MD5's rows.
    ledger.record(entry("vacancies/a.json", "0" * 32, "2026-01-02T00:00:00Z"))
    assert ledger.loaded_with_same_content("vacancies", "vacancies/copy.json", MD5, 10) is None
    ledger.record(entry("vacancies/c.json", "1" * 32, "2026-01-03T00:00:00Z", status="unreadable"))
    assert ledger.loaded_with_same_content("vacancies", "vacancies/d.json", "1" * 32, 10) is None
