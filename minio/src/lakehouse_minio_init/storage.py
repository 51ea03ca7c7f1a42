"""The S3 half of the init, through the ``minio`` SDK's :class:`~minio.Minio` client: buckets,
versioning, the lifecycle rule that aborts incomplete multipart uploads, and bucket notifications.

Every function reads the current state first, changes only what differs, keeps what it does not
own (other lifecycle rules, other notification targets), and returns a :class:`Change`.
"""

from __future__ import annotations

from collections.abc import Sequence

from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import S3Error
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule
from minio.notificationconfig import NotificationConfig, QueueConfig
from minio.versioningconfig import VersioningConfig

from lakehouse_minio_init.changes import Action, Change
from lakehouse_minio_init.exceptions import (
    LifecycleNotSupportedError,
    NotificationTargetUnknownError,
    StorageApiError,
)

ABORT_RULE_ID = "lakehouse-abort-incomplete-multipart-uploads"
NOTIFICATION_ID = "lakehouse-bridge"
OBJECT_CREATED = ("s3:ObjectCreated:*",)
REJECTED_LIFECYCLE = frozenset({"MalformedXML", "InvalidArgument", "InvalidRequest", "NotImplemented"})


def _fail(action: str, exc: S3Error) -> StorageApiError:
    return StorageApiError(f"{action}: the S3 API answered {exc.code}: {exc.message}")


def ensure_bucket(client: Minio, bucket: str) -> Change:
    subject = f"bucket {bucket}"
    try:
        if client.bucket_exists(bucket):
            return Change(subject, "unchanged")
        client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code in {"BucketAlreadyOwnedByYou"}:  # created meanwhile by another run
            return Change(subject, "unchanged")
        raise _fail(f"cannot create bucket {bucket}", exc) from exc
    return Change(subject, "created")


def ensure_versioning(client: Minio, bucket: str) -> Change:
    subject = f"versioning of {bucket}"
    try:
        if client.get_bucket_versioning(bucket).status == ENABLED:
            return Change(subject, "unchanged", "Enabled")
        client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    except S3Error as exc:
        raise _fail(f"cannot turn on versioning of {bucket}", exc) from exc
    return Change(subject, "updated", "Enabled")


def _abort_days(rule: Rule) -> int | None:
    abort = rule.abort_incomplete_multipart_upload
    return None if abort is None else abort.days_after_initiation


def _is_wanted_abort_rule(rule: Rule, days: int) -> bool:
    prefix = rule.rule_filter.prefix if rule.rule_filter is not None else None
    return (
        rule.status == ENABLED
        and (prefix or "") == ""
        and (rule.rule_filter is None or (rule.rule_filter.tag is None and rule.rule_filter.and_operator is None))
        and _abort_days(rule) == days
        and rule.expiration is None
        and rule.transition is None
        and rule.noncurrent_version_expiration is None
        and rule.noncurrent_version_transition is None
    )


def ensure_abort_incomplete_uploads(client: Minio, bucket: str, days: int) -> Change:
    """A lifecycle rule (id ``lakehouse-abort-incomplete-multipart-uploads``) aborting multipart uploads
    ``days`` after they start, added to the bucket's other rules rather than replacing them.

    Raises :class:`LifecycleNotSupportedError` when the server rejects the rule or drops its action on
    the way back, as MinIO does (the caller then uses MinIO's server-wide equivalent).
    """
    subject = f"lifecycle of {bucket}"
    try:
        current = client.get_bucket_lifecycle(bucket)
    except S3Error as exc:
        raise _fail(f"cannot read the lifecycle of {bucket}", exc) from exc
    rules = list(current.rules) if current is not None else []
    ours = [rule for rule in rules if rule.rule_id == ABORT_RULE_ID]
    if len(ours) == 1 and _is_wanted_abort_rule(ours[0], days):
        return Change(subject, "unchanged", f"{ABORT_RULE_ID}: abort after {days} day(s)")
    wanted = Rule(
        ENABLED,
        rule_filter=Filter(prefix=""),
        rule_id=ABORT_RULE_ID,
        abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(days),
    )
    kept = [rule for rule in rules if rule.rule_id != ABORT_RULE_ID]
    try:
        client.set_bucket_lifecycle(bucket, LifecycleConfig([*kept, wanted]))
        stored = client.get_bucket_lifecycle(bucket)
    except S3Error as exc:
        if exc.code in REJECTED_LIFECYCLE:
            raise LifecycleNotSupportedError(bucket, f"{exc.code}: {exc.message}") from exc
        raise _fail(f"cannot set the lifecycle of {bucket}", exc) from exc
    stored_rules = list(stored.rules) if stored is not None else []
    if not any(rule.rule_id == ABORT_RULE_ID and _is_wanted_abort_rule(rule, days) for rule in stored_rules):
        raise LifecycleNotSupportedError(
            bucket, "the stored configuration lost the AbortIncompleteMultipartUpload action"
        )
    action: Action = "updated" if ours else "created"
    kept_note = f", {len(kept)} other rule(s) kept" if kept else ""
    return Change(subject, action, f"{ABORT_RULE_ID}: abort after {days} day(s){kept_note}")


def _is_wanted_queue(config: QueueConfig, arn: str, events: Sequence[str]) -> bool:
    return (
        config.queue == arn
        and sorted(config.events) == sorted(events)
        and config.prefix_filter_rule is None
        and config.suffix_filter_rule is None
    )


def ensure_queue_notification(client: Minio, bucket: str, arn: str, events: Sequence[str] = OBJECT_CREATED) -> Change:
    """Bucket ``bucket`` notifies target ``arn`` of ``events`` (whole bucket, no filter); the bucket's
    other notification targets are kept. Raises :class:`NotificationTargetUnknownError` when the server
    does not know ``arn``."""
    subject = f"notifications of {bucket}"
    detail = f"{', '.join(events)} -> {arn}"
    try:
        current = client.get_bucket_notification(bucket)
    except S3Error as exc:
        raise _fail(f"cannot read the notifications of {bucket}", exc) from exc
    ours = [config for config in current.queue_config_list if config.queue == arn]
    if len(ours) == 1 and _is_wanted_queue(ours[0], arn, events):
        return Change(subject, "unchanged", detail)
    wanted = QueueConfig(queue=arn, events=list(events), config_id=NOTIFICATION_ID)
    updated = NotificationConfig(
        cloud_func_config_list=current.cloud_func_config_list,
        queue_config_list=[*(c for c in current.queue_config_list if c.queue != arn), wanted],
        topic_config_list=current.topic_config_list,
    )
    try:
        client.set_bucket_notification(bucket, updated)
    except S3Error as exc:
        if exc.code == "InvalidArgument":
            raise NotificationTargetUnknownError(bucket, arn, f"{exc.code}: {exc.message}") from exc
        raise _fail(f"cannot set the notifications of {bucket}", exc) from exc
    return Change(subject, "updated" if ours else "created", detail)
