"""The Postgres serving layer against the real local PostgreSQL.

The module creates a throwaway database ``lakehouse_serving_<random>`` (and roles with the same
suffix), drops them at the end; each test serves into its own schema of that database. Gold is
published the way a passed build publishes it (:func:`publish_staged` with Parquet marts that
follow the dbt contracts), without running dbt. ``LAKEHOUSE_TEST_POSTGRES_URL`` overrides the
admin connection (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_gold.cli import main
from lakehouse_gold.exceptions import (
    DependentViewsError,
    MartChecksumError,
    RowCountMismatchError,
    SwapLockTimeoutError,
)
from lakehouse_gold.manifest import MANIFEST_KEY, GoldManifest, read_manifest
from lakehouse_gold.publish import publish_staged
from lakehouse_gold.serving import LOADS_TABLE, ServingReport, load_postgres
from lakehouse_gold.settings import ServingSettings
from lakehouse_gold.settings import get_settings as serving_settings
from lakehouse_orchestration.tasks import load_postgres as load_postgres_task

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
ADMIN_URL = os.environ.get("LAKEHOUSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARTS = ("vacancies_by_region_month", "skills_demand_by_month", "salary_by_role_month", "load_history")


# -- the throwaway database -----------------------------------------------------------------------
@dataclass(frozen=True)
class ServingDb:
    dsn: str
    reader_role: str
    login_role: str

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def as_reader(self) -> psycopg.Connection[Any]:
        """A login user created the way the README says: a member of the read-only role."""
        return psycopg.connect(make_conninfo(self.dsn, user=self.login_role), autocommit=True)


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


@pytest.fixture(scope="module")
def serving_db() -> Iterator[ServingDb]:
    token = uuid.uuid4().hex[:10]
    name, reader, login = f"lakehouse_serving_{token}", f"lakehouse_bi_reader_{token}", f"lakehouse_bi_{token}"
    try:
        _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL} (set LAKEHOUSE_TEST_POSTGRES_URL): {exc}")
    try:
        yield ServingDb(dsn=make_conninfo(ADMIN_URL, dbname=name), reader_role=reader, login_role=login)
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        for role in (login, reader):
            _admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- a published gold, without dbt ----------------------------------------------------------------
@dataclass
class Gold:
    settings: Settings
    lake: Lake
    runs: Iterator[int]

    def publish(self, marts: dict[str, pa.Table]) -> GoldManifest:
        run_id = f"20250101T0000{next(self.runs):02d}Z-abc{next(self.runs):03d}"
        staging = f"_staging/{run_id}"
        for name, table in marts.items():
            with self.lake.gold.open_output(f"{staging}/{name}.parquet") as out:
                pq.write_table(table, out, compression="zstd")
        try:
            return publish_staged(
                self.lake,
                run_id=run_id,
                staging_prefix=staging,
                spool_dir=self.settings.scratch_dir / "spool",
                dbt_status_counts={"success": len(marts)},
                dbt_warnings=[],
            )
        finally:
            shutil.rmtree(self.lake.gold.uri(staging), ignore_errors=True)


@pytest.fixture
def gold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gold:
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(name)
    settings = get_settings(
        backend="local", data_dir=tmp_path / "data", scratch_dir=tmp_path / "scratch", dbt_project_dir=REPO / "dbt"
    )
    lake = Lake(settings)
    lake.ensure()
    return Gold(settings=settings, lake=lake, runs=iter(range(1, 1000)))


@pytest.fixture
def serving(serving_db: ServingDb, request: pytest.FixtureRequest) -> ServingSettings:
    """A schema of its own for each test (a mixed-case one, to exercise quoting)."""
    schema = f"Gold_{request.node.name.removeprefix('test_')[:40]}"
    return serving_settings(
        postgres_dsn=serving_db.dsn, schema_name=schema, reader_role=serving_db.reader_role, lock_timeout_s=2
    )


MONTHS = [date(2024, m, 1) for m in range(1, 13)]


def vacancies(rows: int, salary_shift: float = 0.0) -> pa.Table:
    return pa.table(
        {
            "area_id": pa.array([str(i // 12) for i in range(rows)], pa.string()),
            "published_month": pa.array([MONTHS[i % 12] for i in range(rows)], pa.date32()),
            "area_name": pa.array([None if i % 7 == 0 else f"Город {i // 12}" for i in range(rows)], pa.string()),
            "vacancy_count": pa.array([10 + i for i in range(rows)], pa.int64()),
            "salaried_vacancy_count": pa.array([i % 10 for i in range(rows)], pa.int64()),
            "median_salary_rur": pa.array(
                [None if i % 10 == 0 else 50_000.5 + i + salary_shift for i in range(rows)], pa.float64()
            ),
        }
    )


def skills(rows: int) -> pa.Table:
    return pa.table(
        {
            "skill_name": pa.array([f"skill-{i // 12}" for i in range(rows)], pa.string()),
            "published_month": pa.array([MONTHS[i % 12] for i in range(rows)], pa.date32()),
            "vacancy_count": pa.array([i + 1 for i in range(rows)], pa.int64()),
            "vacancies_with_details": pa.array([rows + 1] * rows, pa.int64()),
            "vacancy_share": pa.array([(i + 1) / (rows + 1) for i in range(rows)], pa.float64()),
            "demand_rank": pa.array([i // 12 + 1 for i in range(rows)], pa.int64()),
        }
    )


def salaries(rows: int) -> pa.Table:
    return pa.table(
        {
            "professional_role_id": pa.array([str(i // 12) for i in range(rows)], pa.string()),
            "published_month": pa.array([MONTHS[i % 12] for i in range(rows)], pa.date32()),
            "professional_role_name": pa.array([f"Роль {i // 12}" for i in range(rows)], pa.string()),
            "salaried_vacancy_count": pa.array([i + 1 for i in range(rows)], pa.int64()),
            "salary_p25_rur": pa.array([40_000.0 + i for i in range(rows)], pa.float64()),
            "salary_median_rur": pa.array([60_000.0 + i for i in range(rows)], pa.float64()),
            "salary_p75_rur": pa.array([80_000.0 + i for i in range(rows)], pa.float64()),
        }
    )


def load_history(rows: int) -> pa.Table:
    start = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    at = [start + timedelta(minutes=i) for i in range(rows)]
    return pa.table(
        {
            "source_name": pa.array(["vacancies" if i % 3 else "currency_rates" for i in range(rows)], pa.string()),
            "bronze_key": pa.array([f"k/{i:04d}.json" for i in range(rows)], pa.string()),
            "bronze_etag": pa.array([f"etag-{i}" for i in range(rows)], pa.string()),
            "status": pa.array(["loaded" if i % 5 else "quarantined" for i in range(rows)], pa.string()),
            "rows_in": pa.array([100 + i for i in range(rows)], pa.int64()),
            "rows_out": pa.array([100 + i - i % 3 for i in range(rows)], pa.int64()),
            "rows_quarantined": pa.array([i % 3 for i in range(rows)], pa.int64()),
            "rows_deduplicated": pa.array([0] * rows, pa.int64()),
            "reason": pa.array([None if i % 5 else "not valid JSON: «…»" for i in range(rows)], pa.string()),
            "started_at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "finished_at": pa.array([t + timedelta(seconds=2) for t in at], pa.timestamp("us", tz="UTC")),
            "load_seconds": pa.array([2.0 + i / 1000 for i in range(rows)], pa.float64()),
            "bronze_size_bytes": pa.array([1000 * i for i in range(rows)], pa.int64()),
            "bronze_modified_at": pa.array(
                [None if i == 0 else t for i, t in enumerate(at)], pa.timestamp("us", tz="UTC")
            ),
            "contract_version": pa.array(["v1"] * rows, pa.string()),
            "is_current": pa.array([i % 2 == 1 for i in range(rows)], pa.bool_()),
        }
    )


def marts(regions: int = 240, salary_shift: float = 0.0) -> dict[str, pa.Table]:
    return {
        "vacancies_by_region_month": vacancies(regions, salary_shift),
        "skills_demand_by_month": skills(120),
        "salary_by_role_month": salaries(36),
        "load_history": load_history(50),
    }


# -- helpers --------------------------------------------------------------------------------------
def load(gold: Gold, serving: ServingSettings) -> ServingReport:
    return load_postgres(gold.settings, serving, lake=gold.lake)


def statuses(report: ServingReport) -> dict[str, str]:
    return {m.mart: m.status for m in report.marts}


def oids(db: ServingDb, schema: str) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchall()
    return {str(name): int(oid) for name, oid in rows}


def count(conn: psycopg.Connection[Any], schema: str, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
    assert row is not None
    return int(row[0])


def loads(db: ServingDb, schema: str) -> dict[str, tuple[Any, ...]]:
    with db.connect() as conn:
        rows = conn.execute(
            sql.SQL("SELECT mart, gold_run_id, sha256, rows, loaded_at FROM {}").format(
                sql.Identifier(schema, LOADS_TABLE)
            )
        ).fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def contract_types() -> dict[str, list[tuple[str, str]]]:
    """(column, data_type) of each mart, straight from the dbt YAML."""
    document = yaml.safe_load((REPO / "dbt" / "models" / "marts" / "_marts__models.yml").read_text())
    return {m["name"]: [(c["name"], c["data_type"]) for c in m["columns"]] for m in document["models"]}


# What each contract data_type of the marts must become in information_schema.columns.data_type.
EXPECTED_PG = {
    "varchar": "text",
    "date": "date",
    "bigint": "bigint",
    "double": "double precision",
    "timestamp with time zone": "timestamp with time zone",
    "boolean": "boolean",
}


# -- tests ----------------------------------------------------------------------------------------
def test_marts_are_served_with_the_contract_types_and_their_values(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb
) -> None:
    published = marts()
    manifest = gold.publish(published)

    report = load(gold, serving)

    assert statuses(report) == dict.fromkeys(MARTS, "loaded")
    schema = serving.schema_name
    with serving_db.connect() as conn:
        for mart, columns in contract_types().items():
            described = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, mart),
            ).fetchall()
            assert described == [(name, EXPECTED_PG[data_type]) for name, data_type in columns], mart
            names = [name for name, _ in columns]
            served = conn.execute(
                sql.SQL("SELECT {} FROM {} ORDER BY 1, 2").format(
                    sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(schema, mart)
                )
            ).fetchall()
            expected = published[mart].select(names).sort_by([(names[0], "ascending"), (names[1], "ascending")])
            assert served == [tuple(row.values()) for row in expected.to_pylist()], mart
            comment = conn.execute(
                "SELECT obj_description(%s::regclass, 'pg_class')",
                (sql.Identifier(schema, mart).as_string(conn),),
            ).fetchone()
            assert comment is not None and f"gold run {manifest.run_id}" in comment[0]
    assert {m: v[:3] for m, v in loads(serving_db, schema).items()} == {
        e.name: (manifest.run_id, e.sha256, e.rows) for e in manifest.marts
    }


def test_every_mapped_type_round_trips(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb, tmp_path: Path
) -> None:
    contract = [
        ("t_varchar", "varchar", pa.string(), ["", None, "Санкт-Петербург ☃", "a\tb\nc\\d"]),
        ("t_boolean", "boolean", pa.bool_(), [True, False, None, True]),
        ("t_tinyint", "tinyint", pa.int8(), [-128, 127, None, 0]),
        ("t_smallint", "smallint", pa.int16(), [-32768, 32767, None, 1]),
        ("t_integer", "integer", pa.int32(), [-(2**31), 2**31 - 1, None, 2]),
        ("t_bigint", "bigint", pa.int64(), [-(2**63), 2**63 - 1, None, 3]),
        ("t_float", "float", pa.float32(), [1.5, -0.25, None, 0.0]),
        ("t_double", "double", pa.float64(), [1e308, -1.0000000000000002, None, 5e-324]),
        ("t_decimal", "decimal(10,2)", pa.decimal128(10, 2), [Decimal("12345678.90"), Decimal("-0.01"), None, None]),
        ("t_date", "date", pa.date32(), [date(1970, 1, 1), date(2999, 12, 31), None, date(2024, 2, 29)]),
        ("t_timestamp", "timestamp", pa.timestamp("us"), [datetime(2024, 1, 1, 12, 30, 0, 123456), None, None, None]),
        (
            "t_timestamptz",
            "timestamptz",
            pa.timestamp("us", tz="UTC"),
            [datetime(2024, 1, 1, 12, tzinfo=UTC), None, None, None],
        ),
        ("t_time", "time", pa.time64("us"), [dtime(23, 59, 59, 999999), None, None, None]),
        ("t_blob", "blob", pa.binary(), [b"\x00\xff", b"", None, None]),
    ]
    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True)
    (project / "models" / "types.yml").write_text(
        yaml.safe_dump(
            {
                "version": 2,
                "models": [{"name": "all_types", "columns": [{"name": n, "data_type": t} for n, t, _, _ in contract]}],
            }
        )
    )
    table = pa.table({n: pa.array(values, arrow_type) for n, _, arrow_type, values in contract})
    gold.settings = gold.settings.model_copy(update={"dbt_project_dir": project})
    gold.publish({"all_types": table})

    load(gold, serving)

    with serving_db.connect() as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        types = conn.execute(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c "
            "JOIN pg_attribute a ON a.attrelid = %s::regclass AND a.attname = c.column_name "
            "WHERE table_schema = %s AND table_name = 'all_types' ORDER BY ordinal_position",
            (sql.Identifier(serving.schema_name, "all_types").as_string(conn), serving.schema_name),
        ).fetchall()
        rows = conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY t_smallint NULLS LAST").format(
                sql.Identifier(serving.schema_name, "all_types")
            )
        ).fetchall()
    assert [t for _, t in types] == [
        "text", "boolean", "smallint", "smallint", "integer", "bigint", "real", "double precision",
        "numeric(10,2)", "date", "timestamp without time zone", "timestamp with time zone",
        "time without time zone", "bytea",
    ]  # fmt: skip
    expected = sorted(table.to_pylist(), key=lambda r: (r["t_smallint"] is None, r["t_smallint"] or 0))
    assert [dict(zip(table.schema.names, row, strict=True)) for row in rows] == expected


def test_a_second_load_of_the_same_gold_changes_nothing(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb, capsys: pytest.CaptureFixture[str]
) -> None:
    gold.publish(marts())
    first = load(gold, serving)
    tables, recorded = oids(serving_db, serving.schema_name), loads(serving_db, serving.schema_name)

    second = load(gold, serving)

    assert statuses(first) == dict.fromkeys(MARTS, "loaded")
    assert statuses(second) == dict.fromkeys(MARTS, "unchanged")
    assert f"loaded 0, unchanged {len(MARTS)}, removed 0" in second.summary()
    assert oids(serving_db, serving.schema_name) == tables
    assert loads(serving_db, serving.schema_name) == recorded


@pytest.mark.parametrize(
    "isolation",
    [
        pytest.param(None, id="autocommit-read-committed"),
        # Its snapshot can predate the swap's commit: the new table's rows must still be visible
        # (COPY FREEZE), or such a reader would see the new table empty.
        pytest.param(psycopg.IsolationLevel.REPEATABLE_READ, id="repeatable-read"),
        pytest.param(psycopg.IsolationLevel.SERIALIZABLE, id="serializable"),
    ],
)
def test_new_gold_runs_swap_atomically_under_concurrent_readers(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb, isolation: psycopg.IsolationLevel | None
) -> None:
    versions = [30_000, 36_000, 42_000]  # rows of the mart in three successive gold runs
    gold.publish(marts(regions=versions[0]))
    load(gold, serving)
    before = oids(serving_db, serving.schema_name)
    schema, mart = serving.schema_name, "vacancies_by_region_month"
    seen: dict[int, list[int]] = {}
    failures: list[BaseException] = []
    stop = threading.Event()

    def read(reader: int) -> None:
        counts = seen.setdefault(reader, [])
        try:
            with serving_db.connect() as conn:
                conn.isolation_level = isolation
                while not stop.is_set():
                    if isolation is None:
                        counts.append(count(conn, schema, mart))
                        continue
                    with conn.transaction():  # BEGIN ISOLATION LEVEL ...: one snapshot per transaction
                        counts.append(count(conn, schema, mart))
        except BaseException as exc:
            failures.append(exc)

    readers = [threading.Thread(target=read, args=(i,)) for i in range(3)]
    for reader in readers:
        reader.start()
    reports = []
    try:
        time.sleep(0.1)
        for rows in versions[1:]:
            manifest = gold.publish(marts(regions=rows))
            reports.append(load(gold, serving))
        time.sleep(0.1)
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)

    assert not failures
    for report in reports:
        assert statuses(report) == {
            mart: "loaded",
            "skills_demand_by_month": "unchanged",
            "salary_by_role_month": "unchanged",
            "load_history": "unchanged",
        }
    for counts in seen.values():
        assert set(counts) <= set(versions), f"a reader saw a count that is no gold run's: {set(counts)}"
        assert counts == sorted(counts), "a reader saw an older table after a newer one"
        assert counts[0] == versions[0] and counts[-1] == versions[-1]
    assert len({c for counts in seen.values() for c in counts}) == len(versions)
    after = oids(serving_db, schema)
    assert after[mart] != before[mart]
    assert {k: v for k, v in after.items() if k != mart} == {k: v for k, v in before.items() if k != mart}
    assert not [name for name in after if "__staging_" in name]
    recorded = loads(serving_db, schema)
    assert {m: r[0] for m, r in recorded.items()} == dict.fromkeys(MARTS, manifest.run_id)


def test_a_row_count_mismatch_fails_before_the_swap_and_keeps_the_old_table(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb
) -> None:
    gold.publish(marts(regions=240))
    load(gold, serving)
    before, recorded = oids(serving_db, serving.schema_name), loads(serving_db, serving.schema_name)
    gold.publish(marts(regions=300))
    # Tamper: the manifest promises one row more than the (checksum-valid) Parquet file holds.
    tampered = json.loads(gold.lake.gold.read_bytes(MANIFEST_KEY))
    for entry in tampered["marts"]:
        if entry["name"] == "vacancies_by_region_month":
            entry["rows"] += 1
    gold.lake.gold.put_bytes(MANIFEST_KEY, json.dumps(tampered).encode())

    with pytest.raises(
        RowCountMismatchError, match="loaded 300 rows into the staging table, the gold manifest says 301"
    ):
        load(gold, serving)

    after = oids(serving_db, serving.schema_name)
    assert after == before  # old table kept, no staging table left behind
    with serving_db.connect() as conn:
        assert count(conn, serving.schema_name, "vacancies_by_region_month") == 240
    assert loads(serving_db, serving.schema_name)["vacancies_by_region_month"] == recorded["vacancies_by_region_month"]


def test_a_tampered_parquet_fails_its_checksum_and_keeps_the_old_table(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb
) -> None:
    gold.publish(marts(regions=240))
    load(gold, serving)
    before = oids(serving_db, serving.schema_name)
    published = gold.publish(marts(regions=300))
    with gold.lake.gold.open_output(published.mart("vacancies_by_region_month").key) as out:
        pq.write_table(vacancies(100), out)  # fewer rows than the manifest says, and another sha256

    with pytest.raises(MartChecksumError, match="vacancies_by_region_month"):
        load(gold, serving)

    assert oids(serving_db, serving.schema_name) == before
    with serving_db.connect() as conn:
        assert count(conn, serving.schema_name, "vacancies_by_region_month") == 240


def test_the_reader_role_can_select_and_nothing_else(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb
) -> None:
    gold.publish(marts())
    load(gold, serving)
    _admin(
        sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
            sql.Identifier(serving_db.login_role), sql.Identifier(serving_db.reader_role)
        )
    )
    schema, mart = serving.schema_name, "salary_by_role_month"
    gold.publish(marts() | {mart: salaries(24)})
    assert statuses(load(gold, serving))[mart] == "loaded"  # a swapped-in table stays readable

    with serving_db.as_reader() as conn:
        assert count(conn, schema, mart) == 24
        assert count(conn, schema, LOADS_TABLE) == len(MARTS)
        forbidden = [
            sql.SQL("INSERT INTO {} (professional_role_id) VALUES ('x')").format(sql.Identifier(schema, mart)),
            sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, mart)),
            sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, mart)),
            sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(schema, "mine")),
            sql.SQL("CREATE VIEW {} AS SELECT 1").format(sql.Identifier(schema, "mine")),
        ]
        for statement in forbidden:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
        role = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (serving_db.reader_role,))
        assert role.fetchone() == (False,)


def test_a_long_bi_transaction_delays_the_swap_boundedly_and_then_wins(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb
) -> None:
    gold.publish(marts(regions=240))
    load(gold, serving)
    schema, mart = serving.schema_name, "vacancies_by_region_month"
    before = oids(serving_db, schema)
    gold.publish(marts(regions=300))
    impatient = serving.model_copy(update={"lock_timeout_s": 0.2, "swap_attempts": 2})

    with serving_db.connect() as bi, bi.transaction():  # a report still running on the old table
        assert count(bi, schema, mart) == 240
        with pytest.raises(SwapLockTimeoutError, match="no exclusive lock after 2 attempt"):
            load(gold, impatient)
        assert count(bi, schema, mart) == 240
    assert oids(serving_db, schema) == before  # nothing swapped, no staging table left

    assert statuses(load(gold, impatient))[mart] == "loaded"  # the report ended: the swap goes through
    with serving_db.connect() as conn:
        assert count(conn, schema, mart) == 300


def test_a_dependent_view_blocks_the_swap_with_a_clear_error(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb
) -> None:
    gold.publish(marts(regions=240))
    load(gold, serving)
    schema = serving.schema_name
    view = sql.Identifier(schema, "regions_2024")
    with serving_db.connect() as conn:
        conn.execute(
            sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                view, sql.Identifier(schema, "vacancies_by_region_month")
            )
        )
    before = oids(serving_db, schema)
    gold.publish(marts(regions=300))

    with pytest.raises(DependentViewsError, match=r"regions_2024.*Define such views in the BI tool"):
        load(gold, serving)

    assert {k: v for k, v in oids(serving_db, schema).items() if k in before} == before
    with serving_db.connect() as conn:
        conn.execute(sql.SQL("DROP VIEW {}").format(view))
    assert statuses(load(gold, serving))["vacancies_by_region_month"] == "loaded"


def test_marts_gold_no_longer_publishes_are_dropped(
    gold: Gold, serving: ServingSettings, serving_db: ServingDb
) -> None:
    gold.publish(marts())
    load(gold, serving)
    remaining = {k: v for k, v in marts().items() if k != "skills_demand_by_month"}
    gold.publish(remaining)

    report = load(gold, serving)

    assert statuses(report)["skills_demand_by_month"] == "removed"
    assert "skills_demand_by_month" not in oids(serving_db, serving.schema_name)
    assert "skills_demand_by_month" not in loads(serving_db, serving.schema_name)


def test_cli_and_airflow_task_print_and_return_the_summary(
    gold: Gold,
    serving: ServingSettings,
    serving_db: ServingDb,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = gold.publish(marts())
    env = {
        "LAKEHOUSE_BACKEND": "local",
        "LAKEHOUSE_DATA_DIR": str(gold.settings.data_dir),
        "LAKEHOUSE_SCRATCH_DIR": str(gold.settings.scratch_dir),
        "LAKEHOUSE_DBT_PROJECT_DIR": str(REPO / "dbt"),
        "LAKEHOUSE_SERVING_POSTGRES_DSN": serving_db.dsn,
        "LAKEHOUSE_SERVING_SCHEMA": serving.schema_name,
        "LAKEHOUSE_SERVING_READER_ROLE": serving_db.reader_role,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert main(["serve-postgres"]) == 0
    printed = capsys.readouterr().out
    result = load_postgres_task()

    assert f"gold run {manifest.run_id} served in postgres@127.0.0.1:5432/" in printed
    for entry in manifest.marts:
        assert re.search(rf"{entry.name} +{entry.rows} +loaded", printed)
    assert f"loaded {len(MARTS)}, unchanged 0, removed 0" in printed
    assert json.loads(json.dumps(result)) == result
    assert (result["loaded"], result["unchanged"], result["gold_run_id"]) == (0, len(MARTS), manifest.run_id)
    assert result["marts"]["salary_by_role_month"] == {
        "rows": 36,
        "status": "unchanged",
        "sha256": read_manifest(gold.lake).mart("salary_by_role_month").sha256,
    }
