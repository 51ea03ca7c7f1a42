"""Fixtures for running the project's DAGs with ``dag.test()``: a migrated metadata DB, and the
environment of an S3 lake on the moto server (bronze/silver/gold plus an "AWS" replica bucket)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetActive
from airflow.utils.session import create_session
from sqlalchemy import delete

from lakehouse_common.settings import Settings

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """``airflow db migrate`` once per session, in the private AIRFLOW_HOME set by tests/conftest.py."""
    home = os.environ["AIRFLOW_HOME"]
    done = subprocess.run([str(BIN / "airflow"), "db", "migrate"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.fixture
def dag_env(s3_env: Settings, moto_server: Any, airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """LAKEHOUSE_* and AIRFLOW_CONN_* for the DAGs on the moto lake; returns the extra names used."""
    replica = moto_server.create_bucket("aws-replica")
    env = {
        "LAKEHOUSE_CONTRACTS_DIR": str(REPO / "contracts"),
        "LAKEHOUSE_DBT_PROJECT_DIR": str(REPO / "dbt"),
        "LAKEHOUSE_REPLICA_URI": f"s3://{replica}/lakehouse/gold",
        "LAKEHOUSE_REPLICA_ENDPOINT_URL": moto_server.endpoint_url,
        "LAKEHOUSE_REPLICA_ACCESS_KEY_ID": "aws-replica-writer",
        "LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY": "aws-replica-secret",
        "LAKEHOUSE_AIRFLOW_POKE_INTERVAL_S": "0.5",
        "LAKEHOUSE_AIRFLOW_RETRIES": "0",
        "AIRFLOW_CONN_LAKEHOUSE_S3": json.dumps(
            {
                "conn_type": "aws",
                "login": "lake-key",
                "password": "lake-secret",
                "extra": {"endpoint_url": moto_server.endpoint_url, "region_name": "us-east-1"},
            }
        ),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**env, "REPLICA_BUCKET": replica}


def write_sample(size: int = 300) -> None:
    """The deterministic hh.ru-shaped sample into bronze (settings from the environment)."""
    done = subprocess.run(
        [str(BIN / "lakehouse-ingest"), "sample", "--size", str(size)],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def dagbag(dag_env: dict[str, str]) -> Iterator[DagBag]:
    """The DAG folder parsed with this test's environment (its bucket names are in the Asset URIs).

    Each test's buckets have new names, so an Asset keeps its name but changes its URI, which
    Airflow would count as a conflicting (inactive) Asset; a deployment's buckets don't change.
    So the metadata DB forgets which Assets are active before each test.
    """
    with create_session() as session:
        session.execute(delete(AssetActive))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    yield bag
