"""Schema drift on an inferred source: a new column per policy (fail, rescue, add: Delta's
schema evolution), a missing column, a narrowed type. Silver is never corrupted: the files
written before the drift keep their bytes, and the Delta table reads old and new rows together."""

from __future__ import annotations

import hashlib

import duckdb
import pytest
from deltalake import DeltaTable

from lakehouse_common import tables
from lakehouse_silverizer.runner import Silverizer


def parquet_files(silverizer: Silverizer) -> dict[str, str]:
    """The data files the events table's snapshot names, with their sha256."""
    table = DeltaTable(silverizer.lake.silver.table_uri("events"))
    return {f.rsplit("/", 1)[-1]: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in table.file_uris()}


def quarantine_reasons(silverizer: Silverizer, key: str) -> str:
    rows = DeltaTable(silverizer.lake.silver.table_uri(tables.QUARANTINE)).to_pyarrow_table().to_pylist()
    return "\n".join(str(r["reason"]) for r in rows if r["bronze_key"] == key)


def set_policy(silverizer: Silverizer, policy: str) -> None:
    path = silverizer.settings.data_dir / "silver" / "_contracts" / "events.yml"
    path.write_text(path.read_text().replace("on_new_columns: rescue", f"on_new_columns: {policy}"))


@pytest.fixture
def first(silverizer: Silverizer) -> dict[str, str]:
    silverizer.lake.bronze.put_bytes("events/1.csv", b"id,amount,day\n1,2,2025-01-01\n2,3,2025-01-02\n")
    (entry,) = silverizer.run_source("events").entries
    assert entry.status == "loaded" and entry.rows_out == 2
    return parquet_files(silverizer)


@pytest.mark.parametrize(
    ("policy", "status", "union_columns"),
    [
        pytest.param("fail", "quarantined", None, id="new-column-fail"),
        pytest.param("rescue", "loaded", "_rescued_data", id="new-column-rescue"),
        pytest.param("add", "loaded", "colour", id="new-column-add"),
    ],
)
def test_a_new_column_follows_the_policy_and_old_files_still_read(
    silverizer: Silverizer, first: dict[str, str], policy: str, status: str, union_columns: str | None
) -> None:
    set_policy(silverizer, policy)
    silverizer.lake.bronze.put_bytes("events/2.csv", b"id,amount,day,colour\n3,4,2025-01-03,red\n")
    (entry,) = silverizer.run_source("events").entries
    assert entry.status == status
    after = parquet_files(silverizer)
    assert {k: after[k] for k in first} == first  # the old file is untouched
    uri = silverizer.lake.silver.table_uri("events")
    rows = duckdb.sql(f"SELECT * FROM delta_scan('{uri}') ORDER BY id").fetchall()
    names = duckdb.sql(f"SELECT * FROM delta_scan('{uri}')").columns
    assert len(rows) == (2 if policy == "fail" else 3)
    if union_columns:
        assert union_columns in names
        assert "red" in str(rows[-1][names.index(union_columns)])


@pytest.mark.parametrize(
    ("data", "status", "rows_out", "reason"),
    [
        pytest.param(
            b"id,day\n3,2025-01-03\n", "quarantined", 0, "header lacks contract columns amount", id="missing-column"
        ),
        pytest.param(
            b"id,amount,day\n3,4,2025-01-03\n4,4.5,2025-01-04\n",
            "loaded",
            1,
            "'4.5' is not a valid int64",
            id="narrowed-type",
        ),
    ],
)
def test_a_missing_column_or_narrowed_type_is_quarantined_and_silver_keeps_its_schema(
    silverizer: Silverizer, first: dict[str, str], data: bytes, status: str, rows_out: int, reason: str
) -> None:
    uri = silverizer.lake.silver.table_uri("events")
    schema = DeltaTable(uri).schema().to_arrow()
    silverizer.lake.bronze.put_bytes("events/2.csv", data)
    (entry,) = silverizer.run_source("events").entries
    assert (entry.status, entry.rows_out) == (status, rows_out)
    assert reason in quarantine_reasons(silverizer, "events/2.csv")
    assert DeltaTable(uri).schema().to_arrow() == schema  # one schema for the table, before and after
    assert {k: v for k, v in parquet_files(silverizer).items() if k in first} == first
