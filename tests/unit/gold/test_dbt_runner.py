from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lakehouse_common.exceptions import SettingsError
from lakehouse_common.settings import Settings, get_settings
from lakehouse_gold.dbt_runner import DbtRunResult, NodeResult, dbt_env, parse_run_results, project_dir

REPO = Path(__file__).resolve().parents[3]


def s3_settings(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "backend": "s3",
        "s3_access_key_id": "key",
        "s3_secret_access_key": "secret",
        "silver_bucket": "lake-silver",
        "scratch_dir": tmp_path,
    }
    return get_settings(**{**base, **overrides})


def test_local_env_points_dbt_at_local_silver_and_staging(gold_settings: Settings, tmp_path: Path) -> None:
    inherited = {"PATH": "/bin", "LAKEHOUSE_DBT_S3_ENDPOINT": "stale:1", "DBT_ENV_SECRET_S3_SECRET": "stale"}
    env = dbt_env(
        gold_settings, external_root="/lake/gold/_staging/r1", duckdb_path=tmp_path / "x.duckdb", base=inherited
    )

    assert env["LAKEHOUSE_DBT_TARGET"] == "local"
    assert env["LAKEHOUSE_DBT_SILVER_ROOT"] == str((gold_settings.data_dir / "silver").resolve())
    assert env["LAKEHOUSE_DBT_EXTERNAL_ROOT"] == "/lake/gold/_staging/r1"
    assert env["LAKEHOUSE_DBT_DUCKDB_PATH"] == str(tmp_path / "x.duckdb")
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    assert env["PATH"] == "/bin"
    assert "LAKEHOUSE_DBT_S3_ENDPOINT" not in env and "DBT_ENV_SECRET_S3_SECRET" not in env


@pytest.mark.parametrize(
    ("overrides", "endpoint", "use_ssl", "url_style"),
    [
        pytest.param({"s3_endpoint_url": "http://127.0.0.1:9000"}, "127.0.0.1:9000", "false", "path", id="minio-http"),
        pytest.param({"s3_endpoint_url": "https://s3.example.com/"}, "s3.example.com", "true", "path", id="https"),
        pytest.param({"s3_path_style": False}, "s3.amazonaws.com", "true", "vhost", id="aws"),
    ],
)
def test_s3_env_describes_the_endpoint_for_duckdb(
    tmp_path: Path, overrides: dict[str, object], endpoint: str, use_ssl: str, url_style: str
) -> None:
    env = dbt_env(s3_settings(tmp_path, **overrides), external_root="s3://g/_staging/r", duckdb_path=tmp_path, base={})

    assert env["LAKEHOUSE_DBT_TARGET"] == "s3"
    assert env["LAKEHOUSE_DBT_SILVER_ROOT"] == "s3://lake-silver"
    assert (env["LAKEHOUSE_DBT_S3_ENDPOINT"], env["LAKEHOUSE_DBT_S3_USE_SSL"]) == (endpoint, use_ssl)
    assert env["LAKEHOUSE_DBT_S3_URL_STYLE"] == url_style
    assert (env["DBT_ENV_SECRET_S3_KEY_ID"], env["DBT_ENV_SECRET_S3_SECRET"]) == ("key", "secret")


def test_s3_endpoint_must_be_an_http_url(tmp_path: Path) -> None:
    settings = s3_settings(tmp_path, s3_endpoint_url="minio:9000")
    with pytest.raises(SettingsError, match=r"http://host:port"):
        dbt_env(settings, external_root="s3://g/x", duckdb_path=tmp_path, base={})


def _without_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_s3_keys_come_from_the_aws_chain_when_not_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_aws_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "chain-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "chain-token")
    settings = s3_settings(tmp_path, s3_access_key_id=None, s3_secret_access_key=None)

    env = dbt_env(settings, external_root="s3://g/x", duckdb_path=tmp_path, base={})

    assert env["DBT_ENV_SECRET_S3_KEY_ID"] == "chain-key"
    assert env["DBT_ENV_SECRET_S3_SESSION_TOKEN"] == "chain-token"


def test_no_s3_credentials_anywhere_is_a_settings_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_aws_credentials(monkeypatch, tmp_path)
    settings = s3_settings(tmp_path, s3_access_key_id=None, s3_secret_access_key=None)
    with pytest.raises(SettingsError, match="LAKEHOUSE_S3_ACCESS_KEY_ID"):
        dbt_env(settings, external_root="s3://g/x", duckdb_path=tmp_path, base={})


def test_every_variable_the_dbt_project_reads_is_set_for_s3(tmp_path: Path) -> None:
    env = dbt_env(s3_settings(tmp_path), external_root="s3://g/x", duckdb_path=tmp_path, base={})
    text = "".join(p.read_text() for p in [REPO / "dbt/profiles.yml", *sorted((REPO / "dbt/models").rglob("*.yml"))])
    read = set(re.findall(r"env_var\('([A-Z0-9_]+)'", text))
    optional = {"LAKEHOUSE_DBT_THREADS", "LAKEHOUSE_DBT_TIMEZONE"}  # have defaults; not derived from Settings

    assert read - optional <= env.keys()


def test_missing_dbt_project_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LAKEHOUSE_DBT_PROJECT_DIR"):
        project_dir(get_settings(dbt_project_dir=tmp_path))


def test_run_results_tell_failed_skipped_and_warned_nodes(tmp_path: Path) -> None:
    results = [
        {"unique_id": "model.lakehouse.stg_vacancies", "status": "success", "message": "OK"},
        {"unique_id": "test.lakehouse.accepted_values_x", "status": "fail", "message": "Got 1 result"},
        {"unique_id": "test.lakehouse.not_null_y", "status": "warn", "message": "Got 2 results"},
        {"unique_id": "model.lakehouse.int_x", "status": "error", "message": "Runtime Error\n  boom"},
        {"unique_id": "model.lakehouse.mart", "status": "skipped", "message": None},
    ]
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps({"results": results}))

    result = DbtRunResult(returncode=1, nodes=parse_run_results(path), run_dir=tmp_path)

    assert [(f.unique_id, f.status) for f in result.failed] == [
        ("test.lakehouse.accepted_values_x", "fail"),
        ("model.lakehouse.int_x", "error"),
    ]
    assert result.failed[1].describe() == "model.lakehouse.int_x (error: Runtime Error)"
    assert result.skipped == ["model.lakehouse.mart"]
    assert result.warned == ["test.lakehouse.not_null_y"]
    assert not result.ok
    assert result.status_counts() == {"error": 1, "fail": 1, "skipped": 1, "success": 1, "warn": 1}


@pytest.mark.parametrize(
    ("returncode", "nodes", "ok"),
    [
        pytest.param(0, (NodeResult("model.a.b", "success", ""), NodeResult("test.a.c", "warn", "")), True, id="warn"),
        pytest.param(0, (), False, id="nothing-ran"),
        pytest.param(2, (NodeResult("model.a.b", "success", ""),), False, id="nonzero-exit"),
    ],
)
def test_a_run_is_ok_only_when_nodes_ran_and_none_failed(
    tmp_path: Path, returncode: int, nodes: tuple[NodeResult, ...], ok: bool
) -> None:
    assert DbtRunResult(returncode=returncode, nodes=nodes, run_dir=tmp_path).ok is ok
