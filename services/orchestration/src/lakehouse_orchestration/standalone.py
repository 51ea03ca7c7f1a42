"""``make airflow``: Airflow 3 standalone on the lake and metadata DB that ``make demo`` used.

``lakehouse-pipeline airflow`` is the one place this configuration lives; the Makefile target and
tests/integration/orchestration/test_standalone_after_demo.py both run it. It

1. builds the environment (:func:`standalone_env`): ``AIRFLOW_HOME`` as the demo's
   (:func:`airflow_home`), the project's ``dags/``, LocalExecutor parallelism, the API port and the
   execution API on it, DAGs unpaused at creation, and the lake's ``LAKEHOUSE_*`` paths made
   absolute, so that every Airflow process sees the lake the demo wrote, whatever its cwd;
2. migrates the metadata DB if needed and unpauses the project's DAGs (:func:`unpause_project_dags`:
   the DAG ids of the ``dags/`` DagBag, through Airflow's own ORM session). ``make demo`` registers
   them paused (``dag.test()`` syncs the DAG folder with Airflow's default,
   ``dags_are_paused_at_creation``), and a DAG that exists keeps its pause flag, so without this
   step a file dropped into bronze would start nothing. No other DAG is touched;
3. starts ``airflow standalone`` in its own session, waits until ``/api/v2/monitor/health`` reports
   every component healthy, prints where the UI is, where the admin password is, and the one
   command that drops a sample into bronze (:func:`drop_command`);
4. on Ctrl-C, SIGTERM or SIGHUP ends the whole process tree (task processes run in process groups
   of their own): SIGTERM, then SIGKILL for whatever is left.

Each start unpauses the project's DAGs again, including one paused by hand in the UI.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from lakehouse_common.settings import Settings
from lakehouse_orchestration.exceptions import OrchestrationError

DEFAULT_PORT = 8080
DEFAULT_PARALLELISM = 4  # a 2-core machine
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
DROP_SEED = "$RANDOM"
"""The seed in the printed drop command: a shell variable, so each run writes new bronze objects."""


class StandaloneError(OrchestrationError):
    """``airflow standalone`` did not start, or the project's DAGs do not import."""


def airflow_home(settings: Settings, environ: Mapping[str, str] | None = None) -> Path:
    """``AIRFLOW_HOME`` when set, else ``<scratch dir>/airflow``: the demo's metadata DB and this one."""
    environ = os.environ if environ is None else environ
    configured = environ.get("AIRFLOW_HOME")
    return Path(configured).resolve() if configured else settings.scratch_dir.resolve() / "airflow"


def lake_env(settings: Settings) -> dict[str, str]:
    """The lake's ``LAKEHOUSE_*`` paths, absolute (Airflow's processes need not share this cwd)."""
    return {
        "LAKEHOUSE_BACKEND": settings.backend,
        "LAKEHOUSE_DATA_DIR": str(settings.data_dir.resolve()),
        "LAKEHOUSE_CONTRACTS_DIR": str(settings.contracts_dir.resolve()),
        "LAKEHOUSE_DBT_PROJECT_DIR": str(settings.dbt_project_dir.resolve()),
        "LAKEHOUSE_SCRATCH_DIR": str(settings.scratch_dir.resolve()),
    }


def standalone_env(
    settings: Settings,
    dags_folder: Path,
    *,
    port: int = DEFAULT_PORT,
    parallelism: int = DEFAULT_PARALLELISM,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of ``airflow standalone``: ``environ`` (default: this process's) plus
    the settings below, which win over it."""
    base = dict(os.environ if environ is None else environ)
    bin_dir = str(Path(sys.executable).parent)  # standalone starts `airflow <component>` from PATH
    env = {
        **base,
        "AIRFLOW_HOME": str(airflow_home(settings, base)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder.resolve()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        **lake_env(settings),
        "PATH": os.pathsep.join([bin_dir, base.get("PATH", os.defpath)]),
    }
    return env


def project_dag_ids(dags_folder: Path) -> list[str]:
    """The DAG ids the DagBag of ``dags_folder`` defines (Airflow configured already); an import
    error raises :class:`StandaloneError` with its last line."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder.resolve()))
    if bag.import_errors:
        problems = "; ".join(f"{path}: {err.strip().splitlines()[-1]}" for path, err in bag.import_errors.items())
        raise StandaloneError(f"the DAGs in {dags_folder} do not import: {problems}")
    return sorted(bag.dag_ids)


def unpause_project_dags(dags_folder: Path) -> tuple[list[str], list[str]]:
    """Unpause every DAG of ``dags_folder`` that the metadata DB holds paused; returns
    ``(the project's DAG ids, those unpaused now)``. DAGs not registered yet are created unpaused
    (``dags_are_paused_at_creation`` is False here); no other DAG is touched."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    dag_ids = project_dag_ids(dags_folder)
    try:
        with create_session() as session:
            paused = session.scalars(
                select(DagModel).where(DagModel.dag_id.in_(dag_ids), DagModel.is_paused.is_(True))
            ).all()
            for dag_model in paused:
                dag_model.is_paused = False
            unpaused = sorted(dag_model.dag_id for dag_model in paused)
    except (OperationalError, ProgrammingError) as exc:  # no `dag` table: never migrated
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        raise StandaloneError(f"cannot read the metadata DB's DAGs ({reason}); run `airflow db migrate` first") from exc
    return dag_ids, unpaused


def password_file() -> Path:
    """Where the simple auth manager keeps the generated admin password (Airflow's own rule)."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    return Path(SimpleAuthManager.get_generated_password_file())


def _shown(path: Path) -> str:
    """``path`` relative to the cwd when it is under it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def drop_command(settings: Settings, seed: str = DROP_SEED) -> str:
    """A shell command that writes a new small sample (one page, one detail file and one rates file,
    one per source) into bronze: ``lakehouse-ingest sample`` with a fresh seed."""
    ingest = _shown(Path(sys.executable).with_name("lakehouse-ingest"))
    words = [ingest, "sample", "--size", "20", "--days", "7"]
    prefix = f"LAKEHOUSE_DATA_DIR={shlex.quote(_shown(settings.data_dir))} " if settings.backend == "local" else ""
    return f"{prefix}{shlex.join(words)} --seed {seed}"


def banner(settings: Settings, port: int, passwords: Path, unpaused: Sequence[str], dag_ids: Sequence[str]) -> str:
    """What ``make airflow`` prints once every component is healthy."""
    where = f"{_shown(settings.data_dir / 'bronze')}/<source>/" if settings.backend == "local" else "bronze"
    return "\n".join(
        [
            "",
            "lakehouse | Airflow is up.",
            f"lakehouse |   UI:             http://localhost:{port}  (user admin)",
            f"lakehouse |   admin password: {passwords}",
            f"lakehouse |   project DAGs:   {len(dag_ids)} unpaused ({len(unpaused)} were paused)",
            f"lakehouse |   drop a sample into {where}:",
            f"lakehouse |     {drop_command(settings)}",
            "lakehouse |   then watch landing__<source> -> silver__<source> -> gold -> replicate_gold.",
            "lakehouse | Ctrl-C stops every Airflow process.",
            "",
        ]
    )


def health(port: int, session: requests.Session) -> dict[str, Any] | None:
    """``GET /api/v2/monitor/health`` (no login), or None while the api-server does not answer."""
    try:
        response = session.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


def healthy(body: Mapping[str, Any] | None) -> bool:
    if body is None:
        return False
    parts = [body.get(name) for name in HEALTH_COMPONENTS]
    return all(isinstance(part, dict) and part.get("status") == "healthy" for part in parts)


def wait_healthy(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with requests.Session() as session:
        while not healthy(health(port, session)):
            if process.poll() is not None:
                raise StandaloneError(f"airflow standalone exited {process.returncode} before it was healthy")
            if time.monotonic() > deadline:
                raise StandaloneError(f"airflow standalone was not healthy on port {port} after {timeout_s:.0f} s")
            time.sleep(1.0)


class _Stop(Exception):
    """A signal asked the launcher to stop."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run(
    settings: Settings,
    dags_folder: Path,
    *,
    port: int = DEFAULT_PORT,
    parallelism: int = DEFAULT_PARALLELISM,
    startup_timeout_s: float = 300.0,
    out: Callable[[str], None] = print,
) -> int:
    """The whole of ``make airflow``; returns when standalone exits or a signal stops it."""
    from lakehouse_orchestration.local_run import ensure_metadata_db
    from lakehouse_orchestration.stack import stop_process_tree

    env = standalone_env(settings, dags_folder, port=port, parallelism=parallelism)
    os.environ.update(env)  # before Airflow is imported: this process reads the same configuration
    home = Path(env["AIRFLOW_HOME"])
    if settings.backend == "local":
        (settings.data_dir / "bronze").mkdir(parents=True, exist_ok=True)
    ensure_metadata_db(home)
    dag_ids, unpaused = unpause_project_dags(dags_folder)
    out(f"lakehouse | AIRFLOW_HOME={home}; unpaused {', '.join(unpaused) or 'nothing (none was paused)'}")
    passwords = password_file()

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("airflow")), "standalone"],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches this launcher, which stops the whole tree
    )
    try:
        wait_healthy(process, port, startup_timeout_s)
        out(banner(settings, port, passwords, unpaused, dag_ids))
        sys.stdout.flush()
        return process.wait()
    except (KeyboardInterrupt, _Stop):
        out("lakehouse | stopping Airflow")
        return 0
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        with contextlib.suppress(KeyboardInterrupt, _Stop):
            stop_process_tree([process.pid], timeout_s=30.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
