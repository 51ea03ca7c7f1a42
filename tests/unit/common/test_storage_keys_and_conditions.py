"""The local lake refuses keys that leave its root (matrix row 15), and the conditional writes
that claims rely on (if_absent, if_match, delete_if_match) hold on the local backend; the S3
side is tested against the moto server in tests/integration/silverizer."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from lakehouse_common.exceptions import InvalidKeyError, StorageError
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, LocalLayerStore


@pytest.fixture
def store(settings: Settings) -> LocalLayerStore:
    store = Lake(settings).bronze
    assert isinstance(store, LocalLayerStore)
    store.root.mkdir(parents=True)
    return store


@pytest.mark.parametrize(
    ("key", "why"),
    [
        pytest.param("../escape.csv", "'..' segment", id="dot-dot"),
        pytest.param("src/../../escape.csv", "'..' segment", id="nested-dot-dot"),
        pytest.param("/src/../../../etc/passwd", "'..' segment", id="absolute-dot-dot"),
        pytest.param("src/./a.csv", "'.' segment", id="dot"),
        pytest.param("src//a.csv", "'empty' segment", id="empty-segment"),
        pytest.param("src/a\x00.csv", "NUL", id="nul-byte"),
        pytest.param("src/" + "a" * 256, "longer than 255 bytes", id="long-segment"),
        pytest.param("/".join(["abcdefgh"] * 120), "longer than 1024 bytes", id="long-key"),
        pytest.param("", "empty", id="empty"),
    ],
)
def test_hostile_keys_are_refused_with_a_typed_error(store: LocalLayerStore, key: str, why: str) -> None:
    for operation in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.stat(key),
        lambda: store.path(key),
        lambda: store.delete([key]),
    ):
        with pytest.raises(InvalidKeyError, match="valid keys are relative paths") as raised:
            operation()
        assert why in str(raised.value) and repr(key) in str(raised.value)
    assert isinstance(raised.value, StorageError)
    assert [p for p in store.root.parent.rglob("*") if p.is_file()] == []


def test_a_symlink_out_of_the_lake_is_refused(store: LocalLayerStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "src").symlink_to(outside)
    with pytest.raises(InvalidKeyError, match="outside"):
        store.put_bytes("src/a.csv", b"x")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("src/отчёт за май.csv", id="unicode-and-spaces"),
        pytest.param("src/a%2F..%2Fb.csv", id="percent-encoded-slash"),
        pytest.param("/src/leading-slash.csv", id="leading-slash"),
        pytest.param("src/" + "я" * 125 + ".csv", id="254-byte-segment"),
        pytest.param("src/..hidden../a b.csv", id="dots-inside-names"),
    ],
)
def test_unusual_but_valid_keys_stay_inside_the_root(store: LocalLayerStore, key: str) -> None:
    assert store.put_bytes(key, b"data")
    assert store.read_bytes(key) == b"data"
    assert store.root in store.path(key).resolve().parents
    assert [info.key for info in store.list("src/")] == [key.strip("/")]


def test_conditional_writes_compare_and_swap(store: LocalLayerStore) -> None:
    assert store.put_bytes("c/claim.json", b"first", if_absent=True)
    assert not store.put_bytes("c/claim.json", b"second", if_absent=True)
    first = store.stat("c/claim.json")
    assert first is not None
    assert not store.put_bytes("c/claim.json", b"x", if_match="0-0")
    assert not store.put_bytes("c/absent.json", b"x", if_match=first.etag)
    assert store.put_bytes("c/claim.json", b"third", if_match=first.etag)
    # Same size, same coarse mtime: the ETag still changes, so a stale If-Match cannot win again.
    assert not store.put_bytes("c/claim.json", b"fifth", if_match=first.etag)
    assert store.read_bytes("c/claim.json") == b"third"
    assert not store.delete_if_match("c/claim.json", first.etag)
    now = store.stat("c/claim.json")
    assert now is not None and store.delete_if_match("c/claim.json", now.etag)
    assert store.stat("c/claim.json") is None


def test_old_temporary_files_are_leftovers_and_are_cleaned(store: LocalLayerStore) -> None:
    store.put_bytes("t/a.parquet", b"whole")
    tmp = store.root / "t" / ".b.parquet.0123456789ab.tmp"
    tmp.write_bytes(b"half")
    os.utime(tmp, (0, 0))
    assert [i.key for i in store.list("t/")] == ["t/a.parquet"]  # never listed
    assert store.leftovers(timedelta(hours=1)) == ["t/.b.parquet.0123456789ab.tmp (temporary file)"]
    assert store.clean_leftovers(timedelta(hours=1)) == 1
    assert not tmp.exists() and store.read_bytes("t/a.parquet") == b"whole"
