"""Fixtures of the gold integration tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# With --import-mode=importlib this directory is not on sys.path: make the synthetic-silver
# helpers importable (by a name no other test directory uses), with pytest's assertion details.
sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("gold_silver_factory", "analyst_lake", "headless_chromium")

from analyst_lake import AnalystLake, load_analyst_silver  # noqa: E402
from gold_silver_factory import make_silver  # noqa: E402

from lakehouse_common.settings import Settings, get_settings  # noqa: E402
from lakehouse_common.storage import Lake  # noqa: E402
from lakehouse_gold.build import build_gold  # noqa: E402

DBT_PROJECT = Path(__file__).resolve().parents[3] / "dbt"


@pytest.fixture
def gold_s3_settings(s3_env: Settings, moto_server, monkeypatch: pytest.MonkeyPatch) -> Settings:  # type: ignore[no-untyped-def]
    """The S3 lake of ``s3_env`` plus a replica bucket on the same server, reached with other credentials."""
    replica = moto_server.create_bucket("replica")
    monkeypatch.setenv("LAKEHOUSE_DBT_PROJECT_DIR", str(DBT_PROJECT))
    monkeypatch.setenv("LAKEHOUSE_REPLICA_URI", f"s3://{replica}/lakehouse/gold")
    monkeypatch.setenv("LAKEHOUSE_REPLICA_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("LAKEHOUSE_REPLICA_REGION", "eu-central-1")
    monkeypatch.setenv("LAKEHOUSE_REPLICA_ACCESS_KEY_ID", "replica-key")
    monkeypatch.setenv("LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY", "replica-secret")
    return get_settings()


@pytest.fixture
def gold_local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A local lake under tmp_path, no replica; the environment holds exactly these settings."""
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LAKEHOUSE_SCRATCH_DIR", str(tmp_path / "scratch"))
    monkeypatch.setenv("LAKEHOUSE_DBT_PROJECT_DIR", str(DBT_PROJECT))
    return get_settings()


# -- a small published lake for the analyst tools: catalog, report, docs (issue 7) ----------


@pytest.fixture(scope="session")
def analyst_lake(tmp_path_factory: pytest.TempPathFactory) -> AnalystLake:
    """Built once per session (one real dbt build): tests only add files beside it (report, catalog, docs)."""
    root = tmp_path_factory.mktemp("analyst")
    settings = get_settings(
        backend="local",
        data_dir=root / "data",
        scratch_dir=root / "scratch",
        dbt_project_dir=DBT_PROJECT,
        contracts_dir=DBT_PROJECT.parent / "contracts",
    )
    lake = Lake(settings)
    lake.ensure()
    history = load_analyst_silver(lake.silver, make_silver(n_vacancies=60))
    bronze_key = "vacancies/ingest_date=2026-01-05/20260105T100000Z-abc.json"
    lake.bronze.put_bytes(bronze_key, b'{"items": []}')
    lake.bronze.put_bytes("_meta/vacancies/sidecar.json", b"{}")  # bookkeeping: never the newest object
    build_gold(settings)
    return AnalystLake(settings=settings, history=tuple(history), bronze_key=bronze_key)


@pytest.fixture
def analyst_env(analyst_lake: AnalystLake, monkeypatch: pytest.MonkeyPatch) -> AnalystLake:
    """The analyst lake, and the environment (LAKEHOUSE_*) pointing at it, for the CLI."""
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(name)
    for name, value in analyst_lake.env().items():
        monkeypatch.setenv(name, value)
    return analyst_lake
