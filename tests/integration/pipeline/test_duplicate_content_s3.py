"""On S3, a copy of an already loaded bronze object under another key adds nothing to silver:
its ETag (the MD5 of a single-part upload) names the same bytes, and the ledger records it as a
duplicate of the original."""

from __future__ import annotations

import json
from pathlib import Path

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_silverizer.runner import Silverizer

REPO = Path(__file__).resolve().parents[3]
RATES = "date,currency,rate\n" + "".join(f"2025-01-{1 + i % 28:02d},USD,{90 + i % 7}.5\n" for i in range(200))


def test_a_copy_under_another_key_is_a_recorded_duplicate(s3_env: Settings, moto_server: object) -> None:
    settings = get_settings(contracts_dir=REPO / "contracts")
    silverizer = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir))
    bronze = silverizer.lake.bronze
    bronze.put_bytes("currency_rates/ingest_date=2025-01-31/rates.csv", RATES.encode())
    (first,) = silverizer.run_source("currency_rates").entries
    assert first.status == "loaded" and first.rows_out > 0
    silver_before = {o.key: o.etag for o in silverizer.lake.silver.list("currency_rates/")}

    bronze.put_bytes("currency_rates/ingest_date=2025-02-01/copy of rates.csv", RATES.encode())
    (copy,) = silverizer.run_source("currency_rates").entries
    assert copy.status == "duplicate"
    assert copy.rows_out == 0 and copy.outputs == []
    assert first.key in (copy.reason or "")
    assert {o.key: o.etag for o in silverizer.lake.silver.list("currency_rates/")} == silver_before
    assert silverizer.pending("currency_rates") == []  # recorded: never pending again

    # Different bytes under the copy's key are new data again.
    bronze.put_bytes("currency_rates/ingest_date=2025-02-01/copy of rates.csv", RATES.replace("USD", "EUR").encode())
    (changed,) = silverizer.run_source("currency_rates").entries
    assert changed.status == "loaded" and changed.rows_out == first.rows_out
    history = [json.loads(line) for line in [e.to_json() for e in silverizer.ledger.entries("currency_rates")]]
    assert sorted(e["status"] for e in history) == ["duplicate", "loaded", "loaded"]
