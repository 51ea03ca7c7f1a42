"""The events Airflow has accepted, in SQLite, keyed by (bucket, key, etag, sequencer).

A row is written only after Airflow accepted the Asset event. A crash between the two posts the
event again on MinIO's retry, which is harmless: Asset events are only wake-ups, and what gets
processed is decided by silver's load history (the Delta app transactions of
``silver/_load_history``). The file survives restarts, so a record MinIO sends again after a
restart (its ``queue_dir`` replays anything not answered 2xx) posts nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from lakehouse_bridge.events import DeliveryKey
from lakehouse_bridge.exceptions import StateStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    sequencer TEXT NOT NULL,
    asset TEXT NOT NULL,
    asset_event_id INTEGER,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (bucket, key, etag, sequencer)
) WITHOUT ROWID
"""


class DeliveryStore:
    """Thread-safe: one connection, used under a lock (a webhook request touches it twice)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreError(
                f"cannot open the bridge's state file {self.path} ({exc}); "
                "set LAKEHOUSE_BRIDGE_STATE_PATH to a writable file path"
            ) from exc

    def seen(self, key: DeliveryKey) -> bool:
        """Whether Airflow already accepted the event of this (bucket, key, etag, sequencer)."""
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT 1 FROM delivered WHERE bucket = ? AND key = ? AND etag = ? AND sequencer = ?", key
                ).fetchone()
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot read the bridge's state file {self.path}: {exc}") from exc
        return row is not None

    def record(self, key: DeliveryKey, asset: str, asset_event_id: int | None) -> None:
        """Remember that Airflow accepted the event (a second record of the same key changes nothing)."""
        delivered_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR IGNORE INTO delivered VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (*key, asset, asset_event_id, delivered_at),
                )
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot write the bridge's state file {self.path}: {exc}") from exc

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM delivered").fetchone()
        return int(n)

    def check(self) -> None:
        """Raise :class:`StateStoreError` unless the file can be read (``/readyz``)."""
        try:
            self.count()
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot read the bridge's state file {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
