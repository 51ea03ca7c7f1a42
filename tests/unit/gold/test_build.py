"""Pieces of build_gold that need no dbt run.

The build itself (dbt, publish on pass, previous gold kept on a failing test, staging removed)
runs the real dbt CLI in tests/integration/gold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import SilverNotReadyError, check_silver, new_run_id, silver_source_tables

REPO = Path(__file__).resolve().parents[3]


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == len("20240131T120000Z-1a2b3c") for i in ids)


def test_dbt_reads_every_declared_silver_table_and_the_load_history() -> None:
    declared = {table for contract in ContractRegistry.from_dir(REPO / "contracts") for table in contract.tables}
    assert set(silver_source_tables(REPO / "dbt")) == declared | {tables.LOAD_HISTORY}


def test_a_silver_layer_without_its_delta_tables_is_refused_before_dbt(
    gold_settings: Settings, gold_lake: Lake
) -> None:
    with pytest.raises(SilverNotReadyError, match="lakehouse-silverize run") as refused:
        check_silver(gold_settings, gold_lake)
    assert set(refused.value.missing) == set(silver_source_tables(REPO / "dbt"))


def test_a_ledger_era_silver_layer_is_refused_with_how_to_rebuild_it(gold_settings: Settings, gold_lake: Lake) -> None:
    gold_lake.silver.put_bytes("_ledger/vacancies/entry.json", b"{}")
    with pytest.raises(tables.LegacyLakeError, match="lakehouse-silverize run"):
        check_silver(gold_settings, gold_lake)
