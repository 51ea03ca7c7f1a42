"""Claims: at most one run works on a bronze object version at a time.

Before processing an object a run creates ``_claims/<source>/<key id>-<etag id>.json`` in the
silver layer with a conditional write that fails when the claim exists (S3 ``If-None-Match: *``,
locally an exclusive hard link). A run that loses skips the object: it is another run's.
The claim names its owner, when it started and its lease. A claim whose lease ran out, or whose
owner process on this host is gone, is taken over with ``If-Match`` on the claim's ETag, so two
takers cannot both win. While it works, the owner renews its lease (:class:`Lease`, a thread
that rewrites the claim with ``If-Match`` every third of the lease), so a long object is never
taken over from a live run; a run that finds its claim taken over stops before committing. The
owner deletes its claim (again with ``If-Match``) once the ledger entry is written; a claim left
by a killed run is harmless and taken over or cleaned.

Claims save work; they are not what makes a load exactly-once. Each attempt writes files of its
own and one ledger entry commits them (:mod:`lakehouse_common.ledger`), so even two runs that
both processed an object leave readers one committed copy.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from lakehouse_common.exceptions import LakehouseError, ObjectNotFoundError
from lakehouse_common.ledger import etag_id, key_id
from lakehouse_common.storage import LayerStore

log = logging.getLogger(__name__)

CLAIM_PREFIX = "_claims"
_READ_TRIES = 5


class ClaimUnreadableError(LakehouseError):
    """A claim object that does not parse, read after read."""

    def __init__(self, claim_key: str) -> None:
        super().__init__(
            f"the claim {claim_key} does not parse as a claim (JSON with owner, lease, ...) after {_READ_TRIES} reads"
        )


@dataclass(frozen=True)
class Claim:
    source: str
    bronze_key: str
    bronze_etag: str
    owner: str
    host: str
    pid: int
    started_at: str
    lease_s: float
    renewed_at: str = ""  # the last renewal; the lease runs from it (from started_at before any)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Claim:
        return cls(**json.loads(data))

    def expires_at(self) -> datetime:
        return datetime.fromisoformat(self.renewed_at or self.started_at) + timedelta(seconds=self.lease_s)

    def expired(self, now: datetime | None = None) -> bool:
        """The lease ran out, or the owner was a process of this host that no longer runs."""
        if (now or datetime.now(tz=UTC)) >= self.expires_at():
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


@dataclass(frozen=True)
class Held:
    """A claim this run holds: the claim object's key and ETag."""

    key: str
    etag: str
    claim: Claim


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds")


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Claims:
    def __init__(self, store: LayerStore, owner: str, lease_s: float) -> None:
        self.store = store
        self.owner = owner
        self.lease_s = lease_s

    @staticmethod
    def claim_key(source: str, key: str, etag: str) -> str:
        return f"{CLAIM_PREFIX}/{source}/{key_id(key)}-{etag_id(etag)}.json"

    def _new(self, source: str, key: str, etag: str) -> Claim:
        return Claim(
            source=source,
            bronze_key=key,
            bronze_etag=etag,
            owner=self.owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=_now(),
            lease_s=self.lease_s,
        )

    def read(self, claim_key: str) -> tuple[Claim, str] | None:
        """The claim and its ETag (the ETag first: a later change makes an ``If-Match`` on it fail).

        Raises :class:`ClaimUnreadableError` when the claim cannot be parsed after a few tries (a
        renewal rewriting it: S3 replaces an object atomically, but some S3-compatible test
        servers rewrite it in place); callers then treat the object as held.
        """
        for attempt in range(_READ_TRIES):
            info = self.store.stat(claim_key)
            if info is None:
                return None
            try:
                data = self.store.read_bytes(claim_key)
            except ObjectNotFoundError:  # released while we looked
                return None
            try:
                return Claim.from_json(data), info.etag
            except (ValueError, TypeError):
                time.sleep(0.02 * (attempt + 1))
        raise ClaimUnreadableError(claim_key)

    def acquire(self, source: str, key: str, etag: str) -> Held | None:
        """Claim the object version, or take over an expired claim; None when another run holds it."""
        claim_key = self.claim_key(source, key, etag)
        claim = self._new(source, key, etag)
        for _ in range(3):  # the current claim may vanish between our attempts: try again
            if self.store.put_bytes(claim_key, claim.to_json(), if_absent=True):
                return self._held(claim_key, claim)
            try:
                current = self.read(claim_key)
            except ClaimUnreadableError:
                return None  # being rewritten by its owner: held
            if current is None:
                continue
            other, other_etag = current
            if not other.expired():
                return None
            if self.store.put_bytes(claim_key, claim.to_json(), if_match=other_etag):
                return self._held(claim_key, claim)
            return None  # another run took it over first
        return None

    def _held(self, claim_key: str, claim: Claim) -> Held | None:
        info = self.store.stat(claim_key)
        return Held(claim_key, info.etag, claim) if info is not None else None

    def holder(self, source: str, key: str, etag: str) -> Claim | None:
        try:
            current = self.read(self.claim_key(source, key, etag))
        except ClaimUnreadableError:
            return None
        return current[0] if current else None

    def renew(self, held: Held) -> Held | None:
        """Extend the lease of a claim we still hold (``If-Match``); None when it was taken over."""
        claim = replace(held.claim, renewed_at=_now())
        if not self.store.put_bytes(held.key, claim.to_json(), if_match=held.etag):
            return None
        return self._held(held.key, claim)

    def release(self, held: Held) -> bool:
        """Delete the claim if it is still ours (a takeover after our lease ran out keeps theirs)."""
        return self.store.delete_if_match(held.key, held.etag)

    def all(self, source: str) -> list[tuple[str, Claim | None]]:
        found = []
        for info in self.store.list(f"{CLAIM_PREFIX}/{source}/"):
            try:
                current = self.read(info.key)
            except ClaimUnreadableError:
                continue  # being renewed right now: a live claim, neither stale nor listed
            found.append((info.key, current[0] if current else None))
        return found


class Lease:
    """Keeps a held claim alive while an object is processed: renews it every ``lease_s / 3``.

    ``lost`` is set when a renewal finds the claim taken over (our lease had run out, e.g. the
    process was suspended); the run then must not commit. A renewal that fails on storage errors
    is retried at the next tick; the lease itself still runs until then.
    """

    def __init__(self, claims: Claims, held: Held, interval_s: float | None = None) -> None:
        self.claims = claims
        self.held = held
        self.interval_s = interval_s if interval_s is not None else claims.lease_s / 3
        self.lost = threading.Event()
        self.renewals = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="silver-claim-lease", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> bool:
        """One renewal; False once the claim is lost. Raises on storage errors."""
        with self._lock:
            if self.lost.is_set():
                return False
            renewed = self.claims.renew(self.held)
            if renewed is None:
                log.error("the claim on %s was taken over by another run", self.held.claim.bronze_key)
                self.lost.set()
                return False
            self.held = renewed
            self.renewals += 1
            return True

    def confirm(self) -> bool:
        """Right before committing: renew once more, synchronously; False when the claim is no longer ours.

        This catches a run that could not renew in time (suspended, or cut off from storage) and
        whose claim another run took over meanwhile.
        """
        return self._renew()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self._renew():
                    return
            except LakehouseError as exc:
                log.warning("could not renew the claim on %s (will retry): %s", self.held.claim.bronze_key, exc)
