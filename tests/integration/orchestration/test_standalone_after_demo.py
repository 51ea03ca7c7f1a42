"""``make airflow`` after ``make demo`` runs a dropped file with no clicks (issue 18).

On a temporary local lake, as a new user would:

1. the demo's in-process path: a small sample into bronze, then ``lakehouse-pipeline run`` (the
   DAGs through ``dag.test()``), which registers every project DAG paused in the metadata DB under
   ``<scratch>/airflow``, the situation the issue found;
2. ``lakehouse-pipeline airflow``, the command ``make airflow`` runs, against that lake and DB: a
   real ``airflow standalone`` (scheduler, dag-processor, triggerer, api-server; SQLite, LocalExecutor).
   Its banner names the UI, the admin password file (read here to log in) and the drop command;
3. every project DAG is unpaused; the drop command from the banner writes a new page, detail file and
   rates file into bronze;
4. for each source ``landing__<source>`` announced it and ``silver__<source>`` loaded it (the load history
   has every new key), then ``gold`` and ``replicate_gold`` succeeded after the last silver run;
5. SIGTERM stops the launcher and every process it started (the process tree is checked).

Only the log servers' ports are added to the environment, so that the test can run beside another
Airflow; everything else is the configuration users get.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import requests

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import get_settings
from lakehouse_common.storage import Lake
from lakehouse_orchestration.stack import descendants, free_port, running, stop_process_tree

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SOURCES = [contract.name for contract in ContractRegistry.from_dir(REPO / "contracts")]
PROJECT_DAGS = {
    *(f"landing__{s}" for s in SOURCES),
    *(f"silver__{s}" for s in SOURCES),
    "gold",
    "replicate_gold",
    "serve_postgres",
    "silver_maintenance",
}
STARTUP_TIMEOUT_S = 420.0
CHAIN_TIMEOUT_S = 600.0
"""Three sources from drop to replica on a 2-core machine: landing, silver, a dbt build, the copy."""

T = TypeVar("T")


@dataclass
class Launcher:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


class Airflow:
    """The standalone's REST API, logged in as admin with the password from the banner's file."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.session = requests.Session()
        body = {"username": "admin", "password": password}
        response = self.session.post(f"{url}/auth/token", json=body, timeout=30)
        assert response.status_code in {200, 201}, response.text[:300]
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def dags(self) -> dict[str, bool]:
        return {d["dag_id"]: d["is_paused"] for d in self.get("/api/v2/dags?limit=1000")["dags"]}

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns?limit=1000&order_by=id")["dag_runs"])

    def upstream_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The Asset events that triggered one run."""
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/upstreamAssetEvents"
        return list(self.get(path)["asset_events"])


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, launcher: Launcher) -> T:
    deadline = time.monotonic() + timeout
    while True:
        if launcher.process.poll() is not None:
            pytest.fail(f"the launcher exited {launcher.process.returncode}:\n{launcher.tail()}")
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{launcher.tail()}")
        time.sleep(2.0)


@pytest.fixture
def lake_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without any AIRFLOW_* or LAKEHOUSE_* variable, on a new local lake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "LAKEHOUSE_"))}
    env.update(
        {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
            "LAKEHOUSE_SCRATCH_DIR": str(tmp_path / ".lakehouse"),
            "LAKEHOUSE_CONTRACTS_DIR": str(REPO / "contracts"),
            "LAKEHOUSE_DBT_PROJECT_DIR": str(REPO / "dbt"),
        }
    )
    return env


def run(command: list[str], env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    return done.stdout


@pytest.fixture
def demo(lake_env: dict[str, str]) -> Path:
    """The demo's in-process path on the lake; returns the metadata DB it registered the DAGs in."""
    run([str(BIN / "lakehouse-ingest"), "sample", "--size", "60", "--days", "14"], lake_env)
    out = run([str(BIN / "lakehouse-pipeline"), "run"], lake_env)
    assert re.search(r"DAG replicate_gold\s+success", out), out
    db = Path(lake_env["LAKEHOUSE_SCRATCH_DIR"]) / "airflow" / "airflow.db"
    # The demo left every project DAG registered, and paused: the situation of the issue.
    assert paused_in(db) == dict.fromkeys(PROJECT_DAGS, True)
    return db


@pytest.fixture
def launcher(demo: Path, lake_env: dict[str, str], tmp_path: Path) -> Iterator[Launcher]:
    """``lakehouse-pipeline airflow`` (after the demo) in its own session; its whole process tree
    ends afterwards, whatever the test did."""
    port = free_port()
    env = {
        **lake_env,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    log_path = tmp_path / "make-airflow.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(BIN / "lakehouse-pipeline"), "airflow", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Launcher(process, log_path)
    tree: set[int] = {process.pid}
    try:
        yield started
    finally:
        tree.update(descendants(process.pid))
        stop_process_tree(sorted(tree), timeout_s=30.0)
        process.wait(timeout=30)


def paused_in(db: Path) -> dict[str, bool]:
    """``dag.is_paused`` of every DAG in a SQLite metadata DB."""
    with sqlite3.connect(db) as connection:
        return {dag_id: bool(paused) for dag_id, paused in connection.execute("SELECT dag_id, is_paused FROM dag")}


def bronze_files(bronze: Path) -> set[str]:
    return {str(p.relative_to(bronze)) for p in bronze.rglob("*") if p.is_file()}


def runs_after(airflow: Airflow, dag_id: str, dropped_at: datetime) -> list[dict[str, Any]]:
    """The DAG's runs queued (or, ``dag.test()``'s with no queued time, started) after the drop; a
    failed one fails the test at once."""
    runs = []
    for run_ in airflow.runs(dag_id):
        since = when(run_.get("queued_at") or run_.get("start_date"))
        if since is not None and since >= dropped_at:
            runs.append(run_)
    failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
    assert not failed, f"{dag_id} failed after the drop: {failed}"
    return runs


def chain_done(airflow: Airflow, dropped_at: datetime) -> dict[str, Any] | None:
    """The drop's way through the DAGs, followed by the Asset events each run consumed, or None
    while a step is missing:

    - per source, a successful ``silver__<source>`` run triggered by an event of a
      ``landing__<source>`` run, and that landing run successful (it waited until silver had it);
    - a successful ``gold`` run consuming an event of each source's silver run;
    - every such gold run's event consumed by a successful ``replicate_gold`` run.
    """
    silver: dict[str, set[str]] = {}
    landing: dict[str, set[str]] = {}
    for source in SOURCES:
        done = [r for r in runs_after(airflow, f"silver__{source}", dropped_at) if r["state"] == "success"]
        triggers = {
            e["source_run_id"]
            for r in done
            for e in airflow.upstream_events(f"silver__{source}", r["dag_run_id"])
            if e.get("source_dag_id") == f"landing__{source}"
        }
        if not triggers:
            return None
        states = {r["dag_run_id"]: r["state"] for r in airflow.runs(f"landing__{source}")}
        if any(states.get(run_id) != "success" for run_id in triggers):
            return None
        silver[source] = {r["dag_run_id"] for r in done}
        landing[source] = triggers
    gold = [r for r in runs_after(airflow, "gold", dropped_at) if r["state"] == "success"]
    consumed = {
        (e.get("source_dag_id"), e.get("source_run_id"))
        for r in gold
        for e in airflow.upstream_events("gold", r["dag_run_id"])
    }
    for source, run_ids in silver.items():
        if not any((f"silver__{source}", run_id) in consumed for run_id in run_ids):
            return None
    replicas = [r for r in runs_after(airflow, "replicate_gold", dropped_at) if r["state"] == "success"]
    replicated = {
        e.get("source_run_id")
        for r in replicas
        for e in airflow.upstream_events("replicate_gold", r["dag_run_id"])
        if e.get("source_dag_id") == "gold"
    }
    if not gold or any(r["dag_run_id"] not in replicated for r in gold):
        return None
    return {"landing": landing, "silver": silver, "gold": [r["dag_run_id"] for r in gold], "replicas": replicas}


def test_make_airflow_after_make_demo_runs_a_dropped_file(lake_env: dict[str, str], launcher: Launcher) -> None:
    settings = get_settings(
        backend="local", data_dir=Path(lake_env["LAKEHOUSE_DATA_DIR"]), contracts_dir=REPO / "contracts"
    )
    # The banner, printed once every component is healthy.
    banner = wait_for(
        lambda: launcher.log() if "lakehouse | Airflow is up." in launcher.log() else None,
        STARTUP_TIMEOUT_S,
        "the launcher's banner",
        launcher,
    )
    url = re.search(r"UI:\s+(http://localhost:\d+)", banner)
    passwords = re.search(r"admin password:\s+(\S+)", banner)
    drop = re.search(r"drop a sample into [^\n]*\n\S+ \|\s+(.+)", banner)
    assert url and passwords and drop, banner
    password_path = Path(passwords.group(1))
    if not password_path.is_absolute():
        password_path = REPO / password_path
    assert password_path.parent == Path(lake_env["LAKEHOUSE_SCRATCH_DIR"]) / "airflow"
    airflow = Airflow(url.group(1), json.loads(password_path.read_text())["admin"])

    # Unpaused: the project's DAGs, all of them (there are no others here).
    assert airflow.dags() == dict.fromkeys(PROJECT_DAGS, False)

    # The drop command exactly as printed (its seed is $RANDOM).
    bronze = settings.data_dir / "bronze"
    before = bronze_files(bronze)
    dropped_at = datetime.now(UTC)
    run(["bash", "-c", drop.group(1)], lake_env)
    new = bronze_files(bronze) - before
    assert {key.split("/", 1)[0] for key in new} == set(SOURCES), new

    chain = wait_for(
        lambda: chain_done(airflow, dropped_at), CHAIN_TIMEOUT_S, "silver, gold and replicate_gold", launcher
    )
    silver = Lake(settings).silver
    loaded = {(r["source"], r["bronze_key"]) for r in tables.history_rows(silver) if r["status"] == "loaded"}
    missing = [key for key in sorted(new) if (key.split("/", 1)[0], key) not in loaded]
    assert not missing, f"no loaded row in the load history for {missing}"
    assert chain["gold"] and chain["replicas"]

    # SIGTERM ends the launcher and everything it started.
    tree = {launcher.process.pid, *descendants(launcher.process.pid)}
    os.kill(launcher.process.pid, signal.SIGTERM)
    launcher.process.wait(timeout=90)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(running(pid) for pid in tree):
        time.sleep(0.5)
    assert not [pid for pid in tree if running(pid)], "processes left running after the launcher stopped"
