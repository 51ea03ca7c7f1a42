"""A real local Airflow for tests and benchmarks: API server, scheduler, dag-processor, triggerer.

:class:`AirflowStack` is a context manager. On entry it

1. creates a fresh PostgreSQL database (``lakehouse_airflow_<random>``) as the metadata DB;
2. writes an ``AIRFLOW_HOME`` in a temporary directory (a simple-auth-manager user and its
   passwords file, a shared JWT secret) and runs ``airflow db migrate``;
3. starts ``airflow api-server`` (on a free port), ``scheduler`` (LocalExecutor, small
   parallelism), ``dag-processor`` and ``triggerer``, each in its own process group, each logging
   to its own file under the home;
4. waits until ``GET /api/v2/monitor/health`` reports every component healthy and the expected
   DAGs are parsed (an import error fails at once, with the error).

On exit, and from an ``atexit`` fallback if the interpreter ends first, it ends every process
group it started and every task process they forked (task runners get process groups of their
own), first with SIGTERM, then SIGKILL (a scheduler with a running task ignores SIGTERM), and
drops the database. Should this process be killed outright (no ``atexit``), each component gets
SIGKILL from the kernel (``setpriv --pdeathsig``, Linux) when the thread that started it ends, so
start the stack from a thread that lives as long as it (the main thread, as pytest and the bench
do), or pass ``die_with_parent=False``. The environment of the Airflow processes is the caller's minus every
``AIRFLOW_*`` variable, plus the stack's configuration, plus ``env`` (which wins).

The REST helpers (:meth:`~AirflowStack.api`, :meth:`~AirflowStack.set_paused`,
:meth:`~AirflowStack.dag_runs`, ...) log in with ``POST /auth/token`` and send the bearer token;
:meth:`~AirflowStack.wait_for` polls a predicate and, on timeout, raises with the tail of every
server log.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from lakehouse_orchestration.exceptions import OrchestrationError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Where the metadata databases are created; ``LAKEHOUSE_AIRFLOW_STACK_POSTGRES_URL`` overrides it."""
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TOKEN_LIFETIME_S = 600.0
"""Log in again after this long (tokens expire; a 401 also logs in again)."""


class AirflowStackError(OrchestrationError):
    """The local Airflow did not start, did not answer, or a wait timed out."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent_prefix() -> list[str]:
    """A command prefix that makes the kernel SIGKILL the command when the thread that started it ends.

    ``setpriv --pdeathsig KILL`` (util-linux) on Linux; empty where it is not available.
    """
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    return [setpriv, "--pdeathsig", "KILL"] if setpriv else []


def project_dag_ids(contracts_dir: Path) -> list[str]:
    """The DAG ids the project's ``dags/`` defines for the contracts in ``contracts_dir``."""
    from lakehouse_common.contracts import ContractRegistry

    names = [contract.name for contract in ContractRegistry.from_dir(contracts_dir)]
    return [
        *(f"landing__{n}" for n in names),
        *(f"silver__{n}" for n in names),
        "gold",
        "replicate_gold",
        "silver_maintenance",
    ]


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from /proc (children of every thread), parents first."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children", encoding="ascii") as handle:
                    children = [int(child) for child in handle.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            stack.extend(children)
    return found


def running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_process_tree(roots: Iterable[int], timeout_s: float = 10.0) -> None:
    """End ``roots``, their process groups and every descendant (task processes that made groups of
    their own included): SIGTERM, then SIGKILL for whatever still runs after ``timeout_s``.

    The caller's own process group is never signalled as a group. Reap the roots afterwards
    (``Popen.wait``); zombies do not count as running here.
    """
    own_group = os.getpgid(0)
    pids: set[int] = set()
    for root in roots:
        pids.update([root, *descendants(root)])
    groups: set[int] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(pid))
    groups.discard(own_group)
    AirflowStack._signal(groups, pids, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.2)
    for pid in list(pids):  # children forked meanwhile go too
        pids.update(descendants(pid))
    if any(running(pid) for pid in pids):
        log.info("processes still running %.0f s after SIGTERM: SIGKILL", timeout_s)
        AirflowStack._signal(groups, {pid for pid in pids if running(pid)}, signal.SIGKILL)


@dataclass
class _Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session=True: the leader's pid is the group id


class AirflowStack:
    """A local Airflow 3 on a fresh PostgreSQL database; see the module docstring.

    ``with AirflowStack(dags_folder=Path("dags"), env={...}) as stack: stack.api("GET", "/api/v2/dags")``
    """

    def __init__(
        self,
        *,
        dags_folder: Path,
        env: Mapping[str, str] | None = None,
        expect_dags: Iterable[str] | None = None,
        postgres_url: str | None = None,
        parallelism: int = 4,
        startup_timeout_s: float = 180.0,
        stop_timeout_s: float = 5.0,
        username: str = "lakehouse",
        cwd: Path | None = None,
        keep_home: bool = False,
        die_with_parent: bool = True,
    ) -> None:
        self.dags_folder = dags_folder.resolve()
        self.extra_env = dict(env or {})
        self.expect_dags = sorted(expect_dags) if expect_dags is not None else None
        self.postgres_url = postgres_url or os.environ.get("LAKEHOUSE_AIRFLOW_STACK_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        self.parallelism = parallelism
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.username = username
        self.password = secrets.token_urlsafe(16)
        self.cwd = (cwd or Path.cwd()).resolve()
        self.keep_home = keep_home
        self.die_with_parent = die_with_parent
        self.database = f"lakehouse_airflow_{secrets.token_hex(6)}"
        self._home: Path | None = None
        self.port = 0
        self.env: dict[str, str] = {}
        self.components: list[_Component] = []
        self._database_created = False
        self._stopped = False
        self._token: tuple[str, float] | None = None
        self._session = requests.Session()

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> AirflowStack:
        atexit.register(self.stop)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            log.warning("the block using the Airflow stack failed; server logs:\n%s", self.logs_tail())
        self.stop()

    @property
    def home(self) -> Path:
        """AIRFLOW_HOME (a temporary directory, made by :meth:`start`), where the server logs are."""
        if self._home is None:
            self._home = Path(tempfile.mkdtemp(prefix="lakehouse-airflow-stack-"))
        return self._home

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Create the database and the home, migrate, start every component, wait until healthy."""
        started = time.monotonic()
        self._create_database()
        self.port = free_port()
        self.env = self._environment()
        self._migrate()
        for name in COMPONENTS:
            self._spawn(name)
        self.wait_healthy(self.startup_timeout_s - (time.monotonic() - started))
        log.info("Airflow stack ready at %s in %.1f s", self.base_url, time.monotonic() - started)

    def stop(self) -> None:
        """End every process group this stack started (and their task processes), drop the database.

        Idempotent; also registered with ``atexit``.
        """
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._stop_processes()
        for component in self.components:
            with contextlib.suppress(OSError):
                component.log_file.close()
        self._session.close()
        if self._database_created:
            try:
                self._admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except Exception as exc:  # teardown goes on: the database is reported, not fatal
                log.warning("could not drop the metadata database %s: %s", self.database, exc)
        if self._home is not None and not self.keep_home:
            shutil.rmtree(self._home, ignore_errors=True)

    def restart(self, name: str, *, timeout: float = 60.0) -> None:
        """SIGKILL one component's process group (a crash, not a clean shutdown), start it again,
        and wait until every component reports healthy (``name`` is one of :data:`COMPONENTS`)."""
        if name not in COMPONENTS:
            raise AirflowStackError(f"unknown Airflow component {name!r}; valid: {', '.join(COMPONENTS)}")
        for component in [c for c in self.components if c.name == name]:
            pids = {component.process.pid, *descendants(component.process.pid)}
            groups = {component.pgid}
            for pid in pids:
                with contextlib.suppress(OSError):
                    groups.add(os.getpgid(pid))
            groups.discard(os.getpgid(0))
            self._signal(groups, pids, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=10)
            with contextlib.suppress(OSError):
                component.log_file.close()
            self.components.remove(component)
            log.info("killed airflow %s (process group %d)", name, component.pgid)
        self._spawn(name)
        self.wait_for(self._healthy, timeout, f"airflow {name} to be healthy again after its restart")

    def _stop_processes(self) -> None:
        own_group = os.getpgid(0)
        groups: set[int] = set()
        pids: set[int] = set()
        for component in self.components:
            pids.add(component.process.pid)
            groups.add(component.pgid)
            for child in descendants(component.process.pid):
                pids.add(child)
                with contextlib.suppress(OSError):
                    groups.add(os.getpgid(child))
        groups.discard(own_group)
        self._signal(groups, pids, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while time.monotonic() < deadline and self._alive(pids):
            time.sleep(0.1)
        if self._alive(pids):
            log.info("Airflow processes still running %.0f s after SIGTERM: SIGKILL", self.stop_timeout_s)
            # Children forked since the first snapshot (a task started meanwhile) go too.
            for pid in list(pids):
                pids.update(descendants(pid))
            self._signal(groups, pids, signal.SIGKILL)
        for component in self.components:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=5)

    @staticmethod
    def _signal(groups: set[int], pids: set[int], sig: signal.Signals) -> None:
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        for pid in pids:  # a process that left its group (setsid) is signalled by pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _alive(self, pids: set[int]) -> bool:
        for component in self.components:
            component.process.poll()  # reap the leaders so they stop counting as alive
        alive = False
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                    state = handle.read().rsplit(")", 1)[-1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive = True
        return alive

    # -- set-up --------------------------------------------------------------------------------
    def _admin_sql(self, statement: str) -> None:
        import psycopg2

        connection = psycopg2.connect(self.postgres_url, connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def _create_database(self) -> None:
        try:
            self._admin_sql(f'CREATE DATABASE "{self.database}"')
        except Exception as exc:
            raise AirflowStackError(
                f"cannot create the metadata database on {self._redacted_postgres()}: {exc} "
                "(is PostgreSQL running? set LAKEHOUSE_AIRFLOW_STACK_POSTGRES_URL)"
            ) from exc
        self._database_created = True

    def _redacted_postgres(self) -> str:
        parts = urlsplit(self.postgres_url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}:{parts.port or 5432}"

    def _database_url(self) -> str:
        parts = urlsplit(self.postgres_url)
        return urlunsplit(("postgresql+psycopg2", parts.netloc, "/" + quote(self.database), parts.query, ""))

    def _environment(self) -> dict[str, str]:
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        passwords.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__FERNET_KEY": "",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._database_url(),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        return env

    def _airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def _migrate(self) -> None:
        log_path = self.home / "db-migrate.log"
        with log_path.open("wb") as out:
            done = subprocess.run(
                [self._airflow(), "db", "migrate"],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if done.returncode != 0:
            raise AirflowStackError(f"airflow db migrate exited {done.returncode}:\n{_tail(log_path, 40)}")

    def _spawn(self, name: str) -> None:
        log_path = self.home / f"{name}.log"
        log_file = log_path.open("ab")  # a restarted component appends to its predecessor's log
        prefix = die_with_parent_prefix() if self.die_with_parent else []
        process = subprocess.Popen(
            [*prefix, self._airflow(), name],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.components.append(_Component(name, process, log_path, log_file))

    # -- waiting -------------------------------------------------------------------------------
    def logs_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of every component's log, each under a header."""
        parts = []
        for component in self.components:
            state = "running" if component.process.poll() is None else f"exited {component.process.returncode}"
            parts.append(f"----- {component.name} ({state}): {component.log_path}\n{_tail(component.log_path, lines)}")
        return "\n".join(parts)

    def _check_running(self) -> None:
        for component in self.components:
            if component.process.poll() is not None:
                raise AirflowStackError(
                    f"airflow {component.name} exited {component.process.returncode}\n{self.logs_tail(60)}"
                )

    def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
        """Poll ``predicate`` until it returns something truthy, and return that.

        Raises :class:`AirflowStackError` naming ``what`` with the tail of the server logs when
        ``timeout`` seconds pass, or at once when an Airflow component has exited.
        """
        deadline = time.monotonic() + timeout
        last_error: str | None = None
        while True:
            self._check_running()
            try:
                value = predicate()
            except _Fatal:
                raise
            except (requests.RequestException, AirflowStackError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if value:
                    return value
            if time.monotonic() >= deadline:
                detail = f" (last error: {last_error})" if last_error else ""
                raise AirflowStackError(
                    f"timed out after {timeout:.0f} s waiting for {what}{detail}\n{self.logs_tail()}"
                )
            time.sleep(interval)

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (no login needed)."""
        response = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _healthy(self) -> bool:
        body = self.health()
        parts = [body.get(name) for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")]
        return all(isinstance(part, dict) and part.get("status") == "healthy" for part in parts)

    def import_errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self.api("GET", "/api/v2/importErrors?limit=100").get("import_errors", [])
        return errors

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.api("GET", "/api/v2/dags?limit=1000").get("dags", [])}

    def _dags_parsed(self) -> bool:
        errors = self.import_errors()
        if errors:
            problems = "\n".join(f"{e.get('filename')}: {e.get('stack_trace', '')[-1500:]}" for e in errors)
            raise _ImportErrors(f"the DAGs in {self.dags_folder} do not import:\n{problems}")
        found = self.dag_ids()
        if self.expect_dags is None:
            return bool(found)
        return set(self.expect_dags) <= found

    def wait_healthy(self, timeout: float) -> None:
        """Every component healthy and the expected DAGs parsed (an import error fails at once)."""
        self.wait_for(self._healthy, max(timeout, 1.0), "every Airflow component to report healthy")
        expected = ", ".join(self.expect_dags) if self.expect_dags else "any DAG"
        self.wait_for(self._dags_parsed, max(timeout, 30.0), f"the DAGs to be parsed ({expected})")

    # -- REST ----------------------------------------------------------------------------------
    def token(self) -> str:
        """A bearer token from ``POST /auth/token`` (cached; renewed before it expires)."""
        if self._token is not None and time.monotonic() < self._token[1]:
            return self._token[0]
        response = self._session.post(
            f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}, timeout=10
        )
        if response.status_code not in {200, 201}:
            raise AirflowStackError(f"POST /auth/token answered {response.status_code}: {response.text[:300]}")
        token = str(response.json()["access_token"])
        self._token = (token, time.monotonic() + TOKEN_LIFETIME_S)
        return token

    def api(self, method: str, path: str, /, **json_body: Any) -> Any:
        """One REST call; keyword arguments are the JSON body. Returns the decoded JSON (or None).

        A 401 logs in again once; any other status of 400 or more raises :class:`AirflowStackError`.
        """
        for attempt in (1, 2):
            response = self._session.request(
                method,
                f"{self.base_url}{path}",
                json=json_body or None,
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=30,
            )
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            break
        if response.status_code >= 400:
            raise AirflowStackError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/api/v2/dags/{quote(dag_id, safe='')}", is_paused=paused)

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first."""
        body = self.api("GET", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns?limit=1000&order_by=id")
        runs: list[dict[str, Any]] = body.get("dag_runs", [])
        return runs

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=1000"
        instances: list[dict[str, Any]] = self.api("GET", path).get("task_instances", [])
        return instances

    def asset_id(self, name: str) -> int:
        """The id of the Asset named exactly ``name``."""
        body = self.api("GET", f"/api/v2/assets?name_pattern={quote(name, safe='')}&limit=100")
        for asset in body.get("assets", []):
            if asset.get("name") == name:
                return int(asset["id"])
        raise AirflowStackError(f"Airflow has no Asset named {name!r}")

    def asset_events(self, name: str) -> list[dict[str, Any]]:
        """Events of the Asset named ``name``, oldest first (``GET /api/v2/assets/events?asset_id=``)."""
        body = self.api("GET", f"/api/v2/assets/events?asset_id={self.asset_id(name)}&limit=1000&order_by=timestamp")
        events: list[dict[str, Any]] = body.get("asset_events", [])
        return events


class _Fatal(AirflowStackError):
    """Raised by a predicate to end :meth:`AirflowStack.wait_for` at once instead of retrying."""


class _ImportErrors(_Fatal):
    """The DAG folder has import errors: waiting longer will not parse it."""


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])
