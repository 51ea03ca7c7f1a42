"""``lakehouse-bridge``: arguments, and the errors it reports before reaching any server."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from lakehouse_bridge.cli import EXIT_ERROR, build_parser, main

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _no_bridge_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_BRIDGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAKEHOUSE_BRIDGE_STATE_PATH", str(tmp_path / "bridge.sqlite"))


def test_serve_takes_host_and_port() -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "0"])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 0)


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    assert "COMMAND" in capsys.readouterr().err


def test_serve_without_airflow_settings_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "LAKEHOUSE_BRIDGE_AIRFLOW_URL" in err and "LAKEHOUSE_BRIDGE_AIRFLOW_PASSWORD" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"hello": 1}', "not a MinIO bucket notification", id="not-a-notification"),
        pytest.param("", "holds no MinIO notification records", id="empty"),
        pytest.param('{"Records": []}', "holds no MinIO notification records", id="no-records"),
    ],
)
def test_replay_of_a_bad_file_fails_before_airflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    saved = tmp_path / "event.json"
    saved.write_text(content)
    assert main(["replay", str(saved)]) == EXIT_ERROR
    assert message in capsys.readouterr().err


def test_replay_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.json")], out=io.StringIO()) == EXIT_ERROR
    assert "cannot read" in capsys.readouterr().err


def test_replay_needs_airflow_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(FIXTURES / "put_vacancies.json")]) == EXIT_ERROR
    assert "LAKEHOUSE_BRIDGE_AIRFLOW_URL" in capsys.readouterr().err
