"""SIGKILL a real ``lakehouse-silverize run`` at each step of a batch, on both backends: the
rerun gives exactly one clean run's silver (every table, read through Delta's log, run ids and
times aside), the objects are not pending afterwards, and what the killed run staged but never
committed is found by ``reconcile`` and removed by Delta's vacuum (``maintain``), unseen by readers.

Over a new version of an already loaded object, a reader (DuckDB's ``delta_scan``) sees exactly
the old rows after the kill and exactly the newest row per key after the rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_silverizer.cli import main
from lakehouse_silverizer.reconcile import reconcile
from lakehouse_silverizer.runner import Silverizer

from .conftest import FaultProxy, Rows, SilverizerFactory, scan_reader, silver_state, wipe_silver

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("kill_run.py")
BIN = Path(sys.executable).parent


def _currency(i: int) -> str:
    return f"{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}X"


# Three months, so three partitions; 6000 lines, so several 64 KiB chunks; two rows the contract drops.
RATES = (
    "date,currency,rate\n"
    + "".join(f"2025-0{1 + i % 3}-{1 + i % 28:02d},{_currency(i)},{90 + i % 7}.{i % 10}\n" for i in range(6000))
    + "2025-01-05,USD,-1\nnot-a-date,EUR,2\n"
)
# A second object of the same batch: some of a.csv's keys again (the later object wins them), and new ones.
RATES_B = "date,currency,rate\n" + "".join(
    f"2025-01-{1 + i % 28:02d},{_currency(i)},{50 + i % 3}.25\n" for i in range(900)
)
# a.csv's next version: other rates, and only two of the three months.
RATES_V2 = "date,currency,rate\n" + "".join(
    f"2025-0{1 + i % 2}-{1 + i % 28:02d},{_currency(i)},{70 + i % 5}.5\n" for i in range(4000)
)
KEYS = ["currency_rates/a.csv", "currency_rates/b.csv"]
POINTS = [
    pytest.param("before-staging", id="before-anything-is-staged"),
    pytest.param("staged", id="staged-before-the-first-table-commit"),
    pytest.param("between-tables", id="between-two-tables-commits"),
    pytest.param("history-write", id="at-the-load-history-commit"),
    pytest.param("history-written", id="after-the-load-history-log-put"),
]


def kill_at(point: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "currency_rates", point],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, f"{point}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def clean_run_state(silverizer: Silverizer) -> dict[str, list[dict[str, Any]]]:
    """One clean run's silver over the bronze as it is; silver is wiped again afterwards."""
    silverizer.run_source("currency_rates")
    state = silver_state(silverizer)
    wipe_silver(silverizer)
    return state


def loaded_once(silverizer: Silverizer) -> None:
    """One ``loaded`` history row per object version, one row per key, nothing pending."""
    history = [(r["bronze_key"], r["status"]) for r in tables.history_rows(silverizer.lake.silver, "currency_rates")]
    assert sorted(history) == [(k, "loaded") for k in KEYS]
    assert silverizer.pending("currency_rates") == []


def stray_files(silverizer: Silverizer) -> set[str]:
    """Data files in the source's table directories that the tables' current snapshots do not name."""
    store, found = silverizer.lake.silver, set()
    for name in ("currency_rates", tables.QUARANTINE):
        table = DeltaTable(store.table_uri(name), storage_options=store.delta_options or None)
        named = {
            unquote(str(path)) for path in pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()
        }
        on_storage = {i.key.removeprefix(f"{name}/") for i in store.list(f"{name}/") if "/_delta_log/" not in i.key}
        found |= {f"{name}/{path}" for path in on_storage - named if not path.startswith("_delta_log/")}
    return found


def vacuum_unreferenced(silverizer: Silverizer, reader_rows: Rows) -> None:
    """``maintain`` past a zero retention removes every file no snapshot names (what a killed run
    staged, what a MERGE replaced), and readers see the same rows before and after. (That
    ``reconcile`` lists them: test_reconcile_and_redelivery.py.)"""
    before = reader_rows("currency_rates")
    report = reconcile(silverizer, "currency_rates")
    assert report.ok and report.pending == [] and report.bronze_gone == []
    assert main(["maintain", "currency_rates", "_quarantine", "--retention-s", "0", "--no-compact"]) == 0
    assert stray_files(silverizer) == set()
    assert reader_rows("currency_rates") == before


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_then_rerun_equals_one_clean_run(
    lake_env: Settings, make_silverizer: SilverizerFactory, reader_rows: Rows, point: str
) -> None:
    silverizer = make_silverizer()
    silverizer.lake.bronze.put_bytes(KEYS[0], RATES.encode())
    silverizer.lake.bronze.put_bytes(KEYS[1], RATES_B.encode())
    clean = clean_run_state(make_silverizer())
    assert len(clean["currency_rates"]) > 6000 // 2 and len(clean["_quarantine"]) == 2

    kill_at(point)
    history_landed = point == "history-written"
    if history_landed:  # the log put landed: the batch is done, only the process died
        assert silverizer.pending("currency_rates") == []
    else:
        assert [o.key for o in silverizer.pending("currency_rates")] == KEYS
        assert tables.history_rows(silverizer.lake.silver, "currency_rates") == []
    if point in ("before-staging", "staged"):
        assert reader_rows("currency_rates") == []  # staged files are not in any snapshot

    entries = make_silverizer().run_source("currency_rates").entries
    assert [(e.key, e.status) for e in entries] == ([] if history_landed else [(k, "loaded") for k in KEYS])
    assert silver_state(silverizer) == clean
    loaded_once(silverizer)
    assert make_silverizer().run_source("currency_rates").entries == []
    # What the killed run staged and no commit names: left for Delta's vacuum, unseen by readers.
    left_staged = point in ("staged", "between-tables")
    assert bool(stray_files(silverizer)) == left_staged
    vacuum_unreferenced(silverizer, reader_rows)
    assert silver_state(silverizer) == clean


@pytest.mark.parametrize(
    "forward",
    [
        pytest.param(False, id="killed-before-the-put-reaches-s3"),
        pytest.param(True, id="killed-after-s3-took-the-put"),
    ],
)
def test_sigkill_while_the_load_history_log_put_is_in_flight(
    s3_env: Settings, fault_proxy: FaultProxy, forward: bool
) -> None:
    """The real CLI, killed from outside by the S3 endpoint (the fault proxy) as the load history's
    next log entry arrives: either that put never lands (the objects stay pending) or it does
    (they are done); the rerun gives one clean run's silver in both cases."""

    def make_silverizer() -> Silverizer:
        settings = get_settings()  # through the proxy
        return Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir))

    silverizer = make_silverizer()
    silverizer.lake.bronze.put_bytes(KEYS[0], RATES.encode())
    silverizer.lake.bronze.put_bytes(KEYS[1], RATES_B.encode())
    clean = clean_run_state(make_silverizer())
    make_silverizer().ensure_tables(["currency_rates"])  # the history's first log entry is not the one killed

    process = subprocess.Popen(
        [str(BIN / "lakehouse-silverize"), "run", "currency_rates"],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fault = fault_proxy.intercept(
        "PUT",
        rf"^/{s3_env.silver_bucket}/_load_history/_delta_log/\d+\.json",
        lambda: process.send_signal(signal.SIGKILL),
        forward=forward,
    )
    try:
        process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL, [line for line in fault_proxy.log if "PUT" in line]
    assert len(fault.matched) == 1, fault_proxy.log
    fault_proxy.clear()
    time.sleep(0.2)  # the proxy's forwarded put (if any) has landed before the killed client died

    assert [o.key for o in silverizer.pending("currency_rates")] == ([] if forward else KEYS)
    entries = make_silverizer().run_source("currency_rates").entries
    assert [e.key for e in entries] == ([] if forward else KEYS)
    assert silver_state(silverizer) == clean
    loaded_once(silverizer)
    with scan_reader(get_settings()) as reader_rows:
        vacuum_unreferenced(silverizer, reader_rows)


def newest_per_key(*versions: str) -> dict[tuple[str, str], float]:
    """Each (date, currency)'s rate: a later version's wins, within one file the first row."""
    newest: dict[tuple[str, str], float] = {}
    for text in versions:
        seen: dict[tuple[str, str], float] = {}
        for line in text.splitlines()[1:]:
            day, currency, rate = line.split(",")
            if day[:4].isdigit() and float(rate) > 0:
                seen.setdefault((day, currency), float(rate))
        newest.update(seen)
    return newest


@pytest.mark.parametrize("point", [p for p in POINTS if p.values[0] != "history-written"])
def test_sigkill_over_a_new_version_leaves_readers_the_old_rows_then_the_newest(
    lake_env: Settings, make_silverizer: SilverizerFactory, reader_rows: Rows, point: str
) -> None:
    silverizer = make_silverizer()
    silverizer.lake.bronze.put_bytes(KEYS[0], RATES.encode())
    (first,) = silverizer.run_source("currency_rates").entries
    old = reader_rows("currency_rates")
    assert len(old) == first.rows_out

    time.sleep(1.1)  # S3's LastModified has whole seconds: the next version must be newer to win
    silverizer.lake.bronze.put_bytes(KEYS[0], RATES_V2.encode())
    kill_at(point)
    if point in ("before-staging", "staged"):
        assert reader_rows("currency_rates") == old  # exactly the old version, none of the new one's rows
    assert [o.key for o in silverizer.pending("currency_rates")] == [KEYS[0]]

    (second,) = make_silverizer().run_source("currency_rates").entries
    assert second.status == "loaded"
    new = reader_rows("currency_rates")
    got = {(str(r["rate_date"]), r["currency"]): r["rate"] for r in new}
    assert len(got) == len(new)  # one row per key
    assert got == newest_per_key(RATES, RATES_V2)
    assert {r["_bronze_key"] for r in new} == {KEYS[0]}
    vacuum_unreferenced(silverizer, reader_rows)
