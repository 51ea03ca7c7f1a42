"""The fetching commands of ``lakehouse-ingest``: ``sources``, ``run``, ``serve`` and ``import``.

``lakehouse-ingest run vacancies --once``
    One run of a source (or several; none named = every source with an ``ingest`` section).
    Without ``--once`` the named sources are run on their intervals, like ``serve``.
``lakehouse-ingest serve``
    Every source on its own interval until SIGTERM (the container's command).
``lakehouse-ingest sources``
    The configured sources: kind, target, interval and cursor.
``lakehouse-ingest import <source> <path>``
    Local files (a file or a directory) into a source's bronze prefix.

Exit status: 0 when every run ended ok (``serve`` stopped by a signal included), 1 when a run
failed, 2 for a configuration error, 128 + the signal number when a ``run`` was stopped by a
signal (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import get_settings as get_lake_settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor.control import StopToken, stop_on_signals
from lakehouse_ingestor.logs import EventLog, configure_logging
from lakehouse_ingestor.metrics import IngestorMetrics, start_metrics_server
from lakehouse_ingestor.runner import Runner
from lakehouse_ingestor.settings import IngestorSettings
from lakehouse_ingestor.settings import get_settings as get_ingestor_settings
from lakehouse_ingestor.sources import RunReport

EXIT_OK = 0
EXIT_FAILED = 1
COMMANDS = frozenset({"sources", "run", "serve", "import"})


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 instant like 2025-12-31T00:00:00+03:00, got {text!r}"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, like {text}+03:00 or {text}Z")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected requests per second (a positive number), got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the rate limit must be positive, got {text}")
    return value


def _progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )


def add_commands(commands: Any) -> None:
    """Add the fetching subcommands to ``lakehouse-ingest``'s subparsers."""
    sources = commands.add_parser("sources", help="list the sources and how they are fetched")
    sources.add_argument("--json", action="store_true", help="print JSON")

    run = commands.add_parser(
        "run",
        help="fetch sources into bronze",
        description="Fetch sources into bronze as their contracts' ingest sections say. With no source named, "
        "every source that has an ingest section. With --once, one run each; without, on their intervals.",
    )
    run.add_argument("sources", nargs="*", metavar="SOURCE")
    run.add_argument("--once", action="store_true", help="one run of each source, then exit")
    run.add_argument("--until", type=_instant, help="windowed sources: do not ask past this instant")
    run.add_argument("--rate-limit", type=_rate, help="requests per second for every source (overrides the contracts)")
    run.add_argument("--json", action="store_true", help="print the run reports as JSON")
    _progress_flag(run)

    serve = commands.add_parser(
        "serve",
        help="run sources on their intervals until SIGTERM",
        description="Run every source with an ingest section (or the named ones) on its interval "
        "(ingest.interval, or LAKEHOUSE_INGESTOR_INTERVALS), until SIGTERM or Ctrl-C.",
    )
    serve.add_argument("sources", nargs="*", metavar="SOURCE")
    serve.add_argument("--rate-limit", type=_rate, help="requests per second for every source")
    _progress_flag(serve)

    imp = commands.add_parser(
        "import",
        help="import local files into a source's bronze prefix",
        description="Copy a file, or the files of a directory, into bronze under <source>/, byte for byte; "
        "files already imported (same content) are skipped.",
    )
    imp.add_argument("source")
    imp.add_argument("path", type=Path)
    imp.add_argument("--pattern", default="*", help="glob of the files to take from a directory (default: *)")
    imp.add_argument("--recursive", action="store_true", help="descend into subdirectories")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    _progress_flag(imp)


def _runner(args: argparse.Namespace, stop: StopToken, *, log: EventLog | None = None) -> Runner:
    settings = get_ingestor_settings()
    overrides: dict[str, object] = {}
    if getattr(args, "rate_limit", None) is not None:
        overrides["rate_limit_per_s"] = args.rate_limit
    if overrides:
        settings = settings.model_copy(update=overrides)
    lake_settings = get_lake_settings()
    progress = configure_logging(settings.log_format, settings.log_level, progress=getattr(args, "progress", False))
    lake = Lake(lake_settings)
    lake.ensure(["bronze"])  # the ingestor's user sees nothing but bronze
    registry = ContractRegistry.from_dir(lake_settings.contracts_dir)
    return Runner(lake, registry, settings, stop=stop, progress=progress, log=log)


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n / 1024:.1f} KB"


def summary_line(report: RunReport) -> str:
    c = report.counters
    parts: list[str] = []
    if c["windows"] or c["windows_split"]:
        parts.append(f"{c['windows']} windows ({c['windows_split']} split)")
    if c["pages_fetched"]:
        parts.append(
            f"{c['pages_fetched']} pages ({c['pages_written']} new, {c['pages_unchanged']} unchanged, "
            f"{c['pages_empty']} empty)"
        )
    if c["details_fetched"] or c["details_known"]:
        parts.append(
            f"{c['details_fetched']} details in {c['detail_objects_written']} objects "
            f"({c['details_known']} known, {c['details_missing']} missing)"
        )
    if c["files_fetched"] or c["files_seen"]:
        seen = c["files_fetched"] or c["files_seen"]
        parts.append(f"{seen} files ({c['files_written']} new, {c['files_unchanged']} unchanged)")
    if c["requests"]:
        parts.append(f"{c['requests']} requests, {c['retries']} retries")
    parts.append(f"{_size(c['bytes_written'])} written")
    if report.cursor_after is not None:
        parts.append(f"cursor {report.cursor_after.isoformat()}")
    line = f"{report.source}: {report.status}, " + ", ".join(parts) + f" in {report.seconds:.1f} s"
    if report.error:
        line += f"\n  {report.status}: {report.error}"
    return line


def _print(reports: Sequence[RunReport], as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps([r.to_json() for r in reports], ensure_ascii=False, indent=1) + "\n")
    else:
        for report in reports:
            out.write(summary_line(report) + "\n")
    out.flush()


def _exit(reports: Sequence[RunReport], stop: StopToken, *, serving: bool) -> int:
    if any(r.status == "failed" for r in reports):
        return EXIT_FAILED
    if stop.requested and not serving:
        return 128 + (stop.signum or 15)
    return EXIT_OK


@contextlib.contextmanager
def _metrics_served(metrics: IngestorMetrics | None, settings: IngestorSettings) -> Iterator[dict[str, object]]:
    """``/metrics`` while serving (see :mod:`lakehouse_ingestor.metrics`); yields the fields that
    announce it on ``serve.start``."""
    if metrics is None:
        yield {}
        return
    server = start_metrics_server(metrics, settings.metrics_host, settings.metrics_port)
    try:
        yield {"metrics": f"http://{settings.metrics_host}:{server.port}/metrics"}
    finally:
        server.close()


def run_sources(args: argparse.Namespace, out: TextIO) -> int:
    stop = StopToken()
    serving = args.command == "serve" or not args.once
    settings = get_ingestor_settings()
    # Serving, the runner's events also feed the metrics (LAKEHOUSE_INGESTOR_METRICS_PORT=0: none).
    metrics = IngestorMetrics() if serving and settings.metrics_port else None
    log = EventLog(listeners=(metrics.observe,)) if metrics is not None else None
    with stop_on_signals(stop):
        runner = _runner(args, stop, log=log)
        names = args.sources or runner.ingestable()
        if serving:
            with _metrics_served(metrics, settings) as announce:
                reports = runner.serve(names, **announce)
            latest = {r.source: r for r in reports}  # the last run of each source
            _print(list(latest.values()), getattr(args, "json", False), out)
            return _exit(list(latest.values()), stop, serving=True)
        reports = []
        for name in names:
            runner.contract(name)  # fail on an unknown or unfetchable source before fetching anything
        for name in names:
            if stop.requested:
                break
            reports.append(runner.run_once(name, until=args.until))
        _print(reports, args.json, out)
        return _exit(reports, stop, serving=False)


def list_sources(args: argparse.Namespace, out: TextIO) -> int:
    runner = _runner(args, StopToken())
    infos = runner.describe()
    if args.json:
        doc = [
            {
                "name": i.name,
                "kind": i.kind,
                "target": i.target,
                "interval_s": i.interval.total_seconds() if i.interval else None,
                "cursor": i.cursor.isoformat() if i.cursor else None,
                "note": i.note,
            }
            for i in infos
        ]
        out.write(json.dumps(doc, indent=1) + "\n")
        return EXIT_OK
    out.write(f"{'source':<18}{'kind':<13}{'every':>10}  {'cursor':<26}target\n")
    for i in infos:
        every = _every(i.interval.total_seconds()) if i.interval else "-"
        cursor = i.cursor.isoformat() if i.cursor else "-"
        out.write(f"{i.name:<18}{i.kind:<13}{every:>10}  {cursor:<26}{i.note or i.target}\n")
    return EXIT_OK


def _every(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:g} s"


def import_files(args: argparse.Namespace, out: TextIO) -> int:
    stop = StopToken()
    with stop_on_signals(stop):
        runner = _runner(args, stop)
        report = runner.import_path(args.source, args.path, pattern=args.pattern, recursive=args.recursive)
        _print([report], args.json, out)
        return _exit([report], stop, serving=False)


def dispatch(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one of :data:`COMMANDS`."""
    stream = out or sys.stdout
    if args.command == "sources":
        return list_sources(args, stream)
    if args.command == "import":
        return import_files(args, stream)
    return run_sources(args, stream)
