"""infra/airflow/airflow_init.py, the one-shot ``airflow-init`` job: it migrates the metadata
database and writes the simple auth manager's passwords file from the environment. The file it
writes is read back by Airflow's own SimpleAuthManager, so the format is proved against the
Airflow release the image installs (``airflow db migrate`` itself is faked: Postgres and the
container are not here)."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "infra" / "airflow" / "airflow_init.py"
USERS = "admin:admin,bridge:op"
# Stand-ins for the values .env provides (never printed, compared by value).
ADMIN_VALUE, BRIDGE_VALUE, ROTATED_VALUE = (f"Zk3v9QeR1tWq-{word}" for word in ("admin", "bridge", "rotated"))


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_init_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


airflow_init = load()


class FakeMigrate:
    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, command: Sequence[str]) -> int:
        self.calls.append(tuple(command))
        return self.status


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        airflow_init.USERS_VARIABLE: USERS,
        airflow_init.PASSWORDS_FILE_VARIABLE: str(tmp_path / "auth" / "passwords.json"),
        "AIRFLOW_ADMIN_PASSWORD": ADMIN_VALUE,
        "AIRFLOW_BRIDGE_PASSWORD": BRIDGE_VALUE,
        **extra,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("admin:admin,bridge:op", [("admin", "admin"), ("bridge", "op")], id="compose"),
        pytest.param(" alice:viewer , ", [("alice", "viewer")], id="spaces-and-trailing-comma"),
        pytest.param("bob:op:team-a", [("bob", "op")], id="with-teams"),
    ],
)
def test_parse_users(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(user.name, user.role) for user in airflow_init.parse_users(text)] == expected


@pytest.mark.parametrize("text", ["", "admin", "admin:", ":op", "a:admin,a:op"])
def test_parse_users_refuses(text: str) -> None:
    with pytest.raises(airflow_init.InitError):
        airflow_init.parse_users(text)


def test_password_variable_names() -> None:
    assert airflow_init.User("admin", "admin").password_variable == "AIRFLOW_ADMIN_PASSWORD"
    assert airflow_init.User("data-eng.1", "op").password_variable == "AIRFLOW_DATA_ENG_1_PASSWORD"


def test_migrates_then_writes_the_passwords_file(tmp_path: Path) -> None:
    migrate, lines = FakeMigrate(), []
    env = environ(tmp_path)
    assert airflow_init.run(env, migrate, lines.append) == 0
    assert migrate.calls == [("airflow", "db", "migrate"), ("lakehouse-pipeline", "unpause")]
    path = Path(env[airflow_init.PASSWORDS_FILE_VARIABLE])
    assert json.loads(path.read_text()) == {"admin": ADMIN_VALUE, "bridge": BRIDGE_VALUE}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "written" in lines[1]
    assert not any("Zk3v9QeR1tWq" in line for line in lines), "passwords are never printed"
    assert [p.name for p in path.parent.iterdir()] == ["passwords.json"], "no temporary file left behind"


def test_a_rerun_changes_nothing_and_a_new_password_is_written(tmp_path: Path) -> None:
    env = environ(tmp_path)
    path = Path(env[airflow_init.PASSWORDS_FILE_VARIABLE])
    airflow_init.run(env, FakeMigrate(), lambda _: None)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    lines: list[str] = []
    airflow_init.run(env, FakeMigrate(), lines.append)
    assert "unchanged" in lines[1]
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    airflow_init.run({**env, "AIRFLOW_ADMIN_PASSWORD": ROTATED_VALUE}, FakeMigrate(), lambda _: None)
    assert json.loads(path.read_text())["admin"] == ROTATED_VALUE


def test_a_missing_password_stops_before_migrating(tmp_path: Path) -> None:
    env = environ(tmp_path)
    del env["AIRFLOW_BRIDGE_PASSWORD"]
    migrate = FakeMigrate()
    with pytest.raises(airflow_init.InitError, match="AIRFLOW_BRIDGE_PASSWORD") as raised:
        airflow_init.run(env, migrate, lambda _: None)
    assert raised.value.status == airflow_init.EXIT_FAILED
    assert migrate.calls == []


def test_a_failed_migration_writes_nothing(tmp_path: Path) -> None:
    env = environ(tmp_path)
    with pytest.raises(airflow_init.InitError, match="exited 3"):
        airflow_init.run(env, FakeMigrate(3), lambda _: None)
    assert not Path(env[airflow_init.PASSWORDS_FILE_VARIABLE]).exists()


class FailingUnpause(FakeMigrate):
    """The migration succeeds, the unpause (the second command) exits 1."""

    def __call__(self, command: Sequence[str]) -> int:
        self.calls.append(tuple(command))
        return 1 if command[0] == "lakehouse-pipeline" else 0


def test_the_project_dags_are_unpaused_last_in_the_image_dag_folder(tmp_path: Path) -> None:
    migrate = FakeMigrate()
    env = environ(tmp_path, AIRFLOW__CORE__DAGS_FOLDER="/opt/airflow/dags")
    assert airflow_init.run(env, migrate, lambda _: None) == 0
    assert migrate.calls[-1] == ("lakehouse-pipeline", "--dags-folder", "/opt/airflow/dags", "unpause")


def test_a_failed_unpause_fails_the_job(tmp_path: Path) -> None:
    with pytest.raises(airflow_init.InitError, match="unpause exited 1") as raised:
        airflow_init.run(environ(tmp_path), FailingUnpause(), lambda _: None)
    assert raised.value.status == airflow_init.EXIT_FAILED


def test_the_image_has_the_unpause_command() -> None:
    """airflow-init runs the orchestration package's CLI, which the image installs."""
    dockerfile = (ROOT / "infra" / "airflow" / "Dockerfile").read_text(encoding="utf-8")
    assert "/tmp/build/orchestration" in dockerfile
    pyproject = (ROOT / "services" / "orchestration" / "pyproject.toml").read_text(encoding="utf-8")
    assert 'lakehouse-pipeline = "lakehouse_orchestration.cli:main"' in pyproject


class FakeCreate:
    def __init__(self, existing: set[str] | None = None, error: Exception | None = None) -> None:
        self.existing = set() if existing is None else existing
        self.error = error
        self.calls: list[tuple[str, str]] = []

    def __call__(self, url: str, name: str) -> bool:
        self.calls.append((url, name))
        if self.error is not None:
            raise self.error
        created = name not in self.existing
        self.existing.add(name)
        return created


# Built by concatenation: a user:password@ literal would read as a credential to secret scanners.
METADATA_URL = "postgresql+psycopg2://airflow:" + ADMIN_VALUE + "@postgres:5432/airflow"


def test_the_serving_database_is_created_once_with_the_metadata_connection(tmp_path: Path) -> None:
    env = environ(
        tmp_path,
        LAKEHOUSE_SERVING_DATABASE="lakehouse",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=METADATA_URL,
    )
    create, lines = FakeCreate(), []
    assert airflow_init.run(env, FakeMigrate(), lines.append, create) == 0
    assert create.calls == [(METADATA_URL, "lakehouse")]
    assert "airflow-init: serving database lakehouse: created" in lines
    lines.clear()
    airflow_init.run(env, FakeMigrate(), lines.append, create)
    assert "airflow-init: serving database lakehouse: exists" in lines
    assert not any(ADMIN_VALUE in line for line in lines), "the URL's password is never printed"


def test_no_serving_database_without_the_variable(tmp_path: Path) -> None:
    create = FakeCreate()
    for extra in ({}, {"LAKEHOUSE_SERVING_DATABASE": ""}):
        airflow_init.run(environ(tmp_path, **extra), FakeMigrate(), lambda _: None, create)
    assert create.calls == []


@pytest.mark.parametrize(
    ("name", "url"),
    [
        pytest.param('lake"; DROP DATABASE airflow; --', METADATA_URL, id="not-an-identifier"),
        pytest.param("Lakehouse", METADATA_URL, id="upper-case"),
        pytest.param("x" * 64, METADATA_URL, id="too-long"),
        pytest.param("lakehouse", "sqlite:////tmp/airflow.db", id="not-postgres"),
    ],
)
def test_a_bad_serving_database_stops_before_migrating(tmp_path: Path, name: str, url: str) -> None:
    env = environ(tmp_path, LAKEHOUSE_SERVING_DATABASE=name, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=url)
    migrate, create = FakeMigrate(), FakeCreate()
    with pytest.raises(airflow_init.InitError, match="LAKEHOUSE_SERVING_DATABASE") as raised:
        airflow_init.run(env, migrate, lambda _: None, create)
    assert raised.value.status == airflow_init.EXIT_CONFIG
    assert (migrate.calls, create.calls) == ([], [])


def test_a_failed_database_creation_fails_the_job_without_the_url(tmp_path: Path) -> None:
    env = environ(
        tmp_path,
        LAKEHOUSE_SERVING_DATABASE="lakehouse",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=METADATA_URL,
    )
    create = FakeCreate(error=RuntimeError("permission denied to create database\nDETAIL: more"))
    with pytest.raises(airflow_init.InitError) as raised:
        airflow_init.run(env, FakeMigrate(), lambda _: None, create)
    assert raised.value.status == airflow_init.EXIT_FAILED
    assert str(raised.value) == (
        "could not create the serving database lakehouse: RuntimeError: permission denied to create database"
    )


def test_compose_creates_the_database_the_serving_dsn_names() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    init_env = compose["services"]["airflow-init"]["environment"]
    assert init_env["LAKEHOUSE_SERVING_DATABASE"] == "${LAKEHOUSE_SERVING_DATABASE:-lakehouse}"
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    settings = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert settings["LAKEHOUSE_SERVING_DATABASE"] == "lakehouse"
    assert "@postgres:5432/lakehouse" in example, ".env.example shows a DSN on that database"


def test_main_reports_configuration_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert airflow_init.main({}) == airflow_init.EXIT_CONFIG
    assert airflow_init.USERS_VARIABLE in capsys.readouterr().err


def test_airflows_simple_auth_manager_reads_the_file_and_generates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the api-server does on start: SimpleAuthManager.init() adds a generated (and logged)
    password for every configured user missing from the file; with airflow-init's file it adds none."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import (  # noqa: PLC0415
        SimpleAuthManager,
    )

    env = environ(tmp_path)
    airflow_init.run(env, FakeMigrate(), lambda _: None)
    path = Path(env[airflow_init.PASSWORDS_FILE_VARIABLE])
    written = path.read_text()
    monkeypatch.setenv(airflow_init.USERS_VARIABLE, USERS)
    monkeypatch.setenv(airflow_init.PASSWORDS_FILE_VARIABLE, str(path))
    assert [(u.username, u.role) for u in SimpleAuthManager.get_users()] == [("admin", "admin"), ("bridge", "op")]
    SimpleAuthManager().init()
    assert path.read_text() == written
    assert SimpleAuthManager.get_passwords() == {"admin": ADMIN_VALUE, "bridge": BRIDGE_VALUE}


def test_compose_configures_the_same_users_as_these_tests() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert compose["x-airflow-env"][airflow_init.USERS_VARIABLE] == USERS


def test_the_image_installs_the_script_as_its_init_command() -> None:
    dockerfile = (ROOT / "infra" / "airflow" / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY --chmod=0755 infra/airflow/airflow_init.py /usr/local/bin/lakehouse-airflow-init" in dockerfile
    assert SCRIPT.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n")
