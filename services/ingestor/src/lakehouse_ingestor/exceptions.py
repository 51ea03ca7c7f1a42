"""Typed errors of the ingestor; all of them are :class:`~lakehouse_common.exceptions.LakehouseError`."""

from __future__ import annotations

from lakehouse_common.exceptions import LakehouseError, SettingsError


class IngestorError(LakehouseError):
    """Base class for every error raised by the ingestor."""


class IngestorSettingsError(IngestorError, SettingsError):
    """The ``LAKEHOUSE_INGESTOR_*`` environment does not describe a usable configuration."""


class BronzeKeyError(IngestorError):
    """A bronze key cannot be built from (or parsed into) the documented layout."""


class BronzeWriteError(IngestorError):
    """A payload could not be written to the bronze layer."""


class SampleConfigError(IngestorError):
    """The sample generator was asked for something it cannot produce."""


class SampleApiError(IngestorError):
    """The local sample API cannot start (bad fault rate, address in use, ...)."""


# -- fetching sources into bronze (rest_json, http_file, local_files) ----------------------------
class IngestConfigError(IngestorError):
    """A source's ``ingest:`` section (or the environment it reads) cannot be used as it is."""


class HttpError(IngestorError):
    """A request failed for good (no retry left, or not worth retrying)."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class HttpStatusError(HttpError):
    """The server answered a client error (4xx other than 429): retrying would not help."""

    def __init__(self, *, method: str, url: str, status: int, reason: str, excerpt: str) -> None:
        super().__init__(
            f"{method} {url} answered {status} {reason}: {excerpt or '(empty body)'} "
            "(not retried: a 4xx other than 429 means the request itself is wrong; "
            "check the source's path, params, headers and auth)",
            url=url,
            status=status,
        )
        self.excerpt = excerpt


class RetriesExhaustedError(HttpError):
    """Connection errors, timeouts, 429 or 5xx went on through every attempt."""


class MalformedResponseError(IngestorError):
    """A response is not what the source's configuration expects (not JSON, no items list, ...).

    The body is kept aside in bronze under ``_rejected/`` with the reason; ``rejected_key`` names it.
    """

    def __init__(self, message: str, *, url: str, rejected_key: str | None) -> None:
        where = f"; the body is kept at {rejected_key}" if rejected_key else ""
        super().__init__(f"{message} ({url}){where}")
        self.url = url
        self.rejected_key = rejected_key


class ResultCapError(IngestorError):
    """More results than the API lets one query page through, and no smaller window is allowed."""


class StateError(IngestorError):
    """A source's stored state (``_state/<source>.json`` in bronze) cannot be read or written."""


class IngestStopped(IngestorError):
    """SIGTERM or SIGINT arrived: the run stopped between pages, keeping everything already written."""
