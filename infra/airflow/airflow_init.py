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
4. When ``LAKEHOUSE_SERVING_DATABASE`` names one (compose: ``lakehouse``), creates that database on the
   metadata database's server, with the metadata connection, if it does not exist yet: the BI
   serving load (``LAKEHOUSE_SERVING_POSTGRES_DSN``) writes its schema there. Empty: skipped.
5. Unpauses the project's DAGs (``lakehouse-pipeline unpause``: the DAG ids of the DagBag of
   ``AIRFLOW__CORE__DAGS_FOLDER``, nothing else). A DAG the metadata DB does not hold yet is created
   unpaused by the dag-processor (``AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False``); one
   registered paused before (an older set-up, a pause in the UI) is unpaused on every ``up``.

Prints user names and roles, never a password. Exit status 0 when done, 1 on a missing password, a
failed migration, a failed database creation or a failed unpause, 2 on a configuration error. Standard library only,
but for step 4, which uses the image's SQLAlchemy and psycopg2 (imported only then).
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
DATABASE_URL_VARIABLE = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
SERVING_DATABASE_VARIABLE = "LAKEHOUSE_SERVING_DATABASE"
# A plain lower-case Postgres identifier: safe to quote into CREATE DATABASE as it is.
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DAGS_FOLDER_VARIABLE = "AIRFLOW__CORE__DAGS_FOLDER"
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


def serving_database(environ: Mapping[str, str]) -> str | None:
    """The database to create for the serving load, or None when ``LAKEHOUSE_SERVING_DATABASE`` is empty."""
    name = environ.get(SERVING_DATABASE_VARIABLE, "").strip()
    if not name:
        return None
    if not DATABASE_NAME.fullmatch(name):
        raise InitError(
            f"{SERVING_DATABASE_VARIABLE} must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)"
        )
    if not environ.get(DATABASE_URL_VARIABLE, "").startswith("postgresql"):
        raise InitError(f"{SERVING_DATABASE_VARIABLE} needs a Postgres {DATABASE_URL_VARIABLE} to create it with")
    return name


def create_database(url: str, name: str) -> bool:
    """Create database ``name`` on the server of ``url`` unless it exists; True when created."""
    import sqlalchemy  # noqa: PLC0415 - in the image (Airflow's); only this step needs it

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if exists:
                return False
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))  # name matched DATABASE_NAME
            return True
    finally:
        engine.dispose()


def unpause_command(environ: Mapping[str, str]) -> tuple[str, ...]:
    """``lakehouse-pipeline unpause`` on the image's DAG folder (the orchestration package's CLI)."""
    folder = environ.get(DAGS_FOLDER_VARIABLE, "").strip()
    return ("lakehouse-pipeline", *(("--dags-folder", folder) if folder else ()), "unpause")


def run(
    environ: Mapping[str, str],
    execute: Callable[[Sequence[str]], int],
    out: Callable[[str], None] = print,
    create: Callable[[str, str], bool] = create_database,
) -> int:
    """The whole job; ``execute`` runs a command (the migration, the unpause) and returns its exit
    status, ``create`` creates a database (fakes in the tests)."""
    users = parse_users(environ.get(USERS_VARIABLE, ""))
    passwords = passwords_from(environ, users)
    file_name = environ.get(PASSWORDS_FILE_VARIABLE, "")
    if not file_name:
        raise InitError(f"set {PASSWORDS_FILE_VARIABLE}: the api-server reads the users' passwords there")
    database = serving_database(environ)
    out(f"airflow-init: {' '.join(MIGRATE)}")
    status = execute(MIGRATE)
    if status != 0:
        raise InitError(f"{' '.join(MIGRATE)} exited {status}", EXIT_FAILED)
    changed = write_passwords(Path(file_name), passwords)
    out(f"airflow-init: passwords file {file_name}: {'written' if changed else 'unchanged'}")
    for user in users:
        out(f"airflow-init: user {user.name} (role {user.role}), password from {user.password_variable}")
    if database is not None:
        try:
            created = create(environ[DATABASE_URL_VARIABLE], database)
        except Exception as exc:
            # Any driver error; its first line (the server's reason), never the URL, which holds the password.
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise InitError(f"could not create the serving database {database}: {reason}", EXIT_FAILED) from exc
        out(f"airflow-init: serving database {database}: {'created' if created else 'exists'}")
    unpause = unpause_command(environ)
    out(f"airflow-init: {' '.join(unpause)}")
    status = execute(unpause)
    if status != 0:
        raise InitError(f"{' '.join(unpause)} exited {status} (do the DAGs import?)", EXIT_FAILED)
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
