#!/usr/bin/env python3
"""The one-shot ``airflow-init`` job of docker-compose.yml (``lakehouse-airflow-init`` in the image).

1. Checks that every user of ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS`` (``name:role,...``) has a
   password in the environment, ``AIRFLOW_<NAME>_PASSWORD`` (``admin`` -> ``AIRFLOW_ADMIN_PASSWORD``),
   before touching anything.
2. Runs ``airflow db migrate`` (idempotent: a migrated database is left as it is).
3. Writes the simple auth manager's passwords file (``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE``,
   JSON ``{"name": "password"}``) atomically with mode 0600, only when its content differs, so that the
   api-server never generates (and logs) a random password. The passwords come from ``.env`` at run
   time; none is baked into the image.

Prints user names and roles, never a password. Exit status 0 when done, 1 on a missing password or
a failed migration, 2 on a configuration error. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

USERS_VARIABLE = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
PASSWORDS_FILE_VARIABLE = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
MIGRATE = ("airflow", "db", "migrate")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class InitError(Exception):
    """The environment does not describe a usable Airflow set-up; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def password_variable(self) -> str:
        return f"AIRFLOW_{re.sub(r'[^A-Za-z0-9]', '_', self.name).upper()}_PASSWORD"


def parse_users(text: str) -> list[User]:
    """``admin:admin,bridge:op`` -> users, as the simple auth manager reads that option."""
    users: list[User] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, role = item.partition(":")
        if not sep or not name.strip() or not role.strip():
            raise InitError(f"{USERS_VARIABLE}: {item!r} is not name:role")
        users.append(User(name.strip(), role.strip().split(":")[0]))
    names = [user.name for user in users]
    if len(set(names)) != len(names):
        raise InitError(f"{USERS_VARIABLE} names a user twice")
    if not users:
        raise InitError(f"{USERS_VARIABLE} is empty: name at least one user (name:role)")
    return users


def passwords_from(environ: Mapping[str, str], users: Sequence[User]) -> dict[str, str]:
    """Each user's password from ``AIRFLOW_<NAME>_PASSWORD``; names every missing variable at once."""
    missing = [user.password_variable for user in users if not environ.get(user.password_variable)]
    if missing:
        raise InitError(f"no password for the Airflow users: set {', '.join(missing)} in .env", EXIT_FAILED)
    return {user.name: environ[user.password_variable] for user in users}


def write_passwords(path: Path, passwords: Mapping[str, str]) -> bool:
    """Write ``passwords`` to ``path`` (mode 0600, atomic); False when the file already holds them."""
    try:
        if json.loads(path.read_text(encoding="utf-8")) == dict(passwords):
            path.chmod(0o600)
            return False
    except (OSError, ValueError):
        pass  # missing, unreadable or not JSON: written anew
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".passwords-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(dict(passwords), out)
            out.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def run(
    environ: Mapping[str, str],
    migrate: Callable[[Sequence[str]], int],
    out: Callable[[str], None] = print,
) -> int:
    """The whole job; ``migrate`` runs a command and returns its exit status (a fake in the tests)."""
    users = parse_users(environ.get(USERS_VARIABLE, ""))
    passwords = passwords_from(environ, users)
    file_name = environ.get(PASSWORDS_FILE_VARIABLE, "")
    if not file_name:
        raise InitError(f"set {PASSWORDS_FILE_VARIABLE}: the api-server reads the users' passwords there")
    out(f"airflow-init: {' '.join(MIGRATE)}")
    status = migrate(MIGRATE)
    if status != 0:
        raise InitError(f"{' '.join(MIGRATE)} exited {status}", EXIT_FAILED)
    changed = write_passwords(Path(file_name), passwords)
    out(f"airflow-init: passwords file {file_name}: {'written' if changed else 'unchanged'}")
    for user in users:
        out(f"airflow-init: user {user.name} (role {user.role}), password from {user.password_variable}")
    return EXIT_OK


def _subprocess(command: Sequence[str]) -> int:
    return subprocess.run(list(command), check=False).returncode


def main(environ: Mapping[str, str] | None = None) -> int:
    try:
        return run(os.environ if environ is None else environ, _subprocess)
    except InitError as exc:
        print(f"airflow-init: {exc}", file=sys.stderr)
        return exc.status


if __name__ == "__main__":
    raise SystemExit(main())
