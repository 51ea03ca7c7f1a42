"""Pieces of build_gold that need no dbt run.

The build itself (dbt, publish on pass, previous gold kept on a failing test, staging removed)
runs the real dbt CLI in tests/integration/gold.
"""

from __future__ import annotations

from lakehouse_gold.build import new_run_id


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == len("20240131T120000Z-1a2b3c") for i in ids)
