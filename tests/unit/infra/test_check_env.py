"""infra/check_env.py, which `make up` runs before `docker compose up -d`: it refuses a missing
.env, placeholders and well-known default secrets, says how to generate real ones, and never prints
a secret value."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
STRONG = "Zk3v9QeR1tWq-strong-value"


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
        if check_env.SECRET_NAME.search(name):
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
    assert "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'" in err


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
