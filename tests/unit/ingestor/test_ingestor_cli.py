from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse_ingestor.cli import EXIT_ERROR, EXIT_OK, main

SMALL_ARGS = ["sample", "--size", "300", "--days", "45", "--seed", "3"]


@pytest.fixture
def lake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LAKEHOUSE_SCRATCH_DIR", str(tmp_path / "scratch"))
    for name in ("SIZE", "SEED", "DAYS", "START", "WINDOW_DAYS", "PER_PAGE", "BAD_RECORDS"):
        monkeypatch.delenv(f"LAKEHOUSE_INGESTOR_SAMPLE_{name}", raising=False)
    return tmp_path / "data"


def bronze_files(lake_dir: Path) -> dict[str, bytes]:
    root = lake_dir / "bronze"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sample_writes_bronze_and_summarises(lake_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SMALL_ARGS) == EXIT_OK
    out = capsys.readouterr().out
    files = bronze_files(lake_dir)
    assert {key.split("/")[0] for key in files} == {"vacancies", "vacancy_details", "currency_rates"}
    assert "300 vacancies" in out
    assert "bad records injected: 9" in out
    assert len(out.splitlines()) <= 30  # one screen


def test_rerun_writes_nothing_new(lake_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SMALL_ARGS) == EXIT_OK
    before = bronze_files(lake_dir)
    capsys.readouterr()
    assert main(SMALL_ARGS) == EXIT_OK
    out = capsys.readouterr().out
    assert bronze_files(lake_dir) == before
    vacancies_row = next(line for line in out.splitlines() if line.strip().startswith("vacancies "))
    objects, written, existed = vacancies_row.split()[1:4]
    assert written == "0"
    assert existed == objects


def test_dry_run_writes_nothing(lake_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SMALL_ARGS, "--dry-run"]) == EXIT_OK
    assert not (lake_dir / "bronze").exists()
    assert "dry run" in capsys.readouterr().out


def test_environment_gives_the_defaults(
    lake_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKEHOUSE_INGESTOR_SAMPLE_SIZE", "120")
    monkeypatch.setenv("LAKEHOUSE_INGESTOR_SAMPLE_BAD_RECORDS", "false")
    assert main(["sample", "--days", "30", "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "120 vacancies" in out
    assert "bad records injected: 0" in out


@pytest.mark.parametrize(
    ("env", "args"),
    [
        pytest.param({"LAKEHOUSE_INGESTOR_SAMPLE_SIZE": "lots"}, ["sample"], id="bad-ingestor-env"),
        pytest.param({"LAKEHOUSE_BACKEND": "ftp"}, ["sample", "--size", "10"], id="bad-lake-env"),
    ],
)
def test_bad_settings_exit_with_a_message(
    lake_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    args: list[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(args) == EXIT_ERROR
    assert "lakehouse-ingest: error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["sample", "--per-page", "101"], id="per-page-above-100"),
        pytest.param(["sample", "--size", "0"], id="size-zero"),
        pytest.param([], id="no-command"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
