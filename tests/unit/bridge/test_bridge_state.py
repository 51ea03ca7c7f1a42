"""The SQLite store of events Airflow accepted: idempotency on (bucket, key, etag, sequencer)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lakehouse_bridge.exceptions import StateStoreError
from lakehouse_bridge.state import DeliveryStore

KEY = ("bronze", "vacancies/x.json", "etag-1", "SEQ1")


def test_a_key_is_seen_only_after_it_is_recorded(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "bridge.sqlite")
    assert not store.seen(KEY)
    store.record(KEY, "bronze/vacancies", 7)
    assert store.seen(KEY)
    assert store.count() == 1


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("silver", "vacancies/x.json", "etag-1", "SEQ1"), id="bucket"),
        pytest.param(("bronze", "vacancies/y.json", "etag-1", "SEQ1"), id="key"),
        pytest.param(("bronze", "vacancies/x.json", "etag-2", "SEQ1"), id="etag: the object was overwritten"),
        pytest.param(("bronze", "vacancies/x.json", "etag-1", "SEQ2"), id="sequencer: same bytes put again"),
    ],
)
def test_every_part_of_the_key_counts(tmp_path: Path, other: tuple[str, str, str, str]) -> None:
    store = DeliveryStore(tmp_path / "bridge.sqlite")
    store.record(KEY, "bronze/vacancies", 1)
    assert not store.seen(other)


def test_recording_twice_keeps_one_row(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "bridge.sqlite")
    store.record(KEY, "bronze/vacancies", 1)
    store.record(KEY, "bronze/vacancies", 2)
    assert store.count() == 1


def test_the_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "bridge.sqlite"
    first = DeliveryStore(path)
    first.record(KEY, "bronze/vacancies", None)
    first.close()

    second = DeliveryStore(path)
    assert second.seen(KEY)
    assert second.count() == 1


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "bridge.sqlite")

    def work(n: int) -> None:
        for i in range(50):
            key = ("bronze", f"s/{n}-{i}.json", "e", "s")
            store.record(key, "bronze/s", i)
            assert store.seen(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count() == 200


def test_an_unusable_path_says_which_setting_to_change(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StateStoreError, match="LAKEHOUSE_BRIDGE_STATE_PATH"):
        DeliveryStore(blocker / "bridge.sqlite")
