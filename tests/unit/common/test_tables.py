"""Silver's table helpers: which ETags name the bytes, which bronze keys hold data, and the
app transaction that marks an object version done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.transaction import CommitProperties, Transaction

from lakehouse_common import tables
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake

MD5 = "9e107d9d372bb6826bd81d3542a419d6"


@pytest.mark.parametrize(
    ("etag", "identifies_bytes"),
    [
        pytest.param(MD5, True, id="single-part-md5"),
        pytest.param(f'"{MD5}"', True, id="quoted-as-s3-sends-it"),
        pytest.param(f"{MD5}-3", False, id="multipart"),
        pytest.param("5f0-18a9c3b2e1d4f000", False, id="local-size-mtime"),
        pytest.param(MD5.upper(), False, id="not-s3-lowercase-hex"),
    ],
)
def test_only_a_single_part_md5_etag_identifies_the_bytes(etag: str, identifies_bytes: bool) -> None:
    assert (tables.content_etag(etag) == MD5) is identifies_bytes


@pytest.mark.parametrize(
    ("key", "is_data"),
    [
        pytest.param("vacancies/2025/p.json", True, id="data"),
        pytest.param("vacancies/_meta.json", False, id="underscore-bookkeeping"),
        pytest.param("vacancies/.p.json.tmp", False, id="dot-temporary"),
        pytest.param("vacancies/_x/p.json", True, id="only-the-name-counts"),
    ],
)
def test_names_starting_with_dot_or_underscore_are_not_data(key: str, is_data: bool) -> None:
    assert tables.is_data_object(key) is is_data


def test_a_restored_old_version_is_pending_again() -> None:
    """The transaction version is the bronze time: the same bytes put back later are newer."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    assert tables.txn_version(t0 + timedelta(seconds=1)) > tables.txn_version(t0)
    assert tables.app_id("rates", "rates/a.csv", MD5) == f"silver/rates/{MD5}/rates/a.csv"


@pytest.mark.parametrize(
    "checkpoint_after",
    [
        pytest.param(None, id="no-checkpoint"),
        pytest.param(3, id="checkpoint-then-commits"),
        pytest.param(6, id="checkpoint-at-the-newest"),
    ],
)
def test_the_bulk_transaction_read_agrees_with_deltas_own_lookup(
    settings: Settings, checkpoint_after: int | None
) -> None:
    silver = Lake(settings).silver
    uri = silver.table_uri("events")
    write_deltalake(uri, pa.table({"a": [0]}))
    for n in range(1, 7):
        txns = [Transaction(f"app/{n}", 10 + n), Transaction("app/again", n)]  # a later commit raises "again"
        write_deltalake(
            uri, pa.table({"a": [n]}), mode="append", commit_properties=CommitProperties(app_transactions=txns)
        )
        if n == checkpoint_after:
            DeltaTable(uri).create_checkpoint()
    table = DeltaTable(uri)
    held = tables.transactions(silver, "events", table)
    assert held is not None
    assert held == {app: table.transaction_version(app) for app in held}
    assert set(held) == {*(f"app/{n}" for n in range(1, 7)), "app/again"} and held["app/again"] == 6
    ids = [("app/1", 11), ("app/2", 99), ("app/none", 0)]
    assert tables.committed_ids(silver, "events", table, ids) == {"app/1"}


def test_a_log_whose_commits_were_cleaned_up_falls_back_to_deltas_lookup(settings: Settings) -> None:
    silver = Lake(settings).silver
    uri = silver.table_uri("events")
    write_deltalake(
        uri, pa.table({"a": [0]}), commit_properties=CommitProperties(app_transactions=[Transaction("x", 1)])
    )
    write_deltalake(uri, pa.table({"a": [1]}), mode="append")
    (settings.data_dir / "silver" / "events" / "_delta_log" / f"{0:020d}.json").rename(
        settings.data_dir / "silver" / "events-first-commit.json"
    )
    table_stub = _VersionOnly(1, {"x": 1})
    assert tables.transactions(silver, "events", table_stub) is None  # type: ignore[arg-type]
    assert tables.committed_ids(silver, "events", table_stub, [("x", 1), ("y", 1)]) == {"x"}  # type: ignore[arg-type]


class _VersionOnly:
    """Stands in for a DeltaTable whose log lost its early commits: its version and its own lookup."""

    def __init__(self, version: int, txns: dict[str, int]) -> None:
        self._version = version
        self._txns = txns

    def version(self) -> int:
        return self._version

    def transaction_version(self, app: str) -> int | None:
        return self._txns.get(app)
