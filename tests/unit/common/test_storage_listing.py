"""The local lake's incremental listing (``list(start_after=...)``) returns exactly the keys that
sort after the cursor, as S3's ``StartAfter`` does, and does not read the directories that sort
wholly before it (the S3 side is tested against moto in tests/integration/silverizer)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse_common import storage
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, LocalLayerStore

KEYS = [
    "src/abc-y.csv",
    "src/abc-x/1.csv",
    "src/abc/1.csv",
    "src/abc/2.csv",
    "src/abcd.csv",
    "src/ingest_date=2026-01-01/120000-aa.json",
    "src/ingest_date=2026-01-01/120001-bb.json",
    "src/ingest_date=2026-01-02/080000-cc.json",
    "src/z/deep/er/file.csv",
    "src/отчёт.csv",
    "srd/other.csv",
]


@pytest.fixture
def store(settings: Settings) -> LocalLayerStore:
    store = Lake(settings).bronze
    assert isinstance(store, LocalLayerStore)
    for key in KEYS:
        store.put_bytes(key, key.encode())
    return store


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(None, id="no-cursor"),
        pytest.param("", id="empty-cursor"),
        *(pytest.param(key, id=f"at-{i}") for i, key in enumerate(KEYS)),
        pytest.param("src/abc-", id="between-names-where-slash-sorts-after-dash"),
        pytest.param("src/ingest_date=2026-01-01/", id="a-directory-itself"),
        pytest.param("src/ingest_date=2026-01-01/120000-aa.jsonx", id="just-after-a-key"),
        pytest.param("a", id="before-everything"),
        pytest.param("zzz", id="after-everything"),
    ],
)
def test_listing_after_a_cursor_returns_exactly_the_keys_after_it(store: LocalLayerStore, cursor: str | None) -> None:
    everything = [info.key for info in store.list("src/")]
    assert everything == sorted(k for k in KEYS if k.startswith("src/"))
    after = [info.key for info in store.list("src/", start_after=cursor)]
    assert after == [k for k in everything if cursor is None or k > cursor]


def test_directories_before_the_cursor_are_not_read(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Lake(settings).bronze
    assert isinstance(store, LocalLayerStore)
    days = [f"src/ingest_date=2026-01-{day:02d}/{hour:02d}0000-aa.json" for day in range(1, 31) for hour in range(3)]
    for key in days:
        store.put_bytes(key, b"{}")
    read: list[str] = []
    real_listdir = os.listdir

    def counting_listdir(path: str) -> list[str]:
        read.append(Path(path).name)
        return real_listdir(path)

    monkeypatch.setattr(storage.os, "listdir", counting_listdir)
    found = [info.key for info in store.list("src/", start_after=days[-2])]
    assert found == [days[-1]]
    # The source folder, then only the newest day's folder: not the 29 days before it.
    assert read == ["src", "ingest_date=2026-01-30"]
