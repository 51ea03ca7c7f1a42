"""``lakehouse-ingest``: land source payloads in bronze.

``lakehouse-ingest sample`` writes the deterministic sample (see :mod:`lakehouse_ingestor.sample`)
into the bronze layer configured by ``LAKEHOUSE_*`` and prints a one-screen summary. Rerunning it
writes nothing new: the keys are content-addressed and the writes create-if-absent.

``run``, ``serve``, ``sources`` and ``import`` fetch the sources their contracts' ``ingest``
sections describe (see :mod:`lakehouse_ingestor.commands`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TextIO

from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.settings import get_settings as get_lake_settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor import commands as fetching
from lakehouse_ingestor.sample import Sample, SampleConfig, generate_sample
from lakehouse_ingestor.sample_api import serve_until_signalled, start_sample_api
from lakehouse_ingestor.settings import HH_MAX_PER_PAGE
from lakehouse_ingestor.settings import get_settings as get_ingestor_settings
from lakehouse_ingestor.writers import BronzeWriter, WriteResult

EXIT_OK = 0
EXIT_ERROR = 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _per_page(text: str) -> int:
    value = _positive(text)
    if value > HH_MAX_PER_PAGE:
        raise argparse.ArgumentTypeError(f"hh.ru allows at most {HH_MAX_PER_PAGE} items per page, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse-ingest", description="Land source payloads in the bronze layer.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sample = commands.add_parser(
        "sample",
        help="write the deterministic hh.ru-shaped sample into bronze",
        description="Write the deterministic sample (vacancies, vacancy_details, currency_rates) into bronze. "
        "Defaults come from LAKEHOUSE_INGESTOR_SAMPLE_*; the flags override them.",
    )
    sample.add_argument("--seed", type=int, help="seed of the generator")
    sample.add_argument("--size", type=_positive, help="number of vacancies")
    sample.add_argument("--start", type=date.fromisoformat, help="first publication day, YYYY-MM-DD")
    sample.add_argument("--days", type=_positive, help="length of the publication period in days")
    sample.add_argument("--window-days", type=_positive, help="length of one search date window in days")
    sample.add_argument("--per-page", type=_per_page, help=f"items per search page (at most {HH_MAX_PER_PAGE})")
    sample.add_argument(
        "--bad-records",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="inject the documented bad records (default: on)",
    )
    sample.add_argument("--dry-run", action="store_true", help="generate and summarise, write nothing")
    sample_api = commands.add_parser(
        "sample-api",
        help="serve the sample over HTTP in hh.ru's shapes (for make demo and by hand)",
        description="Serve the deterministic sample as an hh.ru-style API: GET /vacancies (2000-result cap), "
        "/vacancies/{id}, /rates.csv, /rates.json, with occasional 429/500/503 so retries show. "
        "Defaults come from LAKEHOUSE_INGESTOR_SAMPLE_* and LAKEHOUSE_INGESTOR_SAMPLE_API_*; the flags override them. "
        "Runs until SIGTERM or Ctrl-C.",
    )
    sample_api.add_argument("--host", help="address to bind (default 127.0.0.1)")
    sample_api.add_argument("--port", type=int, help="port to bind, 0 picks a free one (default 8765)")
    sample_api.add_argument("--fault-rate", type=float, help="share of requests failed once, 0 disables (default 0.01)")
    sample_api.add_argument("--ready-file", type=Path, help="write the URL here once listening (removed on exit)")
    sample_api.add_argument("--seed", type=int, help="seed of the generator")
    sample_api.add_argument("--size", type=_positive, help="number of vacancies")
    sample_api.add_argument("--start", type=date.fromisoformat, help="first publication day, YYYY-MM-DD")
    sample_api.add_argument("--days", type=_positive, help="length of the publication period in days")
    sample_api.add_argument(
        "--bad-records", action=argparse.BooleanOptionalAction, default=None, help="inject bad records (default: on)"
    )
    fetching.add_commands(commands)
    return parser


def _config(args: argparse.Namespace) -> SampleConfig:
    config = SampleConfig.from_settings(get_ingestor_settings())
    overrides = {
        "seed": args.seed,
        "size": args.size,
        "start": args.start,
        "days": args.days,
        "window_days": args.window_days,
        "per_page": args.per_page,
        "bad_records": args.bad_records,
    }
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} MB"


def print_summary(
    sample: Sample, results: Sequence[WriteResult] | None, target: str, seconds: float, out: TextIO
) -> None:
    cfg = sample.config
    out.write(f"sample → {target}\n")
    out.write(
        f"  seed {cfg.seed}: {sample.vacancies} vacancies published "
        f"{sample.first_published:%Y-%m-%d} .. {sample.last_published:%Y-%m-%d}, "
        f"{sample.windows} date windows, {cfg.per_page} per page\n"
    )
    out.write(f"  {'source':<17}{'objects':>8}{'written':>9}{'existed':>9}{'size':>11}\n")
    index = 0
    for source, objects in sample.by_source().items():
        done = results[index : index + len(objects)] if results is not None else None
        index += len(objects)
        written = str(sum(r.written for r in done)) if done is not None else "-"
        existed = str(sum(not r.written for r in done)) if done is not None else "-"
        size = _size(sum(len(o.data) for o in objects))
        out.write(f"  {source:<17}{len(objects):>8}{written:>9}{existed:>9}{size:>11}\n")
    share = 100.0 * sample.salary_null / sample.vacancies
    currencies = ", ".join(f"{cur} {n}" for cur, n in sample.currencies.items())
    out.write(f"  salaries: {sample.salary_null} null ({share:.0f}%); {currencies}\n")
    out.write(f"  bad records injected: {len(sample.bad_records)}\n")
    for bad in sample.bad_records:
        out.write(f"    {bad.source:<16} {bad.record:<16} {bad.rule:<24} {bad.detail}\n")
    if results:
        out.write(f"  first key: {results[0].key}\n")
    out.write(f"  done in {seconds:.2f} s{' (dry run: nothing written)' if results is None else ''}\n")


def run_sample(args: argparse.Namespace, out: TextIO) -> int:
    started = time.perf_counter()
    config = _config(args)
    sample = generate_sample(config)
    if args.dry_run:
        print_summary(sample, None, "(dry run)", time.perf_counter() - started, out)
        return EXIT_OK
    lake = Lake(get_lake_settings())
    lake.ensure(["bronze"])  # the ingestor's user may see nothing but bronze
    writer = BronzeWriter(lake)
    results = [writer.write(o.source, o.data, ext=o.ext, fetched_at=o.fetched_at) for o in sample.objects]
    print_summary(sample, results, writer.store.uri(), time.perf_counter() - started, out)
    return EXIT_OK


def run_sample_api(args: argparse.Namespace, out: TextIO) -> int:
    settings = get_ingestor_settings()
    overrides = {
        "seed": args.seed,
        "size": args.size,
        "start": args.start,
        "days": args.days,
        "bad_records": args.bad_records,
    }
    config = replace(SampleConfig.from_settings(settings), **{k: v for k, v in overrides.items() if v is not None})
    handle = start_sample_api(
        config,
        host=settings.sample_api_host if args.host is None else args.host,
        port=settings.sample_api_port if args.port is None else args.port,
        fault_rate=settings.sample_api_fault_rate if args.fault_rate is None else args.fault_rate,
    )
    serve_until_signalled(handle, out, args.ready_file)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sample":
            return run_sample(args, sys.stdout)
        if args.command in fetching.COMMANDS:
            return fetching.dispatch(args, sys.stdout)
        if args.command == "sample-api":
            return run_sample_api(args, sys.stdout)
    except LakehouseError as exc:
        print(f"lakehouse-ingest: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `lakehouse-ingest sample | head`: the work is done, the reader left
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return EXIT_OK
    return EXIT_ERROR  # pragma: no cover - argparse rejects unknown commands
