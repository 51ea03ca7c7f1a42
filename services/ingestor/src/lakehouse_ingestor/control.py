"""Time and stopping, injected so that tests never sleep for real and runs stop cleanly.

:class:`Clock` is everything the ingestor asks of time: the wall clock (fetch instants, window
ends, ``Retry-After`` dates), a monotonic clock (rate limits) and sleeping (backoff, rate limits,
``serve``'s schedule). :class:`SystemClock` sleeps on the :class:`StopToken`, so SIGTERM cuts a
wait short; tests pass a clock whose ``sleep`` only moves its own time forward.

:func:`stop_on_signals` turns the first SIGTERM or SIGINT into a stop request that the runner
honours between pages; a second one restores the default handlers and stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol

from lakehouse_ingestor.exceptions import IngestStopped


class StopToken:
    """A stop request shared by the runner, the HTTP client and the sleepers."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str, signum: int | None = None) -> None:
        if not self._event.is_set():
            self.reason = reason
            self.signum = signum
        self._event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the sleep was cut short by a stop request."""
        return self._event.wait(max(0.0, seconds))

    def check(self) -> None:
        """Raise :class:`IngestStopped` when a stop was requested (call it between pages)."""
        if self._event.is_set():
            raise IngestStopped(f"stopped by {self.reason or 'request'}; everything already written is kept")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def sleep(self, seconds: float) -> None:
        """Wait; may return early when the run is asked to stop."""


class SystemClock:
    """Real time; sleeping is cut short by the stop token."""

    def __init__(self, stop: StopToken | None = None) -> None:
        self._stop = stop

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self._stop is not None:
            self._stop.wait(seconds)
        elif seconds > 0:
            time.sleep(seconds)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: StopToken) -> Iterator[StopToken]:
    """SIGTERM/SIGINT request a clean stop; a second signal stops at once (default handling).

    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.requested:  # the second signal: stop now
            for number, handler in previous.items():
                signal.signal(number, handler)
            signal.raise_signal(signum)
            return
        stop.request(signal.Signals(signum).name, signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
