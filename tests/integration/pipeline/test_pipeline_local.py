"""The pipeline on the local lake (the embedded default), through the real CLIs: a window paged
twice still leaves silver one row per vacancy, and silver is plain Delta that DuckDB, deltalake
and Polars read alike with no project code."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars
import pytest
from deltalake import DeltaTable

from lakehouse_ingestor.sample import SampleConfig
from lakehouse_ingestor.sample_api import start_sample_api

from .conftest import REPO, duckdb_with, run, silver_table_names

UNTIL = "2026-01-01T00:00:00+03:00"


@pytest.fixture
def local_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with start_sample_api(SampleConfig(size=400), fault_rate=0.0) as api:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
        env.update(
            {
                "LAKEHOUSE_BACKEND": "local",
                "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
                "LAKEHOUSE_SCRATCH_DIR": str(tmp_path / "scratch"),
                "LAKEHOUSE_CONTRACTS_DIR": str(REPO / "contracts"),
                "LAKEHOUSE_INGESTOR_HH_BASE_URL": api.url,
                "LAKEHOUSE_INGESTOR_API_URL": api.url,
                "LAKEHOUSE_INGESTOR_RATE_LIMIT_PER_S": "1000",
            }
        )
        yield env


def test_a_window_paged_twice_leaves_one_row_per_vacancy_readable_by_any_engine(local_env: dict[str, str]) -> None:
    data = Path(local_env["LAKEHOUSE_DATA_DIR"])
    run(["lakehouse-ingest", "run", "--once", "--until", UNTIL], local_env)
    run(["lakehouse-silverize", "run"], local_env)
    silver = data / "silver"
    con = duckdb_with("delta")
    first = con.execute(f"SELECT count(*), count(DISTINCT vacancy_id) FROM delta_scan('{silver}/vacancies')").fetchone()
    assert first is not None and first[0] == first[1] > 300

    # The ingestor forgets its cursor and content index: every window is paged again, and each
    # page lands in bronze again as a new object holding vacancies silver already has.
    pages_before = len(list((data / "bronze" / "vacancies").rglob("*.json")))
    shutil.rmtree(data / "bronze" / "_state")
    shutil.rmtree(data / "bronze" / "_index")
    run(["lakehouse-ingest", "run", "--once", "--until", UNTIL], local_env)
    assert len(list((data / "bronze" / "vacancies").rglob("*.json"))) == 2 * pages_before
    run(["lakehouse-silverize", "run"], local_env)
    again = con.execute(f"SELECT count(*), count(DISTINCT vacancy_id) FROM delta_scan('{silver}/vacancies')").fetchone()
    assert again == first  # one row per vacancy id, the same ids
    skills = con.execute(
        f"SELECT count(*), count(DISTINCT (vacancy_id, skill)) FROM delta_scan('{silver}/vacancy_skills')"
    ).fetchone()
    assert skills is not None and skills[0] == skills[1] > 0
    loaded = con.execute(
        f"SELECT count(*) FROM delta_scan('{silver}/_load_history') WHERE source = 'vacancies' AND status = 'loaded'"
    ).fetchone()
    assert loaded == (2 * pages_before,)

    # No project code on the read path: three engines read every silver table and agree.
    for name in silver_table_names():
        uri = str(silver / name)
        found = con.execute(f"SELECT count(*) FROM delta_scan('{uri}')").fetchone()
        assert found is not None
        by_deltalake = DeltaTable(uri).to_pyarrow_table().num_rows
        by_polars = polars.read_delta(uri).height
        assert found[0] == by_deltalake == by_polars > 0, name
    con.close()
