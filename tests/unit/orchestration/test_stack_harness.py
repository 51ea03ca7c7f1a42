"""The local-stack harness's pieces that need no server: process trees, DAG ids, the environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lakehouse_orchestration.stack import AirflowStack, descendants, die_with_parent_prefix, project_dag_ids

REPO = Path(__file__).resolve().parents[3]


def test_descendants_finds_grandchildren() -> None:
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        found: list[int] = []
        for _ in range(50):
            found = descendants(shell.pid)
            if len(found) >= 2:
                break
            time.sleep(0.05)
        assert len(found) == 2
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
    assert descendants(shell.pid) == []


def test_project_dag_ids_follow_the_contracts() -> None:
    assert project_dag_ids(REPO / "contracts") == [
        "landing__currency_rates",
        "landing__vacancies",
        "landing__vacancy_details",
        "silver__currency_rates",
        "silver__vacancies",
        "silver__vacancy_details",
        "gold",
        "replicate_gold",
        "silver_maintenance",
    ]


def test_die_with_parent_prefix_is_a_command_or_nothing() -> None:
    prefix = die_with_parent_prefix()
    assert prefix == [] or (Path(prefix[0]).name == "setpriv" and prefix[1:] == ["--pdeathsig", "KILL"])


def test_environment_drops_the_callers_airflow_settings_and_lets_env_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING", "postgres://x")
    stack = AirflowStack(dags_folder=REPO / "dags", env={"AIRFLOW__CORE__PARALLELISM": "2", "LAKEHOUSE_X": "1"})
    try:
        env = stack._environment()
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert "AIRFLOW_CONN_SOMETHING" not in env
        assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
        assert env["LAKEHOUSE_X"] == "1"
        assert env["AIRFLOW_HOME"] == str(stack.home)
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(f"/{stack.database}")
        users = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
        assert users == {stack.username: stack.password}
    finally:
        stack.stop()  # never started: nothing to end, no database to drop; the home goes
    assert not stack.home.exists()
