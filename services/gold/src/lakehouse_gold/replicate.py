"""``lakehouse-gold replicate``: copy the published gold to a replica bucket on AWS S3.

The replica has its own endpoint, region and credentials (``LAKEHOUSE_REPLICA_*``). Each object
is copied only when new or changed, judged by the sha256 of its content, which every replica
object carries as ``x-amz-meta-sha256``. Each copy is verified with ``head_object``: size, the
sha256 metadata and S3's own SHA-256 checksum (uploads ask S3 to check one).

The order mirrors a gold publish: first the run files the manifest names
(``marts/<mart>/run=<run_id>.parquet``), then the manifest (the replica's commit), then the
convenience copies ``marts/<mart>.parquet``, uploaded from the same checked bytes. So the replica's
manifest never names a missing or wrong file. Last, replica files that neither the new manifest nor
the replica's previous one names are deleted under ``marts/`` (as gold's own collection does).

What is copied is what the gold manifest names, and only when gold matches it: every mart is
spooled and its sha256 checked against the manifest before the first upload. A publish that was
interrupted (or is running) fails the replication with nothing copied, so the replica never
mixes two gold runs because of gold. An interrupted replication is resumed by the next one: it
copies what is missing or changed (judged by size, the sha256 metadata and S3's SHA-256 checksum,
so an object altered in the replica behind our back is copied again) and verifies each copy.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake, s3_client
from lakehouse_gold.exceptions import (
    GoldInconsistentError,
    ManifestError,
    ManifestNotFoundError,
    ReplicationError,
    ReplicaVerificationError,
)
from lakehouse_gold.manifest import MANIFEST_KEY, MARTS_PREFIX, GoldManifest, mart_key, parse_mart_run_key
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
    deleted: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return self.target is None

    def summary(self) -> str:
        if self.target is None:
            return "replication skipped: LAKEHOUSE_REPLICA_URI is not set"
        return (
            f"replicated gold to {self.target}: copied {len(self.copied)}, unchanged {len(self.unchanged)}, "
            f"verified {len(self.verified)}, old files deleted {len(self.deleted)}"
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
        # The lake's timeouts and attempts: an unreachable or hanging replica fails the task in
        # seconds (and Airflow retries it), instead of botocore's 60 s per read.
        connect_timeout_s=settings.s3_connect_timeout_s,
        read_timeout_s=settings.s3_read_timeout_s,
        max_attempts=settings.s3_max_attempts,
    )


def gold_objects(lake: Lake) -> list[str]:
    """The replicated objects, in upload order: the run files the manifest names, the manifest, the
    convenience copies."""
    if not lake.gold.exists(MANIFEST_KEY):
        raise ManifestNotFoundError(lake.gold.uri(MANIFEST_KEY))
    manifest = GoldManifest.from_json(lake.gold.read_bytes(MANIFEST_KEY), lake.gold.uri(MANIFEST_KEY))
    return [*(entry.key for entry in manifest.marts), MANIFEST_KEY, *(mart_key(entry.name) for entry in manifest.marts)]


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
    if not lake.gold.exists(MANIFEST_KEY):  # before any network call: nothing to do without a published gold
        raise ManifestNotFoundError(lake.gold.uri(MANIFEST_KEY))
    _check_bucket(client, bucket, settings)
    spool_dir = settings.scratch_dir.resolve() / "spool"
    with contextlib.ExitStack() as spool:
        # The manifest first, then the run files it names, all checked before anything is uploaded
        # (the run files are immutable: a publish running meanwhile writes other keys). The manifest
        # uploaded is the very one checked; it goes after its run files, before the latest copies.
        manifest_copy = spool.enter_context(spooled(lake.gold, MANIFEST_KEY, spool_dir))
        manifest = GoldManifest.from_json(manifest_copy.path.read_bytes(), lake.gold.uri(MANIFEST_KEY))
        marts = [spool.enter_context(spooled(lake.gold, entry.key, spool_dir)) for entry in manifest.marts]
        mismatches = [
            (entry.key, entry.sha256, local.sha256)
            for entry, local in zip(manifest.marts, marts, strict=True)
            if local.sha256 != entry.sha256
        ]
        if mismatches:
            raise GoldInconsistentError(manifest.run_id, mismatches)
        previous = _replica_manifest(client, bucket, _replica_key(prefix, MANIFEST_KEY))
        plan = [
            *((entry.key, local) for entry, local in zip(manifest.marts, marts, strict=True)),
            (MANIFEST_KEY, manifest_copy),  # the replica's commit
            *((mart_key(entry.name), local) for entry, local in zip(manifest.marts, marts, strict=True)),
        ]
        for key, local in plan:
            replica_key = _replica_key(prefix, key)
            if _matches(_head(client, bucket, replica_key), local):
                report.unchanged.append(key)
                continue
            _upload(client, bucket, replica_key, key, local)
            _verify(client, bucket, replica_key, key, local)
            report.copied.append(key)
            report.verified.append(key)
            log.info(
                "copied %s to s3://%s/%s (%d bytes, sha256 %s)", key, bucket, replica_key, local.size, local.sha256
            )
    report.deleted = _prune_replica(client, bucket, prefix, manifest, previous)
    log.info("%s", report.summary())
    return report


def _replica_key(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def _replica_manifest(client: S3Client, bucket: str, key: str) -> GoldManifest | None:
    """The replica's current manifest (before this replication), or None if absent or unreadable."""
    if _head(client, bucket, key) is None:
        return None
    try:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise ReplicationError(f"cannot read s3://{bucket}/{key} in the replica: {exc}") from exc
    try:
        return GoldManifest.from_json(data, f"s3://{bucket}/{key}")
    except ManifestError as exc:
        log.warning("the replica's manifest is unreadable; its old run files are not kept: %s", exc)
        return None


def _prune_replica(
    client: S3Client, bucket: str, prefix: str, manifest: GoldManifest, previous: GoldManifest | None
) -> list[str]:
    """Delete replica objects under ``marts/`` that neither manifest needs; returns their gold keys.

    Kept: the run files of the manifest just copied and of the replica's previous one (a reader that
    read it a moment ago can still open them), and the convenience copies of the current marts.
    """
    keep = {entry.key for entry in manifest.marts} | {mart_key(entry.name) for entry in manifest.marts}
    if previous is not None:
        keep |= {entry.key for entry in previous.marts if parse_mart_run_key(entry.key) is not None}
    root = _replica_key(prefix, "")
    stale: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root + MARTS_PREFIX):
            for obj in page.get("Contents", []):
                key = obj["Key"].removeprefix(root)
                if key not in keep:
                    stale.append(key)
        for start in range(0, len(stale), 1000):
            batch = stale[start : start + 1000]
            client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": _replica_key(prefix, key)} for key in batch], "Quiet": True}
            )
    except Exception as exc:  # only unreferenced files are left: the next replication removes them
        log.warning("could not delete old replica files under s3://%s/%s%s: %s", bucket, root, MARTS_PREFIX, exc)
        return []
    if stale:
        log.info("deleted %d old replica file(s): %s", len(stale), ", ".join(stale))
    return stale


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


def _sha256_checksum(local: SpooledObject) -> str:
    """The object's SHA-256 as S3 reports it in ``ChecksumSHA256`` (base64 of the digest)."""
    return base64.b64encode(bytes.fromhex(local.sha256)).decode("ascii")


def _matches(head: dict[str, Any] | None, local: SpooledObject) -> bool:
    """The replica object is this content: size, our sha256 metadata, and S3's own SHA-256 checksum.

    Metadata alone can be copied onto other bytes of the same size; S3's checksum is computed by
    S3 from the bytes stored. Every upload asks S3 for one, so an object without it (or with a
    multipart checksum, ``...-<parts>``, which is not comparable) is copied again.
    """
    if head is None:
        return False
    return bool(
        int(head["ContentLength"]) == local.size
        and head.get("Metadata", {}).get(SHA256_METADATA) == local.sha256
        and head.get("ChecksumSHA256") == _sha256_checksum(local)
    )


def _upload(client: S3Client, bucket: str, key: str, gold_key: str, local: SpooledObject) -> None:
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
        raise ReplicationError(f"cannot upload {gold_key} to s3://{bucket}/{key}: {exc}") from exc


def _verify(client: S3Client, bucket: str, key: str, gold_key: str, local: SpooledObject) -> None:
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
    expected = _sha256_checksum(local)
    # A multipart upload's checksum is a checksum of part checksums ("...-<parts>"): not comparable.
    if checksum is not None and "-" not in checksum and checksum != expected:
        problems.append(f"S3 ChecksumSHA256 {checksum} != {expected}")
    if problems:
        raise ReplicaVerificationError(f"{where} does not match {gold_key}: {'; '.join(problems)}")


__all__ = ["ReplicationReport", "gold_objects", "replica_client", "replicate_gold"]
