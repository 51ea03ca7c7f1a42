"""A terminal progress line for long commands (ingest, silverize, catalog, report).

:class:`TerminalProgress` keeps one ``\\r``-redrawn status line at the bottom of a terminal;
callers that log while it is shown clear and redraw it around each line (``lock``, ``clear``,
``redraw``). Outside a terminal, :class:`NoProgress` does nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def start(self, source: str, total: float | None, unit: str) -> None: ...

    def update(self, done: float | None = None, **counters: Any) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """What runs outside a terminal (and the tests) get."""

    def start(self, source: str, total: float | None, unit: str) -> None:
        return None

    def update(self, done: float | None = None, **counters: Any) -> None:
        return None

    def finish(self) -> None:
        return None


class TerminalProgress:
    """One redrawn status line on a terminal: ``vacancies [#####·····] 48% 12 d/25 d pages 31 ...``."""

    WIDTH = 24
    MIN_INTERVAL_S = 0.1

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.RLock()
        self._source = ""
        self._total: float | None = None
        self._unit = ""
        self._done = 0.0
        self._counters: dict[str, Any] = {}
        self._shown = False
        self._drawn_at = 0.0

    def start(self, source: str, total: float | None, unit: str) -> None:
        with self.lock:
            self._source, self._total, self._unit, self._done, self._counters = source, total, unit, 0.0, {}
            self._draw(force=True)

    def update(self, done: float | None = None, **counters: Any) -> None:
        with self.lock:
            if done is not None:
                self._done = done
            self._counters.update(counters)
            self._draw()

    def finish(self) -> None:
        with self.lock:
            if self._shown:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()
            self._shown = False

    def clear(self) -> None:
        with self.lock:
            if self._shown:
                self.stream.write("\r\x1b[K")

    def redraw(self) -> None:
        with self.lock:
            if self._shown:
                self._draw(force=True)

    def line(self) -> str:
        counters = " ".join(f"{key} {value}" for key, value in self._counters.items())
        if self._total:
            share = max(0.0, min(1.0, self._done / self._total))
            filled = round(share * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            amount = f"{self._done:.0f}/{self._total:.0f} {self._unit}"
            return f"{self._source} [{bar}] {share:4.0%} {amount} {counters}".rstrip()
        return f"{self._source} {counters}".rstrip()

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < self.MIN_INTERVAL_S:
            return
        self._drawn_at = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
        self._shown = True
