"""Typed errors of the event bridge; all of them are :class:`~lakehouse_common.exceptions.LakehouseError`.

Each one maps to one answer of the webhook (see :mod:`lakehouse_bridge.server`): a body that is
not a MinIO notification is a 400, a bad webhook token a 401, and anything that kept an event
from reaching Airflow a 503, so that MinIO keeps the event in its ``queue_dir`` and sends it again.
"""

from __future__ import annotations

from lakehouse_common.exceptions import LakehouseError, SettingsError


class BridgeError(LakehouseError):
    """Base class for every error raised by the event bridge."""


class BridgeSettingsError(BridgeError, SettingsError):
    """The ``LAKEHOUSE_BRIDGE_*`` environment does not describe a usable configuration."""


class EventFormatError(BridgeError):
    """A request body (or a replayed file) is not a MinIO bucket notification."""


class WebhookAuthError(BridgeError):
    """The webhook request carries no ``Authorization`` header, or one that does not match the token."""


class StateStoreError(BridgeError):
    """The SQLite file of delivered events cannot be opened, read or written."""


class AirflowError(BridgeError):
    """An Asset event could not be delivered to Airflow; MinIO should send it again later."""

    kind = "airflow"


class AirflowUnavailableError(AirflowError):
    """Airflow did not answer (connection refused, timeout) or answered 429/5xx through every retry."""

    kind = "airflow_unavailable"


class AirflowAuthError(AirflowError):
    """Airflow refused the bridge's credentials (``POST /auth/token``) or its fresh token."""

    kind = "airflow_auth"


class AirflowRequestError(AirflowError):
    """Airflow answered a client error other than 401/404 (403 Forbidden, 422 ...): a configuration problem."""

    kind = "airflow_rejected"

    def __init__(self, *, method: str, url: str, status: int, excerpt: str) -> None:
        super().__init__(
            f"{method} {url} answered {status}: {excerpt or '(empty body)'} (not retried: check that the "
            "LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME user may read assets and create asset events)"
        )
        self.url = url
        self.status = status
