"""Structured logs and a terminal progress bar.

Every log record is an event name plus fields, emitted through :mod:`logging` on the
``lakehouse_ingestor`` logger. :func:`configure_logging` prints them on stderr either as
``logfmt`` (``ts=... level=info event=page.landed source=vacancies page=3``, the default) or as
JSON lines (``LAKEHOUSE_INGESTOR_LOG_FORMAT=json``, what the container uses). Credentials never
reach a log: the HTTP client logs URLs (which carry no secret) and never headers.

When stderr is a terminal, :class:`TerminalProgress` keeps one status line at the bottom
(``\\r``-redrawn); log lines are printed above it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from lakehouse_common.logs import EventLog as _EventLog
from lakehouse_common.logs import (
    JsonFormatter,
    Listener,
    LogfmtFormatter,
    LogFormat,
    StderrHandler,
    formatter,
    install_handler,
    record_fields,
)
from lakehouse_common.progress import NoProgress, Progress, TerminalProgress

__all__ = [
    "EventLog",
    "JsonFormatter",
    "Listener",
    "LogFormat",
    "LogfmtFormatter",
    "NoProgress",
    "Progress",
    "TerminalProgress",
    "configure_logging",
    "record_fields",
]

LOGGER_NAME = "lakehouse_ingestor"


class EventLog(_EventLog):
    """Events on the ``lakehouse_ingestor`` logger; :meth:`bind` adds fields (source, run id).

    ``listeners`` see every event, DEBUG ones included, even when the logger would drop it:
    :class:`~lakehouse_ingestor.metrics.IngestorMetrics` counts from them.
    """

    def __init__(
        self, logger: logging.Logger | None = None, *, listeners: tuple[Listener, ...] = (), **bound: Any
    ) -> None:
        super().__init__(logger or logging.getLogger(LOGGER_NAME), listeners=listeners, **bound)


class _ProgressAwareHandler(StderrHandler):
    """Prints log lines above the progress line instead of through it."""

    def __init__(self, stream: TextIO | None, progress: TerminalProgress | None) -> None:
        super().__init__(stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is None:
            super().emit(record)
            return
        with self.progress.lock:
            self.progress.clear()
            super().emit(record)
            self.progress.redraw()


def configure_logging(
    fmt: LogFormat = "text", level: str = "INFO", stream: TextIO | None = None, *, progress: bool | None = None
) -> Progress:
    """Send the ingestor's events to ``stream`` (stderr) and return the progress display to use.

    ``progress`` None means: a progress bar exactly when the stream is a terminal.
    """
    out = stream or sys.stderr
    show = out.isatty() if progress is None else progress
    bar = TerminalProgress(out) if show else None
    handler = _ProgressAwareHandler(stream if bar is None else out, bar)
    handler.setFormatter(formatter(fmt))
    install_handler(LOGGER_NAME, handler, level)
    return bar if bar is not None else NoProgress()
