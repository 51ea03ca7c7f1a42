"""Shared by the pipeline tests: the real CLIs as subprocesses, DuckDB with the lake's extensions
loaded offline, and the names of every silver table the contracts declare."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import duckdb_extensions

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_silverizer.commits import table_specs

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def run(command: list[str], env: dict[str, str]) -> str:
    """One of the project's console scripts, as a user runs it; fails the test on a non-zero exit."""
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def duckdb_with(*extensions: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB session with ``extensions`` loaded (from their PyPI wheels when not installed: offline)."""
    con = duckdb.connect()
    for name in extensions:
        try:
            con.execute(f"LOAD {name}")
        except duckdb.Error:
            duckdb_extensions.import_extension(name, con=con)
            con.execute(f"LOAD {name}")
    return con


def silver_table_names() -> list[str]:
    """The bookkeeping tables, then every table of every declared contract (children included)."""
    registry = ContractRegistry.from_dir(REPO / "contracts")
    names = [tables.LOAD_HISTORY, tables.QUARANTINE]
    return names + [spec.name for source in registry.names() for spec in table_specs(registry.get(source))]
