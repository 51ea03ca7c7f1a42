"""Structured one-line logs: an event name plus fields, as logfmt (default) or JSON lines.

``ts=2026-01-01T10:00:00.000Z level=info event=asset_event.posted asset=bronze/vacancies key=...``;
``LAKEHOUSE_BRIDGE_LOG_FORMAT=json`` (what the container uses) prints the same as one JSON object.
Secrets never reach a log: tokens and passwords are not fields of any event.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LOGGER_NAME = "lakehouse_bridge"
LogFormat = Literal["text", "json"]
_FIELDS = "event_fields"


class EventLog:
    """Emit named events with fields on the ``lakehouse_bridge`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    def log(self, level: int, event: str, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, event, extra={_FIELDS: fields})

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)


def _base(record: logging.LogRecord) -> dict[str, Any]:
    ts = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "event": record.getMessage()}
    fields = getattr(record, _FIELDS, None)
    if isinstance(fields, Mapping):
        doc.update(fields)
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
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _base(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_base(record), ensure_ascii=False, default=str)


class _BridgeHandler(logging.StreamHandler[TextIO]):
    """Writes to the given stream, or to whatever ``sys.stderr`` is at the time."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self.explicit = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self.explicit or sys.stderr
        super().emit(record)


def configure_logging(fmt: LogFormat = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the bridge's events to ``stream`` (stderr), one line each."""
    handler = _BridgeHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if isinstance(h, _BridgeHandler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
