"""Run the silverizer on one source and SIGKILL this very process at a named point.

Used by test_kill_matrix.py as ``python kill_run.py <source> <point>``; the lake comes from the
LAKEHOUSE_* environment. Points: ``reading`` (the second chunk being parsed), ``before-ledger``
(outputs published, the ledger entry not yet written), ``publish`` (one output published, the
next one mid-upload: its temporary file written, on S3 a multipart upload started).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.ledger import Ledger
from lakehouse_common.settings import get_settings
from lakehouse_common.storage import S3LayerStore
from lakehouse_silverizer import readers, writers
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import SilverizerSettings


def die(*_args: Any, **_kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(source: str, point: str) -> None:
    if point == "reading":
        parse = readers.CsvReader.parse
        calls = {"n": 0}

        def parse_then_die(self: readers.CsvReader, chunk: readers.Chunk) -> readers.RawBatch:
            calls["n"] += 1
            if calls["n"] == 2:
                die()
            return parse(self, chunk)

        readers.CsvReader.parse = parse_then_die  # type: ignore[method-assign]
    elif point == "before-ledger":
        Ledger.record = die  # type: ignore[method-assign]
    elif point == "publish":
        publishing = writers.PartitionedParquetWriter._publishing
        opened = {"n": 0}

        @contextlib.contextmanager
        def die_mid_upload(self: writers.PartitionedParquetWriter, key: str) -> Iterator[BinaryIO]:
            opened["n"] += 1
            if opened["n"] < 2:
                with publishing(self, key) as sink:
                    yield sink
                return
            with self.store.open_output(key) as sink:
                yield sink
                sink.flush()
                if isinstance(self.store, S3LayerStore):
                    client, bucket = self.store.client, self.store.bucket
                    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                    sink.seek(0)
                    client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=sink.read())
                die()

        writers.PartitionedParquetWriter._publishing = die_mid_upload  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {point!r}; valid: reading, before-ledger, publish")
    settings = get_settings()
    options = SilverizerSettings(block_size=1 << 16, threads=1)
    Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir), options).run_source(source)
    raise SystemExit("the kill point was never reached")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
