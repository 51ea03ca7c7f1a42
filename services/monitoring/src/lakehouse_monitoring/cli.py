"""``lakehouse-metrics``: the pipeline exporter.

``lakehouse-metrics serve [--host H] [--port 9109] [--cache-s 15]``
    Serve ``/metrics`` until SIGTERM or Ctrl-C (defaults from ``LAKEHOUSE_METRICS_*``).
``lakehouse-metrics show``
    Read the lake once and print the exposition (what a scrape would get).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.settings import get_settings as get_lake_settings
from lakehouse_common.storage import Lake
from lakehouse_monitoring.exporter import PipelineCollector, PipelineExporter, serve
from lakehouse_monitoring.pipeline import LakeReader
from lakehouse_monitoring.settings import get_settings

EXIT_OK = 0
EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse-metrics", description="Pipeline metrics for Prometheus.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("serve", help="serve /metrics until SIGTERM or Ctrl-C")
    run.add_argument("--host", help="address to bind (default: LAKEHOUSE_METRICS_HOST, 127.0.0.1)")
    run.add_argument("--port", type=int, help="port, 0 picks a free one (default: LAKEHOUSE_METRICS_PORT, 9109)")
    run.add_argument("--cache-s", type=float, help="reuse a reading this long (default: LAKEHOUSE_METRICS_CACHE_S, 15)")
    sub.add_parser("show", help="read the lake once and print the metrics")
    return parser


def build_exporter(cache_s: float) -> PipelineExporter:
    lake_settings = get_lake_settings()
    lake = Lake(lake_settings)
    reader = LakeReader(lake, ContractRegistry.from_dir(lake_settings.contracts_dir))
    return PipelineExporter(PipelineCollector(reader, cache_s))


def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    host = settings.host if args.host is None else args.host
    port = settings.port if args.port is None else args.port
    exporter = build_exporter(settings.cache_s if args.cache_s is None else args.cache_s)
    server = serve(exporter, host, port)
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    print(f"lakehouse-metrics: serving http://{host}:{server.port}/metrics", flush=True)
    try:
        stop.wait()
    finally:
        server.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        sys.stdout.write(build_exporter(0.0).render().decode())
        return EXIT_OK
    except LakehouseError as exc:
        print(f"lakehouse-metrics: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
