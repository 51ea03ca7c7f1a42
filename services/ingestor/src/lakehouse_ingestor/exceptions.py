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
