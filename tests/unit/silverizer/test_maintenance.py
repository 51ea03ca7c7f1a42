"""Silver maintenance (compaction, vacuum, checkpoints) on a local lake of real Delta tables.

The tables are written with deltalake directly (and the bookkeeping tables created with
DeltaCommitter), not through the silverizer's runner; every check reads through deltalake or the
file system, never through the code under test.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.transaction import CommitProperties, Transaction

from lakehouse_common import tables
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, LayerStore, ObjectInfo
from lakehouse_silverizer.commits import DeltaCommitter, history_spec, quarantine_spec
from lakehouse_silverizer.maintenance import (
    InvalidRetentionError,
    MaintenanceFailedError,
    TableMaintenance,
    UnknownTableError,
    delta_tables,
    maintain,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)
KEEP = 1.0  # hours: files removed just now are kept
NOW = 0.0  # hours: everything unreferenced goes


@pytest.fixture
def silver(settings: Settings) -> LayerStore:
    lake = Lake(settings)
    lake.ensure()
    return lake.silver


def append(store: LayerStore, name: str, rows: list[dict[str, object]], txn: tuple[str, int] | None = None) -> None:
    """One commit of ``rows`` (one small file per partition), optionally with an app transaction."""
    properties = CommitProperties(app_transactions=[Transaction(*txn)]) if txn else None
    write_deltalake(
        store.table_uri(name),
        pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.int64()), ("month", pa.string())])),
        mode="append",
        partition_by=["month"],
        commit_properties=properties,
    )


def small_files(store: LayerStore, name: str = "events", commits: int = 6) -> None:
    for i in range(commits):
        append(store, name, [{"id": i, "month": "2025-01" if i % 2 else "2025-02"}])


def rows(store: LayerStore, name: str, version: int | None = None) -> list[dict[str, object]]:
    data = DeltaTable(store.table_uri(name), version=version).to_pyarrow_table()
    return sorted(data.to_pylist(), key=lambda r: str(r["id"]))


def files_on_disk(store: LayerStore, name: str) -> set[str]:
    root = Path(store.table_uri(name))
    return {p.relative_to(root).as_posix() for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def only(results: list[TableMaintenance], name: str) -> TableMaintenance:
    return next(r for r in results if r.table == name)


def test_compaction_reduces_the_file_count_and_keeps_the_rows(silver: LayerStore) -> None:
    small_files(silver)
    before = rows(silver, "events")

    [result] = maintain(silver, ["events"], retention_hours=KEEP, vacuum=False, checkpoint=False)

    table = DeltaTable(silver.table_uri("events"))
    assert (result.files_before, result.files_compacted) == (6, 6)
    assert len(table.file_uris()) == result.files_after == result.files_written == 2  # one per month
    assert result.version_after == result.version_before + 1 == table.version()
    assert rows(silver, "events") == before


def test_vacuum_removes_compacted_files_only_past_the_retention(silver: LayerStore) -> None:
    small_files(silver)
    maintain(silver, ["events"], retention_hours=KEEP, vacuum=False, checkpoint=False)
    on_disk = files_on_disk(silver, "events")
    assert len(on_disk) == 8  # the six replaced files are tombstoned, not deleted

    [kept] = maintain(silver, ["events"], retention_hours=KEEP, compact=False, checkpoint=False)
    assert kept.files_removed == 0 and files_on_disk(silver, "events") == on_disk

    [removed] = maintain(silver, ["events"], retention_hours=NOW, compact=False, checkpoint=False)
    live = {uri.rsplit("/events/", 1)[-1] for uri in DeltaTable(silver.table_uri("events")).file_uris()}
    assert removed.files_removed == 6
    assert files_on_disk(silver, "events") == live


def test_vacuum_removes_staged_files_no_log_names_once_older_than_the_retention(silver: LayerStore) -> None:
    small_files(silver, commits=2)
    referenced = files_on_disk(silver, "events")
    folder = Path(silver.table_uri("events")) / "month=2025-01"
    old, fresh = folder / "part-killed-run.parquet", folder / "part-running-run.parquet"
    old.write_bytes(b"staged by a run killed before its commit")
    fresh.write_bytes(b"staged by a run that is about to commit")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))

    [result] = maintain(silver, ["events"], retention_hours=KEEP, compact=False, checkpoint=False)

    assert result.files_removed == 1
    assert not old.exists() and fresh.exists()
    assert referenced <= files_on_disk(silver, "events")
    assert len(rows(silver, "events")) == 2


def test_a_checkpoint_file_appears_and_the_table_opens_from_it(silver: LayerStore) -> None:
    small_files(silver)

    [result] = maintain(silver, ["events"], retention_hours=KEEP)

    log = Path(silver.table_uri("events")) / "_delta_log"
    assert result.checkpoint == result.version_after
    assert (log / f"{result.checkpoint:020d}.checkpoint.parquet").is_file()
    # Opening needs only the checkpoint and what follows it: the earlier commits can be gone.
    for commit in log.glob("*.json"):
        if int(commit.stem) < result.checkpoint:
            commit.unlink()
    assert DeltaTable(silver.table_uri("events")).version() == result.version_after
    assert [r["id"] for r in rows(silver, "events")] == list(range(6))


def test_a_second_run_finds_nothing_to_do(silver: LayerStore) -> None:
    small_files(silver)
    [first] = maintain(silver, ["events"], retention_hours=NOW)

    [second] = maintain(silver, ["events"], retention_hours=NOW)

    assert second.version_before == second.version_after == first.version_after
    assert (second.files_compacted, second.files_removed, second.checkpoint) == (0, 0, None)


def test_time_travel_to_a_retained_version_still_works(silver: LayerStore) -> None:
    small_files(silver)
    old_version = DeltaTable(silver.table_uri("events")).version()
    append(silver, "events", [{"id": 99, "month": "2025-03"}])

    maintain(silver, ["events"], retention_hours=KEEP)

    assert [r["id"] for r in rows(silver, "events", version=old_version)] == list(range(6))
    assert len(rows(silver, "events")) == 7


def test_app_transactions_survive_so_nothing_becomes_pending_again(silver: LayerStore) -> None:
    committer = DeltaCommitter(silver, "test-run")
    committer.ensure(history_spec())
    objects = [ObjectInfo(f"events/{i}.csv", 10, f"etag-{i}", T0 + timedelta(minutes=i)) for i in range(4)]
    history = tables.load_history_schema()
    for info in objects:
        row = {
            "source": "events", "bronze_key": info.key, "bronze_etag": info.etag, "bronze_size": info.size,
            "bronze_modified": info.modified, "version_id": info.etag, "status": "loaded", "rows_in": 1,
            "rows_out": 1, "rows_quarantined": 0, "rows_deduplicated": 0, "run_id": "test-run",
            "started_at": T0, "finished_at": T0, "seconds": 0.1,
        }  # fmt: skip
        write_deltalake(
            silver.table_uri(tables.LOAD_HISTORY),
            pa.Table.from_pylist([row], schema=history),
            mode="append",
            partition_by=["source"],
            commit_properties=CommitProperties(
                app_transactions=[
                    Transaction(tables.app_id("events", info.key, info.etag), tables.txn_version(info.modified))
                ]
            ),
        )
    assert tables.pending(silver, "events", objects) == []

    [result] = maintain(silver, [tables.LOAD_HISTORY], retention_hours=NOW)

    assert result.files_compacted == 4 and result.files_removed == 4
    assert tables.pending(silver, "events", objects) == []
    assert len(tables.read_history(silver, "events")) == 4


def test_every_delta_table_of_the_layer_is_maintained(silver: LayerStore) -> None:
    committer = DeltaCommitter(silver, "test-run")
    committer.ensure(history_spec())
    committer.ensure(quarantine_spec())
    small_files(silver, "vacancies", commits=4)  # two files in each of two months
    small_files(silver, "currency_rates", commits=1)
    silver.put_bytes("_contracts/vacancies.yml", b"name: vacancies\n")  # not a Delta table

    results = maintain(silver, retention_hours=KEEP)

    expected = ["_load_history", "_quarantine", "currency_rates", "vacancies"]
    assert delta_tables(silver) == expected
    assert [r.table for r in results] == expected
    assert only(results, "vacancies").files_compacted == 4
    assert only(results, "currency_rates").files_compacted == 0
    assert all(r.checkpoint is not None for r in results)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        pytest.param(
            ["events", "nope"], "not a Delta table under .*: nope; the Delta tables there are: events", id="unknown"
        ),
        pytest.param(["_contracts"], "_contracts; the Delta tables there are: events", id="not-delta"),
    ],
)
def test_a_table_that_is_not_a_delta_table_is_refused_before_anything_runs(
    silver: LayerStore, names: list[str], message: str
) -> None:
    small_files(silver, commits=2)
    silver.put_bytes("_contracts/events.yml", b"name: events\n")
    version = DeltaTable(silver.table_uri("events")).version()

    with pytest.raises(UnknownTableError, match=message):
        maintain(silver, names, retention_hours=KEEP)

    assert DeltaTable(silver.table_uri("events")).version() == version


@pytest.mark.parametrize("retention", [pytest.param(-1.0, id="negative"), pytest.param(float("nan"), id="nan")])
def test_a_retention_that_is_not_hours_is_refused(silver: LayerStore, retention: float) -> None:
    with pytest.raises(InvalidRetentionError, match="number of hours >= 0"):
        maintain(silver, retention_hours=retention)


def test_a_broken_table_is_reported_and_the_others_are_still_maintained(silver: LayerStore) -> None:
    small_files(silver, "broken", commits=1)
    small_files(silver, "events", commits=4)
    (Path(silver.table_uri("broken")) / "_delta_log" / f"{1:020d}.json").write_text("not a Delta action\n")

    with pytest.raises(MaintenanceFailedError, match=r"maintenance failed for 1 silver table.*broken: ") as raised:
        maintain(silver, retention_hours=KEEP)

    assert list(raised.value.failures) == ["broken"]
    assert [r.table for r in raised.value.results] == ["events"]
    assert len(DeltaTable(silver.table_uri("events")).file_uris()) == 2
