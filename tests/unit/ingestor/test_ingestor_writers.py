from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lakehouse_common.storage import Lake
from lakehouse_ingestor.writers import BronzeWriter

AT = datetime(2025, 1, 14, 21, 0, tzinfo=UTC)


def test_identical_payload_is_written_once(lake: Lake) -> None:
    writer = BronzeWriter(lake)
    first = writer.write("vacancies", b'{"items":[]}', ext="json", fetched_at=AT)
    path = Path(lake.bronze.uri(first.key))
    mtime = path.stat().st_mtime_ns
    again = writer.write("vacancies", b'{"items":[]}', ext="json", fetched_at=AT)
    assert first.written is True
    assert again.written is False
    assert again.key == first.key
    assert path.stat().st_mtime_ns == mtime
    assert [info.key for info in lake.bronze.list("vacancies/")] == [first.key]


def test_different_payload_gets_its_own_key(lake: Lake) -> None:
    writer = BronzeWriter(lake)
    a = writer.write("vacancies", b'{"page":0}', ext="json", fetched_at=AT)
    b = writer.write("vacancies", b'{"page":1}', ext="json", fetched_at=AT)
    assert a.key != b.key
    assert a.written and b.written
    assert lake.bronze.read_bytes(a.key) == b'{"page":0}'
    assert lake.bronze.read_bytes(b.key) == b'{"page":1}'


def test_no_temporary_files_are_left(lake: Lake) -> None:
    writer = BronzeWriter(lake)
    for _ in range(2):
        writer.write("currency_rates", b"date,currency,rate\n", ext="csv", fetched_at=AT)
    root = Path(lake.bronze.uri())
    assert [p.name for p in root.rglob("*") if p.is_file()] == [Path(info.key).name for info in lake.bronze.list()]
