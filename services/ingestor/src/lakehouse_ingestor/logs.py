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

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from lakehouse_common.progress import NoProgress, Progress, TerminalProgress

__all__ = ["NoProgress", "Progress", "TerminalProgress", "configure_logging"]

LOGGER_NAME = "lakehouse_ingestor"
LogFormat = Literal["text", "json"]
_FIELDS = "event_fields"


class EventLog:
    """Emit named events with fields; :meth:`bind` adds fields to every event (source, run id)."""

    def __init__(self, logger: logging.Logger | None = None, **bound: Any) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self.bound = bound

    def bind(self, **fields: Any) -> EventLog:
        return EventLog(self.logger, **{**self.bound, **fields})

    def log(self, level: int, event: str, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, event, extra={_FIELDS: {**self.bound, **fields}})

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, _FIELDS, None)
    return dict(fields) if isinstance(fields, Mapping) else {}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if text == "" or any(c in text for c in ' "=\\') or any(ord(c) < 32 for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = {"ts": _timestamp(record), "level": record.levelname.lower(), "event": record.getMessage()}
        parts.update(record_fields(record))
        if record.exc_info and record.exc_info[1] is not None:
            parts["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in parts.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        doc.update(record_fields(record))
        if record.exc_info and record.exc_info[1] is not None:
            doc["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(doc, ensure_ascii=False, default=str)


class _ProgressAwareHandler(logging.StreamHandler[TextIO]):
    """Prints log lines above the progress line instead of through it. With no explicit stream it
    writes to whatever ``sys.stderr`` is at the time (so a replaced stderr is followed)."""

    def __init__(self, stream: TextIO | None, progress: TerminalProgress | None) -> None:
        super().__init__(stream or sys.stderr)
        self.explicit = stream
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self.explicit or sys.stderr
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
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if isinstance(h, _ProgressAwareHandler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    return bar if bar is not None else NoProgress()
