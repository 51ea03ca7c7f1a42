#!/usr/bin/env python3
"""Refuse to start the stack with a missing, placeholder or well-known secret (``make up`` runs it).

Checks the variables that ``docker-compose.yml`` interpolates, with the values compose would use
(the shell's environment first, then ``.env``):

- every ``${VAR:?...}`` is set and not empty;
- no secret (a name with PASSWORD, SECRET, TOKEN, FERNET, JWT, PRIVATE_KEY or DSN) is still a
  ``change-me`` placeholder, a well-known default (``minioadmin``, ``airflow``, ``admin``,
  ``password``...), shorter than 12 characters, or equal to its own user name (``airflow``/``airflow``,
  ``AIRFLOW_ADMIN_PASSWORD=admin``);
- a Fernet key (a name with FERNET) is 32 bytes of URL-safe base64, as Airflow requires;
- a value compose puts inside a URL or a JSON string (``postgresql://${POSTGRES_USER}:...``,
  ``"login": "${...}"``) holds only URL-safe characters (``A-Z a-z 0-9 - _ . ~``);
- MinIO's root user is not ``minioadmin``;
- ``AIRFLOW_EXECUTOR`` is ``LocalExecutor`` or ``CeleryExecutor``, the latter only with the ``celery``
  profile in ``COMPOSE_PROFILES`` (``make up`` passes no ``--profile``: without workers, tasks would
  wait in the queue forever);
- ``AIRFLOW_STATSD_ON`` is true only with the ``monitoring`` profile in ``COMPOSE_PROFILES`` (Airflow's
  StatsD host, ``statsd-exporter``, exists only there).

Standard library only, so it runs with any ``python3`` before the virtualenv exists. Secret values
are never printed. Exit status 0 when the environment is usable, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GENERATE_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
FERNET_HINT = (
    "generate one with: python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)
FERNET_NAME = re.compile(r"FERNET")
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]*")
EXECUTORS = frozenset({"LocalExecutor", "CeleryExecutor"})
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|JWT|PRIVATE_KEY|DSN")
TRUE_VALUES = frozenset({"true", "1", "yes", "on", "t", "y"})
MIN_SECRET_LENGTH = 12
WELL_KNOWN = frozenset(
    {
        "minioadmin",
        "minio123",
        "airflow",
        "admin",
        "admin123",
        "administrator",
        "airflow123",
        "password",
        "passw0rd",
        "postgres",
        "secret",
        "changeme",
        "change-me",
        "root",
        "test",
        "example",
        "default",
        "12345678",
        "123456789",
        "1234567890",
    }
)
DEFAULT_USERS = {"MINIO_ROOT_USER": frozenset({"minioadmin"})}
# ${VAR}, ${VAR:-default}, ${VAR:?message} and $VAR, but not the escaped $${VAR} or $$VAR.
REFERENCE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Reference:
    """A variable compose interpolates; ``required`` when written ``${VAR:?...}`` or ``${VAR?...}``,
    ``embedded`` when some use puts it inside a URL (after ``://``) or a JSON string (``"${VAR}"``)."""

    name: str
    required: bool
    embedded: bool = False


def parse_env_file(text: str) -> dict[str, str]:
    """``NAME=value`` lines as compose reads them: comments, blank lines, ``export`` and quotes allowed."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = re.sub(r"\s+#.*$", "", value)
        values[name.strip()] = value
    return values


def compose_references(text: str) -> list[Reference]:
    """The variables a compose file interpolates (comments skipped), each once, required if any use is."""
    required: dict[str, bool] = {}
    embedded: dict[str, bool] = {}
    for raw in text.splitlines():
        if raw.strip().startswith("#"):
            continue
        line = re.sub(r"\s+#.*$", "", raw)
        for match in REFERENCE.finditer(line):
            name = match.group(1) or match.group(3)
            modifier = match.group(2) or ""
            required[name] = required.get(name, False) or modifier.startswith((":?", "?"))
            inside = "://" in line[: match.start()] or line[: match.start()].endswith('"')
            embedded[name] = embedded.get(name, False) or inside
    return [Reference(name, is_required, embedded[name]) for name, is_required in required.items()]


def _is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return "change-me" in lowered or "changeme" in lowered or (lowered.startswith("<") and lowered.endswith(">"))


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32 and len(value) == 44
    except (ValueError, binascii.Error):
        return False


def _names_itself(name: str, value: str) -> bool:
    """``AIRFLOW_ADMIN_PASSWORD=admin``: the value is one of the words of its own name."""
    return value.lower() in {word.lower() for word in name.split("_")}


def _user_of(name: str, values: Mapping[str, str]) -> str | None:
    """``POSTGRES_USER`` for ``POSTGRES_PASSWORD``, ``MINIO_ROOT_USER`` for ``MINIO_ROOT_PASSWORD``..."""
    for secret_word in ("PASSWORD", "SECRET_KEY", "SECRET"):
        if secret_word in name:
            for user_word in ("USER", "ACCESS_KEY", "USERNAME"):
                candidate = name.replace(secret_word, user_word)
                if candidate != name and candidate in values:
                    return values[candidate]
    return None


def problems(values: Mapping[str, str], references: Iterable[Reference]) -> list[str]:
    """What is wrong with ``values`` for these references, one message per variable (no secret shown)."""
    found: list[str] = []
    for reference in references:
        name = reference.name
        value = values.get(name, "")
        if not value:
            if reference.required:
                found.append(f"{name} is not set: docker-compose.yml requires it")
            continue
        if name in DEFAULT_USERS and value.lower() in DEFAULT_USERS[name]:
            found.append(f"{name} is the well-known default {value!r}: choose another user name")
        if reference.embedded and not _is_placeholder(value) and not URL_SAFE.fullmatch(value):
            found.append(
                f"{name} holds characters that break the URL or JSON compose puts it in: "
                "use letters, digits and - _ . ~ only"
            )
        if not SECRET_NAME.search(name):
            continue
        if _is_placeholder(value):
            found.append(f"{name} is still the .env.example placeholder")
        elif value.lower() in WELL_KNOWN:
            found.append(f"{name} is a well-known default password")
        elif value == _user_of(name, values) or _names_itself(name, value):
            found.append(f"{name} equals its user name")
        elif FERNET_NAME.search(name) and not _is_fernet_key(value):
            found.append(f"{name} is not a Fernet key (32 random bytes, URL-safe base64): {FERNET_HINT}")
        elif len(value) < MIN_SECRET_LENGTH:
            found.append(f"{name} is shorter than {MIN_SECRET_LENGTH} characters")
    names = {reference.name for reference in references}
    if "AIRFLOW_EXECUTOR" in names:
        found.extend(_executor_problems(values))
    if "AIRFLOW_STATSD_ON" in names:
        found.extend(_statsd_problems(values))
    return found


def _profiles(values: Mapping[str, str]) -> set[str]:
    return {profile.strip() for profile in values.get("COMPOSE_PROFILES", "").split(",")}


def _statsd_problems(values: Mapping[str, str]) -> list[str]:
    if values.get("AIRFLOW_STATSD_ON", "").strip().lower() in TRUE_VALUES and "monitoring" not in _profiles(values):
        return [
            "AIRFLOW_STATSD_ON=True needs the monitoring profile (statsd-exporter): set "
            "COMPOSE_PROFILES=monitoring too (comma-separated with others), or AIRFLOW_STATSD_ON=False"
        ]
    return []


def _executor_problems(values: Mapping[str, str]) -> list[str]:
    executor = values.get("AIRFLOW_EXECUTOR") or "LocalExecutor"
    if executor not in EXECUTORS:
        return [f"AIRFLOW_EXECUTOR must be one of {', '.join(sorted(EXECUTORS))}"]
    if executor == "CeleryExecutor" and "celery" not in _profiles(values):
        return [
            "AIRFLOW_EXECUTOR=CeleryExecutor needs the celery profile (Redis and the workers): set "
            "COMPOSE_PROFILES=celery too, or run `docker compose --profile celery up -d`"
        ]
    return []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="check_env.py", description="Check .env before `docker compose up` (make up runs this)."
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    parser.add_argument("--compose-file", type=Path, default=Path("docker-compose.yml"))
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    if not args.env_file.is_file():
        print(
            f"check-env: {args.env_file} does not exist: run `cp .env.example {args.env_file}` and replace every "
            f"change-me-... value ({GENERATE_HINT})",
            file=sys.stderr,
        )
        return 1
    values = parse_env_file(args.env_file.read_text(encoding="utf-8"))
    references = compose_references(args.compose_file.read_text(encoding="utf-8"))
    # Compose prefers the shell's environment to .env for the variables it interpolates, and for
    # its own COMPOSE_PROFILES.
    wanted = {ref.name for ref in references} | {"COMPOSE_PROFILES"}
    values.update({name: environ[name] for name in wanted if name in environ})
    found = problems(values, references)
    if found:
        print(f"check-env: {args.env_file} is not ready for `docker compose up`:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        print(f"Set real values in {args.env_file}; {GENERATE_HINT}", file=sys.stderr)
        if any(FERNET_NAME.search(problem.split(" ", 1)[0]) for problem in found):
            print(f"For the Fernet key, {FERNET_HINT}", file=sys.stderr)
        return 1
    print(f"check-env: {args.env_file}: {len(references)} compose variables checked, no placeholder or default secret")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
