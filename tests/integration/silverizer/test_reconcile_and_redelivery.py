"""On both backends: ``reconcile`` reports pending objects and loaded keys whose bronze object is
gone (``--strict`` exits 1) and the files no snapshot names; ``history`` shows each object's
status, rows and reason; an unchanged object delivered again loads nothing new; hostile bronze
keys load and their staged files stay inside the table, named without the key."""

from __future__ import annotations

import gzip
import json
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import LayerStore
from lakehouse_silverizer.cli import main
from lakehouse_silverizer.reconcile import reconcile
from lakehouse_silverizer.runner import Silverizer

from .conftest import REPO, Rows, SilverizerFactory, delta_rows, scan_reader, silver_state

# 56 distinct (date, currency) keys over two months.
RATES = "date,currency,rate\n" + "".join(f"2025-0{1 + i // 28}-{1 + i % 28:02d},USD,{90 + i}.5\n" for i in range(56))


def staged_paths(store: LayerStore, name: str) -> list[str]:
    """The data files table ``name``'s snapshot names, relative to the table."""
    table = DeltaTable(store.table_uri(name), storage_options=store.delta_options or None)
    return [unquote(str(p)) for p in pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()]


def test_reconcile_lists_pending_and_gone(
    lake_env: Settings, make_silverizer: SilverizerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_silverizer()
    bronze = run.lake.bronze
    bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    bronze.put_bytes("currency_rates/b.csv", RATES.replace("USD", "EUR").encode())
    run.run_source("currency_rates")
    assert main(["reconcile", "currency_rates", "--strict"]) == 0
    capsys.readouterr()

    bronze.put_bytes("currency_rates/c.csv", RATES.replace("USD", "GBP").encode())  # pending
    bronze.delete(["currency_rates/b.csv"])  # its rows stay in silver, its bronze object is gone
    report = reconcile(run, "currency_rates")
    assert report.bronze_objects == 2
    assert report.pending == ["currency_rates/c.csv"]
    assert report.bronze_gone == ["currency_rates/b.csv"]
    assert not report.ok

    assert main(["reconcile", "currency_rates", "--json", "--strict"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["pending"] == ["currency_rates/c.csv"] and printed["bronze_gone"] == ["currency_rates/b.csv"]
    assert printed["ok"] is False
    assert main(["reconcile", "currency_rates"]) == 0  # without --strict it only reports
    text = capsys.readouterr().out
    assert "1 pending" in text and "bronze gone: currency_rates/b.csv" in text

    run.run_source("currency_rates")  # c.csv loads; b.csv stays gone until its rows are dealt with
    after = reconcile(run, "currency_rates")
    assert after.pending == [] and after.bronze_gone == ["currency_rates/b.csv"]


def test_reconcile_lists_files_no_snapshot_names_until_vacuumed(
    lake_env: Settings, make_silverizer: SilverizerFactory
) -> None:
    run = make_silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    run.run_source("currency_rates")
    stray = "currency_rates/rate_month=2025-01/part-aaaaaaaaaaaa-bbbbbbbbbbbb-cccccccc.parquet"  # a killed run's
    run.lake.silver.put_bytes(stray, b"PAR1")
    assert reconcile(run, "currency_rates").unreferenced == [stray]
    assert main(["maintain", "currency_rates", "--retention-s", "0", "--no-compact"]) == 0
    assert not run.lake.silver.exists(stray)
    assert reconcile(run, "currency_rates").unreferenced == []


def test_history_command_shows_status_rows_timings_and_reason(
    lake_env: Settings, make_silverizer: SilverizerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    run.lake.bronze.put_bytes("currency_rates/empty.csv", b"")
    run.run_source("currency_rates")
    assert main(["history", "currency_rates", "--json"]) == 0
    rows = {r["bronze_key"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    loaded, empty = rows["currency_rates/a.csv"], rows["currency_rates/empty.csv"]
    assert loaded["status"] == "loaded" and loaded["rows_in"] == loaded["rows_out"] == 56
    assert empty["status"] == "quarantined" and "empty" in empty["reason"]
    for row in rows.values():
        assert {"rows_out", "rows_quarantined", "started_at", "finished_at", "seconds", "run_id"} <= set(row)
    assert set(loaded["table_versions"]) == {"currency_rates", tables.QUARANTINE}
    assert main(["history", "currency_rates"]) == 0
    table = capsys.readouterr().out
    assert "quarantined" in table and "the file is empty" in table
    # The whole-file rejection is in the quarantine table too, with no row or field.
    (rejected,) = delta_rows(run.lake.silver, tables.QUARANTINE)
    assert (rejected["bronze_key"], rejected["row"], rejected["field"]) == ("currency_rates/empty.csv", None, None)


def test_an_unchanged_object_delivered_again_loads_nothing_new(
    lake_env: Settings, make_silverizer: SilverizerFactory, reader_rows: Rows
) -> None:
    def rows() -> list[dict[str, Any]]:  # what readers see, but the bronze version's time
        return sorted(
            ({k: v for k, v in r.items() if k != "_ingested_at"} for r in reader_rows("currency_rates")), key=repr
        )

    run = make_silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    (first,) = run.run_source("currency_rates").entries
    before = rows()
    assert len(before) == first.rows_out == 56
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())  # redelivered: same key, same bytes
    again = run.run_source("currency_rates").entries
    if lake_env.backend == "s3":  # the same ETag (the bytes' MD5): not pending, nothing is read
        assert again == []
    else:  # the local ETag is size and mtime: a new version, whose rows replace their keys' rows
        assert [(e.status, e.rows_out) for e in again] == [("loaded", 56)]
    assert rows() == before  # the rows once, not twice, and the same rows
    state = silver_state(run)
    assert run.run_source("currency_rates").entries == []  # and a third run changes nothing
    assert silver_state(run) == state and run.pending("currency_rates") == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("отчёт за май.csv", id="unicode-spaces"),
        pytest.param("a%2F..%2Fb.csv", id="percent-2f"),
        pytest.param("rates..v2 ..csv", id="dot-dot-in-name"),
        pytest.param("x" * 200 + ".csv", id="long-name"),
    ],
)
def test_hostile_bronze_keys_load_and_their_files_stay_inside_the_table(
    lake_env: Settings, make_silverizer: SilverizerFactory, reader_rows: Rows, name: str
) -> None:
    run = make_silverizer()
    key = f"currency_rates/{name}"
    run.lake.bronze.put_bytes(key, RATES.encode())
    (entry,) = run.run_source("currency_rates").entries
    assert entry.status == "loaded" and entry.key == key and entry.rows_out == 56
    assert {r["_bronze_key"] for r in reader_rows("currency_rates")} == {key}
    assert_contained(run, name)


def assert_contained(run: Silverizer, name: str) -> None:
    """Every file of the table sits in one of its partition directories, named without the key."""
    paths = staged_paths(run.lake.silver, "currency_rates")
    assert paths
    for path in paths:
        directory, file_name = path.split("/")
        assert directory.startswith("rate_month=2025-0") and file_name.startswith("part-")
        assert name not in path and ".." not in path and "%" not in path


def test_dot_dot_keys_on_s3_are_read_and_contained(s3_env: Settings) -> None:
    """The local lake refuses such keys (tests/unit/common); on S3 they are legal and must not block a run."""
    settings = get_settings(contracts_dir=REPO / "contracts")
    run = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir))
    key = "currency_rates/../currency_rates/evil.csv.gz"  # pyarrow would normalise it to another key
    run.lake.bronze.put_bytes(key, gzip.compress(RATES.encode()))
    (entry,) = run.run_source("currency_rates").entries
    assert entry.status == "loaded" and entry.rows_in == 56
    with scan_reader(settings) as reader_rows:
        assert {r["_bronze_key"] for r in reader_rows("currency_rates")} == {key}
    assert_contained(run, "evil")
    assert run.pending("currency_rates") == []
