"""``lakehouse-bridge``: MinIO bucket notifications on bronze -> Airflow Asset events.

``lakehouse-bridge serve`` listens for MinIO's webhook until SIGTERM or Ctrl-C.
``lakehouse-bridge replay FILE`` feeds a saved notification through the same code path (the
webhook's body, a bare record from MinIO's ``queue_dir``, or JSON lines of either; ``-`` is
stdin) and prints what became of each record as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from lakehouse_bridge.events import ObjectEvent, iter_documents, parse_document
from lakehouse_bridge.exceptions import BridgeError
from lakehouse_bridge.logs import EventLog, configure_logging
from lakehouse_bridge.relay import EventRelay
from lakehouse_bridge.server import BridgeServer, serve_until_signalled
from lakehouse_bridge.settings import BridgeSettings
from lakehouse_bridge.settings import get_settings as get_bridge_settings
from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.settings import get_settings as get_lake_settings

EXIT_OK = 0
EXIT_RETRY_LATER = 1
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakehouse-bridge",
        description="Turn MinIO bucket notifications on bronze into Airflow Asset events (bronze/<source>).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="listen for MinIO's webhook (POST /minio/events) until SIGTERM",
        description="Serve POST /minio/events, GET /healthz, /readyz and /metrics. Settings come from "
        "LAKEHOUSE_BRIDGE_* (LAKEHOUSE_BRIDGE_AIRFLOW_URL, _AIRFLOW_USERNAME and _AIRFLOW_PASSWORD are required); "
        "the flags override the address.",
    )
    serve.add_argument("--host", help="address to bind (default LAKEHOUSE_BRIDGE_HOST, 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to bind, 0 picks a free one (default LAKEHOUSE_BRIDGE_PORT, 8090)"
    )
    replay = commands.add_parser(
        "replay",
        help="post the Asset events of a saved MinIO notification",
        description="Feed a saved MinIO notification through the webhook's code path (same ignore rules, same "
        "state file, so an event Airflow already accepted is not posted again). Exit 0 when every record is "
        "settled, 1 when Airflow could not be reached, 2 for a bad file or settings.",
    )
    replay.add_argument("file", help="a JSON file (webhook body, bare record, or JSON lines of them); - for stdin")
    return parser


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BridgeError(f"cannot read {name}: {exc}") from exc


def run_serve(args: argparse.Namespace, settings: BridgeSettings) -> int:
    relay = EventRelay.from_settings(settings, get_lake_settings().bronze_bucket)
    try:
        server = BridgeServer(
            relay,
            host=args.host or settings.host,
            port=settings.port if args.port is None else args.port,
            webhook_token=settings.webhook_token.get_secret_value() if settings.webhook_token else None,
        )
    except OSError as exc:
        relay.close()
        raise BridgeError(f"cannot listen on {args.host or settings.host}:{args.port or settings.port}: {exc}") from exc
    if settings.webhook_token is None:
        EventLog().warning("webhook.open", hint="LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN is unset: any client may post events")
    serve_until_signalled(server)
    return EXIT_OK


def run_replay(args: argparse.Namespace, settings: BridgeSettings, out: TextIO) -> int:
    events: list[ObjectEvent] = []
    for doc in iter_documents(_read(args.file)):
        events.extend(parse_document(doc))
    if not events:
        raise BridgeError(f"{args.file} holds no MinIO notification records")
    relay = EventRelay.from_settings(settings, get_lake_settings().bronze_bucket)
    try:
        result = relay.relay(events)
    finally:
        relay.close()
    out.write(json.dumps(result.as_dict(), ensure_ascii=False, indent=2) + "\n")
    return EXIT_OK if result.status == 200 else EXIT_RETRY_LATER


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        settings = get_bridge_settings()
        configure_logging(settings.log_format, settings.log_level)
        if args.command == "serve":
            return run_serve(args, settings)
        return run_replay(args, settings, out)
    except LakehouseError as exc:
        sys.stderr.write(f"lakehouse-bridge {args.command}: {exc}\n")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
