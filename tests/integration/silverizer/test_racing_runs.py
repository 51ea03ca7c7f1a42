"""Two real ``lakehouse-silverize run`` processes on one source at once, on both backends: no
claims, no locks, only Delta's log (conditional puts on S3). Every object version is loaded
exactly once (one ``loaded`` load-history row each, one row per key in the merge table), none is
lost, and silver equals one clean run's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lakehouse_common import tables
from lakehouse_common.settings import Settings

from .conftest import SilverizerFactory, silver_state, wipe_silver

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
OBJECTS = 24


def rates(n: int) -> bytes:
    """Object ``n``'s rates: 40 keys of its own (currency ``C<n>X``-like), over two months."""
    currency = f"{chr(65 + n % 26)}{chr(65 + n // 26 % 26)}Q"
    lines = "".join(f"2025-0{1 + i // 20}-{1 + i % 20:02d},{currency},{n + i}.5\n" for i in range(40))
    return ("date,currency,rate\n" + lines).encode()


def test_two_racing_cli_runs_load_every_object_exactly_once(
    lake_env: Settings, make_silverizer: SilverizerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    silverizer = make_silverizer()
    keys = [f"currency_rates/{n:03d}.csv" for n in range(OBJECTS)]
    for n, key in enumerate(keys):
        silverizer.lake.bronze.put_bytes(key, rates(n))
    silverizer.run_source("currency_rates")
    clean = silver_state(silverizer)
    wipe_silver(silverizer)

    monkeypatch.setenv("LAKEHOUSE_SILVERIZER_BATCH_OBJECTS", "3")  # many commits, so the runs interleave
    env = os.environ.copy()
    runs = [
        subprocess.Popen(
            [str(BIN / "lakehouse-silverize"), "run", "currency_rates"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, f"{out}\n{err}"

    history = tables.history_rows(silverizer.lake.silver, "currency_rates")
    loaded = Counter((r["bronze_key"], r["bronze_etag"]) for r in history if r["status"] == "loaded")
    assert sorted(loaded) == sorted((k, silverizer.lake.bronze.stat(k).etag) for k in keys)  # type: ignore[union-attr]
    assert set(loaded.values()) == {1}, "an object version was loaded by both runs"
    assert len(history) == OBJECTS
    rows = [(r["rate_date"], r["currency"]) for r in clean["currency_rates"]]
    assert len(rows) == len(set(rows)) == OBJECTS * 40
    assert silver_state(silverizer) == clean  # one row per key: none twice, none lost
    assert silverizer.pending("currency_rates") == []
    # Both runs did part of the work, or one found nothing left: their summaries add up to the objects.
    done = sum(int(line.split()[0]) for out, _ in outputs for line in out.splitlines() if "object(s):" in line)
    assert done == OBJECTS
