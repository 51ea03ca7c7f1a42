"""SIGKILL the silverizer at each step, on both backends: readers see whole files only, the
object stays pending, the rerun equals one clean run, and the leftovers are found and cleaned."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
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


def silver_state(silverizer: Any) -> dict[str, str]:
    """Every visible silver object but the ledger (and content pointers): key -> sha256."""
    store = silverizer.lake.silver
    return {
        info.key: hashlib.sha256(store.read_bytes(info.key)).hexdigest()
        for info in store.list()
        if not info.key.startswith(("_ledger/", "_content/"))
    }


@pytest.mark.parametrize(
    ("point", "leaves_tmp"),
    [
        pytest.param("reading", False, id="while-reading"),
        pytest.param("before-ledger", False, id="after-data-before-ledger"),
        pytest.param("publish", True, id="mid-publish"),
    ],
)
def test_sigkill_then_rerun_equals_one_clean_run(
    lake_env: Settings, make_silverizer: Any, point: str, leaves_tmp: bool
) -> None:
    silverizer = make_silverizer()
    silverizer.lake.bronze.put_bytes("currency_rates/a.csv", RATES.encode())
    done = subprocess.run([sys.executable, str(SCRIPT), "currency_rates", point], env=os.environ.copy(), check=False)
    assert done.returncode == -signal.SIGKILL

    # Killed: no ledger entry, the object is pending, and every visible file is whole.
    assert list(silverizer.ledger.entries("currency_rates")) == []
    assert [o.key for o in silverizer.pending("currency_rates")] == ["currency_rates/a.csv"]
    for key in silver_state(silverizer):
        if key.endswith(".parquet"):
            pq.read_table(io.BytesIO(silverizer.lake.silver.read_bytes(key)))  # raises on a torn file
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
    rerun = silver_state(silverizer)
    assert not any(k.startswith("_claims/") for k in rerun)
    make_silverizer().reprocess("currency_rates")
    assert silver_state(silverizer) == rerun
    final = reconcile(silverizer, "currency_rates", clean=True)
    assert final.ok and final.stale_claims == [] and final.orphan_outputs == []
