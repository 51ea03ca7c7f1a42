"""A claim's lease: renewed in the background, confirmed before the commit, lost to a takeover."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from lakehouse_silverizer.claims import Claims, Lease
from lakehouse_silverizer.runner import Silverizer


def test_renewals_push_the_expiry_forward_and_a_takeover_is_noticed(silverizer: Silverizer) -> None:
    claims = Claims(silverizer.lake.silver, "me", lease_s=1.0)
    held = claims.acquire("s", "s/a.csv", "e1")
    assert held is not None
    first_expiry = held.claim.expires_at()
    with Lease(claims, held) as lease:
        time.sleep(1.5)  # longer than the lease: only the renewals (every 0.33 s) keep it
        assert lease.renewals >= 2 and not lease.lost.is_set()
        assert lease.held.claim.expires_at() > first_expiry
        assert not lease.held.claim.expired()
        assert Claims(silverizer.lake.silver, "other", lease_s=60).acquire("s", "s/a.csv", "e1") is None
        assert lease.confirm()
    assert claims.release(lease.held)

    # A lease that is not renewed runs out; another run takes over; the first one finds out.
    held = claims.acquire("s", "s/b.csv", "e1")
    assert held is not None
    stalled = Lease(claims, held)  # never started: as if the process were frozen
    time.sleep(1.1)
    assert held.claim.expired(datetime.now(tz=UTC))
    taker = Claims(silverizer.lake.silver, "taker", lease_s=60)
    assert taker.acquire("s", "s/b.csv", "e1") is not None
    assert not stalled.confirm() and stalled.lost.is_set()
