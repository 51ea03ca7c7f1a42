"""infra/check_env.py, which `make up` runs before `docker compose up -d`: it refuses a missing
.env, placeholders and well-known default secrets, says how to generate real ones, and never prints
a secret value."""

from __future__ import annotations

import base64
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
STRONG = "Zk3v9QeR1tWq-strong-value"
FERNET = base64.urlsafe_b64encode(bytes(range(32))).decode()


def load_check_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_env_under_test", ROOT / "infra" / "check_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check_env = load_check_env()


def good_env() -> dict[str, str]:
    """A usable .env for the current docker-compose.yml: .env.example with every secret replaced."""
    values: dict[str, str] = check_env.parse_env_file((ROOT / ".env.example").read_text(encoding="utf-8"))
    for number, name in enumerate(sorted(values)):
        if "FERNET" in name:
            values[name] = FERNET
        elif check_env.SECRET_NAME.search(name):
            values[name] = f"{STRONG}-{number}"
    return values


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A=1\n# comment\n\nB = two\n", {"A": "1", "B": "two"}, id="plain"),
        pytest.param("export C=3\n", {"C": "3"}, id="export"),
        pytest.param("D=\"with # hash\"\nE='single'\n", {"D": "with # hash", "E": "single"}, id="quoted"),
        pytest.param("F=value # trailing comment\n", {"F": "value"}, id="trailing-comment"),
        pytest.param("G=\nnot a pair\n", {"G": ""}, id="empty-and-junk"),
    ],
)
def test_parse_env_file(text: str, expected: dict[str, str]) -> None:
    assert check_env.parse_env_file(text) == expected


def test_compose_references_of_the_real_compose_file() -> None:
    references = {ref.name: ref.required for ref in check_env.compose_references(COMPOSE_FILE.read_text("utf-8"))}
    assert references["MINIO_ROOT_PASSWORD"] is True
    assert references["MINIO_API_PORT"] is False  # ${MINIO_API_PORT:-9000}
    assert references["MINIO_IMAGE"] is False
    assert "VAR" not in references, "variables named in comments are not references"
    assert "POSTGRES_USER" in references  # also used escaped ($${POSTGRES_USER}) in the healthcheck
    for name in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD"):
        assert references[name] is True, f"{name} must be required"
    assert references["LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY"] is False, "replication is optional"


def test_compose_references_know_which_values_go_into_urls_and_json() -> None:
    embedded = {ref.name for ref in check_env.compose_references(COMPOSE_FILE.read_text("utf-8")) if ref.embedded}
    # The metadata database and Celery broker URLs (user and password before the host), the connection's JSON.
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "REDIS_PASSWORD"} <= embedded
    assert {"MINIO_PIPELINE_ACCESS_KEY", "MINIO_PIPELINE_SECRET_KEY", "LAKEHOUSE_S3_REGION"} <= embedded
    assert not {"MINIO_ROOT_PASSWORD", "MINIO_API_PORT", "AIRFLOW_FERNET_KEY"} & embedded


def problems_for(**values: str) -> list[str]:
    references = [check_env.Reference(name, name.endswith("PASSWORD")) for name in values]
    found: list[str] = check_env.problems(values, references)
    return found


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({"MINIO_ROOT_PASSWORD": STRONG}, [], id="strong"),
        pytest.param({"MINIO_ROOT_PASSWORD": ""}, ["MINIO_ROOT_PASSWORD is not set"], id="required-empty"),
        pytest.param(
            {"MINIO_ROOT_PASSWORD": "change-me-minio-root-password"},
            ["MINIO_ROOT_PASSWORD is still the .env.example placeholder"],
            id="placeholder",
        ),
        pytest.param({"MINIO_ROOT_PASSWORD": "minioadmin"}, ["well-known default password"], id="minioadmin-password"),
        pytest.param(
            {"MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": STRONG},
            ["MINIO_ROOT_USER is the well-known default 'minioadmin'"],
            id="minioadmin-user",
        ),
        pytest.param(
            {"POSTGRES_USER": "airflow", "POSTGRES_PASSWORD": "airflow"},
            ["POSTGRES_PASSWORD is a well-known default password"],
            id="airflow-airflow",
        ),
        pytest.param({"POSTGRES_USER": "airflow", "POSTGRES_PASSWORD": STRONG}, [], id="airflow-user-is-fine"),
        pytest.param(
            {"MINIO_READER_ACCESS_KEY": "lakehouse-reader-x", "MINIO_READER_SECRET_KEY": "lakehouse-reader-x"},
            ["MINIO_READER_SECRET_KEY equals its user name"],
            id="secret-equals-access-key",
        ),
        pytest.param({"LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": "short-tok"}, ["shorter than 12"], id="short-token"),
        pytest.param({"AIRFLOW__CORE__FERNET_KEY": "<your-fernet-key>"}, ["placeholder"], id="angle-placeholder"),
        pytest.param({"MINIO_API_PORT": "9000"}, [], id="not-a-secret"),
        pytest.param({"AIRFLOW_ADMIN_PASSWORD": "admin"}, ["well-known default password"], id="admin-admin"),
        pytest.param({"AIRFLOW_ADMIN_PASSWORD": "airflow"}, ["well-known default password"], id="admin-airflow"),
        pytest.param({"AIRFLOW_BRIDGE_PASSWORD": "Bridge"}, ["equals its user name"], id="bridge-bridge"),
        pytest.param({"AIRFLOW_ADMIN_PASSWORD": STRONG}, [], id="admin-strong"),
        pytest.param({"AIRFLOW_FERNET_KEY": FERNET}, [], id="fernet-key"),
        pytest.param({"AIRFLOW_FERNET_KEY": STRONG + "-long-enough-but-no-key"}, ["not a Fernet key"], id="not-fernet"),
        pytest.param({"AIRFLOW_FERNET_KEY": FERNET[:-4]}, ["not a Fernet key"], id="fernet-too-short"),
        pytest.param({"AIRFLOW_FERNET_KEY": "change-me-fernet-key"}, ["placeholder"], id="fernet-placeholder"),
    ],
)
def test_problems(values: dict[str, str], expected: list[str]) -> None:
    found = problems_for(**values)
    assert len(found) == len(expected), found
    for problem, fragment in zip(found, expected, strict=True):
        assert fragment in problem
    for value in values.values():
        if value and value not in {"minioadmin", "airflow"}:
            assert not any(value in problem for problem in found), "secret values are never printed"


def test_a_fernet_key_from_the_documented_recipes_passes() -> None:
    from cryptography.fernet import Fernet  # noqa: PLC0415 - Airflow's dependency, as in .env.example

    generated = Fernet.generate_key().decode()
    stdlib = base64.urlsafe_b64encode(os.urandom(32)).decode()
    for key in (generated, stdlib):
        assert problems_for(AIRFLOW_FERNET_KEY=key) == []
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert "Fernet.generate_key()" in example and "base64.urlsafe_b64encode(os.urandom(32))" in example


def test_an_empty_fernet_key_is_refused_because_compose_requires_it() -> None:
    references = check_env.compose_references(COMPOSE_FILE.read_text("utf-8"))
    values = {**good_env(), "AIRFLOW_FERNET_KEY": ""}
    assert "AIRFLOW_FERNET_KEY is not set: docker-compose.yml requires it" in check_env.problems(values, references)


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        pytest.param("Zk3v9QeR1tWq_-.~strong", False, id="url-safe"),
        pytest.param("p@ss/word:Zk3v9QeR1tWq", True, id="url-delimiters"),
        pytest.param('quote"Zk3v9QeR1tWq', True, id="json-quote"),
        pytest.param("space Zk3v9QeR1tWq", True, id="space"),
    ],
)
def test_values_inside_urls_and_json_must_be_url_safe(value: str, refused: bool) -> None:
    found = check_env.problems({"POSTGRES_PASSWORD": value}, [check_env.Reference("POSTGRES_PASSWORD", True, True)])
    assert any("break the URL or JSON" in problem for problem in found) is refused
    assert not any(value in problem for problem in found), "secret values are never printed"
    # The same value outside a URL is fine.
    assert check_env.problems({"MINIO_ROOT_PASSWORD": value}, [check_env.Reference("MINIO_ROOT_PASSWORD", True)]) == []


@pytest.mark.parametrize(
    ("executor", "profiles", "expected"),
    [
        pytest.param("LocalExecutor", "", None, id="local"),
        pytest.param("", "", None, id="empty-is-local"),
        pytest.param("LocalExecutor", "celery", None, id="local-with-idle-workers"),
        pytest.param("CeleryExecutor", "celery", None, id="celery-with-profile"),
        pytest.param("CeleryExecutor", "debug, celery", None, id="celery-among-profiles"),
        pytest.param("CeleryExecutor", "", "needs the celery profile", id="celery-without-workers"),
        pytest.param("KubernetesExecutor", "", "must be one of", id="unsupported"),
    ],
)
def test_the_executor_matches_the_profiles(executor: str, profiles: str, expected: str | None) -> None:
    references = check_env.compose_references(COMPOSE_FILE.read_text("utf-8"))
    values = {**good_env(), "AIRFLOW_EXECUTOR": executor, "COMPOSE_PROFILES": profiles}
    found = [p for p in check_env.problems(values, references) if "EXECUTOR" in p]
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0]


@pytest.mark.parametrize(
    ("statsd_on", "profiles", "refused"),
    [
        pytest.param("False", "", False, id="off"),
        pytest.param("", "", False, id="empty-is-off"),
        pytest.param("False", "monitoring", False, id="off-with-the-profile"),
        pytest.param("True", "monitoring", False, id="on-with-the-profile"),
        pytest.param("true", "celery, monitoring", False, id="on-among-profiles"),
        pytest.param("True", "", True, id="on-without-the-exporter"),
        pytest.param("1", "bi", True, id="on-with-another-profile"),
    ],
)
def test_statsd_needs_the_monitoring_profile(statsd_on: str, profiles: str, refused: bool) -> None:
    references = check_env.compose_references(COMPOSE_FILE.read_text("utf-8"))
    values = {**good_env(), "AIRFLOW_STATSD_ON": statsd_on, "COMPOSE_PROFILES": profiles}
    found = [p for p in check_env.problems(values, references) if "STATSD" in p]
    assert bool(found) is refused
    if refused:
        assert "COMPOSE_PROFILES=monitoring" in found[0]


@pytest.mark.parametrize(
    ("dsn", "refused"),
    [
        pytest.param("", False, id="empty-is-off"),
        pytest.param("postgresql://airflow:" + STRONG + "@postgres:5432/lakehouse", False, id="real"),
        pytest.param(
            "postgresql://airflow:" + "change-me-postgres-password" + "@postgres/lakehouse", True, id="placeholder"
        ),
    ],
)
def test_the_serving_dsn_is_optional_but_never_a_placeholder(dsn: str, refused: bool) -> None:
    references = check_env.compose_references(COMPOSE_FILE.read_text("utf-8"))
    assert {ref.name: ref.required for ref in references}["LAKEHOUSE_SERVING_POSTGRES_DSN"] is False
    values = {**good_env(), "LAKEHOUSE_SERVING_POSTGRES_DSN": dsn}
    found = [p for p in check_env.problems(values, references) if "SERVING" in p]
    assert bool(found) is refused
    assert not any(dsn and dsn in p for p in found), "the DSN (with its password) is never printed"


def test_compose_profiles_from_the_shell_count_like_compose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = write_env(tmp_path / ".env", {**good_env(), "AIRFLOW_EXECUTOR": "CeleryExecutor"})
    argv = ["--env-file", str(env), "--compose-file", str(COMPOSE_FILE)]
    assert check_env.main(argv, environ={}) == 1
    assert "COMPOSE_PROFILES=celery" in capsys.readouterr().err
    assert check_env.main(argv, environ={"COMPOSE_PROFILES": "celery"}) == 0


def test_a_missing_env_file_says_how_to_create_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = check_env.main(["--env-file", str(tmp_path / ".env"), "--compose-file", str(COMPOSE_FILE)], environ={})
    assert status == 1
    err = capsys.readouterr().err
    assert "cp .env.example" in err and "secrets.token_urlsafe" in err


def test_env_example_as_it_is_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    status = check_env.main(["--env-file", str(env), "--compose-file", str(COMPOSE_FILE)], environ={})
    err = capsys.readouterr().err
    assert status == 1
    assert "MINIO_ROOT_PASSWORD is still the .env.example placeholder" in err
    assert "POSTGRES_PASSWORD is still the .env.example placeholder" in err
    for name in (
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_BRIDGE_PASSWORD",
        "REDIS_PASSWORD",
    ):
        assert f"{name} is still the .env.example placeholder" in err
    assert "LAKEHOUSE_REPLICA" not in err, "replication is optional: its empty keys are fine"
    assert "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'" in err
    assert "Fernet.generate_key()" in err


def test_a_filled_in_env_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = write_env(tmp_path / ".env", good_env())
    status = check_env.main(["--env-file", str(env), "--compose-file", str(COMPOSE_FILE)], environ={})
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert "no placeholder or default secret" in out
    assert STRONG not in out


def test_the_shell_environment_wins_over_env_like_compose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = write_env(tmp_path / ".env", good_env())
    status = check_env.main(
        ["--env-file", str(env), "--compose-file", str(COMPOSE_FILE)], environ={"MINIO_ROOT_PASSWORD": "minioadmin"}
    )
    assert status == 1
    assert "MINIO_ROOT_PASSWORD is a well-known default password" in capsys.readouterr().err
