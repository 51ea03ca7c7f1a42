"""Structured one-line logs shared by the services: an event name plus fields, printed as
``logfmt`` (``ts=... level=info event=page.landed source=vacancies page=3``) or as JSON lines.

Each service logs on its own logger (``lakehouse_ingestor``, ``lakehouse_bridge``) through an
:class:`EventLog`, and installs a handler with one of the formatters here. Secrets never reach a
log: no event carries a token, a password or request headers as a field.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Self, TextIO

LogFormat = Literal["text", "json"]
FIELDS_ATTRIBUTE = "event_fields"
Listener = Callable[[str, Mapping[str, Any]], None]
"""Called with every event and its fields, whatever the log level (metrics count from these)."""


class EventLog:
    """Emit named events with fields; :meth:`bind` adds fields to every event (source, run id).

    ``listeners`` see every event, DEBUG ones included, even when the logger would drop it.
    """

    def __init__(self, logger: logging.Logger, *, listeners: tuple[Listener, ...] = (), **bound: Any) -> None:
        self.logger = logger
        self.listeners = listeners
        self.bound = bound

    def bind(self, **fields: Any) -> Self:
        bound = type(self).__new__(type(self))
        EventLog.__init__(bound, self.logger, listeners=self.listeners, **{**self.bound, **fields})
        return bound

    def log(self, level: int, event: str, **fields: Any) -> None:
        enabled = self.logger.isEnabledFor(level)
        if not enabled and not self.listeners:
            return
        merged = {**self.bound, **fields}
        for listener in self.listeners:
            listener(event, merged)
        if enabled:
            self.logger.log(level, event, extra={FIELDS_ATTRIBUTE: merged})

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS_ATTRIBUTE, None)
    return dict(fields) if isinstance(fields, Mapping) else {}


def record_document(record: logging.LogRecord) -> dict[str, Any]:
    """``ts``, ``level``, ``event``, the event's fields and, if any, the exception."""
    ts = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "event": record.getMessage()}
    doc.update(record_fields(record))
    if record.exc_info and record.exc_info[1] is not None:
        doc["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    return doc


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if text == "" or any(c in text for c in ' "=\\') or any(ord(c) < 32 for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in record_document(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_document(record), ensure_ascii=False, default=str)


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else LogfmtFormatter()


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the given stream, or else to whatever ``sys.stderr`` is at the time of each record
    (so a replaced stderr, as in tests, is followed)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self.explicit = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self.explicit or sys.stderr
        super().emit(record)


def install_handler(logger_name: str, handler: logging.Handler, level: str) -> None:
    """Replace the logger's previous handler of the same class with ``handler``."""
    logger = logging.getLogger(logger_name)
    for old in [h for h in logger.handlers if type(h) is type(handler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
