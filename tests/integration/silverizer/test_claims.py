"""Two runs race on one source (threads, both backends incl. the moto server): each object is
processed exactly once; an expired claim is taken over by exactly one of two takers; a long run
keeps its claim by renewing it; a run whose claim was taken over commits nothing; and even two
runs that both processed an object (no claims) leave readers exactly one copy of its rows."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lakehouse_common.settings import Settings
from lakehouse_silverizer import readers
from lakehouse_silverizer.claims import Claim, Claims, Lease
from lakehouse_silverizer.exceptions import ClaimLostError, ObjectClaimedError
from lakehouse_silverizer.runner import RunSummary
from lakehouse_silverizer.vacuum import vacuum

pytestmark = pytest.mark.slow


def rates(n: int) -> bytes:
    return ("date,currency,rate\n" + "".join(f"2025-01-{1 + i % 28:02d},USD,{n + i}.5\n" for i in range(50))).encode()


def test_two_racing_runs_process_each_object_once(
    lake_env: Settings, make_silverizer: Any, silver_state: Callable[[Any], dict[str, str]]
) -> None:
    first, second = make_silverizer(threads=1), make_silverizer(threads=1)
    keys = [f"currency_rates/{i:03d}.csv" for i in range(24)]
    for i, key in enumerate(keys):
        first.lake.bronze.put_bytes(key, rates(i))
    start = threading.Barrier(2)
    summaries: list[RunSummary] = []

    def run(silverizer: Any) -> None:
        start.wait()
        summaries.append(silverizer.run_source("currency_rates"))

    threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    processed = Counter(e.key for s in summaries for e in s.entries)
    assert processed == Counter(dict.fromkeys(keys, 1)), "an object was processed by both runs"
    assert sorted(k for s in summaries for k in s.skipped) == sorted(  # the rest: the other run's
        k for k in keys for s in summaries if k in s.skipped
    )
    assert len(list(first.ledger.entries("currency_rates"))) == len(keys)
    assert first.pending("currency_rates") == []
    assert not list(first.lake.silver.list("_claims/"))
    raced = silver_state(first)
    assert len(raced) == len(keys)  # one committed file per object (one month each)
    make_silverizer().reprocess("currency_rates")  # one clean, single run over the same objects
    assert silver_state(first) == raced


def test_an_expired_claim_is_taken_over_by_exactly_one_of_two_takers(lake_env: Settings, make_silverizer: Any) -> None:
    silver = make_silverizer().lake.silver
    crashed = Claim(
        source="s",
        bronze_key="s/a.csv",
        bronze_etag="e1",
        owner="elsewhere:1:dead",
        host="another-host",  # not this host: only the lease can free it
        pid=1,
        started_at=(datetime.now(tz=UTC) - timedelta(hours=2)).isoformat(),
        lease_s=60,
    )
    key = Claims.claim_key("s", "s/a.csv", "e1")
    assert silver.put_bytes(key, crashed.to_json(), if_absent=True)
    alive = Claims(silver, "live-run", lease_s=3600)
    takers = [Claims(silver, f"taker-{i}", lease_s=3600) for i in range(2)]
    # Both takers read the expired claim before either writes: only one If-Match can win.
    reads = [t.read(key) for t in takers]
    etags = [r[1] for r in reads if r is not None and r[0].expired()]
    assert len(etags) == 2
    wins = [
        silver.put_bytes(key, t._new("s", "s/a.csv", "e1").to_json(), if_match=etag)
        for t, etag in zip(takers, etags, strict=True)
    ]
    assert wins == [True, False]
    holder = alive.read(key)
    assert holder is not None and holder[0].owner == "taker-0" and not holder[0].expired()
    assert alive.acquire("s", "s/a.csv", "e1") is None  # a live claim is respected
    # The winner releases; a stale releaser (the loser's view of the ETag) deletes nothing.
    assert not silver.delete_if_match(key, etags[1])
    held = takers[0]._held(key, holder[0])
    assert held is not None and takers[0].release(held)
    assert silver.stat(key) is None


def test_run_key_names_the_run_that_holds_the_claim(lake_env: Settings, make_silverizer: Any) -> None:
    owner, other = make_silverizer(), make_silverizer()
    owner.lake.bronze.put_bytes("currency_rates/a.csv", rates(1))
    info = owner.lake.bronze.stat("currency_rates/a.csv")
    assert info is not None
    held = owner.claims.acquire("currency_rates", info.key, info.etag)
    assert held is not None
    assert other.run_source("currency_rates").skipped == ["currency_rates/a.csv"]
    with pytest.raises(ObjectClaimedError, match=r"being processed by .*its claim expires at"):
        other.run_key("currency_rates", info.key)
    owner.claims.release(held)
    assert other.run_key("currency_rates", info.key).status == "loaded"


def many_chunks(n: int = 6000) -> bytes:
    """Several 64 KiB chunks of distinct (date, currency) rows."""
    lines = (f"2025-01-{1 + i % 28:02d},{_currency(i)},{90 + i % 7}.5\n" for i in range(n))
    return ("date,currency,rate\n" + "".join(lines)).encode()


def _currency(i: int) -> str:
    return "".join(chr(65 + i // 26**p % 26) for p in range(3))


def slow_parsing(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    parse = readers.CsvReader.parse

    def slow(self: readers.CsvReader, chunk: readers.Chunk) -> readers.RawBatch:
        time.sleep(seconds)
        return parse(self, chunk)

    monkeypatch.setattr(readers.CsvReader, "parse", slow)


def test_a_long_run_renews_its_claim_and_is_never_taken_over(
    lake_env: Settings, make_silverizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The object takes several leases to process: the renewals keep the other run out."""
    owner, other = make_silverizer(threads=1, claim_lease_s=0.6), make_silverizer(threads=1)
    owner.lake.bronze.put_bytes("currency_rates/a.csv", many_chunks(12000))
    slow_parsing(monkeypatch, 0.3)  # 5 chunks or more: at least 1.5 s, 2.5 leases
    renewals: list[int] = []  # by the background thread, counted when the run confirms before its commit
    confirm = Lease.confirm

    def counted(self: Lease) -> bool:
        renewals.append(self.renewals)
        return confirm(self)

    monkeypatch.setattr(Lease, "confirm", counted)
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(owner.run_key("currency_rates", "currency_rates/a.csv")))
    started = time.monotonic()
    worker.start()
    attempts = 0
    while worker.is_alive():
        time.sleep(0.2)
        if worker.is_alive():
            try:
                other.run_key("currency_rates", "currency_rates/a.csv")
            except ObjectClaimedError as refused:
                if "just processed" in str(refused):  # the owner committed between our check and our try
                    break
                assert "being processed by" in str(refused)
                attempts += 1
            else:
                pytest.fail("the other run processed the object while its owner held the claim")
    worker.join()
    elapsed = time.monotonic() - started
    (entry,) = done
    assert entry.status == "loaded" and entry.rows_in == 12000
    assert elapsed > 2 * 0.6 and attempts >= 3  # the other run was refused all along, over several leases
    assert len(renewals) == 1 and renewals[0] >= 2  # the background thread renewed before the commit
    assert len(list(owner.ledger.entries("currency_rates"))) == 1


def test_a_run_whose_claim_was_taken_over_commits_nothing(
    lake_env: Settings,
    make_silverizer: Any,
    monkeypatch: pytest.MonkeyPatch,
    reader_rows: Callable[[str], list[dict[str, Any]]],
) -> None:
    """A run that cannot renew (suspended, cut off) loses its claim to another run once the lease
    runs out; when it resumes it finds out at commit time and commits nothing."""
    stalled, taker = make_silverizer(threads=1, claim_lease_s=0.5), make_silverizer(threads=1)
    stalled.lake.bronze.put_bytes("currency_rates/a.csv", many_chunks(12000))  # 4 chunks: 1.6 s or more
    monkeypatch.setattr(Lease, "_loop", lambda self: None)  # no renewals: as if the process were frozen
    slow_parsing(monkeypatch, 0.4)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            stalled.run_key("currency_rates", "currency_rates/a.csv")
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.8)  # past the stalled run's lease
    entry = taker.run_key("currency_rates", "currency_rates/a.csv")
    worker.join()
    assert entry.status == "loaded"
    assert len(failures) == 1 and isinstance(failures[0], ClaimLostError), failures
    (recorded,) = list(taker.ledger.entries("currency_rates"))
    assert recorded.outputs == entry.outputs  # the taker's attempt is the committed one
    rows = reader_rows("currency_rates")
    assert len(rows) == 12000 == entry.rows_out  # once, not twice
    assert vacuum(taker, "currency_rates", timedelta(0)).deleted == []  # the loser took its files back


def test_two_runs_that_both_process_an_object_leave_readers_one_copy(
    lake_env: Settings, make_silverizer: Any, reader_rows: Callable[[str], list[dict[str, Any]]]
) -> None:
    """No claims at all (``process`` directly, at the same time): each attempt writes its own files
    and one ledger entry commits one attempt, so readers see the rows exactly once."""
    runs = [make_silverizer(threads=1) for _ in range(2)]
    runs[0].lake.bronze.put_bytes("currency_rates/a.csv", many_chunks())
    info = runs[0].lake.bronze.stat("currency_rates/a.csv")
    start = threading.Barrier(2)
    entries: list[Any] = []

    def run(silverizer: Any) -> None:
        start.wait()
        entries.append(silverizer.process("currency_rates", info))

    threads = [threading.Thread(target=run, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(entries) == 2 and entries[0].outputs != entries[1].outputs  # two attempts, both "committed"
    raced = reader_rows("currency_rates")
    assert len(raced) == 6000
    swept = vacuum(runs[0], "currency_rates", timedelta(0))
    assert len(swept.deleted) == 1  # the losing attempt's one file
    make_silverizer().reprocess("currency_rates")
    assert reader_rows("currency_rates") == raced
