"""``lakehouse-gold``: build and publish the marts, replicate them, serve them in Postgres, show them.

Configuration comes from the ``LAKEHOUSE_*`` environment variables (see lakehouse_common.settings).
Exit codes: 0 success, 1 the build, replication or Postgres load failed, 2 invalid configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from lakehouse_common.exceptions import LakehouseError, SettingsError
from lakehouse_common.progress import NoProgress, Progress, TerminalProgress
from lakehouse_common.settings import get_settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import build_gold
from lakehouse_gold.catalog import build_catalog
from lakehouse_gold.docs import generate_docs
from lakehouse_gold.replicate import replicate_gold
from lakehouse_gold.report import build_report
from lakehouse_gold.serving import load_postgres
from lakehouse_gold.settings import get_settings as serving_settings
from lakehouse_gold.show import format_table, preview_marts

log = logging.getLogger("lakehouse_gold")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse-gold", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="run dbt build into a staging location; publish the marts only if every node passed")
    sub.add_parser("replicate", help="copy new or changed gold objects to LAKEHOUSE_REPLICA_URI")
    sub.add_parser(
        "serve-postgres",
        aliases=["load-postgres"],
        help="load the published marts into LAKEHOUSE_SERVING_POSTGRES_DSN (schema LAKEHOUSE_SERVING_SCHEMA) for BI",
    )
    show = sub.add_parser("show", help="print the headline rows of each mart and its location")
    show.add_argument("--rows", type=int, default=5, help="rows per mart (default: 5)")
    _add_analyst_commands(sub)
    return parser


def _build() -> int:
    result = build_gold(get_settings())
    print(f"gold run {result.run_id} published:")
    for entry in result.manifest.marts:
        print(f"  {entry.key}  {entry.rows} rows  sha256 {entry.sha256[:12]}")
    if result.manifest.dbt_warnings:
        print(f"  dbt warnings: {', '.join(result.manifest.dbt_warnings)}")
    return 0


def _replicate() -> int:
    report = replicate_gold(get_settings())
    print(report.summary())
    return 0


def _serve_postgres() -> int:
    report = load_postgres(get_settings(), serving_settings())
    print(report.summary())
    return 0


def _show(rows: int) -> int:
    if rows < 1:
        raise SettingsError(f"--rows must be at least 1, got {rows}")
    lake = Lake(get_settings())
    for preview in preview_marts(lake, rows=rows):
        print(f"== {preview.entry.name}  ({preview.entry.rows} rows)  {preview.uri}")
        print(format_table(preview.headline))
        print()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "build":
            return _build()
        if args.command == "replicate":
            return _replicate()
        if args.command in {"serve-postgres", "load-postgres"}:
            return _serve_postgres()
        if args.command in ANALYST_COMMANDS:
            return _run_analyst_command(args)
        return _show(args.rows)
    except SettingsError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    except LakehouseError as exc:
        log.error("%s", exc)
        return 1


# -- for analysts: the DuckDB catalog, the HTML report, dbt's docs (issue 7) ------------------
ANALYST_COMMANDS = frozenset({"catalog", "report", "docs"})


def _add_analyst_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = sub.add_parser("catalog", help="write a DuckDB file of views over gold, silver and the load history")
    catalog.add_argument("--output", type=Path, default=Path("lakehouse.duckdb"), help="default: lakehouse.duckdb")
    report = sub.add_parser("report", help="render the static HTML report into gold (report/index.html) and a file")
    report.add_argument("--output", type=Path, help="local copy (default: <scratch>/report/index.html)")
    sub.add_parser("docs", help="dbt docs generate (models, columns, lineage) against the published gold")


def _progress() -> Progress:
    """A redrawn status line on stderr when it is a terminal; nothing otherwise."""
    return TerminalProgress(sys.stderr) if sys.stderr.isatty() else NoProgress()


def _run_analyst_command(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.command == "catalog":
        print(build_catalog(settings, args.output, progress=_progress()).summary())
    elif args.command == "report":
        print(build_report(settings, output=args.output, progress=_progress()).summary())
    else:
        print(generate_docs(settings).summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
