"""``lakehouse-minio-init``: provision MinIO once, idempotently (the ``minio-init`` compose service).

Prints one line per thing it checked (``created``, ``updated``, ``unchanged`` or ``skipped``) and a
last line that says whether anything changed. Exit status 0 on success, 2 on any error (with the
reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from lakehouse_minio_init import __version__
from lakehouse_minio_init.changes import Change
from lakehouse_minio_init.exceptions import MinioInitError
from lakehouse_minio_init.provision import Provisioner
from lakehouse_minio_init.settings import get_settings

EXIT_OK = 0
EXIT_ERROR = 2
PREFIX = "minio-init:"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakehouse-minio-init",
        description="Create the lake's buckets, versioning, lifecycle, the bridge webhook and the "
        "least-privilege users on MinIO. Configured from the environment (see .env.example); "
        "a rerun changes nothing and says so.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    build_parser().parse_args(argv)

    def log(change: Change) -> None:
        print(f"{PREFIX} {change}", file=out, flush=True)

    try:
        settings = get_settings()
        print(f"{PREFIX} provisioning MinIO at {settings.endpoint.url}", file=out, flush=True)
        report = Provisioner.from_settings(settings).run(log=log)
    except MinioInitError as exc:
        print(f"{PREFIX} ERROR: {exc}", file=err, flush=True)
        return EXIT_ERROR
    print(f"{PREFIX} done: {report.summary()}", file=out, flush=True)
    return EXIT_OK
