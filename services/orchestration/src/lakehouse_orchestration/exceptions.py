"""Errors of the orchestration layer."""

from __future__ import annotations

from lakehouse_common.exceptions import LakehouseError


class OrchestrationError(LakehouseError):
    """Base class for orchestration errors."""
