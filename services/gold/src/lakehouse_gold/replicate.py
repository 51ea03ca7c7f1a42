"""``lakehouse-gold replicate``: copy the published gold to a replica bucket on AWS S3.

The replica has its own endpoint, region and credentials (``LAKEHOUSE_REPLICA_*``). Each object
is copied only when new or changed, judged by the sha256 of its content, which every replica
object carries as ``x-amz-meta-sha256``. Each copy is verified with ``head_object``: size, the
sha256 metadata and S3's own SHA-256 checksum (uploads ask S3 to check one). The manifest is
copied last, so a reader of the replica never finds a manifest that names marts not yet there.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, s3_client
from lakehouse_gold.exceptions import ManifestNotFoundError, ReplicationError, ReplicaVerificationError
from lakehouse_gold.manifest import MANIFEST_KEY, MARTS_PREFIX
from lakehouse_gold.spool import SpooledObject, spooled

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

log = logging.getLogger(__name__)

SHA256_METADATA = "sha256"


@dataclass
class ReplicationReport:
    target: str | None
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return self.target is None

    def summary(self) -> str:
        if self.target is None:
            return "replication skipped: LAKEHOUSE_REPLICA_URI is not set"
        return (
            f"replicated gold to {self.target}: copied {len(self.copied)}, unchanged {len(self.unchanged)}, "
            f"verified {len(self.verified)}"
        )


def replica_client(settings: Settings) -> S3Client:
    key = settings.replica_access_key_id.get_secret_value() if settings.replica_access_key_id else None
    secret = settings.replica_secret_access_key.get_secret_value() if settings.replica_secret_access_key else None
    return s3_client(
        endpoint_url=settings.replica_endpoint_url,
        region=settings.replica_region,
        access_key_id=key,
        secret_access_key=secret,
        # Custom endpoints (a moto server, MinIO) want path-style; AWS picks virtual-hosted style.
        path_style=settings.replica_endpoint_url is not None,
    )


def gold_objects(lake: Lake) -> list[str]:
    """The published objects: every mart, then the manifest (copied last)."""
    if not lake.gold.exists(MANIFEST_KEY):
        raise ManifestNotFoundError(lake.gold.uri(MANIFEST_KEY))
    marts = [info.key for info in lake.gold.list(MARTS_PREFIX) if info.key.endswith(".parquet")]
    return [*marts, MANIFEST_KEY]


def replicate_gold(
    settings: Settings, *, lake: Lake | None = None, client: S3Client | None = None
) -> ReplicationReport:
    target = settings.replica_bucket_and_prefix
    if target is None:
        report = ReplicationReport(target=None)
        log.info("%s", report.summary())
        return report
    bucket, prefix = target
    lake = lake or Lake(settings)
    client = client or replica_client(settings)
    report = ReplicationReport(target=f"s3://{bucket}/{prefix}".rstrip("/"))
    keys = gold_objects(lake)  # before any network call: nothing to do without a published gold
    _check_bucket(client, bucket, settings)
    spool_dir = settings.scratch_dir.resolve() / "spool"
    for key in keys:
        replica_key = f"{prefix}/{key}" if prefix else key
        with spooled(lake.gold, key, spool_dir) as local:
            if _matches(_head(client, bucket, replica_key), local):
                report.unchanged.append(key)
                continue
            _upload(client, bucket, replica_key, local)
            _verify(client, bucket, replica_key, local)
            report.copied.append(key)
            report.verified.append(key)
            log.info(
                "copied %s to s3://%s/%s (%d bytes, sha256 %s)", key, bucket, replica_key, local.size, local.sha256
            )
    log.info("%s", report.summary())
    return report


def _check_bucket(client: S3Client, bucket: str, settings: Settings) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        where = settings.replica_endpoint_url or f"AWS S3 ({settings.replica_region})"
        raise ReplicationError(
            f"replica bucket {bucket!r} is not reachable at {where} with the LAKEHOUSE_REPLICA_* credentials: {exc}"
        ) from exc


def _head(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise ReplicationError(f"cannot read s3://{bucket}/{key} in the replica: {exc}") from exc


def _matches(head: dict[str, Any] | None, local: SpooledObject) -> bool:
    if head is None:
        return False
    return bool(
        int(head["ContentLength"]) == local.size and head.get("Metadata", {}).get(SHA256_METADATA) == local.sha256
    )


def _upload(client: S3Client, bucket: str, key: str, local: SpooledObject) -> None:
    content_type = "application/json" if key.endswith(".json") else "application/vnd.apache.parquet"
    try:
        with open(local.path, "rb") as body:
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata={SHA256_METADATA: local.sha256},
                ChecksumAlgorithm="SHA256",
            )
    except Exception as exc:
        raise ReplicationError(f"cannot upload {local.key} to s3://{bucket}/{key}: {exc}") from exc


def _verify(client: S3Client, bucket: str, key: str, local: SpooledObject) -> None:
    head = _head(client, bucket, key)
    where = f"s3://{bucket}/{key}"
    if head is None:
        raise ReplicaVerificationError(f"{where} is missing right after its upload")
    problems: list[str] = []
    if int(head["ContentLength"]) != local.size:
        problems.append(f"size {head['ContentLength']} != {local.size}")
    if head.get("Metadata", {}).get(SHA256_METADATA) != local.sha256:
        problems.append(f"sha256 metadata {head.get('Metadata', {}).get(SHA256_METADATA)!r} != {local.sha256!r}")
    checksum = head.get("ChecksumSHA256")
    expected = base64.b64encode(bytes.fromhex(local.sha256)).decode("ascii")
    # A multipart upload's checksum is a checksum of part checksums ("...-<parts>"): not comparable.
    if checksum is not None and "-" not in checksum and checksum != expected:
        problems.append(f"S3 ChecksumSHA256 {checksum} != {expected}")
    if problems:
        raise ReplicaVerificationError(f"{where} does not match {local.key}: {'; '.join(problems)}")


__all__ = ["ReplicationReport", "gold_objects", "replica_client", "replicate_gold"]
