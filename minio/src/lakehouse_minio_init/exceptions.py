"""Typed errors of the MinIO init. Each message says what went wrong and what is valid."""

from __future__ import annotations


class MinioInitError(Exception):
    """Base class for every error raised by the MinIO init."""


class InitSettingsError(MinioInitError):
    """The environment does not describe a usable configuration (see ``.env.example``)."""


class PolicyFileError(MinioInitError):
    """A policy file in ``minio/policies/`` is missing or is not a usable IAM policy document."""


class ServerNotReadyError(MinioInitError):
    """MinIO did not answer its readiness probe in time."""

    def __init__(self, url: str, timeout_s: float, last_error: str) -> None:
        super().__init__(
            f"MinIO at {url} was not ready after {timeout_s:g} s ({last_error}); check that the server runs "
            "and that MINIO_URL points at its S3 API (e.g. http://minio:9000), or raise MINIO_INIT_READY_TIMEOUT_S"
        )
        self.url = url


class StorageApiError(MinioInitError):
    """An S3 call (bucket, versioning, lifecycle, notification) failed."""


class AdminApiError(MinioInitError):
    """A MinIO admin API call (users, policies, configuration) failed."""

    def __init__(self, action: str, status: str, body: str) -> None:
        super().__init__(f"{action}: MinIO's admin API answered {status}: {body.strip() or '(empty body)'}")
        self.action = action
        self.status = status
        self.body = body


class LifecycleNotSupportedError(StorageApiError):
    """The server refuses (or silently drops) an ``AbortIncompleteMultipartUpload`` lifecycle rule.

    MinIO does: it expires stale multipart uploads server-wide instead (``api stale_uploads_expiry``).
    """

    def __init__(self, bucket: str, reason: str) -> None:
        super().__init__(f"bucket {bucket}: the server does not keep an AbortIncompleteMultipartUpload rule ({reason})")
        self.bucket = bucket
        self.reason = f"the server refuses an AbortIncompleteMultipartUpload rule ({reason})"


class NotificationTargetUnknownError(StorageApiError):
    """The server does not know the notification target's ARN (yet: MinIO needs a restart after a change)."""

    def __init__(self, bucket: str, arn: str, detail: str) -> None:
        super().__init__(
            f"bucket {bucket}: the server does not know the notification target {arn} ({detail}); on MinIO the "
            "notify_webhook target must be configured and the server restarted before a bucket can use it"
        )
        self.bucket = bucket
        self.arn = arn
