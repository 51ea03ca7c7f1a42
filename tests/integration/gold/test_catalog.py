"""``lakehouse-gold catalog`` (and the report on S3): the DuckDB file opens with no set-up and answers from the lake.

Local: a published gold built by the real dbt, the CLI writes the file, a fresh DuckDB connection
queries the marts, silver's Delta tables and the load history. S3 (moto): views read through httpfs
and the delta extension; the file
holds no credential, and a session that runs the stored one-liner (credentials from the
environment) queries it; the report is uploaded to the gold bucket.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import duckdb_extensions
import pytest
from analyst_lake import BROKEN_KEY, AnalystLake, load_analyst_silver
from gold_silver_factory import delta_rows, make_silver, read_mart

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import build_gold
from lakehouse_gold.catalog import build_catalog
from lakehouse_gold.cli import main
from lakehouse_gold.manifest import read_manifest
from lakehouse_gold.report import REPORT_KEY, build_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARTS = {"load_history", "salary_by_role_month", "skills_demand_by_month", "vacancies_by_region_month"}
SILVER = {"currency_rates", "vacancies", "vacancy_details", "vacancy_skills"}


def _views(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return set(con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall())


def test_cli_catalog_on_local_lake_queries_marts_silver_and_load_history(
    analyst_env: AnalystLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = analyst_env.settings
    lake = Lake(settings)
    output = tmp_path / "analyst" / "lakehouse.duckdb"

    assert main(["catalog", "--output", str(output)]) == 0

    out = capsys.readouterr().out
    assert f"catalog  {output}" in out and f"load_history ({len(analyst_env.history)} rows)" in out
    assert sorted(p.name for p in output.parent.iterdir()) == ["lakehouse.duckdb"]  # no temporary file left
    # A fresh process-level connection, read-only, with nothing set up: what `duckdb lakehouse.duckdb` gets.
    con = duckdb.connect(str(output), read_only=True)
    try:
        assert _views(con) == {("gold", m) for m in MARTS} | {("silver", t) for t in SILVER} | {
            ("main", "load_history"),
            ("main", "quarantine"),
        }
        manifest = read_manifest(lake)
        for entry in manifest.marts:
            expected = read_mart(lake.gold, entry.key)
            rows = con.execute(f"SELECT count(*) FROM gold.{entry.name}").fetchone()
            assert rows == (len(expected),) == (entry.rows,)
        top = con.execute(
            "SELECT area_id, sum(vacancy_count) FROM gold.vacancies_by_region_month GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
        assert top is not None and top[1] > 0
        for table in SILVER:  # DuckDB's delta_scan and deltalake agree on every table's newest version
            assert con.execute(f"SELECT count(*) FROM silver.{table}").fetchone() == (delta_rows(lake.silver, table),)
        # One row per key in keyed tables, and the partition columns come through, as in dbt's sources.
        assert con.execute("SELECT count(DISTINCT published_month) FROM silver.vacancies").fetchone() == (2,)
        ids = con.execute("SELECT count(*), count(DISTINCT vacancy_id) FROM silver.vacancies").fetchone()
        assert ids is not None and ids[0] == ids[1] == 60

        history = con.execute(
            "SELECT source, bronze_key, status, rows_in, rows_out, rows_quarantined, reason, "
            "finished_at, seconds FROM load_history ORDER BY finished_at"
        ).fetchall()
        loads = sorted(analyst_env.history, key=lambda r: r["finished_at"])
        assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in history] == [
            (e["source"], e["bronze_key"], e["status"], e["rows_in"], e["rows_out"], e["rows_quarantined"], e["reason"])
            for e in loads
        ]
        assert [r[7] for r in history] == [e["finished_at"] for e in loads]  # TIMESTAMPTZ
        # Every column evaluates (the JSON ones included) and each key has one current entry.
        assert len(con.execute("SELECT * FROM load_history").fetchall()) == len(loads)
        warned = con.execute("SELECT warnings->>'salary_range' FROM load_history WHERE rows_quarantined = 1").fetchall()
        assert warned == [("1",)]
        current = con.execute("SELECT source, bronze_key FROM load_history WHERE is_current").fetchall()
        assert sorted(current) == sorted({(e["source"], e["bronze_key"]) for e in loads})
        by_status = dict(con.execute("SELECT status, count(*) FROM load_history GROUP BY 1").fetchall())
        assert by_status == {"loaded": len(loads) - 1, "quarantined": 1}
        # The file quarantined whole is in the quarantine, with its reason.
        assert con.execute("SELECT bronze_key, row, reason FROM quarantine").fetchall() == [
            (BROKEN_KEY, None, loads[-1]["reason"])
        ]
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'load_history'"
            ).fetchall()
        )
        assert types["finished_at"] == "TIMESTAMP WITH TIME ZONE" and types["rows_in"] == "BIGINT"
        info = dict(con.execute("SELECT key, value FROM catalog_info").fetchall())
        assert info["gold_run_id"] == manifest.run_id and info["s3_setup"] == ""
        assert con.execute("SELECT count(*) FROM catalog_objects").fetchone() == (len(MARTS) + len(SILVER) + 2,)
        # Gold views read the stable latest copies (a catalog lives long; run files are collected).
        gold_sources = con.execute(
            "SELECT object_name, source FROM catalog_objects WHERE schema_name = 'gold'"
        ).fetchall()
        assert sorted(gold_sources) == sorted((m, lake.gold.uri(f"marts/{m}.parquet")) for m in MARTS)
    finally:
        con.close()


def test_catalog_is_replaced_atomically_and_a_lake_without_silver_gets_an_empty_load_history(
    analyst_lake: AnalystLake, tmp_path: Path
) -> None:
    output = tmp_path / "lakehouse.duckdb"
    output.write_bytes(b"an old catalog")
    first = build_catalog(analyst_lake.settings, output)
    assert first.path == output.resolve()
    con = duckdb.connect(str(output), read_only=True)
    try:
        before = con.execute("SELECT count(*) FROM load_history").fetchone()
        assert before == (len(analyst_lake.history),)
    finally:
        con.close()
    # A catalog of a lake with no silver yet still has load_history (an empty table of the same shape).
    empty_lake = analyst_lake.settings.model_copy(update={"data_dir": tmp_path / "empty"})
    Lake(empty_lake).ensure()
    result = build_catalog(empty_lake, tmp_path / "empty.duckdb")
    assert [(o.qualified, o.kind, o.rows) for o in result.objects] == [("main.load_history", "table", 0)]
    assert set(result.empty_tables) == SILVER
    assert any("not published" in note for note in result.notes)
    con = duckdb.connect(str(tmp_path / "empty.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM load_history").fetchone() == (0,)
        assert "finished_at" in [c[0] for c in con.execute("DESCRIBE load_history").fetchall()]
    finally:
        con.close()


def _ensure_extension(name: str) -> None:
    con = duckdb.connect()
    try:
        try:
            con.execute(f"LOAD {name}")
        except duckdb.Error:
            duckdb_extensions.import_extension(name, con=con)  # from its PyPI wheel: no download
    finally:
        con.close()


def test_catalog_and_report_on_s3(gold_s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = gold_s3_settings.model_copy(update={"contracts_dir": Path(__file__).resolve().parents[3] / "contracts"})
    lake = Lake(settings)
    silver = make_silver()
    entries = load_analyst_silver(lake.silver, silver)
    build_gold(settings, lake=lake)
    output = tmp_path / "s3.duckdb"

    result = build_catalog(settings, output)

    assert result.setup_sql is not None and "credential_chain" in result.setup_sql
    assert {o.qualified for o in result.objects} >= {f"gold.{m}" for m in MARTS} | {"main.load_history"}
    secret = settings.s3_secret_access_key
    key_id = settings.s3_access_key_id
    assert secret is not None and key_id is not None
    data = output.read_bytes()
    assert secret.get_secret_value().encode() not in data and key_id.get_secret_value().encode() not in data
    assert not (Path.home() / ".duckdb" / "stored_secrets").exists() or not any(
        "lakehouse" in p.name for p in (Path.home() / ".duckdb" / "stored_secrets").iterdir()
    )

    _ensure_extension("httpfs")
    _ensure_extension("aws")
    con = duckdb.connect(str(output), read_only=True)
    try:
        # The file brings no secret along: a session starts with none.
        assert con.execute("SELECT count(*) FROM duckdb_secrets()").fetchone() == (0,)
        # The stored one-liner, credentials from the environment (as a user's shell would hold them).
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id.get_secret_value())
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret.get_secret_value())
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        setup = con.execute("SELECT value FROM catalog_info WHERE key = 's3_setup'").fetchone()
        assert setup is not None and setup[0] == result.setup_sql
        con.execute(setup[0])
        manifest = read_manifest(lake)
        for entry in manifest.marts:
            assert con.execute(f"SELECT count(*) FROM gold.{entry.name}").fetchone() == (entry.rows,)
        assert con.execute("SELECT count(*) FROM silver.vacancy_skills").fetchone() == (
            delta_rows(lake.silver, "vacancy_skills"),
        )
        history = con.execute(
            "SELECT status, count(*), sum(rows_in) FROM load_history GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert history == [
            ("loaded", len(entries) - 1, sum(e["rows_in"] for e in entries)),
            ("quarantined", 1, 0),
        ]
    finally:
        con.close()

    # The report goes into the gold bucket beside the marts, through the lake (an S3 upload).
    report = build_report(settings, output=tmp_path / "report.html")
    assert report.gold_uri == f"s3://{settings.gold_bucket}/{REPORT_KEY}"
    assert lake.gold.read_bytes(REPORT_KEY) == (tmp_path / "report.html").read_bytes()
    assert report.gold_run_id == manifest.run_id and report.loads == len(entries)
    assert all(marks > 0 for marks in report.charts.values()), report.charts
