"""Silver's Delta commits: a batch of bronze object versions into each silver table, exactly once.

The silverizer stages each object's rows as Parquet files inside the table's directory
(:class:`~lakehouse_silverizer.writers.PartitionedParquetWriter`); no reader sees them until a
Delta commit adds them. :class:`DeltaCommitter` then commits one batch of objects per table:

- **append** tables (and keyed tables whose new keys are all new): the staged files are added as
  they are (``create_write_transaction`` with ``AddAction``\\ s), no data is rewritten;
- **merge** tables whose keys already exist, or repeat across the batch: the newest row of each
  key wins, by the contract's ``order_by`` columns, then the bronze object's time
  (``_ingested_at``), then the later object of the batch. The winners are MERGEd on the key and
  the staged files are deleted (Delta never named them);
- **child** tables (``vacancy_skills``): a parent row's children are replaced with those of the
  object version that the parent table now holds for that key.

Every commit records the app transaction of each object version it adds
(:func:`lakehouse_common.tables.app_id`), and a rerun skips, table by table, the objects whose
transaction a table already holds: a crash between two tables' commits is finished by the rerun,
never applied twice. The transactions are checked again against the newest snapshot when a
commit conflicts. Merge tables also carry a writer transaction (``writer/<table>``) in every
commit: two runs MERGEing into one table at once conflict, and the loser retries against the
winner's snapshot (Delta's optimistic concurrency, conditional puts on S3; no lock service).

Why stage files ourselves instead of ``write_deltalake`` per object: a bronze file is streamed
in bounded memory and may turn out unreadable half-way (then none of its rows may land), and a
batch of hundreds of small objects must become one commit per table. ``write_deltalake`` takes
one stream per commit, so either a bad file would poison its batch or every object would be a
commit of its own (the log cost the README measures).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake import Field as DeltaField
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction, CommitProperties, Transaction

from lakehouse_common import tables
from lakehouse_common.contracts import Contract, WriteMode
from lakehouse_silverizer.exceptions import CommitConflictError, SchemaConflictError
from lakehouse_silverizer.transform import ARROW_TYPES, META_FIELDS, RESCUED
from lakehouse_silverizer.writers import StagedFile

if TYPE_CHECKING:
    from lakehouse_common.storage import LayerStore, ObjectInfo

log = logging.getLogger(__name__)

# A checkpoint every 10 commits (Delta's default is 100), written by delta-rs's post-commit hook:
# opening a table, and every pending check, reads the newest checkpoint plus the JSON commits
# after it, one GET each. Measured on moto: a pending check of one object took 0.45 s with 40
# commits since the last checkpoint and 0.07 s right after one; the hourly maintenance alone left
# a busy table's log that long between runs.
CHECKPOINT_INTERVAL = 10
TABLE_PROPERTIES = {"delta.checkpointInterval": str(CHECKPOINT_INTERVAL)}

INGESTED_AT = "_ingested_at"
BRONZE_KEY = "_bronze_key"
_OBJECT = "__object"  # the object's position in its batch: the later one wins a tie
T = TypeVar("T")


@dataclass(frozen=True)
class TableSpec:
    """One silver table: its columns as the data files hold them, and how new rows land."""

    name: str
    columns: pa.Schema
    partition: str | None = None  # a string partition column, held in the log, not in the files
    mode: WriteMode = "append"
    key: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    parent: str | None = None  # child tables: the parent table; rows are replaced with the parent's
    parent_key: tuple[str, ...] = ()

    @property
    def schema(self) -> pa.Schema:
        """The Delta table's schema: the columns, then the partition column."""
        extra = [pa.field(self.partition, pa.string())] if self.partition else []
        return pa.schema([*self.columns, *extra])

    @property
    def partition_by(self) -> list[str]:
        return [self.partition] if self.partition else []


def _plain(fld: pa.Field) -> pa.Field:
    """Delta has no dictionary type: the column's value type (the files may still dictionary-encode)."""
    if pa.types.is_dictionary(fld.type):
        return pa.field(fld.name, fld.type.value_type, nullable=fld.nullable)
    return fld


def table_specs(contract: Contract, *, rescued: bool | None = None) -> list[TableSpec]:
    """The silver tables of a contract: its own, then its children's.

    ``rescued`` adds ``_rescued_data``; by default inferred contracts with the rescue policy have it.
    """
    if rescued is None:
        rescued = contract.inferred and contract.on_new_columns == "rescue"
    partition = contract.partition.directory if contract.partition else None
    data = [pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in contract.columns]
    meta = [_plain(f) for f in META_FIELDS]
    main = TableSpec(
        name=contract.name,
        columns=pa.schema([*data, *([RESCUED] if rescued else []), *meta]),
        partition=partition,
        mode=contract.write_mode,
        key=contract.primary_key if contract.write_mode == "merge" else (),
        order=contract.order_by,
    )
    specs = [main]
    for child in contract.children:
        parent_fields = [f for f in data if f.name in child.parent_columns]
        element = pa.field(child.column.name, ARROW_TYPES[child.column.type], nullable=child.column.nullable)
        child_partition = (
            partition if contract.partition and contract.partition.column in child.parent_columns else None
        )
        keyed = main.mode == "merge"
        specs.append(
            TableSpec(
                name=child.name,
                columns=pa.schema([*parent_fields, element, *meta]),
                partition=child_partition,
                mode=main.mode,
                key=(child.primary_key or (*main.key, child.column.name)) if keyed else (),
                parent=main.name if keyed else None,
                parent_key=main.key if keyed else (),
            )
        )
    return specs


def quarantine_spec() -> TableSpec:
    schema = tables.quarantine_schema()
    return TableSpec(tables.QUARANTINE, pa.schema([f for f in schema if f.name != "source"]), partition="source")


def history_spec() -> TableSpec:
    schema = tables.load_history_schema()
    return TableSpec(tables.LOAD_HISTORY, pa.schema([f for f in schema if f.name != "source"]), partition="source")


@dataclass
class StagedObject:
    """One bronze object version's staged output, per silver table."""

    info: ObjectInfo
    source: str
    files: dict[str, list[StagedFile]] = field(default_factory=dict)
    # reprocess: a transaction version newer than any the tables hold, so that they take it again
    redo_version: int | None = None
    # the key's earlier version was loaded: in append tables its rows are replaced with this one's
    replaces: bool = False

    @property
    def app_id(self) -> str:
        return tables.app_id(self.source, self.info.key, self.info.etag)

    @property
    def txn_version(self) -> int:
        return self.redo_version if self.redo_version is not None else tables.txn_version(self.info.modified)


@dataclass
class TableCommit:
    """What one table's commit did for a batch."""

    table: str
    version: int  # the table's version holding the batch (the new commit, or the snapshot found)
    added: list[str] = field(default_factory=list)  # app ids committed now
    skipped: list[str] = field(default_factory=list)  # app ids the table already held
    merged: bool = False


def _retrying(action: Callable[[], T], what: str, attempts: int) -> T:
    """Run ``action`` until its commit does not conflict with another writer's."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except CommitFailedError as exc:
            if attempt == attempts:
                raise CommitConflictError(what, attempts, str(exc)) from exc
            pause = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
            log.info("%s: another writer committed first (%s); retrying in %.2fs", what, exc, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamp"  # the predicate's column is a timestamp (UTC)
    if isinstance(value, date):
        return f"'{value.isoformat()}'::date"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


class DeltaCommitter:
    """Creates silver's Delta tables and commits batches of staged objects into them."""

    def __init__(self, store: LayerStore, run_id: str, *, max_attempts: int = 12) -> None:
        self.store = store
        self.run_id = run_id
        self.max_attempts = max_attempts
        self._tables: dict[str, DeltaTable] = {}

    # -- tables ------------------------------------------------------------------------------
    def table(self, name: str) -> DeltaTable | None:
        """Table ``name`` at its newest version; None when there is none.

        The committer keeps one ``DeltaTable`` per table and brings it up to date with
        ``update_incremental`` (the log entries after the version it has), rather than opening
        the table again: an open replays the newest checkpoint, and the checkpoint keeps one app
        transaction per object version ever loaded (measured: about 30 ms per open at 20,000).
        """
        cached = self._tables.get(name)
        if cached is not None:
            try:
                cached.update_incremental()
                return cached
            except (DeltaError, OSError):  # the table was replaced under us: open it afresh
                del self._tables[name]
        table = tables.open_table(self.store, name)
        if table is not None:
            self._tables[name] = table
        return table

    def open(self, name: str) -> DeltaTable:
        table = self.table(name)
        if table is None:
            raise tables.LegacyLakeError(f"{self.store.table_uri(name)} is not a Delta table")
        return table

    def ensure(self, spec: TableSpec) -> DeltaTable:
        """The table, created from ``spec`` when missing; columns ``spec`` has beyond it are added
        (Delta schema evolution). A column whose type changed is refused."""
        table = self.table(spec.name)
        if table is None:
            try:
                DeltaTable.create(
                    self.store.table_uri(spec.name),
                    spec.schema,
                    mode="ignore",
                    partition_by=spec.partition_by or None,
                    name=spec.name,
                    configuration=TABLE_PROPERTIES,
                    storage_options=self.store.delta_options or None,
                    commit_properties=self._properties(),
                )
            except DeltaError:  # another run created it first (the first log entry is a conditional put)
                if tables.open_table(self.store, spec.name) is None:
                    raise
            return self.ensure(spec)
        current = pa.schema(table.schema().to_arrow())
        missing = []
        for wanted in spec.schema:
            if wanted.name not in current.names:
                missing.append(wanted)
                continue
            have = current.field(wanted.name).type
            if not _same_type(have, wanted.type):
                raise SchemaConflictError(spec.name, wanted.name, str(have), str(wanted.type))
        if missing:
            fields = [DeltaField.from_arrow(pa.field(f.name, f.type, nullable=True)) for f in missing]

            def add() -> None:
                fresh = self.open(spec.name)
                present = set(pa.schema(fresh.schema().to_arrow()).names)
                todo = [f for f in fields if f.name not in present]
                if todo:
                    fresh.alter.add_columns(todo, commit_properties=self._properties())

            _retrying(add, f"adding {', '.join(f.name for f in missing)} to {spec.name}", self.max_attempts)
            log.info("silver table %s: added columns %s", spec.name, ", ".join(f.name for f in missing))
            table = self.open(spec.name)
        return table

    def _properties(
        self, txns: Sequence[tuple[str, int]] = (), metadata: dict[str, Any] | None = None
    ) -> CommitProperties:
        return CommitProperties(
            custom_metadata={"lakehouse.run_id": self.run_id, **(metadata or {})},
            app_transactions=[Transaction(app_id, version) for app_id, version in txns] or None,
            max_commit_retries=0,  # conflicts come back here: the transactions are checked again
        )

    def delete_objects(self, name: str, keys: Sequence[str]) -> int | None:
        """Delete the rows that the bronze ``keys`` put into table ``name`` (``reprocess``: their
        rows are committed again afterwards). Returns the new version (None: nothing to delete)."""
        if not keys:
            return None
        predicate = f"{BRONZE_KEY} IN ({', '.join(_sql_literal(k) for k in sorted(set(keys)))})"

        def once() -> int | None:
            table = self.open(name)
            metrics = table.delete(predicate, commit_properties=self._properties())
            return table.version() if metrics.get("num_deleted_rows") else None

        return _retrying(once, f"deleting the rows of {len(keys)} object(s) from {name}", self.max_attempts)

    # -- the load history ----------------------------------------------------------------------
    def record(self, rows: pa.Table, batch: Sequence[StagedObject], failed: pa.Table | None = None) -> TableCommit:
        """Append the batch's load-history rows (one per object, in ``batch`` order) with their
        transactions: from this commit on, those object versions are not pending. Rows of objects
        that another run recorded meanwhile are left out; ``failed`` rows carry no transaction
        (those objects stay pending)."""
        spec = history_spec()

        def once() -> TableCommit:
            table = self.open(spec.name)
            todo, held = _split_committed(self.store, spec.name, table, batch)
            result = TableCommit(spec.name, table.version(), skipped=[o.app_id for o in held])
            wanted = {o.app_id for o in todo}
            keep = [
                tables.app_id(r["source"], r["bronze_key"], r["bronze_etag"]) in wanted
                for r in rows.select(["source", "bronze_key", "bronze_etag"]).to_pylist()
            ]
            data = rows.filter(pa.array(keep, pa.bool_()))
            if failed is not None and failed.num_rows:
                data = pa.concat_tables([data, failed.cast(data.schema)])
            if data.num_rows == 0:
                return result
            write_deltalake(
                table,
                _conform(data, tables.load_history_schema()),
                mode="append",
                partition_by=spec.partition_by,
                commit_properties=self._properties([(o.app_id, o.txn_version) for o in todo]),
            )
            table.update_incremental()
            result.version = table.version()
            result.added = sorted(wanted)
            return result

        return _retrying(once, "recording the load history", self.max_attempts)

    # -- one table ---------------------------------------------------------------------------
    def commit(self, spec: TableSpec, batch: Sequence[StagedObject]) -> TableCommit:
        """Commit the batch's staged files of ``spec``'s table, skipping the objects it already holds."""
        return _retrying(lambda: self._commit_once(spec, batch), f"committing {spec.name}", self.max_attempts)

    def _commit_once(self, spec: TableSpec, batch: Sequence[StagedObject]) -> TableCommit:
        table = self.open(spec.name)
        todo, held = _split_committed(self.store, spec.name, table, batch)
        result = TableCommit(spec.name, table.version(), skipped=[o.app_id for o in held])
        self._discard(spec, held)
        if not todo:
            return result
        txns = [(o.app_id, o.txn_version) for o in todo]
        if spec.mode == "merge":
            txns.append((f"writer/{spec.name}", table.version() + 1))
        metadata = {"lakehouse.objects": len(todo)}
        replaced: pa.Table | None = None
        rows: pa.Table | None = None
        if spec.parent is not None:
            rows, replaced = self._child_rows(spec, table, todo)
        elif spec.key:
            rows = self._winners(spec, table, todo)
        elif BRONZE_KEY in spec.columns.names and any(o.replaces for o in todo):
            # An append table's rows of a bronze key are those of its newest version: replace them.
            rows = _conform(self._staged_rows(spec, todo), spec.schema)
            keys = sorted({o.info.key for o in todo if o.replaces})
            replaced = pa.table({BRONZE_KEY: pa.array(keys, pa.string())})
        if rows is None:
            adds = [_add_action(f, spec) for o in todo for f in o.files.get(spec.name, [])]
            table.create_write_transaction(
                adds,
                "append",
                spec.schema,
                spec.partition_by or None,
                commit_properties=self._properties(txns, metadata),
            )
        else:
            if rows.num_rows == 0 and (replaced is None or replaced.num_rows == 0):
                # Every staged row lost to a newer one: commit the transactions alone.
                table.create_write_transaction(
                    [],
                    "append",
                    spec.schema,
                    spec.partition_by or None,
                    commit_properties=self._properties(txns, metadata),
                )
            else:
                self._merge(spec, table, rows, replaced, txns, metadata)
            self._discard(spec, todo)
            result.merged = True
        table.update_incremental()
        result.version = table.version()
        result.added = [o.app_id for o in todo]
        return result

    def _discard(self, spec: TableSpec, objects: Iterable[StagedObject]) -> None:
        """Delete staged files that no commit names (best effort: ``vacuum --full`` finds the rest)."""
        keys = [f"{spec.name}/{f.path}" for o in objects for f in o.files.get(spec.name, [])]
        if keys:
            with contextlib.suppress(Exception):
                self.store.delete(keys)

    # -- merge tables ------------------------------------------------------------------------
    def _staged_rows(self, spec: TableSpec, objects: Sequence[StagedObject]) -> pa.Table:
        """The objects' staged rows of ``spec`` (with the partition column and each row's object)."""
        files = [(position, staged) for position, obj in enumerate(objects) for staged in obj.files.get(spec.name, [])]
        pieces = []
        for (position, staged), raw in zip(files, self._read_staged(spec, [f for _, f in files]), strict=True):
            data = _conform(raw, spec.columns)
            if spec.partition:
                data = data.append_column(
                    spec.partition, pa.repeat(pa.scalar(staged.partition, pa.string()), len(data))
                )
            pieces.append(data.append_column(_OBJECT, pa.repeat(pa.scalar(position, pa.int32()), len(data))))
        if not pieces:
            return spec.schema.append(pa.field(_OBJECT, pa.int32())).empty_table()
        return pa.concat_tables(pieces)

    def _read_staged(
        self, spec: TableSpec, files: Sequence[StagedFile], columns: Sequence[str] | None = None
    ) -> list[pa.Table]:
        """The staged files' rows (``columns`` only), in order.

        One file after the other: reading them in parallel made each reader's retries meet
        S3's throttling together (a SlowDown storm outlasted the retries in the fault tests).
        """
        return [
            pq.read_table(
                self.store.fs_path(f"{spec.name}/{staged.path}"),
                filesystem=self.store.filesystem,
                columns=list(columns) if columns else None,
            )
            for staged in files
        ]

    def _existing(self, spec: TableSpec, table: DeltaTable, keys: pa.Table, columns: Sequence[str]) -> pa.Table:
        """The table's rows whose key is among ``keys`` (only ``columns``)."""
        return _select(table, columns, keys.column_names[0], keys.column(keys.column_names[0]))

    def _winners(self, spec: TableSpec, table: DeltaTable, objects: Sequence[StagedObject]) -> pa.Table | None:
        """The rows to MERGE: each key's newest across the batch, where it beats the table's row.
        None when every staged row is a new key (the files are added as they are)."""
        key_columns = [*spec.key, *spec.order, INGESTED_AT]
        batch_keys = self._staged_keys(spec, objects, key_columns)
        existing = self._existing(spec, table, batch_keys, key_columns)
        repeated = _has_repeats(batch_keys, spec.key)
        if not repeated and not _overlaps(batch_keys, existing, spec.key):
            return None
        staged = self._staged_rows(spec, objects)
        return _newest(staged, existing, spec)

    def _staged_keys(self, spec: TableSpec, objects: Sequence[StagedObject], columns: Sequence[str]) -> pa.Table:
        files = [staged for obj in objects for staged in obj.files.get(spec.name, [])]
        pieces = [
            _conform(data, pa.schema([spec.columns.field(c) for c in data.column_names]))
            for data in self._read_staged(spec, files, [c for c in columns if c != spec.partition])
        ]
        if not pieces:
            return pa.schema([spec.schema.field(c) for c in columns if c != spec.partition]).empty_table()
        return pa.concat_tables(pieces)

    def _child_rows(
        self, spec: TableSpec, table: DeltaTable, objects: Sequence[StagedObject]
    ) -> tuple[pa.Table | None, pa.Table | None]:
        """A child table's rows to apply, and the parent keys whose children they replace: the
        rows of the parent rows that each object version owns in the parent table now (None, None
        when all staged rows are owned and none of their parents has children yet: add the files)."""
        assert spec.parent is not None
        parent = self.open(spec.parent)
        staged = self._staged_rows(spec, objects)
        bronze = pa.array([o.info.key for o in objects], pa.string())
        owned_rows = _select(parent, [*spec.parent_key, BRONZE_KEY, INGESTED_AT], BRONZE_KEY, bronze)
        owners = pa.table(
            {
                BRONZE_KEY: bronze,
                INGESTED_AT: pa.array([o.info.modified for o in objects], pa.timestamp("us", tz="UTC")),
                _OBJECT: pa.array(range(len(objects)), pa.int32()),
            }
        )
        con = duckdb.connect()
        try:
            con.register("owned_rows", owned_rows)
            con.register("owners", owners)
            con.register("staged", staged)
            join = " AND ".join(f"s.{_quote(k)} = o.{_quote(k)}" for k in spec.parent_key)
            owned = con.execute(
                f"""
                select distinct {", ".join(f"r.{_quote(k)}" for k in spec.parent_key)}, w.{_OBJECT}
                from owned_rows r join owners w
                  on r.{BRONZE_KEY} = w.{BRONZE_KEY} and r.{INGESTED_AT} = w.{INGESTED_AT}
                """
            ).to_arrow_table()
            con.register("owned", owned)
            rows = con.execute(
                f"select s.* exclude ({_OBJECT}) from staged s join owned o on {join} and s.{_OBJECT} = o.{_OBJECT}"
            ).to_arrow_table()
        finally:
            con.close()
        existing = (
            self._existing(spec, table, owned.select(list(spec.parent_key)), list(spec.parent_key))
            if owned.num_rows
            else None
        )
        all_owned = rows.num_rows == staged.num_rows
        if all_owned and (existing is None or existing.num_rows == 0):
            return None, None
        return _conform(rows, spec.schema), owned.select(list(spec.parent_key))

    def _merge(
        self,
        spec: TableSpec,
        table: DeltaTable,
        rows: pa.Table,
        replaced: pa.Table | None,
        txns: Sequence[tuple[str, int]],
        metadata: dict[str, Any],
    ) -> None:
        rows = _conform(rows.drop_columns([c for c in rows.column_names if c == _OBJECT]), spec.schema)
        # Append tables replacing an object's rows match a row by where it came from.
        key = spec.key or (BRONZE_KEY, "_bronze_row", INGESTED_AT)
        on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in key)
        merger = table.merge(
            rows,
            predicate=on,
            source_alias="s",
            target_alias="t",
            commit_properties=self._properties(txns, {**metadata, "lakehouse.merged_rows": rows.num_rows}),
        )
        merger = merger.when_matched_update_all().when_not_matched_insert_all()
        if replaced is not None and replaced.num_rows:
            merger = merger.when_not_matched_by_source_delete(_in_predicate("t", replaced))
        merger.execute()


def _select(table: DeltaTable, columns: Sequence[str], column: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``columns`` of the table's rows whose ``column`` is one of ``values``, batch by batch.

    The filter is applied to each batch rather than pushed into the scan: deltalake's dataset
    types strings as views, and pyarrow 2x cannot compare those with the files' string
    statistics when it prunes (ArrowNotImplementedError).
    """
    dataset = table.to_pyarrow_dataset()
    wanted = pc.unique(values).cast(pa.string())
    names = list(dict.fromkeys([*columns, column]))
    pieces = []
    for batch in dataset.to_batches(columns=names):
        keep = pc.is_in(batch.column(column).cast(pa.string()), value_set=wanted)
        if pc.any(keep).as_py():
            pieces.append(pa.Table.from_batches([batch.filter(keep)]).select(list(columns)))
    if not pieces:
        return pa.schema([dataset.schema.field(c) for c in columns]).empty_table()
    return pa.concat_tables(pieces)


def _same_type(have: pa.DataType, want: pa.DataType) -> bool:
    if have == want:
        return True
    if pa.types.is_timestamp(have) and pa.types.is_timestamp(want):
        return bool(have.unit == want.unit and bool(have.tz) == bool(want.tz))
    if pa.types.is_list(have) or pa.types.is_large_list(have):
        return bool(pa.types.is_list(want) or pa.types.is_large_list(want))
    strings = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    return any(f(have) for f in strings) and any(f(want) for f in strings)


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with ``schema``'s columns, in order and types; columns it lacks are null."""
    columns = []
    for wanted in schema:
        if wanted.name in data.column_names:
            column = data.column(wanted.name)
            if column.type != wanted.type:
                column = column.cast(wanted.type)
        else:
            column = pa.nulls(data.num_rows, wanted.type)
        columns.append(column)
    extra = [c for c in data.column_names if c == _OBJECT]
    names = [*schema.names, *extra]
    return pa.table([*columns, *(data.column(c) for c in extra)], names=names)


def _split_committed(
    store: LayerStore, name: str, table: DeltaTable, batch: Sequence[StagedObject]
) -> tuple[list[StagedObject], list[StagedObject]]:
    """The batch's objects the table does not hold yet, and those it holds (one bulk log read)."""
    done = tables.committed_ids(store, name, table, [(o.app_id, o.txn_version) for o in batch])
    todo = [o for o in batch if o.app_id not in done]
    held = [o for o in batch if o.app_id in done]
    return todo, held


def _add_action(staged: StagedFile, spec: TableSpec) -> Any:
    values = {spec.partition: staged.partition} if spec.partition else {}
    return AddAction(staged.path, staged.size, values, int(time.time() * 1000), True, staged.stats)


def _has_repeats(keys: pa.Table, key: Sequence[str]) -> bool:
    if keys.num_rows < 2:
        return False
    grouped = keys.group_by(list(key)).aggregate([])
    return bool(grouped.num_rows != keys.num_rows)


def _overlaps(batch: pa.Table, existing: pa.Table, key: Sequence[str]) -> bool:
    if existing.num_rows == 0 or batch.num_rows == 0:
        return False
    found = batch.select(list(key)).join(existing.select(list(key)), list(key), join_type="left semi")
    return bool(found.num_rows)


def _newer(left: str, right: str, columns: Sequence[str]) -> str:
    """SQL: ``left``'s (columns...) is strictly greater than ``right``'s, NULL lowest."""
    if not columns:
        return "false"
    first, rest = _quote(columns[0]), columns[1:]
    greater = f"({left}.{first} is not null and ({right}.{first} is null or {left}.{first} > {right}.{first}))"
    if not rest:
        return greater
    return f"({greater} or ({left}.{first} is not distinct from {right}.{first} and {_newer(left, right, rest)}))"


def _newest(staged: pa.Table, existing: pa.Table, spec: TableSpec) -> pa.Table:
    """Each key's newest staged row (by the order columns, ``_ingested_at``, then the later
    object), kept only where the table holds no newer row for the key."""
    order = [*spec.order, INGESTED_AT]
    keys = ", ".join(_quote(k) for k in spec.key)
    ranking = ", ".join(f"{_quote(c)} desc nulls last" for c in [*order, _OBJECT])
    join = " AND ".join(f"t.{_quote(k)} = b.{_quote(k)}" for k in spec.key)
    con = duckdb.connect()
    try:
        con.register("staged", staged)
        con.register("existing", existing)
        return con.execute(
            f"""
            with batch as (
                select * from staged
                qualify row_number() over (partition by {keys} order by {ranking}) = 1
            )
            select b.* from batch b
            where not exists (select 1 from existing t where {join} and {_newer("t", "b", order)})
            """
        ).to_arrow_table()
    finally:
        con.close()


def _in_predicate(alias: str, keys: pa.Table) -> str:
    """SQL: the row's key is one of ``keys`` (a merge's not-matched-by-source condition)."""
    names = keys.column_names
    rows = keys.to_pylist()
    if len(names) == 1:
        values = ", ".join(_sql_literal(r[names[0]]) for r in rows)
        return f"{alias}.{_quote(names[0])} IN ({values})"
    return " OR ".join(
        "(" + " AND ".join(f"{alias}.{_quote(n)} = {_sql_literal(r[n])}" for n in names) + ")" for r in rows
    )
