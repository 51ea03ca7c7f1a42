"""Run the real dbt CLI in a subprocess, configured only through environment variables.

The dbt profile (``dbt/profiles.yml``) reads the variables that :func:`dbt_env` derives from
:class:`~lakehouse_common.settings.Settings`; dbt runs in its own process, so nothing of dbt's
global state leaks into the caller, and secrets travel as ``DBT_ENV_SECRET_*`` variables, which
dbt scrubs from its logs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import boto3
import duckdb
import duckdb_extensions

from lakehouse_common.exceptions import SettingsError
from lakehouse_common.settings import Settings
from lakehouse_gold.exceptions import DbtInvocationError, FailedNode

log = logging.getLogger(__name__)
dbt_log = logging.getLogger("lakehouse_gold.dbt")

# Statuses in dbt's run_results.json that mean "this node did not pass".
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})

# Variables read by dbt/profiles.yml and dbt/models/staging/_silver__sources.yml.
ENV_TARGET = "LAKEHOUSE_DBT_TARGET"
ENV_DUCKDB_PATH = "LAKEHOUSE_DBT_DUCKDB_PATH"
ENV_SILVER_ROOT = "LAKEHOUSE_DBT_SILVER_ROOT"
ENV_EXTERNAL_ROOT = "LAKEHOUSE_DBT_EXTERNAL_ROOT"
ENV_S3_ENDPOINT = "LAKEHOUSE_DBT_S3_ENDPOINT"
ENV_S3_REGION = "LAKEHOUSE_DBT_S3_REGION"
ENV_S3_URL_STYLE = "LAKEHOUSE_DBT_S3_URL_STYLE"
ENV_S3_USE_SSL = "LAKEHOUSE_DBT_S3_USE_SSL"
ENV_S3_KEY_ID = "DBT_ENV_SECRET_S3_KEY_ID"
ENV_S3_SECRET = "DBT_ENV_SECRET_S3_SECRET"
ENV_S3_SESSION_TOKEN = "DBT_ENV_SECRET_S3_SESSION_TOKEN"
AWS_DEFAULT_ENDPOINT = "s3.amazonaws.com"


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    status: str
    message: str

    @property
    def resource_type(self) -> str:
        return self.unique_id.split(".", 1)[0]


@dataclass(frozen=True)
class DbtRunResult:
    """What one dbt invocation did, from its exit code and ``run_results.json``."""

    returncode: int
    nodes: tuple[NodeResult, ...]
    run_dir: Path

    @property
    def failed(self) -> list[FailedNode]:
        return [FailedNode(n.unique_id, n.status, n.message) for n in self.nodes if n.status in FAILED_STATUSES]

    @property
    def skipped(self) -> list[str]:
        return [n.unique_id for n in self.nodes if n.status == "skipped"]

    @property
    def warned(self) -> list[str]:
        return [n.unique_id for n in self.nodes if n.status == "warn"]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failed and not self.skipped and bool(self.nodes)

    def status_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(n.status for n in self.nodes).items()))


@dataclass(frozen=True)
class S3Credentials:
    key_id: str
    secret: str
    session_token: str | None = None


def resolve_s3_credentials(settings: Settings) -> S3Credentials:
    """The lake's S3 keys from the settings, else from the default AWS credential chain."""
    if settings.s3_access_key_id is not None and settings.s3_secret_access_key is not None:
        return S3Credentials(
            settings.s3_access_key_id.get_secret_value(), settings.s3_secret_access_key.get_secret_value()
        )
    found = boto3.session.Session(region_name=settings.s3_region).get_credentials()
    if found is None:
        raise SettingsError(
            "no S3 credentials for dbt: set LAKEHOUSE_S3_ACCESS_KEY_ID and LAKEHOUSE_S3_SECRET_ACCESS_KEY, "
            "or provide credentials through the default AWS chain (environment, profile, instance role)"
        )
    frozen = found.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise SettingsError("the default AWS credential chain returned incomplete S3 credentials")
    return S3Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def s3_endpoint(settings: Settings) -> tuple[str, bool]:
    """``(host[:port], use_ssl)`` for DuckDB from ``LAKEHOUSE_S3_ENDPOINT_URL``; AWS when unset."""
    if settings.s3_endpoint_url is None:
        return AWS_DEFAULT_ENDPOINT, True
    parsed = urlparse(settings.s3_endpoint_url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise SettingsError(
            f"LAKEHOUSE_S3_ENDPOINT_URL must look like http://host:port or https://host, "
            f"got {settings.s3_endpoint_url!r}"
        )
    return parsed.netloc, parsed.scheme == "https"


def dbt_env(
    settings: Settings, *, external_root: str, duckdb_path: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a dbt process: ``base`` (the caller's environment) plus the profile's variables."""
    env = dict(os.environ if base is None else base)
    # A stale value inherited from the caller must never reach dbt.
    for name in [k for k in env if k.startswith(("LAKEHOUSE_DBT_S3_", "DBT_ENV_SECRET_S3_"))]:
        del env[name]
    env.update(
        {
            ENV_TARGET: settings.backend,
            ENV_DUCKDB_PATH: str(duckdb_path),
            ENV_SILVER_ROOT: settings.layer_uri("silver"),
            ENV_EXTERNAL_ROOT: external_root,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    if settings.backend == "s3":
        endpoint, use_ssl = s3_endpoint(settings)
        creds = resolve_s3_credentials(settings)
        env.update(
            {
                ENV_S3_ENDPOINT: endpoint,
                ENV_S3_REGION: settings.s3_region,
                ENV_S3_URL_STYLE: "path" if settings.s3_path_style else "vhost",
                ENV_S3_USE_SSL: "true" if use_ssl else "false",
                ENV_S3_KEY_ID: creds.key_id,
                ENV_S3_SECRET: creds.secret,
                ENV_S3_SESSION_TOKEN: creds.session_token or "",
            }
        )
    return env


# DuckDB extensions the dbt profile loads, per backend (dbt/profiles.yml): silver is Delta tables.
PROFILE_EXTENSIONS: dict[str, tuple[str, ...]] = {"local": ("delta",), "s3": ("httpfs", "delta")}


def ensure_extensions(names: Sequence[str]) -> None:
    """Install DuckDB extensions from their PyPI wheels (``duckdb-extension-<name>``) when they do
    not load yet: DuckDB would otherwise download them, and dbt-duckdb's ``INSTALL`` works offline
    only once the binary is in DuckDB's extension directory."""
    con = duckdb.connect()
    try:
        for name in names:
            try:
                con.execute(f"LOAD {name}")
                continue
            except duckdb.Error:
                log.info("installing the DuckDB %s extension from the duckdb-extension-%s wheel", name, name)
            duckdb_extensions.import_extension(name, con=con)
            con.execute(f"LOAD {name}")
    finally:
        con.close()


def project_dir(settings: Settings) -> Path:
    path = settings.dbt_project_dir.resolve()
    if not (path / "dbt_project.yml").is_file() or not (path / "profiles.yml").is_file():
        raise SettingsError(
            f"no dbt project (dbt_project.yml and profiles.yml) in {path}; set LAKEHOUSE_DBT_PROJECT_DIR"
        )
    return path


def parse_run_results(path: Path) -> tuple[NodeResult, ...]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple(
        NodeResult(unique_id=str(r["unique_id"]), status=str(r["status"]), message=str(r.get("message") or ""))
        for r in data.get("results", [])
    )


def run_dbt(
    settings: Settings,
    *,
    external_root: str,
    run_dir: Path,
    args: Sequence[str] = ("build",),
) -> DbtRunResult:
    """Run ``dbt <args>`` on the project; its target, logs and DuckDB file live in ``run_dir``.

    dbt's output is streamed to the ``lakehouse_gold.dbt`` logger line by line. Raises
    :class:`DbtInvocationError` when dbt stops before running any node; node failures are
    returned in the result, for the caller to decide.
    """
    project = project_dir(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    target, logs = run_dir / "target", run_dir / "logs"
    env = dbt_env(settings, external_root=external_root, duckdb_path=run_dir / "lakehouse.duckdb")
    command = [
        sys.executable,
        "-m",
        "dbt.cli.main",
        *args,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target),
        "--log-path",
        str(logs),
    ]
    log.info("running dbt %s (target %s, marts to %s)", " ".join(args), settings.backend, external_root)
    tail: deque[str] = deque(maxlen=30)
    with subprocess.Popen(
        command,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            text = line.rstrip()
            tail.append(text)
            dbt_log.info("%s", text)
        returncode = proc.wait()
    results_file = target / "run_results.json"
    nodes = parse_run_results(results_file) if results_file.is_file() else ()
    if not nodes and returncode != 0:
        raise DbtInvocationError(returncode, "\n".join(tail))
    result = DbtRunResult(returncode=returncode, nodes=nodes, run_dir=run_dir)
    log.info("dbt finished with code %d: %s", returncode, result.status_counts())
    return result
