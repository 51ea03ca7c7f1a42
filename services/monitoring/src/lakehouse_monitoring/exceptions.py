"""Typed errors of the pipeline exporter; all of them are :class:`~lakehouse_common.exceptions.LakehouseError`."""

from __future__ import annotations

from lakehouse_common.exceptions import LakehouseError, SettingsError


class MonitoringError(LakehouseError):
    """Base of the exporter's errors."""


class MonitoringSettingsError(MonitoringError, SettingsError):
    """Invalid ``LAKEHOUSE_METRICS_*`` settings."""


class MetricsServerError(MonitoringError):
    """``/metrics`` could not be served (the port is taken, the address is not ours)."""
