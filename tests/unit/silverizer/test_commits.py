"""The Delta commit engine: staged files become one commit per table per batch, exactly once.

These tests stage rows the way the silverizer does (PartitionedParquetWriter into the table's
directory) and commit them with DeltaCommitter on a local lake; every read goes through
deltalake or DuckDB's delta extension, never through project code.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from lakehouse_common import tables
from lakehouse_common.contracts import Contract, parse_contract
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, LayerStore, ObjectInfo
from lakehouse_silverizer.commits import (
    CHECKPOINT_INTERVAL,
    DeltaCommitter,
    StagedObject,
    TableSpec,
    history_spec,
    table_specs,
)
from lakehouse_silverizer.exceptions import SchemaConflictError
from lakehouse_silverizer.transform import with_meta
from lakehouse_silverizer.writers import PartitionedParquetWriter, split_by_partition

T0 = datetime(2025, 3, 1, tzinfo=UTC)

PAGES = """
name: pages
format: {type: json, records_path: items}
primary_key: [page_id]
mode: merge
order_by: [updated_at]
partition: {column: updated_at, granularity: month, name: updated_month}
columns:
  - {name: page_id, source: id, type: string, nullable: false}
  - {name: title, source: title, type: string}
  - {name: tags, source: tags, type: "list<string>"}
  - {name: updated_at, source: updated_at, type: timestamp, nullable: false}
children:
  - name: page_tags
    explode: tags
    column: {name: tag, type: string}
    parent_columns: [page_id, updated_at]
"""

EVENTS = """
name: events
format: {type: csv}
columns:
  - {name: event, source: event, type: string}
  - {name: amount, source: amount, type: int64}
"""


@pytest.fixture
def silver(settings: Settings) -> LayerStore:
    lake = Lake(settings)
    lake.ensure()
    return lake.silver


def contract(text: str) -> Contract:
    return parse_contract(text, "test")


def info(key: str, minutes: int = 0, etag: str | None = None) -> ObjectInfo:
    return ObjectInfo(key=key, size=100, etag=etag or f"etag-{key}-{minutes}", modified=T0 + timedelta(minutes=minutes))


def stage(store: LayerStore, spec: TableSpec, obj: StagedObject, rows: list[dict[str, Any]], partition: Any) -> None:
    """Write ``rows`` of one object as the silverizer does: split by partition, staged in the table."""
    data_columns = [f for f in spec.columns if not f.name.startswith("_")]
    table = pa.Table.from_pylist(rows, schema=pa.schema(data_columns))
    ingested = pa.scalar(obj.info.modified, pa.timestamp("us", tz="UTC"))
    table = with_meta(table, obj.info.key, pa.array(range(len(rows)), pa.int64()).to_numpy(), ingested)
    writer = PartitionedParquetWriter(store, spec.name, table.schema, partition, uuid.uuid4().hex, 1000)
    writer.write(split_by_partition(table, partition, None).select(None))
    writer.close()
    obj.files[spec.name] = writer.staged


def page(page_id: str, title: str, updated: int, tags: list[str]) -> dict[str, Any]:
    return {"page_id": page_id, "title": title, "tags": tags, "updated_at": T0 + timedelta(days=updated)}


def stage_pages(store: LayerStore, c: Contract, key: str, minutes: int, rows: list[dict[str, Any]]) -> StagedObject:
    main, child = table_specs(c)
    obj = StagedObject(info(key, minutes), c.name)
    stage(store, main, obj, rows, c.partition)
    tag_rows = [{"page_id": r["page_id"], "updated_at": r["updated_at"], "tag": t} for r in rows for t in r["tags"]]
    stage(store, child, obj, tag_rows, c.partition)
    return obj


def read(store: LayerStore, name: str, *columns: str) -> list[tuple[Any, ...]]:
    """Through DuckDB's delta extension, no project code."""
    cols = ", ".join(columns)
    return duckdb.sql(f"select {cols} from delta_scan('{store.table_uri(name)}') order by {cols}").fetchall()


def columns(store: LayerStore, name: str) -> list[str]:
    return [r[0] for r in duckdb.sql(f"describe select * from delta_scan('{store.table_uri(name)}')").fetchall()]


def commit_all(committer: DeltaCommitter, c: Contract, batch: list[StagedObject]) -> None:
    for spec in table_specs(c):
        committer.commit(spec, batch)


def test_tables_exist_from_the_contract_before_any_data(silver: LayerStore) -> None:
    c = contract(PAGES)
    committer = DeltaCommitter(silver, "run-1")
    for spec in table_specs(c):
        committer.ensure(spec)
    assert read(silver, "pages", "count(*)") == [(0,)]
    assert columns(silver, "page_tags") == [
        "page_id",
        "updated_at",
        "tag",
        "_bronze_key",
        "_bronze_row",
        "_ingested_at",
        "updated_month",
    ]


def test_a_batch_of_objects_is_one_commit_per_table_with_each_objects_transaction(silver: LayerStore) -> None:
    c = contract(EVENTS)
    (spec,) = table_specs(c)
    committer = DeltaCommitter(silver, "run-1")
    committer.ensure(spec)
    batch = []
    for n in range(5):
        obj = StagedObject(info(f"events/{n}.csv", n), "events")
        stage(silver, spec, obj, [{"event": f"e{n}", "amount": n}], None)
        batch.append(obj)
    done = committer.commit(spec, batch)
    table = tables.open_table(silver, "events")
    assert table is not None and table.version() == 1 == done.version
    assert all(table.transaction_version(o.app_id) == o.txn_version for o in batch)
    assert read(silver, "events", "event", "amount") == [(f"e{n}", n) for n in range(5)]


def test_every_tenth_commit_writes_a_checkpoint_so_an_open_reads_few_commits(silver: LayerStore) -> None:
    c = contract(EVENTS)
    (spec,) = table_specs(c)
    committer = DeltaCommitter(silver, "run-1")
    committer.ensure(spec)
    for n in range(12):  # versions 1 to 12: the tenth commit writes a checkpoint (delta-rs: version 9)
        obj = StagedObject(info(f"events/{n}.csv", n), "events")
        stage(silver, spec, obj, [{"event": f"e{n}", "amount": n}], None)
        committer.commit(spec, [obj])
    table = tables.open_table(silver, "events")
    assert table is not None and table.version() == 12
    assert table.metadata().configuration["delta.checkpointInterval"] == str(CHECKPOINT_INTERVAL) == "10"
    logs = {i.key.rsplit("/", 1)[-1] for i in silver.list("events/_delta_log/")}
    checkpoint = json.loads(silver.read_bytes("events/_delta_log/_last_checkpoint"))["version"]
    assert f"{checkpoint:020d}.checkpoint.parquet" in logs
    assert 12 - checkpoint < CHECKPOINT_INTERVAL  # an open reads the checkpoint and fewer than 10 commits
    assert len(tables.transactions(silver, "events", table) or {}) == 12  # the checkpoint's and those after it


def test_a_rerun_adds_nothing_the_table_already_holds_and_removes_its_own_staged_files(silver: LayerStore) -> None:
    c = contract(EVENTS)
    (spec,) = table_specs(c)
    committer = DeltaCommitter(silver, "run-1")
    committer.ensure(spec)
    first = StagedObject(info("events/a.csv"), "events")
    stage(silver, spec, first, [{"event": "a", "amount": 1}], None)
    committer.commit(spec, [first])
    again = StagedObject(info("events/a.csv"), "events")  # the same object version, staged again
    stage(silver, spec, again, [{"event": "a", "amount": 1}], None)
    done = committer.commit(spec, [again])
    assert done.skipped == [again.app_id] and done.added == []
    assert read(silver, "events", "event", "amount") == [("a", 1)]
    assert not Path(silver.fs_path(f"events/{again.files['events'][0].path}")).exists()


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        pytest.param([("a", 0, 1), ("b", 1, 2)], "b", id="later-updated_at-wins"),
        pytest.param([("b", 1, 2), ("a", 0, 1)], "b", id="older-updated_at-loses-though-ingested-later"),
        pytest.param([("a", 0, 1), ("b", 1, 1)], "b", id="tie-on-updated_at-goes-to-the-later-ingested"),
    ],
)
def test_merge_keeps_one_row_per_key_the_newest_by_order_then_ingestion(
    silver: LayerStore, versions: list[tuple[str, int, int]], expected: str
) -> None:
    """Each (title, ingested minute, updated day) is a bronze object of its own, one commit each."""
    c = contract(PAGES)
    committer = DeltaCommitter(silver, "run-1")
    for spec in table_specs(c):
        committer.ensure(spec)
    for title, minute, day in versions:
        obj = stage_pages(silver, c, f"pages/{title}.json", minute, [page("p1", title, day, [title])])
        commit_all(committer, c, [obj])
    assert read(silver, "pages", "page_id", "title") == [("p1", expected)]
    assert read(silver, "page_tags", "page_id", "tag") == [("p1", expected)]


def test_repeats_within_one_batch_merge_to_the_newest(silver: LayerStore) -> None:
    c = contract(PAGES)
    committer = DeltaCommitter(silver, "run-1")
    for spec in table_specs(c):
        committer.ensure(spec)
    old = stage_pages(silver, c, "pages/1.json", 0, [page("p1", "old", 1, ["x", "y"]), page("p2", "only", 1, [])])
    new = stage_pages(silver, c, "pages/2.json", 1, [page("p1", "new", 2, ["y", "z"])])
    commit_all(committer, c, [old, new])
    assert read(silver, "pages", "page_id", "title") == [("p1", "new"), ("p2", "only")]
    assert read(silver, "page_tags", "page_id", "tag") == [("p1", "y"), ("p1", "z")]
    assert read(silver, "pages", "updated_month") == [("2025-03",), ("2025-03",)]


def test_a_new_version_replaces_a_parents_children_and_drops_the_ones_it_lost(silver: LayerStore) -> None:
    c = contract(PAGES)
    committer = DeltaCommitter(silver, "run-1")
    for spec in table_specs(c):
        committer.ensure(spec)
    commit_all(committer, c, [stage_pages(silver, c, "pages/1.json", 0, [page("p1", "v1", 1, ["x", "y"])])])
    commit_all(committer, c, [stage_pages(silver, c, "pages/2.json", 1, [page("p1", "v2", 40, [])])])
    assert read(silver, "pages", "title", "updated_month") == [("v2", "2025-04")]  # moved partition
    assert read(silver, "page_tags", "count(*)") == [(0,)]


def test_a_crash_between_two_tables_commits_is_finished_by_the_rerun(silver: LayerStore) -> None:
    c = contract(PAGES)
    main, child = table_specs(c)
    committer = DeltaCommitter(silver, "run-1")
    for spec in (main, child):
        committer.ensure(spec)
    commit_all(committer, c, [stage_pages(silver, c, "pages/1.json", 0, [page("p1", "v1", 1, ["x"])])])
    crashed = stage_pages(silver, c, "pages/2.json", 1, [page("p1", "v2", 2, ["y"])])
    committer.commit(main, [crashed])  # ... and the run dies before page_tags
    rerun = stage_pages(silver, c, "pages/2.json", 1, [page("p1", "v2", 2, ["y"])])
    commit_all(DeltaCommitter(silver, "run-2"), c, [rerun])
    assert read(silver, "pages", "title") == [("v2",)]
    assert read(silver, "page_tags", "page_id", "tag") == [("p1", "y")]


def test_racing_committers_add_each_object_once(silver: LayerStore) -> None:
    c = contract(PAGES)
    for spec in table_specs(c):
        DeltaCommitter(silver, "setup").ensure(spec)
    batches = {
        run: [
            stage_pages(silver, c, f"pages/{n}.json", n, [page(f"p{n % 3}", f"t{n}", n, [f"g{n}"])]) for n in range(6)
        ]
        for run in ("a", "b")
    }
    errors: list[BaseException] = []

    def go(run: str) -> None:
        try:
            commit_all(DeltaCommitter(silver, run), c, batches[run])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(run,)) for run in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert read(silver, "pages", "page_id", "title") == [("p0", "t3"), ("p1", "t4"), ("p2", "t5")]
    assert read(silver, "page_tags", "page_id", "tag") == [("p0", "g3"), ("p1", "g4"), ("p2", "g5")]


def test_new_contract_columns_are_added_to_the_table_and_a_changed_type_is_refused(silver: LayerStore) -> None:
    committer = DeltaCommitter(silver, "run-1")
    (spec,) = table_specs(contract(EVENTS))
    committer.ensure(spec)
    (wider,) = table_specs(contract(EVENTS + "  - {name: note, source: note, type: string}\n"))
    committer.ensure(wider)
    assert "note" in columns(silver, "events")
    (changed,) = table_specs(contract(EVENTS.replace("type: int64", "type: string")))
    with pytest.raises(SchemaConflictError, match="amount is int64 in the Delta table but string"):
        committer.ensure(changed)


def test_the_load_history_marks_objects_done_once(silver: LayerStore) -> None:
    committer = DeltaCommitter(silver, "run-1")
    committer.ensure(history_spec())
    objects = [StagedObject(info(f"events/{n}.csv", n), "events") for n in range(3)]
    assert tables.pending(silver, "events", [o.info for o in objects]) == [o.info for o in objects]
    now = datetime.now(tz=UTC)
    rows = pa.Table.from_pylist(
        [
            {
                "source": "events",
                "bronze_key": o.info.key,
                "bronze_etag": o.info.etag,
                "bronze_size": o.info.size,
                "bronze_modified": o.info.modified,
                "version_id": o.info.etag,
                "status": "loaded",
                "rows_in": 1,
                "rows_out": 1,
                "rows_quarantined": 0,
                "rows_deduplicated": 0,
                "run_id": "run-1",
                "started_at": now,
                "finished_at": now,
                "seconds": 0.1,
            }
            for o in objects[:2]
        ],
        schema=tables.load_history_schema(),
    )
    committer.record(rows, objects[:2])
    committer.record(rows, objects[:2])  # a second run that processed the same objects
    assert tables.pending(silver, "events", [o.info for o in objects]) == [objects[2].info]
    assert [r["bronze_key"] for r in tables.history_rows(silver, "events")] == ["events/0.csv", "events/1.csv"]
