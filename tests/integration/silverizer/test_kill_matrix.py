"""SIGKILL the silverizer at each step, on both backends: readers see whole files only, the
object stays pending, the rerun equals one clean run, and the leftovers are found and cleaned.

Over a new version of an already loaded object, a reader (a DuckDB query of the catalog's silver
view, which reads the files the ledger commits, as dbt does) sees exactly the old rows after the
kill and exactly the new rows after the rerun: never a mixture of the two versions' files."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lakehouse_common.settings import Settings
from lakehouse_common.storage import S3LayerStore
from lakehouse_silverizer.reconcile import reconcile

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("kill_run.py")
# Three months, so three partition files; 3000 lines, so several 64 KiB chunks.
RATES = "date,currency,rate\n" + "".join(
    f"2025-0{1 + i % 3}-{1 + i % 28:02d},{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}X,{90 + i % 7}.{i % 10}\n"
    for i in range(6000)
)


# The same key's next version: other rates, and only two of the three months.
RATES_V2 = "date,currency,rate\n" + "".join(
    f"2025-0{1 + i % 2}-{1 + i % 28:02d},{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}X,{70 + i % 5}.5\n"
    for i in range(4000)
)
POINTS = [
    pytest.param("reading", False, id="while-reading"),
    pytest.param("before-ledger", False, id="after-data-before-ledger"),
    pytest.param("publish", True, id="mid-publish"),
]
Rows = Callable[[str], list[dict[str, Any]]]


def visible_files(silverizer: Any) -> dict[str, str]:
    """Every finished silver object but the ledger (and content pointers): key -> sha256."""
    store = silverizer.lake.silver
    return {
        info.key: hashlib.sha256(store.read_bytes(info.key)).hexdigest()
        for info in store.list()
        if not info.key.startswith(("_ledger/", "_content/"))
    }


def kill_at(point: str) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "currency_rates", point], env=os.environ.copy(), check=False)
    assert done.returncode == -signal.SIGKILL


@pytest.mark.parametrize(("point", "leaves_tmp"), POINTS)
def test_sigkill_then_rerun_equals_one_clean_run(
    lake_env: Settings,
    make_silverizer: Any,
    silver_state: Callable[[Any], dict[str, str]],
    reader_rows: Rows,
    point: str,
    leaves_tmp: bool,
) -> None:
    silverizer = make_silverizer()
    silverizer.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    kill_at(point)

    # Killed: no ledger entry, the object is pending, every visible file is whole, readers see nothing.
    assert list(silverizer.ledger.entries("currency_rates")) == []
    assert [o.key for o in silverizer.pending("currency_rates")] == ["currency_rates/a.csv"]
    for key in visible_files(silverizer):
        if key.endswith(".parquet"):
            pq.read_table(io.BytesIO(silverizer.lake.silver.read_bytes(key)))  # raises on a torn file
    assert reader_rows("currency_rates") == []
    report = reconcile(silverizer, "currency_rates")
    assert report.pending == ["currency_rates/a.csv"]
    assert len(report.stale_claims) == 1  # the dead run's claim: its process is gone
    if leaves_tmp:
        assert report.leftovers == [] or all("temporary" in x or "multipart" in x for x in report.leftovers)
        assert silverizer.lake.silver.leftovers(timedelta(0))  # the half-written output
        assert silverizer.lake.silver.clean_leftovers(timedelta(0)) >= 1
        assert list(silverizer.lake.silver.leftovers(timedelta(0))) == []
        if isinstance(silverizer.lake.silver, S3LayerStore):
            s3 = silverizer.lake.silver
            assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []

    # The rerun takes over the dead run's claim at once and gives one clean run's result.
    (entry,) = make_silverizer().run_source("currency_rates").entries
    assert entry.status == "loaded" and entry.rows_in == 6000
    rerun, rows = silver_state(silverizer), reader_rows("currency_rates")
    assert len(rows) == entry.rows_out and not list(silverizer.lake.silver.list("_claims/"))
    make_silverizer().reprocess("currency_rates")
    assert silver_state(silverizer) == rerun and reader_rows("currency_rates") == rows
    final = reconcile(silverizer, "currency_rates", clean=True, retention=timedelta(0))
    assert final.ok and final.stale_claims == [] and final.orphan_outputs == [] and final.superseded == []
    assert reader_rows("currency_rates") == rows  # vacuum removed only what readers did not see
    assert {k for k in visible_files(silverizer) if not k.startswith("_claims/")} == set(silverizer.ledger.committed())


@pytest.mark.parametrize(("point", "leaves_tmp"), POINTS)
def test_sigkill_over_a_new_version_leaves_readers_the_old_one_then_the_new_one(
    lake_env: Settings, make_silverizer: Any, reader_rows: Rows, point: str, leaves_tmp: bool
) -> None:
    silverizer = make_silverizer()
    silverizer.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    (first,) = silverizer.run_source("currency_rates").entries
    old = reader_rows("currency_rates")
    assert len(old) == first.rows_out == 6000 and len(first.outputs) == 3

    silverizer.lake.bronze.put_bytes("currency_rates/a.csv", RATES_V2.encode())  # the next version
    kill_at(point)
    assert reader_rows("currency_rates") == old  # exactly the old version, none of the new one's files
    assert [o.key for o in silverizer.pending("currency_rates")] == ["currency_rates/a.csv"]

    (second,) = make_silverizer().run_source("currency_rates").entries
    new = reader_rows("currency_rates")
    assert second.status == "loaded" and len(new) == second.rows_out == 4000 and len(second.outputs) == 2
    # All of the new version and none of the old (their rates differ; on S3 both versions may carry
    # the same one-second LastModified, so the rows' _ingested_at cannot tell them apart).
    assert {row["rate"] for row in new} == {70.5, 71.5, 72.5, 73.5, 74.5}
    assert not {row["rate"] for row in old} & {row["rate"] for row in new}
    assert {row["rate_month"] for row in new} == {"2025-01", "2025-02"}

    final = reconcile(silverizer, "currency_rates", clean=True, retention=timedelta(0))
    assert final.ok and final.orphan_outputs == [] and final.superseded == []
    assert reader_rows("currency_rates") == new
