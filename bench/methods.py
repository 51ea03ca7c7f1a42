"""One benchmark conversion, run in its own process by :mod:`bench.run` so its peak RSS is its own.

``python -m bench.methods <duckdb|pandas|silverizer> --fmt csv --input FILE --output PATH``
converts one bench file to Parquet (zstd) and prints one JSON line on stdout:
``{"method", "rows_in", "rows_out", "rows_quarantined", "seconds", "timing"}``. ``seconds`` covers
the conversion only, after imports (``timing: in-process``), except for the silverizer run
through its CLI, where it is the CLI process's wall time, start-up included (``timing: process``).

The three methods:

``duckdb``
    ``COPY (SELECT casts, strptime(published_at) FROM read_csv/read_json(explicit columns))
    TO out.parquet (FORMAT parquet, COMPRESSION zstd)``: the practical speed limit.
``pandas``
    ``read_csv`` / ``read_json(lines=True)`` with default engines, ``to_datetime`` of
    published_at, ``to_parquet(compression="zstd")``: the naive way.
``pyarrow``
    A plain pyarrow stream with no contract: ``open_csv`` / ``open_json`` with the column types
    (published_at parsed by the reader), 8 MiB blocks, batches buffered into 128k-row row groups
    written by a ``ParquetWriter`` on a second thread. No quarantine, expectations,
    de-duplication or partitioning: the floor under any pyarrow-based converter, shown beside
    DuckDB so the silverizer's overhead can be read off the same run.
``silverizer``
    The bench file is hard-linked into a scratch lake's bronze as ``<source>/<file name>`` and
    converted in-process with ``lakehouse_silverizer.runner.Silverizer(settings, registry,
    options).run_key(source, key)`` (``--silverizer-mode api``, the default) or with
    ``python -m lakehouse_silverizer run <source> --key <key>`` (``--silverizer-mode cli``).
    Environment: ``LAKEHOUSE_BACKEND=local``, ``LAKEHOUSE_DATA_DIR=<scratch lake>``,
    ``LAKEHOUSE_CONTRACTS_DIR=bench/contracts``; ``LAKEHOUSE_SILVERIZER_*`` tuning passes through.
    The load must end ``loaded`` in silver's load history (the Delta table ``_load_history``:
    the ``LoadRecord`` the API returns, or ``lakehouse-silverize history --json``), or the run
    counts as failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lakehouse_common.exceptions import LakehouseError

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CONTRACTS_DIR = BENCH_DIR / "contracts"
METHODS = ("duckdb", "pandas", "silverizer", "pyarrow")
PUBLISHED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

# Bench columns and their DuckDB types as read (published_at is parsed by strptime afterwards).
READ_TYPES: dict[str, str] = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "area_id": "VARCHAR",
    "area_name": "VARCHAR",
    "salary_from": "DOUBLE",
    "salary_to": "DOUBLE",
    "currency": "VARCHAR",
    "gross": "BOOLEAN",
    "employer_id": "VARCHAR",
    "employer_name": "VARCHAR",
    "schedule": "VARCHAR",
    "experience": "VARCHAR",
    "published_at": "VARCHAR",
    "requirement": "VARCHAR",
    "responsibility": "VARCHAR",
}
STRING_COLUMNS = [name for name, kind in READ_TYPES.items() if kind == "VARCHAR" and name != "published_at"]


class BenchMethodError(Exception):
    """A conversion could not run."""


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_sql(fmt: str, source: Path, target: Path) -> str:
    """The DuckDB baseline: explicit column types, strptime, one zstd Parquet file."""
    columns = "{" + ", ".join(f"{_sql_literal(k)}: {_sql_literal(v)}" for k, v in READ_TYPES.items()) + "}"
    if fmt == "csv":
        options = "header = true, quote = '\"', escape = '\"'"
        reader = f"read_csv({_sql_literal(str(source))}, {options}, columns = {columns})"
    elif fmt == "ndjson":
        reader = f"read_json({_sql_literal(str(source))}, format = 'newline_delimited', columns = {columns})"
    else:
        raise BenchMethodError(f"unknown format {fmt!r}")
    select = ", ".join(
        f"strptime(published_at, '{PUBLISHED_AT_FORMAT}') AS published_at" if name == "published_at" else name
        for name in READ_TYPES
    )
    return f"COPY (SELECT {select} FROM {reader}) TO {_sql_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)"


def run_duckdb(fmt: str, source: Path, target: Path) -> dict[str, Any]:
    import duckdb  # noqa: PLC0415 - each worker imports only its own engine (its RSS stays its own)

    con = duckdb.connect()
    started = time.perf_counter()
    result = con.execute(duckdb_sql(fmt, source, target)).fetchone()
    seconds = time.perf_counter() - started
    con.close()
    rows = int(result[0]) if result else -1
    return {"rows_in": rows, "rows_out": rows, "seconds": seconds, "timing": "in-process"}


def run_pandas(fmt: str, source: Path, target: Path) -> dict[str, Any]:
    import pandas as pd  # noqa: PLC0415 - each worker imports only its own engine

    started = time.perf_counter()
    dtypes = dict.fromkeys(STRING_COLUMNS, "str")
    if fmt == "csv":
        frame = pd.read_csv(source, dtype=dtypes)
    elif fmt == "ndjson":
        frame = pd.read_json(source, lines=True, dtype=dtypes)  # parses *_at columns itself
    else:
        raise BenchMethodError(f"unknown format {fmt!r}")
    if not isinstance(frame["published_at"].dtype, pd.DatetimeTZDtype):
        frame["published_at"] = pd.to_datetime(frame["published_at"], format=PUBLISHED_AT_FORMAT)
    frame.to_parquet(target, compression="zstd", index=False)
    seconds = time.perf_counter() - started
    return {"rows_in": len(frame), "rows_out": len(frame), "seconds": seconds, "timing": "in-process"}


def run_pyarrow(fmt: str, source: Path, target: Path) -> dict[str, Any]:
    import queue  # noqa: PLC0415 - each worker imports only its own engine
    import threading  # noqa: PLC0415

    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415
    import pyarrow.csv as pacsv  # noqa: PLC0415
    import pyarrow.json as pajson  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    arrow = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}
    types = {name: arrow[kind] for name, kind in READ_TYPES.items()}
    started = time.perf_counter()
    reader: Any
    if fmt == "csv":
        types["published_at"] = pa.timestamp("s", tz="UTC")
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=8 << 20),
            convert_options=pacsv.ConvertOptions(column_types=types, timestamp_parsers=[PUBLISHED_AT_FORMAT]),
        )
    elif fmt == "ndjson":
        reader = pajson.open_json(
            source,
            read_options=pajson.ReadOptions(block_size=8 << 20),
            parse_options=pajson.ParseOptions(explicit_schema=pa.schema(types)),
        )
    else:
        raise BenchMethodError(f"unknown format {fmt!r}")
    batches: queue.Queue[Any] = queue.Queue(maxsize=4)
    failure: list[BaseException] = []
    rows = 0

    def write() -> None:
        writer: pq.ParquetWriter | None = None
        pending: list[Any] = []
        batch: Any = True
        try:
            while True:
                batch = batches.get()
                if batch is not None:
                    pending.append(batch)
                if pending and (batch is None or sum(b.num_rows for b in pending) >= 128 * 1024):
                    table = pa.Table.from_batches(pending)
                    if fmt == "ndjson":
                        table = table.set_column(
                            table.schema.get_field_index("published_at"),
                            "published_at",
                            pc.strptime(table.column("published_at"), PUBLISHED_AT_FORMAT, "s"),
                        )
                    writer = writer or pq.ParquetWriter(target, table.schema, compression="zstd")
                    writer.write_table(table, row_group_size=128 * 1024)
                    pending = []
                if batch is None:
                    break
        except BaseException as exc:
            failure.append(exc)
            while batch is not None:  # keep the reader from blocking on a full queue
                batch = batches.get()
        finally:
            if writer is not None:
                writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    for batch in reader:
        rows += batch.num_rows
        batches.put(batch)
    batches.put(None)
    thread.join()
    if failure:
        raise BenchMethodError(f"pyarrow stream failed: {failure[0]}")
    seconds = time.perf_counter() - started
    return {"rows_in": rows, "rows_out": rows, "seconds": seconds, "timing": "in-process"}


def prepare_lake(lake: Path, fmt: str, source: Path) -> tuple[str, str]:
    """A fresh scratch lake whose bronze holds ``source`` (hard-linked); returns (source name, key)."""
    if lake.exists():
        shutil.rmtree(lake)
    name = f"bench_{fmt}"
    key = f"{name}/{source.name}"
    bronze = lake / "bronze" / key
    bronze.parent.mkdir(parents=True)
    try:
        os.link(source, bronze)
    except OSError:
        shutil.copyfile(source, bronze)
    return name, key


def silverizer_env(lake: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LAKEHOUSE_BACKEND": "local",
        "LAKEHOUSE_DATA_DIR": str(lake),
        "LAKEHOUSE_CONTRACTS_DIR": str(CONTRACTS_DIR),
        "LAKEHOUSE_SCRATCH_DIR": str(lake / ".scratch"),
    }


def _history_report(row: dict[str, Any]) -> dict[str, Any]:
    """The counts of one load-history row (a ``LoadRecord`` as a dict, or a ``history --json`` row)."""
    if row.get("status") != "loaded":
        key = row.get("key", row.get("bronze_key"))
        raise BenchMethodError(f"the silverizer left {key} {row.get('status')}: {row.get('reason')}")
    return {
        "rows_in": row.get("rows_in"),
        "rows_out": row.get("rows_out"),
        "rows_quarantined": row.get("rows_quarantined"),
    }


def run_silverizer(fmt: str, source: Path, lake: Path, mode: str) -> dict[str, Any]:
    name, key = prepare_lake(lake, fmt, source)
    env = silverizer_env(lake)
    if mode == "cli":
        command = [sys.executable, "-m", "lakehouse_silverizer", "run", name, "--key", key]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=REPO_DIR, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise BenchMethodError(
                f"{' '.join(command)} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-2000:]}"
            )
        history = subprocess.run(
            [sys.executable, "-m", "lakehouse_silverizer", "history", name, "--json", "--limit", "0"],
            env=env, cwd=REPO_DIR, capture_output=True, text=True, check=False,
        )  # fmt: skip
        rows = [json.loads(line) for line in history.stdout.splitlines() if line.startswith("{")]
        row = next((r for r in reversed(rows) if r.get("bronze_key") == key), None)
        if row is None:
            raise BenchMethodError(f"no load-history row for {key} after the run: {history.stderr.strip()[-2000:]}")
        return {**_history_report(row), "seconds": seconds, "timing": "process"}
    if mode == "api":
        os.environ.update(env)
        from lakehouse_common.contracts import ContractRegistry  # noqa: PLC0415 - only the api mode needs them
        from lakehouse_common.settings import get_settings  # noqa: PLC0415
        from lakehouse_silverizer.runner import Silverizer  # noqa: PLC0415
        from lakehouse_silverizer.settings import get_settings as get_silverizer_settings  # noqa: PLC0415

        settings = get_settings()
        silverizer = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir), get_silverizer_settings())
        started = time.perf_counter()
        record = silverizer.run_key(name, key)
        seconds = time.perf_counter() - started
        return {**_history_report(dataclasses.asdict(record)), "seconds": seconds, "timing": "in-process"}
    raise BenchMethodError(f"unknown silverizer mode {mode!r}; valid modes: cli, api")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.methods", description="Run one benchmark conversion.")
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("--fmt", choices=("csv", "ndjson"), required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="Parquet file, or the scratch lake (silverizer)")
    parser.add_argument("--silverizer-mode", choices=("cli", "api"), default="api")
    args = parser.parse_args(argv)
    try:
        if args.method == "duckdb":
            result = run_duckdb(args.fmt, args.input, args.output)
        elif args.method == "pandas":
            result = run_pandas(args.fmt, args.input, args.output)
        elif args.method == "pyarrow":
            result = run_pyarrow(args.fmt, args.input, args.output)
        else:
            result = run_silverizer(args.fmt, args.input, args.output, args.silverizer_mode)
    except (BenchMethodError, ImportError, LakehouseError) as exc:
        print(f"bench.methods {args.method}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"method": args.method, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
