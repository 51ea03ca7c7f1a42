"""Provision MinIO for the lakehouse, idempotently: buckets, versioning, lifecycle, the event
bridge's webhook and bucket notification, and one least-privilege user per service.

Run it as ``lakehouse-minio-init`` (the ``minio-init`` compose service). It is the only code that
uses MinIO's root credentials.
"""

from __future__ import annotations

__version__ = "0.1.0"
