"""Run the pipeline through the project's DAGs in this process, with no Airflow servers.

``make demo`` uses this on the embedded default. Each DAG runs with ``dag.test()`` (real task
instances, XComs, mapped tasks and Asset events in a SQLite metadata DB under
``AIRFLOW_HOME``), in the order the scheduler would run them on their Assets: the silver DAG
of every source with pending objects, then ``gold`` if silver changed (or gold was never
published), then ``replicate_gold`` and, when a Postgres DSN is configured, ``serve_postgres``.
``dag.test()`` records Asset events but does not start the DAGs scheduled on them, so the
chain is followed here, from the same Asset graph.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse_orchestration.exceptions import OrchestrationError

log = logging.getLogger(__name__)


class DagRunFailedError(OrchestrationError):
    """A DAG run in the local chain did not succeed."""

    def __init__(self, dag_id: str, state: str, failed: list[str]) -> None:
        tasks = ", ".join(failed) or "(no task failed; see the log above)"
        super().__init__(f"DAG {dag_id} ended {state}; failed tasks: {tasks}")


@dataclass
class ChainReport:
    runs: list[tuple[str, str, float]] = field(default_factory=list)

    def add(self, dag_id: str, state: str, seconds: float) -> None:
        self.runs.append((dag_id, state, seconds))


def ensure_metadata_db(airflow_home: Path) -> None:
    """``airflow db migrate`` unless this Airflow version already migrated this database.

    A stamp file remembers the version and the connection; a SQLite file that has since been
    deleted is migrated again.
    """
    from airflow import __version__
    from airflow.configuration import conf

    conn = conf.get("database", "sql_alchemy_conn")
    stamp = airflow_home / ".lakehouse-migrated"
    sqlite_file = conn.removeprefix("sqlite:///") if conn.startswith("sqlite:///") else None
    wanted = f"{__version__} {conn}"
    if stamp.exists() and stamp.read_text() == wanted and (sqlite_file is None or Path(sqlite_file).exists()):
        return
    airflow_home.mkdir(parents=True, exist_ok=True)
    log.info("creating Airflow's metadata DB (%s)", conn.split("@")[-1])
    subprocess.run(  # a subprocess: migration configures logging and the ORM for itself
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text(wanted)


def _test(dag: Any, report: ChainReport) -> Any:
    started = time.perf_counter()
    run = dag.test()
    state = str(getattr(run, "state", "unknown"))
    report.add(dag.dag_id, state, time.perf_counter() - started)
    if state != "success":
        failed = [ti.task_id for ti in run.get_task_instances() if str(ti.state) in {"failed", "upstream_failed"}]
        raise DagRunFailedError(dag.dag_id, state, failed)
    return run


def run_chain(dags_folder: Path) -> ChainReport:
    """Silver DAGs with pending work, then gold and its replica when silver changed."""
    from airflow.dag_processing.dagbag import DagBag

    from lakehouse_common.settings import get_settings
    from lakehouse_common.storage import Lake
    from lakehouse_gold.manifest import MANIFEST_KEY
    from lakehouse_gold.settings import get_settings as serving_settings
    from lakehouse_orchestration import registry, tasks

    bag = DagBag(dag_folder=str(dags_folder))
    if bag.import_errors:
        problems = "; ".join(f"{path}: {err.strip().splitlines()[-1]}" for path, err in bag.import_errors.items())
        raise OrchestrationError(f"the DAGs in {dags_folder} do not import: {problems}")
    settings = get_settings()
    report = ChainReport()
    changed = False
    for source in registry.sources(settings):
        if not tasks.pending_keys(source.name):
            continue
        _test(bag.get_dag(f"silver__{source.name}"), report)
        changed = True
    if changed or not Lake(settings).gold.exists(MANIFEST_KEY):
        _test(bag.get_dag("gold"), report)
        _test(bag.get_dag("replicate_gold"), report)
        if serving_settings().postgres_dsn is not None:  # unset: the task would only log a skip
            _test(bag.get_dag("serve_postgres"), report)
    return report
