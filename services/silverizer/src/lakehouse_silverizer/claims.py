"""Claims: at most one run works on a bronze object version at a time.

Before processing an object a run creates ``_claims/<source>/<key id>-<etag id>.json`` in the
silver layer with a conditional write that fails when the claim exists (S3 ``If-None-Match: *``,
locally an exclusive hard link). A run that loses skips the object: it is another run's.
The claim names its owner, when it started and its lease. A claim whose lease ran out, or whose
owner process on this host is gone, is taken over with ``If-Match`` on the claim's ETag, so two
takers cannot both win. The owner deletes its claim (again with ``If-Match``) once the ledger
entry is written; a claim left by a killed run is harmless and taken over or cleaned.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from lakehouse_common.exceptions import ObjectNotFoundError
from lakehouse_common.ledger import etag_id, key_id
from lakehouse_common.storage import LayerStore

CLAIM_PREFIX = "_claims"


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

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Claim:
        return cls(**json.loads(data))

    def expires_at(self) -> datetime:
        return datetime.fromisoformat(self.started_at) + timedelta(seconds=self.lease_s)

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
            started_at=datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
            lease_s=self.lease_s,
        )

    def read(self, claim_key: str) -> tuple[Claim, str] | None:
        """The claim and its ETag (the ETag first: a later change makes an ``If-Match`` on it fail)."""
        info = self.store.stat(claim_key)
        if info is None:
            return None
        try:
            return Claim.from_json(self.store.read_bytes(claim_key)), info.etag
        except ObjectNotFoundError:  # released while we looked
            return None

    def acquire(self, source: str, key: str, etag: str) -> Held | None:
        """Claim the object version, or take over an expired claim; None when another run holds it."""
        claim_key = self.claim_key(source, key, etag)
        claim = self._new(source, key, etag)
        for _ in range(3):  # the current claim may vanish between our attempts: try again
            if self.store.put_bytes(claim_key, claim.to_json(), if_absent=True):
                return self._held(claim_key, claim)
            current = self.read(claim_key)
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
        current = self.read(self.claim_key(source, key, etag))
        return current[0] if current else None

    def release(self, held: Held) -> bool:
        """Delete the claim if it is still ours (a takeover after our lease ran out keeps theirs)."""
        return self.store.delete_if_match(held.key, held.etag)

    def all(self, source: str) -> list[tuple[str, Claim | None]]:
        found = []
        for info in self.store.list(f"{CLAIM_PREFIX}/{source}/"):
            current = self.read(info.key)
            found.append((info.key, current[0] if current else None))
        return found
