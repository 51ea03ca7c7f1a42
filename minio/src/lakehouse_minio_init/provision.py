"""One init run, in the order MinIO needs:

1. wait until MinIO is ready;
2. buckets; versioning on bronze; the multipart-abort lifecycle rule on every bucket (on MinIO,
   which refuses that rule, its server-wide ``api stale_uploads_expiry`` instead);
3. one canned policy per service from ``minio/policies/``, one user per service, each user with
   exactly its policy;
4. the event bridge's ``notify_webhook:bridge`` target. MinIO stores a changed target but creates
   it (and its ARN) only on start, so after a change the init restarts MinIO through the admin API
   and waits for it;
5. bronze's notification (``s3:ObjectCreated:*`` to ``arn:minio:sqs::bridge:webhook``). Should the
   server still not know the ARN (a previous run stored the target and stopped before restarting),
   the init restarts once and tries again.

A rerun finds everything in place and changes nothing: it reads, compares and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from minio import Minio, MinioAdmin
from minio.credentials.providers import StaticProvider
from minio.error import S3Error

from lakehouse_minio_init import admin as admin_api
from lakehouse_minio_init import policies, storage
from lakehouse_minio_init.changes import Change, Report
from lakehouse_minio_init.exceptions import (
    LifecycleNotSupportedError,
    NotificationTargetUnknownError,
    StorageApiError,
)
from lakehouse_minio_init.server import Readiness
from lakehouse_minio_init.settings import WEBHOOK_TARGET, InitSettings

VERSIONED_LAYERS = ("bronze",)
NOTIFIED_LAYER = "bronze"
ACCEPTED_CREDENTIALS_ERRORS = frozenset({"AccessDenied"})
REJECTED_CREDENTIALS_ERRORS = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidClientTokenId"})


def s3_client(settings: InitSettings, access_key: str, secret_key: str) -> Minio:
    endpoint = settings.endpoint
    return Minio(
        endpoint.host, access_key=access_key, secret_key=secret_key, secure=endpoint.secure, region=settings.region
    )


def admin_client(settings: InitSettings) -> MinioAdmin:
    endpoint = settings.endpoint
    credentials = StaticProvider(settings.root_user, settings.root_password.get_secret_value())
    return MinioAdmin(endpoint=endpoint.host, credentials=credentials, secure=endpoint.secure, region=settings.region)


def credentials_work(settings: InitSettings) -> Callable[[str, str], bool]:
    """A check that signs ``ListBuckets`` with a user's keys: any answer but a signature or unknown-key
    error means the server accepts them (the user's policy may well deny the listing itself)."""

    def check(access_key: str, secret_key: str) -> bool:
        try:
            s3_client(settings, access_key, secret_key).list_buckets()
        except S3Error as exc:
            if exc.code in ACCEPTED_CREDENTIALS_ERRORS:
                return True
            if exc.code in REJECTED_CREDENTIALS_ERRORS:
                return False
            raise StorageApiError(f"cannot check the keys of {access_key}: {exc.code}: {exc.message}") from exc
        return True

    return check


@dataclass
class Provisioner:
    settings: InitSettings
    storage_client: Minio
    admin: MinioAdmin
    readiness: Readiness
    credentials_work: Callable[[str, str], bool]

    @classmethod
    def from_settings(cls, settings: InitSettings) -> Provisioner:
        return cls(
            settings=settings,
            storage_client=s3_client(settings, settings.root_user, settings.root_password.get_secret_value()),
            admin=admin_client(settings),
            readiness=Readiness(settings.endpoint.url, settings.ready_timeout_s),
            credentials_work=credentials_work(settings),
        )

    def run(self, report: Report | None = None, log: Callable[[Change], None] = lambda change: None) -> Report:
        report = report or Report()

        def record(change: Change) -> None:
            log(report.add(change))

        self.readiness.wait()
        provision_buckets(self.storage_client, self.settings, record, on_lifecycle_refused=self._stale_uploads(record))
        self._users(record)
        self._bridge(record)
        return report

    def _stale_uploads(self, record: Callable[[Change], None]) -> Callable[[LifecycleNotSupportedError], None]:
        def fallback(refused: LifecycleNotSupportedError) -> None:
            note = f"{refused.reason}; MinIO's server-wide api stale_uploads_expiry does the same"
            record(Change(f"lifecycle of {refused.bucket}", "skipped", note))
            record(admin_api.ensure_stale_uploads_expiry(self.admin, 24 * self.settings.abort_uploads_after_days))

        return fallback

    def _users(self, record: Callable[[Change], None]) -> None:
        policy_dir = self.settings.resolved_policy_dir()
        for user in self.settings.users:
            document = policies.render(policies.load(policy_dir, user.role), self.settings.buckets)
            record(admin_api.ensure_policy(self.admin, user.policy_name, document))
        for user in self.settings.users:
            record(admin_api.ensure_user(self.admin, user, self.credentials_work))
            record(admin_api.ensure_policy_attached(self.admin, user))

    def _bridge(self, record: Callable[[Change], None]) -> None:
        bucket = self.settings.buckets[NOTIFIED_LAYER]
        if not self.settings.webhook_enabled:
            record(Change("bridge webhook", "skipped", "LAKEHOUSE_BRIDGE_WEBHOOK_URL is empty"))
            return
        target = admin_api.WebhookTarget(
            name=WEBHOOK_TARGET,
            endpoint=self.settings.bridge_webhook_url,
            auth_token=self.settings.bridge_webhook_token.get_secret_value(),
            queue_dir=self.settings.webhook_queue_dir,
            queue_limit=self.settings.webhook_queue_limit,
        )
        configured = admin_api.ensure_webhook_target(self.admin, target)
        record(configured)
        restarted = False
        if configured.changed:
            self._restart(record, "apply the new notify_webhook target")
            restarted = True
        arn = self.settings.notification_arn
        try:
            record(storage.ensure_queue_notification(self.storage_client, bucket, arn))
        except NotificationTargetUnknownError:
            if restarted:
                raise
            self._restart(record, f"the server does not know {arn} yet")
            record(storage.ensure_queue_notification(self.storage_client, bucket, arn))

    def _restart(self, record: Callable[[Change], None], why: str) -> None:
        admin_api.restart(self.admin)
        self.readiness.after_restart()
        record(Change("server", "updated", f"restarted to {why}"))


def provision_buckets(
    client: Minio,
    settings: InitSettings,
    record: Callable[[Change], None],
    *,
    on_lifecycle_refused: Callable[[LifecycleNotSupportedError], None] | None = None,
) -> None:
    """The S3 part that any S3 API runs: buckets, versioning of bronze, the multipart-abort rule."""
    for name in settings.buckets.values():
        record(storage.ensure_bucket(client, name))
    for layer in VERSIONED_LAYERS:
        record(storage.ensure_versioning(client, settings.buckets[layer]))
    refused: LifecycleNotSupportedError | None = None
    for name in settings.buckets.values():
        if refused is not None:  # the same server refuses it for every bucket: do not ask again
            record(Change(f"lifecycle of {name}", "skipped", "refused like the first bucket's"))
            continue
        try:
            record(storage.ensure_abort_incomplete_uploads(client, name, settings.abort_uploads_after_days))
        except LifecycleNotSupportedError as exc:
            if on_lifecycle_refused is None:
                raise
            refused = exc
            on_lifecycle_refused(exc)
