"""The bridge's structured one-line logs (:mod:`lakehouse_common.logs`) on the ``lakehouse_bridge`` logger.

``ts=2026-01-01T10:00:00.000Z level=info event=asset_event.posted asset=bronze/vacancies key=...``;
``LAKEHOUSE_BRIDGE_LOG_FORMAT=json`` (what the container uses) prints the same as one JSON object.
Secrets never reach a log: tokens and passwords are not fields of any event.
"""

from __future__ import annotations

import logging
from typing import Any, TextIO

from lakehouse_common.logs import EventLog as _EventLog
from lakehouse_common.logs import JsonFormatter, LogfmtFormatter, LogFormat, StderrHandler, formatter, install_handler

__all__ = ["LOGGER_NAME", "EventLog", "JsonFormatter", "LogFormat", "LogfmtFormatter", "configure_logging"]

LOGGER_NAME = "lakehouse_bridge"


class EventLog(_EventLog):
    """Events on the ``lakehouse_bridge`` logger."""

    def __init__(self, logger: logging.Logger | None = None, **bound: Any) -> None:
        super().__init__(logger or logging.getLogger(LOGGER_NAME), **bound)


def configure_logging(fmt: LogFormat = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the bridge's events to ``stream`` (stderr), one line each."""
    handler = StderrHandler(stream)
    handler.setFormatter(formatter(fmt))
    install_handler(LOGGER_NAME, handler, level)
