"""What the real-stack tests share: a moto lake seeded with a silverized sample (minus the pages a
module holds back), one AirflowStack on Postgres per module, and the real event bridge.

Each module defines ``held_back`` (the pages it drops itself) and may override ``lake_env``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_orchestration.stack import AirflowStack, project_dag_ids
from lakehouse_orchestration.testbed import BridgeProcess, BronzeObject, S3Lake, sample_objects, seed_silver

REPO = Path(__file__).resolve().parents[3]
SOURCES = ("vacancies", "vacancy_details", "currency_rates")


@pytest.fixture(scope="module")
def sample() -> list[BronzeObject]:
    return sample_objects(size=240)


@pytest.fixture(scope="module")
def lake(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> S3Lake:
    return S3Lake(moto_server.endpoint_url, REPO, tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def lake_env(lake: S3Lake) -> dict[str, str]:
    return lake.env(poke_interval_s="2", retry_delay_s="1", retries="2")


@pytest.fixture(scope="module")
def stack(
    lake: S3Lake, lake_env: dict[str, str], sample: list[BronzeObject], held_back: list[BronzeObject]
) -> Iterator[AirflowStack]:
    seed_silver(lake, [o for o in sample if o not in held_back], lake_env)
    with AirflowStack(
        dags_folder=REPO / "dags", env=lake_env, expect_dags=project_dag_ids(REPO / "contracts"), cwd=REPO
    ) as running:
        yield running


@pytest.fixture(scope="module")
def bridge(
    stack: AirflowStack, lake_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    with BridgeProcess(stack, lake_env, tmp_path_factory.mktemp("bridge")) as running:
        yield running
