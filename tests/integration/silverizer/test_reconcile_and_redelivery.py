"""On both backends: ``reconcile`` finds pending objects, orphan silver files and entries whose
bronze object is gone (``--strict`` exits 1); the same object delivered twice gives one silver
output (matrix row 1); hostile bronze keys never become silver paths (row 15)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.ledger import etag_id, key_id
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import S3LayerStore
from lakehouse_silverizer.cli import main
from lakehouse_silverizer.reconcile import reconcile
from lakehouse_silverizer.runner import Silverizer

REPO = Path(__file__).resolve().parents[3]

RATES = "date,currency,rate\n" + "".join(f"2025-0{1 + i % 2}-{1 + i % 28:02d},USD,{90 + i}.5\n" for i in range(60))


def test_reconcile_lists_pending_orphans_and_gone(
    lake_env: Settings, make_silverizer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_silverizer()
    bronze = run.lake.bronze
    bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    bronze.put_bytes("currency_rates/b.csv", RATES.replace("USD", "EUR").encode())
    run.run_source("currency_rates")
    assert main(["reconcile", "currency_rates", "--strict"]) == 0
    capsys.readouterr()

    bronze.put_bytes("currency_rates/c.csv", RATES.replace("USD", "GBP").encode())  # pending
    run.lake.silver.put_bytes("currency_rates/rate_month=2025-01/part-stray.parquet", b"PAR1")  # orphan
    bronze.delete(["currency_rates/b.csv"])  # its entry's bronze object is gone
    report = reconcile(run, "currency_rates")
    assert report.pending == ["currency_rates/c.csv"]
    assert report.orphan_outputs == ["currency_rates/rate_month=2025-01/part-stray.parquet"]
    assert report.bronze_gone == ["currency_rates/b.csv"]
    assert not report.ok

    assert main(["reconcile", "currency_rates", "--json", "--strict"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["pending"] == ["currency_rates/c.csv"] and printed["ok"] is False
    assert main(["reconcile", "currency_rates"]) == 0  # without --strict it only reports
    text = capsys.readouterr().out
    assert "1 pending" in text and "orphan: currency_rates/rate_month=2025-01/part-stray.parquet" in text


def test_ledger_command_shows_state_rows_timings_and_reason(
    lake_env: Settings, make_silverizer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    run.lake.bronze.put_bytes("currency_rates/empty.csv", b"")
    run.run_source("currency_rates")
    assert main(["ledger", "currency_rates", "--json"]) == 0
    rows = {r["key"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["currency_rates/a.csv"]["status"] == "loaded" and rows["currency_rates/a.csv"]["rows_in"] == 60
    assert (
        rows["currency_rates/empty.csv"]["status"] == "unreadable"
        and "empty" in rows["currency_rates/empty.csv"]["reason"]
    )
    for row in rows.values():
        assert {"rows_out", "rows_quarantined", "started_at", "finished_at", "seconds"} <= set(row)
    assert main(["ledger", "currency_rates"]) == 0
    table = capsys.readouterr().out
    assert "unreadable" in table and "the file is empty" in table


def test_the_same_object_delivered_twice_gives_one_silver_output(
    lake_env: Settings,
    make_silverizer: Any,
    silver_state: Callable[[Any], dict[str, str]],
    reader_rows: Callable[[str], list[dict[str, Any]]],
) -> None:
    def rows() -> list[dict[str, Any]]:  # what readers see, but the bronze version's time
        return sorted(
            ({k: v for k, v in r.items() if k != "_ingested_at"} for r in reader_rows("currency_rates")), key=repr
        )

    run = make_silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    (first,) = run.run_source("currency_rates").entries
    before, rows_before = silver_state(run), rows()
    assert len(before) == 2  # two months
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())  # redelivered: same key, same bytes
    again = run.run_source("currency_rates").entries
    after = silver_state(run)
    if isinstance(run.lake.silver, S3LayerStore):
        assert again == [] and after == before  # same ETag: not even reprocessed
    else:  # locally the ETag is size+mtime: a new version, whose files replace the first one's for readers
        assert [e.rows_out for e in again] == [first.rows_out]
        assert len(after) == len(before)
    assert rows() == rows_before and len(rows_before) == first.rows_out  # the rows once, not twice
    assert run.run_source("currency_rates").entries == []  # and a third run changes nothing
    assert silver_state(run) == after


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("отчёт за май.csv", id="unicode-spaces"),
        pytest.param("a%2F..%2Fb.csv", id="percent-2f"),
        pytest.param("x" * 200 + ".csv", id="long-name"),
    ],
)
def test_hostile_bronze_keys_never_become_silver_paths(lake_env: Settings, make_silverizer: Any, name: str) -> None:
    run = make_silverizer()
    key = f"currency_rates/{name}"
    run.lake.bronze.put_bytes(key, RATES.encode())
    (entry,) = run.run_source("currency_rates").entries
    assert entry.status == "loaded" and entry.key == key
    assert all(name not in output and ".." not in output for output in entry.outputs)


def test_dot_dot_keys_on_s3_are_read_and_contained(s3_env: Settings) -> None:
    """The local lake refuses such keys (tests/unit/common); on S3 they are legal and must not block a run."""
    settings = get_settings(contracts_dir=REPO / "contracts")
    run = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir))
    key = "currency_rates/../currency_rates/evil.csv.gz"  # pyarrow would normalise it to another key
    run.lake.bronze.put_bytes(key, gzip.compress(RATES.encode()))
    (entry,) = run.run_source("currency_rates").entries
    assert entry.status == "loaded" and entry.rows_in == 60
    assert all(".." not in o for o in entry.outputs)


def test_vacuum_deletes_what_readers_no_longer_see_once_past_the_retention(
    lake_env: Settings, make_silverizer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_silverizer()
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    (first,) = run.run_source("currency_rates").entries
    run.lake.bronze.put_bytes("currency_rates/a.csv", RATES.replace("USD", "EUR").encode())  # a new version
    (second,) = run.run_source("currency_rates").entries
    stray = "currency_rates/rate_month=2025-01/part-aaaa-bbbb-cccc.parquet"  # a killed attempt's file
    run.lake.silver.put_bytes(stray, b"PAR1")

    report = reconcile(run, "currency_rates")
    assert report.superseded == sorted(first.outputs) and report.orphan_outputs == [stray]
    assert main(["vacuum", "currency_rates"]) == 0  # the default retention keeps them: readers may be on them
    assert "deleted 0 unreferenced file(s); kept 3 younger than the retention" in capsys.readouterr().out
    assert main(["vacuum", "currency_rates", "--retention-s", "0"]) == 0
    assert "deleted 3 unreferenced file(s)" in capsys.readouterr().out

    after = reconcile(run, "currency_rates")
    assert after.ok and after.superseded == [] and after.orphan_outputs == []
    assert all(run.lake.silver.exists(key) for key in second.outputs)
    assert not any(run.lake.silver.exists(key) for key in [*first.outputs, stray])

    # A live run's files are never vacuumed, whatever their age: its claim holds their version.
    working = f"currency_rates/rate_month=2025-02/part-{key_id('currency_rates/a.csv')}-{etag_id('next')}-dddd.parquet"
    run.lake.silver.put_bytes(working, b"PAR1")
    held = run.claims.acquire("currency_rates", "currency_rates/a.csv", "next")
    assert held is not None
    assert main(["vacuum", "currency_rates", "--retention-s", "0"]) == 0
    assert "deleted 0 unreferenced file(s); kept 0 younger than the retention, 1 of objects being processed" in (
        capsys.readouterr().out
    )
    assert run.lake.silver.exists(working)
    assert run.claims.release(held)
    assert main(["vacuum", "currency_rates", "--retention-s", "0"]) == 0
    assert "deleted 1 unreferenced file(s)" in capsys.readouterr().out and not run.lake.silver.exists(working)
