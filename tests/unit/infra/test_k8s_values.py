"""infra/k8s/airflow-values.yaml, values for the official Airflow Helm chart (the documented next
phase). No cluster and no Helm here: these tests check that the values agree with the compose stack
and the image (image, version, user, DAG folder, auth users), keep every secret in Kubernetes
Secrets referenced by name, give the lake's keys only to the components that run DAG code, size
every component, and set only options Airflow 3 knows. ``helm lint`` against the chart's schema
remains to be run where Helm is (infra/k8s/README.md)."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parents[3]
VALUES_FILE = ROOT / "infra" / "k8s" / "airflow-values.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "infra" / "airflow" / "Dockerfile"
COMPONENTS = ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers")
LAKE_KEYS = {"AIRFLOW_CONN_LAKEHOUSE_S3", "LAKEHOUSE_S3_ACCESS_KEY_ID", "LAKEHOUSE_S3_SECRET_ACCESS_KEY"}


def values() -> dict[str, Any]:
    loaded = yaml.safe_load(VALUES_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def env_names(items: list[dict[str, Any]] | None) -> set[str]:
    return {str(item["name"]) for item in items or []}


def test_values_pass_the_projects_yamllint() -> None:
    config = YamlLintConfig(file=str(ROOT / ".yamllint.yml"))
    problems = list(linter.run(VALUES_FILE.read_text(encoding="utf-8"), config, str(VALUES_FILE)))
    assert not problems, "\n".join(f"{p.line}:{p.column} {p.rule}: {p.desc}" for p in problems)


def test_the_makefile_lints_the_k8s_folder() -> None:
    lint = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "yamllint" in line)
    assert "infra/k8s" in lint.split()


def test_the_image_is_the_project_image_with_the_compose_tag_and_airflow_version() -> None:
    image = compose()["x-airflow-common"]["image"]
    name, _, tag = image.rpartition(":")
    chart = values()
    assert chart["images"]["airflow"]["repository"].endswith("/" + name)
    assert chart["images"]["airflow"]["tag"] == tag == chart["defaultAirflowTag"]
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements" / "constraints.txt").read_text(), re.M)
    assert pinned is not None
    assert chart["airflowVersion"] == pinned.group(1)
    for container in chart["apiServer"].get("extraInitContainers", []):
        assert container["image"] == f"{chart['images']['airflow']['repository']}:{tag}"


def test_the_user_and_dags_folder_are_the_images() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    chart = values()
    assert f"USER {chart['uid']}:{chart['gid']}" in dockerfile
    assert f"AIRFLOW__CORE__DAGS_FOLDER={chart['config']['core']['dags_folder']}" in dockerfile
    assert chart["dags"]["gitSync"]["enabled"] is False
    assert chart["dags"]["persistence"]["enabled"] is False


def test_executor_and_users_match_the_compose_stack() -> None:
    chart = values()
    assert chart["executor"] in {"CeleryExecutor", "LocalExecutor"}
    users = compose()["x-airflow-env"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert chart["config"]["core"]["simple_auth_manager_users"] == users
    assert chart["createUserJob"]["enabled"] is False


def test_secrets_are_referenced_by_name_only() -> None:
    chart = values()
    for literal in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert chart.get(literal) is None, f"{literal}: use the matching *SecretName"
    for reference in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert chart[reference]
    assert chart["data"]["metadataSecretName"] and "metadataConnection" not in chart["data"]
    plain = env_names(chart.get("env"))
    assert not {n for n in plain if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|AIRFLOW_CONN_", n)}, plain
    for component in COMPONENTS:
        for item in chart[component].get("env") or []:
            assert "value" not in item and "secretKeyRef" in item["valueFrom"], item["name"]


def test_the_lake_keys_reach_only_the_workers_and_the_triggerer() -> None:
    chart = values()
    holders = {component for component in COMPONENTS if env_names(chart[component].get("env")) >= LAKE_KEYS}
    assert holders == {"workers", "triggerer"}
    for component in set(COMPONENTS) - holders:
        assert not env_names(chart[component].get("env")) & LAKE_KEYS, component


def test_the_lake_settings_match_compose() -> None:
    plain = {item["name"]: item["value"] for item in values()["env"]}
    airflow_env = compose()["x-airflow-env"]
    for name in ("LAKEHOUSE_BACKEND", "LAKEHOUSE_S3_PATH_STYLE"):
        assert plain[name] == airflow_env[name]
    for layer in ("BRONZE", "SILVER", "GOLD"):
        assert (
            f"${{LAKEHOUSE_{layer}_BUCKET:-{plain[f'LAKEHOUSE_{layer}_BUCKET']}}}"
            == airflow_env[f"LAKEHOUSE_{layer}_BUCKET"]
        )


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_component_has_requests_and_limits(component: str) -> None:
    resources = values()[component]["resources"]
    assert set(resources) == {"requests", "limits"}
    for part in resources.values():
        assert {"cpu", "memory"} <= set(part)


def test_every_config_option_exists_in_airflow() -> None:
    from airflow.providers_manager import ProvidersManager  # noqa: PLC0415

    core = yaml.safe_load((importlib.resources.files("airflow") / "config_templates" / "config.yml").read_text())
    known = {section: set(body.get("options", {})) for section, body in core.items()}
    for _, provider_config in ProvidersManager().provider_configs:
        for section, body in provider_config.items():
            known.setdefault(section, set()).update(body.get("options", {}))
    for section, options in values()["config"].items():
        if section == "celery" and section not in known:
            pytest.skip("apache-airflow-providers-celery is not installed here (the image installs it)")
        unknown = set(options) - known.get(section, set())
        assert not unknown, f"[{section}] has no options {sorted(unknown)} in Airflow 3"
