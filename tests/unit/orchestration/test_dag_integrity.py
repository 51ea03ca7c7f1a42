"""DAG integrity: the DAG files import cleanly, do no I/O beyond reading the project's own
files, import nothing heavy at parse time, and every DAG carries the project's defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

from lakehouse_common.settings import get_settings
from lakehouse_orchestration import registry
from lakehouse_orchestration.alerts import notify_failure
from lakehouse_orchestration.sensors import BronzeFileSensor, landing_sensor
from lakehouse_orchestration.settings import get_settings as orchestration_settings

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "dags"
SOURCES = sorted(p.stem for p in (REPO / "contracts").glob("*.yml"))

# Parses the DAG folder in a fresh interpreter, recording every file opened and every socket
# connection attempted while the DAG files run (sys.audit events), and which modules they
# pulled in. Airflow's own start-up happens before recording begins.
PARSE_SCRIPT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
import airflow.providers.amazon.aws.sensors.s3, airflow.providers.standard.triggers.file
opened, connects = [], []
def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        opened.append(args[0])
    elif event == "socket.connect":
        connects.append(repr(args[1]))
before = set(sys.modules)
sys.addaudithook(hook)
bag = DagBag(dag_folder=sys.argv[1])
new_modules = sorted(set(sys.modules) - before)
print(json.dumps({"errors": {k: v for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids),
                  "opened": opened, "connects": connects, "modules": new_modules}))
"""

HEAVY = ("pyarrow", "duckdb", "dbt", "pandas", "lakehouse_silverizer", "lakehouse_gold", "lakehouse_ingestor")


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("parse")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(
        LAKEHOUSE_BACKEND="s3",
        LAKEHOUSE_S3_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens: any connection would fail
        LAKEHOUSE_CONTRACTS_DIR=str(REPO / "contracts"),
        LAKEHOUSE_DBT_PROJECT_DIR=str(REPO / "dbt"),
        LAKEHOUSE_SCRATCH_DIR=str(scratch),
        LAKEHOUSE_REPLICA_URI="s3://aws-replica/lakehouse/gold",
    )
    done = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(DAGS)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_dag_files_import_without_errors(parsed: dict[str, Any]) -> None:
    assert parsed["errors"] == {}


def test_one_landing_and_one_silver_dag_per_contract(parsed: dict[str, Any]) -> None:
    expected = {"gold", "replicate_gold", "serve_postgres", "silver_maintenance"}
    expected |= {f"landing__{s}" for s in SOURCES} | {f"silver__{s}" for s in SOURCES}
    assert set(parsed["dags"]) == expected


def test_parsing_makes_no_network_calls(parsed: dict[str, Any]) -> None:
    assert parsed["connects"] == []


def test_parsing_reads_only_the_project_and_installed_code(parsed: dict[str, Any]) -> None:
    code = [str(p) for p in (REPO / "services").glob("*/src")]  # the packages are installed editable
    allowed = (str(DAGS), str(REPO / "contracts"), str(REPO / "dbt" / "models"), sys.prefix, sys.base_prefix, *code)
    outside = [p for p in parsed["opened"] if not os.path.abspath(p).startswith(allowed)]
    assert outside == []


@pytest.mark.parametrize("module", [pytest.param(m, id=m) for m in HEAVY])
def test_parsing_imports_nothing_heavy(parsed: dict[str, Any], module: str) -> None:
    assert [m for m in parsed["modules"] if m == module or m.startswith(module + ".")] == []


@pytest.fixture(scope="module")
def dagbag() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_CONTRACTS_DIR", str(REPO / "contracts"))
        mp.setenv("LAKEHOUSE_DBT_PROJECT_DIR", str(REPO / "dbt"))
        bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


def test_every_dag_has_tags_owner_one_active_run_and_no_catchup(dagbag: Any) -> None:
    for dag in dagbag.dags.values():
        assert "lakehouse" in dag.tags, dag.dag_id
        assert dag.max_active_runs == 1, dag.dag_id
        assert dag.catchup is False, dag.dag_id
        assert dag.owner == "data-platform", dag.dag_id


def test_every_task_retries_with_backoff_timeout_and_alert(dagbag: Any) -> None:
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            assert task.retries >= 1, where
            assert task.retry_exponential_backoff, where
            assert task.max_retry_delay is not None, where
            assert task.execution_timeout is not None, where
            callbacks = (
                task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
            )
            assert notify_failure in callbacks, where


def _scheduled_on(dag: Any) -> set[str]:
    condition = dag.timetable.asset_condition
    return {a.name for a in getattr(condition, "objects", (condition,))}


def test_asset_chain_bronze_silver_gold_replica(dagbag: Any) -> None:
    """Each layer's DAG is scheduled on the Assets the previous layer's DAG updates."""
    silver = dagbag.dags["silver__vacancy_details"]
    assert _scheduled_on(silver) == {"bronze/vacancy_details"}
    commit = silver.get_task("commit")
    assert sorted(a.name for a in commit.outlets) == ["silver/vacancy_details", "silver/vacancy_skills"]
    landing = dagbag.dags["landing__vacancy_details"]
    assert [a.name for a in landing.get_task("wait_for_new_objects").outlets] == ["bronze/vacancy_details"]
    # Any one silver update wakes gold (AssetAll would wait for every source).
    assert type(dagbag.dags["gold"].timetable.asset_condition).__name__ == "AssetAny"
    gold_inputs = _scheduled_on(dagbag.dags["gold"])
    assert gold_inputs == {
        "silver/vacancies",
        "silver/vacancy_details",
        "silver/vacancy_skills",
        "silver/currency_rates",
    }
    gold_outputs = {a.name for a in dagbag.dags["gold"].get_task("dbt_build").outlets}
    marts = {f"gold/{p.stem}" for p in (REPO / "dbt" / "models" / "marts").glob("*.sql")}
    assert gold_outputs == marts
    assert _scheduled_on(dagbag.dags["replicate_gold"]) == marts
    assert _scheduled_on(dagbag.dags["serve_postgres"]) == marts


def test_silver_dags_only_silverize_and_maintenance_runs_on_its_own_schedule(dagbag: Any) -> None:
    silver = dagbag.dags["silver__vacancies"]
    assert sorted(t.task_id for t in silver.tasks) == ["commit", "list_pending", "silverize"]
    maintenance = dagbag.dags["silver_maintenance"]
    assert [t.task_id for t in maintenance.tasks] == ["maintain"]
    assert maintenance.schedule == "@hourly" and maintenance.timetable.expression == "0 * * * *"
    assert maintenance.get_task("maintain").outlets == []  # maintenance changes no data: it wakes no gold run


def test_landing_sensors_are_deferrable_s3_key_sensors_on_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(REPO / "contracts"))
    s3 = get_settings(backend="s3", bronze_bucket="raw")
    source = next(s for s in registry.sources(s3) if s.name == "vacancies")
    sensor = landing_sensor(s3, orchestration_settings(), source, task_id="t")
    assert isinstance(sensor, S3KeySensor)
    assert sensor.deferrable
    assert sensor.bucket_key == "s3://raw/vacancies/*"
    assert sensor.wildcard_match
    local = landing_sensor(get_settings(backend="local"), orchestration_settings(), source, task_id="t")
    assert isinstance(local, BronzeFileSensor)
    assert local.deferrable
