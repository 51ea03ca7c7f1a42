"""Two runs race on one source (threads, both backends incl. the moto server): each object is
processed exactly once; an expired claim is taken over by exactly one of two takers."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lakehouse_common.settings import Settings
from lakehouse_silverizer.claims import Claim, Claims
from lakehouse_silverizer.exceptions import ObjectClaimedError
from lakehouse_silverizer.runner import RunSummary

pytestmark = pytest.mark.slow


def rates(n: int) -> bytes:
    return ("date,currency,rate\n" + "".join(f"2025-01-{1 + i % 28:02d},USD,{n + i}.5\n" for i in range(50))).encode()


def state(silverizer: Any) -> dict[str, str]:
    store = silverizer.lake.silver
    return {
        i.key: hashlib.sha256(store.read_bytes(i.key)).hexdigest()
        for i in store.list()
        if not i.key.startswith(("_ledger/", "_content/", "_claims/"))
    }


def test_two_racing_runs_process_each_object_once(lake_env: Settings, make_silverizer: Any) -> None:
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
    raced = state(first)
    make_silverizer().reprocess("currency_rates")  # one clean, single run over the same objects
    assert state(first) == raced


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
