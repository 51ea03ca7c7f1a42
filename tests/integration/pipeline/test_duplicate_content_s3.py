"""On S3, a copy of an already loaded bronze object under another key adds nothing to silver:
its ETag (the MD5 of a single-part upload) names the same bytes, and the load history records it
as a ``duplicate`` of the original; no table gets a row or a commit's worth of data from it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import LayerStore
from lakehouse_silverizer.runner import Silverizer

REPO = Path(__file__).resolve().parents[3]
RATES = "date,currency,rate\n" + "".join(f"2025-01-{1 + i % 28:02d},USD,{90 + i % 7}.5\n" for i in range(200))


def rows(store: LayerStore, name: str) -> list[dict[str, Any]]:
    table = DeltaTable(store.table_uri(name), storage_options=store.delta_options or None)
    return sorted(table.to_pyarrow_table().to_pylist(), key=repr)


def test_a_copy_under_another_key_is_a_recorded_duplicate(s3_env: Settings, moto_server: object) -> None:
    settings = get_settings(contracts_dir=REPO / "contracts")
    silverizer = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir))
    bronze, silver = silverizer.lake.bronze, silverizer.lake.silver
    bronze.put_bytes("currency_rates/ingest_date=2025-01-31/rates.csv", RATES.encode())
    (first,) = silverizer.run_source("currency_rates").entries
    assert first.status == "loaded" and first.rows_out == 28
    before = {name: rows(silver, name) for name in ("currency_rates", tables.QUARANTINE)}

    bronze.put_bytes("currency_rates/ingest_date=2025-02-01/copy of rates.csv", RATES.encode())
    (copy,) = silverizer.run_source("currency_rates").entries
    assert copy.status == "duplicate"
    assert (copy.rows_in, copy.rows_out, copy.rows_quarantined) == (0, 0, 0)
    assert first.key in (copy.reason or "")
    assert {name: rows(silver, name) for name in before} == before  # no row from the copy
    assert silverizer.pending("currency_rates") == []  # recorded: never pending again

    # Different bytes under the copy's key are new data again: they replace the first rows' keys
    # (a newer bronze version wins; S3's LastModified has whole seconds).
    time.sleep(1.1)
    bronze.put_bytes("currency_rates/ingest_date=2025-02-01/copy of rates.csv", RATES.replace(".5\n", ".25\n").encode())
    (changed,) = silverizer.run_source("currency_rates").entries
    assert changed.status == "loaded" and changed.rows_out == first.rows_out
    current = rows(silver, "currency_rates")
    assert len(current) == 28 and {r["_bronze_key"] for r in current} == {changed.key}
    history = tables.history_rows(silver, "currency_rates")
    assert sorted((r["bronze_key"], r["status"]) for r in history) == [
        (first.key, "loaded"),
        (changed.key, "duplicate"),
        (changed.key, "loaded"),
    ]
