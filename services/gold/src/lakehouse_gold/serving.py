"""``lakehouse-gold serve-postgres``: load the published marts into a Postgres schema for BI tools.

The published gold manifest is the source of truth: each mart's Parquet file is read through
:class:`~lakehouse_common.storage.Lake` (local or S3), checked against the manifest's sha256,
and loaded into ``<schema>.<mart>`` with the column types of its dbt contract (:mod:`pg_types`).

Per mart, in one transaction (loaders of a schema are serialised by an advisory lock):

1. ``CREATE TABLE <schema>.<mart>__staging_<run>``, then ``COPY ... FROM STDIN (FORMAT BINARY,
   FREEZE)`` from the Parquet file;
2. ``count(*)`` of the staging table must equal the manifest's rows, else everything rolls back;
3. the swap: ``LOCK`` the served table (``lock_timeout``, retried in a savepoint), ``DROP`` it,
   ``ALTER TABLE <staging> RENAME TO <mart>``;
4. the gold run id and sha256 go into ``<schema>._lakehouse_loads``.

Other sessions never see the staging table (it is uncommitted until the swap commits), and a
failed load leaves nothing behind. A BI query reads the old table or the new one, never a
half-loaded or empty one: a query that was running holds the old table until it ends (the swap
waits for it, at most ``lock_timeout_s`` x ``swap_attempts``), and a query that queued behind
the swap re-resolves the name and reads the new table. ``FREEZE`` makes the new rows visible to
every snapshot: without it, a REPEATABLE READ or SERIALIZABLE transaction whose snapshot predates
the swap would find the new table empty (swapping tables is not MVCC-safe in PostgreSQL).

A mart whose recorded sha256 equals the manifest's is left untouched ("unchanged"; a newer run
id with the same content is recorded). Tables of marts that gold no longer publishes are dropped.

Dependent views: the swap drops the served table, so a view over it would have to be dropped too.
The load never uses ``CASCADE``; it refuses with :class:`DependentViewsError` naming the views and
leaves the served table as it was. Views belong in the BI tool (Metabase questions and models,
Superset virtual datasets), which also keeps the read-only role free of CREATE.

Without ``LAKEHOUSE_SERVING_POSTGRES_DSN`` the load logs one line and does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from lakehouse_common.exceptions import SettingsError
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.dbt_contracts import ModelContract, read_model_contracts
from lakehouse_gold.exceptions import (
    DependentViewsError,
    InvalidIdentifierError,
    MartChecksumError,
    MartContractError,
    RowCountMismatchError,
    ServingConnectionError,
    ServingError,
    SwapLockTimeoutError,
)
from lakehouse_gold.manifest import GoldManifest, MartEntry, read_manifest
from lakehouse_gold.pg_types import PgType, pg_type
from lakehouse_gold.settings import MAX_IDENTIFIER_BYTES, ServingSettings
from lakehouse_gold.spool import spooled

log = logging.getLogger(__name__)

LOADS_TABLE = "_lakehouse_loads"
STAGING_MARKER = "__staging_"
APPLICATION_NAME = "lakehouse-gold-serving"
COPY_BATCH_ROWS = 64 * 1024
SKIPPED = "postgres serving skipped: LAKEHOUSE_SERVING_POSTGRES_DSN is not set"

LOADED, UNCHANGED, REMOVED = "loaded", "unchanged", "removed"


# -- identifiers and statements -------------------------------------------------------------------
def check_identifier(what: str, value: str) -> str:
    """``value`` unchanged if Postgres keeps it as is (1-63 bytes, no NUL); quoting is sql.Identifier's job."""
    if not value:
        raise InvalidIdentifierError(what, value, "it is empty")
    if "\x00" in value:
        raise InvalidIdentifierError(what, value, "it contains a NUL character")
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise InvalidIdentifierError(
            what, value, f"it is {len(value.encode('utf-8'))} bytes long and Postgres would truncate it"
        )
    return value


def staging_table_name(mart: str, run_id: str) -> str:
    """``<mart>__staging_<run>``, shortened (mart prefix + run digest) to fit Postgres's 63 bytes."""
    check_identifier("mart name", mart)
    token = re.sub(r"[^a-z0-9]+", "_", run_id.lower()).strip("_") or "run"
    name = f"{mart}{STAGING_MARKER}{token}"
    if len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return name
    suffix = f"{STAGING_MARKER}{hashlib.sha256(run_id.encode('utf-8')).hexdigest()[:10]}"
    room = MAX_IDENTIFIER_BYTES - len(suffix)
    return mart.encode("utf-8")[:room].decode("utf-8", errors="ignore") + suffix


@dataclass(frozen=True)
class ServedColumn:
    name: str
    data_type: str
    pg: PgType
    description: str


def create_table_sql(schema: str, table: str, columns: Sequence[ServedColumn]) -> sql.Composed:
    definitions = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), c.pg.sql) for c in columns)
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, table), definitions)


def copy_sql(schema: str, table: str, columns: Sequence[ServedColumn]) -> sql.Composed:
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY, FREEZE)").format(sql.Identifier(schema, table), names)


def comment_sql(
    schema: str, table: str, description: str, columns: Sequence[ServedColumn], gold_run_id: str
) -> list[sql.Composed]:
    """``COMMENT ON`` the table and its columns (BI tools show them), from the dbt descriptions."""
    note = f"{description} (gold run {gold_run_id})" if description else f"gold run {gold_run_id}"
    statements = [sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(schema, table), sql.Literal(note))]
    statements.extend(
        sql.SQL("COMMENT ON COLUMN {} IS {}").format(
            sql.Identifier(schema, table, c.name), sql.Literal(f"{c.description} [{c.data_type}]".strip())
        )
        for c in columns
    )
    return statements


def swap_sql(schema: str, staging: str, served: str, *, served_exists: bool) -> list[sql.Composed]:
    """The statements of the swap, run in one transaction."""
    target = sql.Identifier(schema, served)
    statements = []
    if served_exists:
        statements.append(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(target))
        statements.append(sql.SQL("DROP TABLE {}").format(target))
    statements.append(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, staging), sql.Identifier(served))
    )
    return statements


# -- planning: contract -> columns ----------------------------------------------------------------
@dataclass(frozen=True)
class MartPlan:
    entry: MartEntry
    description: str
    columns: tuple[ServedColumn, ...]


def plan_mart(entry: MartEntry, contracts: dict[str, ModelContract]) -> MartPlan:
    """The served columns of a mart, typed by its dbt contract; raises before anything touches Postgres."""
    check_identifier("mart name", entry.name)
    contract = contracts.get(entry.name)
    if contract is None:
        known = ", ".join(sorted(contracts)) or "(none)"
        raise MartContractError(
            f"mart {entry.name!r} has no dbt contract (a model with columns and data_type in the project's YAML); "
            f"contracted models are: {known}"
        )
    columns = tuple(
        ServedColumn(
            name=check_identifier(f"column of mart {entry.name!r}", column.name),
            data_type=column.data_type or "",
            pg=pg_type(column.data_type, mart=entry.name, column=column.name),
            description=column.description,
        )
        for column in contract.columns
    )
    return MartPlan(entry=entry, description=contract.description, columns=columns)


def check_parquet_schema(plan: MartPlan, schema: pa.Schema) -> None:
    """The file has exactly the contract's columns, each in an Arrow type that fits its Postgres type."""
    name = plan.entry.name
    expected = [c.name for c in plan.columns]
    if sorted(schema.names) != sorted(expected):
        raise MartContractError(
            f"mart {name!r}: the Parquet columns {schema.names} differ from its contract's {expected}"
        )
    for column in plan.columns:
        arrow_type = schema.field(column.name).type
        if not column.pg.accepts(arrow_type):
            raise MartContractError(
                f"mart {name!r}, column {column.name!r}: Parquet type {arrow_type} does not fit the contract "
                f"data_type {column.data_type!r} (Postgres {column.pg.ddl})"
            )


# -- the report -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MartLoad:
    mart: str
    rows: int
    status: str
    sha256: str
    seconds: float


@dataclass
class ServingReport:
    target: str | None
    schema: str
    reader_role: str
    gold_run_id: str | None = None
    marts: list[MartLoad] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skipped(self) -> bool:
        return self.target is None

    def count(self, status: str) -> int:
        return sum(1 for m in self.marts if m.status == status)

    def summary(self) -> str:
        """One screen: where, then one line per mart, then the totals."""
        if self.target is None:
            return SKIPPED
        lines = [
            f"gold run {self.gold_run_id} served in {self.target}, schema {self.schema} "
            f"(read-only role {self.reader_role})"
        ]
        width = max([4, *(len(m.mart) for m in self.marts)])
        lines.append(f"  {'mart'.ljust(width)}  {'rows':>10}  status")
        lines.extend(f"  {m.mart.ljust(width)}  {m.rows:>10}  {m.status}" for m in self.marts)
        lines.append(
            f"  loaded {self.count(LOADED)}, unchanged {self.count(UNCHANGED)}, removed {self.count(REMOVED)} "
            f"in {self.seconds:.1f} s"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (an Airflow XCom)."""
        return {
            "skipped": self.skipped,
            "target": self.target,
            "schema": self.schema,
            "reader_role": self.reader_role,
            "gold_run_id": self.gold_run_id,
            "marts": {m.mart: {"rows": m.rows, "status": m.status, "sha256": m.sha256} for m in self.marts},
            "loaded": self.count(LOADED),
            "unchanged": self.count(UNCHANGED),
            "removed": self.count(REMOVED),
            "seconds": round(self.seconds, 3),
            "summary": self.summary(),
        }


def describe_dsn(dsn: str) -> str:
    """``user@host:port/dbname`` of a DSN, never its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # The parser's message may quote the DSN, password included: do not repeat it.
        raise SettingsError(
            "LAKEHOUSE_SERVING_POSTGRES_DSN is not a valid libpq connection string or URI "
            "(e.g. postgresql://user:password@host:5432/dbname or 'host=... dbname=... user=...')"
        ) from None
    user = params.get("user") or "(default user)"
    host = params.get("host") or "(local socket)"
    return f"{user}@{host}:{params.get('port') or 5432}/{params.get('dbname') or '(default db)'}"


# -- loading --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _LoadedState:
    gold_run_id: str
    sha256: str


class _Loader:
    """Loads marts over one connection (autocommit; each mart in its own explicit transaction)."""

    def __init__(self, conn: psycopg.Connection[Any], serving: ServingSettings) -> None:
        self.conn = conn
        self.schema = serving.schema_name
        self.role = serving.reader_role
        self.serving = serving
        self.lock_key = f"lakehouse-serving:{self.schema}"

    # -- set-up ---------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Schema, reader role, grants and the loads table; idempotent."""
        schema, role = sql.Identifier(self.schema), sql.Identifier(self.role)
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._lock(cur)
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            self._ensure_role(cur)
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "mart text PRIMARY KEY, gold_run_id text NOT NULL, sha256 text NOT NULL, "
                    "rows bigint NOT NULL, gold_published_at timestamptz NOT NULL, "
                    "loaded_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(self.schema, LOADS_TABLE))
            )
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
            # Tables this user creates later (each swapped-in mart) are readable without another GRANT.
            cur.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(schema, role)
            )
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))

    def _ensure_role(self, cur: psycopg.Cursor[Any]) -> None:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.role,))
        if cur.fetchone() is not None:
            return
        try:
            with self.conn.transaction():
                cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(self.role)))
        except (errors.DuplicateObject, errors.UniqueViolation):
            return  # created meanwhile by a load into another database of the same server
        except errors.InsufficientPrivilege as exc:
            raise ServingError(
                f"the serving user may not create the read-only role {self.role!r}: create it once as a "
                f'superuser (CREATE ROLE "{self.role}" NOLOGIN;) or grant the serving user CREATEROLE'
            ) from exc
        log.info("created the read-only role %s (NOLOGIN)", self.role)

    def _lock(self, cur: psycopg.Cursor[Any]) -> None:
        """One loader per schema at a time, until the current transaction ends."""
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.lock_key,))

    # -- state ----------------------------------------------------------------------------
    def table_oid(self, table: str) -> int | None:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (self.schema, table),
            )
            row = cur.fetchone()
        return int(row[0]) if row else None

    def loaded_state(self, mart: str) -> _LoadedState | None:
        """What the loads table says is served, if the served table still exists."""
        with self.conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT gold_run_id, sha256 FROM {} WHERE mart = %s").format(
                    sql.Identifier(self.schema, LOADS_TABLE)
                ),
                (mart,),
            )
            row = cur.fetchone()
        if row is None or self.table_oid(mart) is None:
            return None
        return _LoadedState(gold_run_id=row[0], sha256=row[1])

    def dependent_views(self, table: str) -> list[str]:
        oid = self.table_oid(table)
        if oid is None:
            return []
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d "
                "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class "
                "WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass "
                "AND d.refobjid = %s AND v.oid <> d.refobjid ORDER BY 1",
                (oid,),
            )
            return [str(row[0]) for row in cur.fetchall()]

    def _refuse_dependents(self, table: str) -> None:
        views = self.dependent_views(table)
        if views:
            raise DependentViewsError(f"{self.schema}.{table}", views)

    # -- one mart -------------------------------------------------------------------------
    def serve(self, lake: Lake, plan: MartPlan, manifest: GoldManifest, spool_dir: Path) -> MartLoad:
        entry = plan.entry
        started = time.monotonic()
        state = self.loaded_state(entry.name)
        if state is not None and state.sha256 == entry.sha256:
            self._record_run(entry, manifest, state)
            return MartLoad(entry.name, entry.rows, UNCHANGED, entry.sha256, time.monotonic() - started)
        self._refuse_dependents(entry.name)  # fail fast, before downloading
        with spooled(lake.gold, entry.key, spool_dir) as local:
            if local.sha256 != entry.sha256:
                raise MartChecksumError(entry.name, lake.gold.uri(entry.key), entry.sha256, local.sha256)
            parquet = pq.ParquetFile(local.path)
            check_parquet_schema(plan, parquet.schema_arrow)
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._lock(cur)
                state = self.loaded_state(entry.name)  # another loader may have served it meanwhile
                if state is not None and state.sha256 == entry.sha256:
                    self._record_run(entry, manifest, state)
                    return MartLoad(entry.name, entry.rows, UNCHANGED, entry.sha256, time.monotonic() - started)
                staging = staging_table_name(entry.name, manifest.run_id)
                self._load_staging(cur, plan, parquet, staging, manifest.run_id)
                self._swap(cur, staging, entry.name)
                self._upsert_load(cur, entry, manifest)
        seconds = time.monotonic() - started
        log.info(
            "served %s.%s: %d rows from gold run %s in %.2f s",
            self.schema,
            entry.name,
            entry.rows,
            manifest.run_id,
            seconds,
        )
        return MartLoad(entry.name, entry.rows, LOADED, entry.sha256, seconds)

    def _load_staging(
        self, cur: psycopg.Cursor[Any], plan: MartPlan, parquet: pq.ParquetFile, staging: str, run_id: str
    ) -> None:
        columns = plan.columns
        cur.execute(create_table_sql(self.schema, staging, columns))
        with cur.copy(copy_sql(self.schema, staging, columns)) as copy:
            copy.set_types([c.pg.copy_type for c in columns])
            for batch in parquet.iter_batches(batch_size=COPY_BATCH_ROWS, columns=[c.name for c in columns]):
                values = [batch.column(c.name).to_pylist() for c in columns]
                for row in zip(*values, strict=True):
                    copy.write_row(row)
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, staging)))
        counted = cur.fetchone()
        loaded = int(counted[0]) if counted else 0
        if loaded != plan.entry.rows:
            raise RowCountMismatchError(plan.entry.name, plan.entry.rows, loaded)
        for statement in comment_sql(self.schema, staging, plan.description, columns, run_id):
            cur.execute(statement)
        # Explicit, besides the default privileges: also right when another user created those.
        cur.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(self.schema, staging), sql.Identifier(self.role))
        )
        cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(self.schema, staging)))

    def _swap(self, cur: psycopg.Cursor[Any], staging: str, served: str) -> None:
        """Drop the served table and rename the staging table to it; waits for BI queries, bounded."""
        lock_ms = str(int(self.serving.lock_timeout_s * 1000))
        attempts = self.serving.swap_attempts
        for attempt in range(1, attempts + 1):
            try:
                with self.conn.transaction():  # a savepoint: a lock timeout keeps the loaded staging table
                    cur.execute("SELECT set_config('lock_timeout', %s, true)", (lock_ms,))
                    exists = self.table_oid(served) is not None
                    if exists:
                        self._refuse_dependents(served)
                    for statement in swap_sql(self.schema, staging, served, served_exists=exists):
                        cur.execute(statement)
                    cur.execute("SELECT set_config('lock_timeout', '0', true)")
                return
            except errors.LockNotAvailable:
                log.warning(
                    "%s.%s is in use: no exclusive lock within %s ms (attempt %d of %d)",
                    self.schema,
                    served,
                    lock_ms,
                    attempt,
                    attempts,
                )
                if attempt < attempts:
                    time.sleep(min(2.0 ** (attempt - 1), 10.0))
            except errors.DependentObjectsStillExist as exc:
                raise DependentViewsError(f"{self.schema}.{served}", [str(exc).splitlines()[0]]) from exc
        raise SwapLockTimeoutError(f"{self.schema}.{served}", attempts, self.serving.lock_timeout_s)

    def _upsert_load(self, cur: psycopg.Cursor[Any], entry: MartEntry, manifest: GoldManifest) -> None:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (mart, gold_run_id, sha256, rows, gold_published_at, loaded_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (mart) DO UPDATE SET "
                "gold_run_id = EXCLUDED.gold_run_id, sha256 = EXCLUDED.sha256, rows = EXCLUDED.rows, "
                "gold_published_at = EXCLUDED.gold_published_at, loaded_at = EXCLUDED.loaded_at"
            ).format(sql.Identifier(self.schema, LOADS_TABLE)),
            (entry.name, manifest.run_id, entry.sha256, entry.rows, manifest.published_at),
        )

    def _record_run(self, entry: MartEntry, manifest: GoldManifest, state: _LoadedState) -> None:
        """Same content from a newer gold run: note the run, leave the table alone. Same run: change nothing."""
        if state.gold_run_id == manifest.run_id:
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET gold_run_id = %s, gold_published_at = %s WHERE mart = %s").format(
                    sql.Identifier(self.schema, LOADS_TABLE)
                ),
                (manifest.run_id, manifest.published_at, entry.name),
            )

    # -- marts gold no longer publishes ---------------------------------------------------
    def remove_unpublished(self, published: Iterable[str]) -> list[str]:
        keep = list(published)
        with self.conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT mart FROM {} WHERE NOT (mart = ANY(%s)) ORDER BY mart").format(
                    sql.Identifier(self.schema, LOADS_TABLE)
                ),
                (keep,),
            )
            stale = [str(row[0]) for row in cur.fetchall()]
        for mart in stale:
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._lock(cur)
                self._refuse_dependents(mart)
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, mart)))
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE mart = %s").format(sql.Identifier(self.schema, LOADS_TABLE)),
                    (mart,),
                )
            log.info("dropped %s.%s: gold no longer publishes that mart", self.schema, mart)
        return stale


def connect(serving: ServingSettings) -> psycopg.Connection[Any]:
    if serving.postgres_dsn is None:
        raise ServingError(SKIPPED)
    dsn = serving.postgres_dsn.get_secret_value()
    where = describe_dsn(dsn)
    try:
        return psycopg.connect(
            dsn, autocommit=True, connect_timeout=serving.connect_timeout_s, application_name=APPLICATION_NAME
        )
    except psycopg.OperationalError as exc:
        raise ServingConnectionError(f"cannot connect to the serving database {where}: {exc}".strip()) from exc


def load_postgres(settings: Settings, serving: ServingSettings, *, lake: Lake | None = None) -> ServingReport:
    """Serve the published gold marts in Postgres; a no-op (one log line) without a DSN."""
    report = ServingReport(target=None, schema=serving.schema_name, reader_role=serving.reader_role)
    if serving.postgres_dsn is None:
        log.info("%s", SKIPPED)
        return report
    started = time.monotonic()
    report.target = describe_dsn(serving.postgres_dsn.get_secret_value())
    lake = lake or Lake(settings)
    manifest = read_manifest(lake)
    report.gold_run_id = manifest.run_id
    contracts = read_model_contracts(settings.dbt_project_dir)
    plans = [plan_mart(entry, contracts) for entry in manifest.marts]  # every type checked before connecting
    spool_dir = settings.scratch_dir.resolve() / "spool"
    with connect(serving) as conn:
        loader = _Loader(conn, serving)
        try:
            loader.bootstrap()
            for plan in plans:
                try:
                    report.marts.append(loader.serve(lake, plan, manifest, spool_dir))
                except ServingError:
                    raise
                except psycopg.Error as exc:
                    raise ServingError(
                        f"loading mart {plan.entry.name!r} into {serving.schema_name} failed, "
                        f"the served table is unchanged: {exc}"
                    ) from exc
            for mart in loader.remove_unpublished(entry.name for entry in manifest.marts):
                report.marts.append(MartLoad(mart, 0, REMOVED, "", 0.0))
        except ServingError:
            raise
        except psycopg.Error as exc:
            raise ServingError(f"serving gold in {report.target}, schema {serving.schema_name}, failed: {exc}") from exc
    report.seconds = time.monotonic() - started
    log.info("%s", report.summary().splitlines()[-1].strip())
    return report


__all__ = ["MartLoad", "ServingReport", "load_postgres"]
