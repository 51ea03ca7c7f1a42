"""``lakehouse-gold``: build and publish the marts, replicate them, show them.

Configuration comes from the ``LAKEHOUSE_*`` environment variables (see lakehouse_common.settings).
Exit codes: 0 success, 1 the build or replication failed, 2 invalid configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lakehouse_common.exceptions import LakehouseError, SettingsError
from lakehouse_common.settings import get_settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import build_gold
from lakehouse_gold.replicate import replicate_gold
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
    show = sub.add_parser("show", help="print the headline rows of each mart and its location")
    show.add_argument("--rows", type=int, default=5, help="rows per mart (default: 5)")
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
        return _show(args.rows)
    except SettingsError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    except LakehouseError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
