"""The Postgres serving layer without a server: type mapping, identifiers and SQL, settings, the skip path."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse_common.exceptions import SettingsError
from lakehouse_common.settings import Settings
from lakehouse_gold.cli import main
from lakehouse_gold.dbt_contracts import read_model_contracts
from lakehouse_gold.exceptions import (
    InvalidIdentifierError,
    MartContractError,
    UnsupportedColumnTypeError,
)
from lakehouse_gold.manifest import MartColumn, MartEntry
from lakehouse_gold.pg_types import pg_type
from lakehouse_gold.serving import (
    SKIPPED,
    ServedColumn,
    check_identifier,
    check_parquet_schema,
    comment_sql,
    copy_sql,
    create_table_sql,
    describe_dsn,
    load_postgres,
    plan_mart,
    staging_table_name,
    swap_sql,
)
from lakehouse_gold.settings import ServingSettings, get_settings

REPO = Path(__file__).resolve().parents[3]


# -- type mapping ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data_type", "ddl", "copy_type"),
    [
        pytest.param("varchar", "text", "text", id="varchar"),
        pytest.param("VARCHAR(255)", "text", "text", id="sized-varchar-upper"),
        pytest.param("text", "text", "text", id="text"),
        pytest.param("boolean", "boolean", "bool", id="boolean"),
        pytest.param("tinyint", "smallint", "int2", id="tinyint-widened"),
        pytest.param("smallint", "smallint", "int2", id="smallint"),
        pytest.param("integer", "integer", "int4", id="integer"),
        pytest.param("int", "integer", "int4", id="int-alias"),
        pytest.param("bigint", "bigint", "int8", id="bigint"),
        pytest.param("float", "real", "float4", id="duckdb-float-is-single"),
        pytest.param("double", "double precision", "float8", id="double"),
        pytest.param("Double  Precision", "double precision", "float8", id="double-precision-spacing"),
        pytest.param("decimal(10,2)", "numeric(10,2)", "numeric", id="decimal-p-s"),
        pytest.param("numeric(12)", "numeric(12,0)", "numeric", id="numeric-p"),
        pytest.param("decimal", "numeric(18,3)", "numeric", id="decimal-duckdb-default"),
        pytest.param("date", "date", "date", id="date"),
        pytest.param("timestamp", "timestamp without time zone", "timestamp", id="timestamp"),
        pytest.param("timestamptz", "timestamp with time zone", "timestamptz", id="timestamptz"),
        pytest.param("timestamp with time zone", "timestamp with time zone", "timestamptz", id="timestamptz-long"),
        pytest.param("time", "time without time zone", "time", id="time"),
        pytest.param("blob", "bytea", "bytea", id="blob"),
    ],
)
def test_contract_types_map_to_postgres(data_type: str, ddl: str, copy_type: str) -> None:
    mapped = pg_type(data_type, mart="m", column="c")
    assert (mapped.ddl, mapped.copy_type) == (ddl, copy_type)


@pytest.mark.parametrize(
    "data_type",
    [
        pytest.param("hugeint", id="hugeint"),
        pytest.param("struct(a int)", id="struct"),
        pytest.param("varchar[]", id="list"),
        pytest.param("decimal(40,2)", id="decimal-too-precise"),
        pytest.param("decimal(5,6)", id="decimal-scale-above-precision"),
        pytest.param("interval", id="interval"),
        pytest.param(None, id="no-data-type"),
    ],
)
def test_unknown_types_fail_naming_mart_column_type_and_the_valid_ones(data_type: str | None) -> None:
    with pytest.raises(UnsupportedColumnTypeError) as caught:
        pg_type(data_type, mart="salary_by_role_month", column="salary_p25_rur")
    message = str(caught.value)
    assert "mart 'salary_by_role_month', column 'salary_p25_rur'" in message
    assert "valid data types are: " in message and "bigint" in message and "decimal(p,s)" in message
    assert (caught.value.mart, caught.value.column) == ("salary_by_role_month", "salary_p25_rur")


@pytest.mark.parametrize(
    ("data_type", "arrow_type", "fits"),
    [
        pytest.param("varchar", pa.string(), True, id="string-text"),
        pytest.param("varchar", pa.large_string(), True, id="large-string-text"),
        pytest.param("varchar", pa.int64(), False, id="int-not-text"),
        pytest.param("bigint", pa.int64(), True, id="int64-bigint"),
        pytest.param("bigint", pa.uint64(), False, id="uint64-overflows-bigint"),
        pytest.param("integer", pa.int64(), False, id="int64-overflows-integer"),
        pytest.param("integer", pa.uint16(), True, id="uint16-integer"),
        pytest.param("double", pa.float32(), True, id="float32-double"),
        pytest.param("float", pa.float64(), False, id="float64-not-real"),
        pytest.param("date", pa.date32(), True, id="date32"),
        pytest.param("timestamp", pa.timestamp("us"), True, id="naive-timestamp"),
        pytest.param("timestamp", pa.timestamp("us", tz="UTC"), False, id="aware-not-timestamp"),
        pytest.param("timestamptz", pa.timestamp("us", tz="UTC"), True, id="aware-timestamptz"),
        pytest.param("decimal(10,2)", pa.decimal128(10, 2), True, id="decimal"),
        pytest.param("decimal(10,2)", pa.float64(), False, id="double-not-decimal"),
    ],
)
def test_arrow_types_that_fit_each_postgres_type(data_type: str, arrow_type: pa.DataType, fits: bool) -> None:
    assert pg_type(data_type, mart="m", column="c").accepts(arrow_type) is fits


# -- the real dbt contracts -----------------------------------------------------------------------
def _entry(name: str, columns: list[tuple[str, str]] | None = None) -> MartEntry:
    return MartEntry(
        name=name,
        key=f"marts/{name}.parquet",
        rows=1,
        size_bytes=1,
        sha256="0" * 64,
        columns=tuple(MartColumn(name=n, type=t) for n, t in (columns or [])),
    )


def test_every_mart_of_the_dbt_project_has_a_mapped_contract() -> None:
    contracts = read_model_contracts(REPO / "dbt")
    marts = sorted(p.stem for p in (REPO / "dbt" / "models" / "marts").glob("*.sql"))

    plans = {name: plan_mart(_entry(name), contracts) for name in marts}

    assert [(c.name, c.pg.ddl) for c in plans["vacancies_by_region_month"].columns] == [
        ("area_id", "text"),
        ("published_month", "date"),
        ("area_name", "text"),
        ("vacancy_count", "bigint"),
        ("salaried_vacancy_count", "bigint"),
        ("median_salary_rur", "double precision"),
    ]
    assert all(c.description for c in plans["salary_by_role_month"].columns if c.name == "salary_p25_rur")


def test_a_mart_without_contract_is_refused_naming_the_contracted_models() -> None:
    contracts = read_model_contracts(REPO / "dbt")
    with pytest.raises(MartContractError, match=r"mart 'ad_hoc' has no dbt contract.*salary_by_role_month"):
        plan_mart(_entry("ad_hoc"), contracts)


def test_a_parquet_schema_that_breaks_the_contract_is_refused() -> None:
    plan = plan_mart(_entry("skills_demand_by_month"), read_model_contracts(REPO / "dbt"))
    good = pa.schema(
        [
            ("skill_name", pa.string()),
            ("published_month", pa.date32()),
            ("vacancy_count", pa.int64()),
            ("vacancies_with_details", pa.int64()),
            ("vacancy_share", pa.float64()),
            ("demand_rank", pa.int64()),
        ]
    )
    check_parquet_schema(plan, good)
    with pytest.raises(MartContractError, match=r"column 'demand_rank': Parquet type string does not fit .*bigint"):
        check_parquet_schema(plan, good.set(5, pa.field("demand_rank", pa.string())))
    with pytest.raises(MartContractError, match="differ from its contract"):
        check_parquet_schema(plan, good.remove(5))


def test_missing_dbt_project_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(MartContractError, match="LAKEHOUSE_DBT_PROJECT_DIR"):
        read_model_contracts(tmp_path / "nowhere")


# -- identifiers and SQL --------------------------------------------------------------------------
def _col(name: str, data_type: str = "bigint", description: str = "") -> ServedColumn:
    return ServedColumn(name, data_type, pg_type(data_type, mart="m", column=name), description)


@pytest.mark.parametrize(
    ("schema", "table", "columns", "expected"),
    [
        pytest.param(
            "gold",
            "vacancies",
            [_col("area_id", "varchar"), _col("n")],
            'CREATE TABLE "gold"."vacancies" ("area_id" text, "n" bigint)',
            id="plain",
        ),
        pytest.param(
            "Gold BI",
            'we"ird',
            [_col('a"b'), _col("select")],
            'CREATE TABLE "Gold BI"."we""ird" ("a""b" bigint, "select" bigint)',
            id="quotes-spaces-keywords",
        ),
        pytest.param(
            "gold",
            "x; DROP TABLE y; --",
            [_col("décimal", "decimal(10,2)")],
            'CREATE TABLE "gold"."x; DROP TABLE y; --" ("décimal" numeric(10,2))',
            id="injection-stays-a-name",
        ),
    ],
)
def test_identifiers_are_always_quoted(schema: str, table: str, columns: list[ServedColumn], expected: str) -> None:
    assert create_table_sql(schema, table, columns).as_string() == expected


def test_copy_comment_and_swap_statements_quote_every_name() -> None:
    columns = [_col('a"b', "varchar", "it's a column")]

    assert copy_sql("g s", "t", columns).as_string() == 'COPY "g s"."t" ("a""b") FROM STDIN (FORMAT BINARY, FREEZE)'
    assert [s.as_string() for s in comment_sql("g", "t", "", columns, "run-1")] == [
        """COMMENT ON TABLE "g"."t" IS 'gold run run-1'""",
        """COMMENT ON COLUMN "g"."t"."a""b" IS 'it''s a column [varchar]'""",
    ]
    assert [s.as_string() for s in swap_sql("g", "t__staging_r", 'M"', served_exists=True)] == [
        'LOCK TABLE "g"."M""" IN ACCESS EXCLUSIVE MODE',
        'DROP TABLE "g"."M"""',
        'ALTER TABLE "g"."t__staging_r" RENAME TO "M"""',
    ]
    assert [s.as_string() for s in swap_sql("g", "s", "m", served_exists=False)] == [
        'ALTER TABLE "g"."s" RENAME TO "m"'
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("a\x00b", "NUL", id="nul"),
        pytest.param("x" * 64, "64 bytes", id="64-ascii-bytes"),
        pytest.param("ж" * 32, "64 bytes", id="64-utf8-bytes"),
    ],
)
def test_names_postgres_would_change_are_refused(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifierError, match=reason) as caught:
        check_identifier("mart name", value)
    assert "valid identifiers are 1 to 63 bytes" in str(caught.value)


@pytest.mark.parametrize(
    ("mart", "run_id", "expected"),
    [
        pytest.param(
            "salary_by_role_month",
            "20240131T120000Z-1a2b3c",
            "salary_by_role_month__staging_20240131t120000z_1a2b3c",
            id="gold-run-id",
        ),
        pytest.param("m", "run-7", "m__staging_run_7", id="short"),
        pytest.param("m", "---", "m__staging_run", id="no-usable-characters"),
    ],
)
def test_staging_table_names(mart: str, run_id: str, expected: str) -> None:
    assert staging_table_name(mart, run_id) == expected


def test_long_staging_names_are_shortened_to_63_bytes_and_stay_distinct() -> None:
    mart = "a_mart_with_a_rather_long_name_for_a_mart_x"
    first = staging_table_name(mart, "20240131T120000Z-1a2b3c")
    second = staging_table_name(mart, "20240131T120000Z-4d5e6f")

    assert len(first.encode()) <= 63 and len(second.encode()) <= 63 and first != second
    assert first.startswith("a_mart_with") and "__staging_" in first


# -- settings and the skip path -------------------------------------------------------------------
def test_settings_come_from_lakehouse_serving_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SERVING_POSTGRES_DSN", "postgresql://loader:s3cret@db:5432/lakehouse")
    monkeypatch.setenv("LAKEHOUSE_SERVING_SCHEMA", "bi")
    monkeypatch.setenv("LAKEHOUSE_SERVING_READER_ROLE", "metabase_reader")

    settings = get_settings()

    assert settings.postgres_dsn is not None and "s3cret" not in repr(settings)
    assert (settings.schema_name, settings.reader_role) == ("bi", "metabase_reader")
    assert describe_dsn(settings.postgres_dsn.get_secret_value()) == "loader@db:5432/lakehouse"


def test_defaults_and_an_empty_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SERVING_POSTGRES_DSN", "")
    settings = ServingSettings()
    assert (settings.postgres_dsn, settings.schema_name, settings.reader_role) == (None, "gold", "lakehouse_bi_reader")


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"schema_name": ""}, id="empty-schema"),
        pytest.param({"reader_role": "r" * 64}, id="long-role"),
        pytest.param({"lock_timeout_s": 0}, id="zero-lock-timeout"),
    ],
)
def test_invalid_settings_raise_settings_error(overrides: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match="LAKEHOUSE_SERVING_"):
        get_settings(**overrides)


def test_a_malformed_dsn_is_a_settings_error_that_does_not_echo_it() -> None:
    with pytest.raises(SettingsError, match="not a valid libpq connection string") as caught:
        describe_dsn("host=db password=hunter2 =broken")
    assert "hunter2" not in str(caught.value)


def test_without_a_dsn_the_load_logs_one_line_and_does_nothing(
    gold_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lakehouse_gold")

    report = load_postgres(gold_settings, get_settings())  # no manifest needed: nothing is read

    assert report.skipped and report.to_dict()["skipped"] is True
    assert [r.getMessage() for r in caplog.records] == [SKIPPED]


def test_cli_without_a_dsn_says_skipped_and_exits_0(
    gold_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(gold_settings.data_dir))

    assert main(["load-postgres"]) == 0
    assert capsys.readouterr().out.strip() == SKIPPED
