"""The ledger as silver's commit log: which entry is a key's newest, which files readers see, and
how attempt file names map to their object version."""

from __future__ import annotations

import pytest

from lakehouse_common.ledger import Ledger, LedgerEntry, logical_key, newest_per_key, version_of
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake


def entry(key: str, etag: str, modified: str, finished: str, outputs: list[str], **extra: object) -> LedgerEntry:
    return LedgerEntry(
        source="s",
        key=key,
        etag=etag,
        size=1,
        status="loaded",
        contract_version="v1",
        outputs=outputs,
        bronze_modified=modified,
        finished_at=finished,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("entries", "newest"),
    [
        pytest.param(
            [("v1", "2024-01-01", "2024-01-09"), ("v2", "2024-01-02", "2024-01-03")],
            "v2",
            id="the-newer-version-wins-though-it-finished-first",
        ),
        pytest.param(
            [("old", "", "2024-01-09"), ("new", "2024-01-01", "2024-01-02")],
            "new",
            id="entries-without-a-version-time-rank-lowest",
        ),
        pytest.param(
            [("a", "", "2024-01-01"), ("b", "", "2024-01-02")],
            "b",
            id="old-entries-by-finish-time",
        ),
    ],
)
def test_the_newest_entry_of_a_key(entries: list[tuple[str, str, str]], newest: str) -> None:
    found = newest_per_key(entry("k", etag, modified, finished, []) for etag, modified, finished in entries)
    assert {ident: e.etag for ident, e in found.items()} == {("s", "k"): newest}


def test_readers_see_the_newest_entries_files_only(settings: Settings) -> None:
    ledger = Ledger(Lake(settings).silver)
    ledger.record(entry("a", "v1", "2024-01-01", "2024-01-01", ["t/part-a-1-x.parquet"]))
    ledger.record(entry("a", "v2", "2024-01-02", "2024-01-02", ["t/part-a-2-y.parquet"], quarantine="_q/a-2-y.jsonl"))
    ledger.record(entry("b", "v1", "2024-01-01", "2024-01-01", ["t/part-b-1-z.parquet"]))
    assert ledger.committed() == {"t/part-a-2-y.parquet", "_q/a-2-y.jsonl", "t/part-b-1-z.parquet"}
    assert [e.etag for e in ledger.history_of("s", "a")] == ["v1", "v2"]


@pytest.mark.parametrize(
    ("key", "logical", "version"),
    [
        pytest.param("t/m=2024-01/part-aaa-bbb-c1.parquet", "t/m=2024-01/part-aaa-bbb.parquet", "aaa-bbb", id="output"),
        pytest.param("_quarantine/s/aaa-bbb-c1.jsonl", "_quarantine/s/aaa-bbb.jsonl", "aaa-bbb", id="quarantine"),
        pytest.param("t/part-aaa.parquet", "t/part-aaa.parquet", None, id="before-attempt-names"),
        pytest.param("t/part-aaa-bbb-c1", "t/part-aaa-bbb-c1", None, id="no-extension"),
    ],
)
def test_attempt_names(key: str, logical: str, version: str | None) -> None:
    assert logical_key(key) == logical
    assert version_of(key) == version
