"""A source's incremental state, kept in bronze as ``_state/<source>.json``.

* ``cursor``: the high-water mark of a windowed source. Every window before it is entirely in
  bronze: it moves to a window's end only after every page of that window, and their details,
  are written. A run starts from it (or from the window's ``initial``).
* ``details``: the ids whose detail documents are in bronze, grouped by the UTC day they were
  fetched and kept for ``remember_days``, so they are not fetched again. They are saved after
  every page whose details landed.

The object is small and rewritten whole (atomically). The ingestor's MinIO user may read
``bronze/_state/*`` and nothing else in bronze.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lakehouse_common.exceptions import ObjectNotFoundError, StorageError
from lakehouse_common.storage import LayerStore
from lakehouse_ingestor.exceptions import StateError

STATE_PREFIX = "_state"


class SourceState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    cursor: datetime | None = Field(default=None, description="Everything before this instant is in bronze.")
    updated_at: datetime | None = None
    run_id: str | None = None
    details: dict[str, list[str]] = Field(
        default_factory=dict, description="UTC fetch day -> ids whose detail documents are in bronze."
    )


class KnownIds:
    """The detail ids already in bronze (from the state), plus those landed during this run."""

    def __init__(self, by_day: dict[str, list[str]] | None = None) -> None:
        self._by_day: dict[str, set[str]] = {day: set(ids) for day, ids in (by_day or {}).items()}
        self._all: set[str] = set().union(*self._by_day.values()) if self._by_day else set()

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._all

    def __len__(self) -> int:
        return len(self._all)

    def add(self, ids: Iterable[str], day: date) -> None:
        bucket = self._by_day.setdefault(day.isoformat(), set())
        for item_id in ids:
            bucket.add(item_id)
            self._all.add(item_id)

    def prune(self, today: date, remember_days: int) -> int:
        """Forget the ids fetched more than ``remember_days`` ago; returns how many were forgotten."""
        oldest = (today - timedelta(days=remember_days)).isoformat()
        gone = [day for day in self._by_day if day < oldest]
        forgotten = 0
        for day in gone:
            forgotten += len(self._by_day.pop(day))
        if gone:
            self._all = set().union(*self._by_day.values()) if self._by_day else set()
        return forgotten

    def to_json(self) -> dict[str, list[str]]:
        return {day: sorted(ids, key=lambda i: (len(i), i)) for day, ids in sorted(self._by_day.items())}


class StateStore:
    def __init__(self, store: LayerStore) -> None:
        self.store = store

    @staticmethod
    def key(source: str) -> str:
        return f"{STATE_PREFIX}/{source}.json"

    def load(self, source: str) -> SourceState:
        key = self.key(source)
        try:
            data = self.store.read_bytes(key)
        except ObjectNotFoundError:
            return SourceState(source=source)
        except StorageError as exc:
            raise StateError(f"cannot read the state of {source} at {self.store.uri(key)}: {exc}") from exc
        try:
            state = SourceState.model_validate_json(data)
        except ValidationError as exc:
            raise StateError(
                f"the state of {source} at {self.store.uri(key)} is not valid ({exc.error_count()} problems, "
                f"first: {exc.errors()[0]['msg']}); fix it, or remove it to start again from the window's initial"
            ) from exc
        if state.source != source:
            raise StateError(f"{self.store.uri(key)} holds the state of {state.source!r}, not {source!r}")
        return state

    def save(self, state: SourceState, now: datetime) -> None:
        state.updated_at = now.astimezone(UTC)
        key = self.key(state.source)
        doc = state.model_dump(mode="json")
        try:
            self.store.put_bytes(key, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        except StorageError as exc:
            raise StateError(f"cannot save the state of {state.source} at {self.store.uri(key)}: {exc}") from exc
