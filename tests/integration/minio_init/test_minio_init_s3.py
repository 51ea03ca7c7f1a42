"""The init's S3 half (buckets, versioning, the multipart-abort lifecycle rule, the bucket
notification) run against the moto S3 server, twice: the second run must change nothing.

MinIO cannot run here (no server package, no Docker). moto implements these S3 calls; two things it
does differently from MinIO are said where they matter: it keeps an AbortIncompleteMultipartUpload
rule (MinIO refuses it; tests/unit/minio_init covers that path) and it accepts only AWS-style ARNs
(``arn:aws:sqs:...``) in a notification, so the bridge's MinIO ARN is replaced by one here.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from minio import Minio

from lakehouse_minio_init import storage
from lakehouse_minio_init.changes import Change, Report
from lakehouse_minio_init.exceptions import NotificationTargetUnknownError
from lakehouse_minio_init.provision import provision_buckets
from lakehouse_minio_init.settings import InitSettings, get_settings

AWS_STYLE_ARN = "arn:aws:sqs:us-east-1:123456789012:lakehouse-bridge"
"""moto refuses MinIO's arn:minio:sqs::bridge:webhook ("The ARN is not well formed")."""


def init_settings(suffix: str) -> InitSettings:
    return get_settings(
        minio_url="http://127.0.0.1:1",  # unused: the test builds the client for the moto server
        root_user="moto-root",
        root_password="moto-root-password",
        ingestor_access_key="test-ingestor",
        ingestor_secret_key="test-ingestor-secret",
        pipeline_access_key="test-pipeline",
        pipeline_secret_key="test-pipeline-secret",
        reader_access_key="test-reader",
        reader_secret_key="test-reader-secret",
        metrics_access_key="test-metrics",
        metrics_secret_key="test-metrics-secret",
        bronze_bucket=f"bronze-{suffix}",
        silver_bucket=f"silver-{suffix}",
        gold_bucket=f"gold-{suffix}",
    )


@pytest.fixture
def settings() -> InitSettings:
    return init_settings(uuid.uuid4().hex[:10])


@pytest.fixture
def client(moto_server: Any) -> Minio:
    host = moto_server.endpoint_url.removeprefix("http://")
    return Minio(host, access_key="moto-root", secret_key="moto-root-password", secure=False, region="us-east-1")


def run_s3_part(client: Minio, settings: InitSettings) -> Report:
    report = Report()

    def record(change: Change) -> None:
        report.add(change)

    provision_buckets(client, settings, record)
    record(storage.ensure_queue_notification(client, settings.bronze_bucket, AWS_STYLE_ARN))
    return report


def actions(report: Report) -> list[tuple[str, str]]:
    return [(change.subject, change.action) for change in report.changes]


def test_first_run_creates_everything_and_second_run_changes_nothing(
    client: Minio, settings: InitSettings, moto_server: Any
) -> None:
    bronze, silver, gold = settings.bronze_bucket, settings.silver_bucket, settings.gold_bucket

    first = run_s3_part(client, settings)
    assert actions(first) == [
        (f"bucket {bronze}", "created"),
        (f"bucket {silver}", "created"),
        (f"bucket {gold}", "created"),
        (f"versioning of {bronze}", "updated"),
        (f"lifecycle of {bronze}", "created"),
        (f"lifecycle of {silver}", "created"),
        (f"lifecycle of {gold}", "created"),
        (f"notifications of {bronze}", "created"),
    ]

    second = run_s3_part(client, settings)
    assert [subject for subject, _ in actions(second)] == [subject for subject, _ in actions(first)]
    assert second.changed == [], [str(change) for change in second.changed]
    assert second.summary().startswith("nothing changed")

    s3 = moto_server.client()
    assert s3.get_bucket_versioning(Bucket=bronze)["Status"] == "Enabled"
    for unversioned in (silver, gold):
        assert "Status" not in s3.get_bucket_versioning(Bucket=unversioned)
    for bucket in (bronze, silver, gold):
        (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert rule["ID"] == storage.ABORT_RULE_ID
        assert rule["Status"] == "Enabled"
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    (queue,) = s3.get_bucket_notification_configuration(Bucket=bronze)["QueueConfigurations"]
    assert queue["QueueArn"] == AWS_STYLE_ARN
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    assert "Filter" not in queue


def test_existing_lifecycle_rules_and_notification_targets_are_kept(
    client: Minio, settings: InitSettings, moto_server: Any
) -> None:
    s3 = moto_server.client()
    bronze = settings.bronze_bucket
    s3.create_bucket(Bucket=bronze)
    expire_tmp = {"ID": "expire-tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7}}
    s3.put_bucket_lifecycle_configuration(Bucket=bronze, LifecycleConfiguration={"Rules": [expire_tmp]})
    other_queue: dict[str, Any] = {
        "Id": "audit",
        "QueueArn": "arn:aws:sqs:us-east-1:123456789012:audit",
        "Events": ["s3:ObjectRemoved:*"],
    }
    s3.put_bucket_notification_configuration(
        Bucket=bronze, NotificationConfiguration={"QueueConfigurations": [other_queue]}
    )

    first = run_s3_part(client, settings)
    assert (f"bucket {bronze}", "unchanged") in actions(first)
    assert (f"lifecycle of {bronze}", "created") in actions(first)

    rules = {rule["ID"]: rule for rule in s3.get_bucket_lifecycle_configuration(Bucket=bronze)["Rules"]}
    assert set(rules) == {"expire-tmp", storage.ABORT_RULE_ID}
    assert rules["expire-tmp"]["Expiration"] == {"Days": 7}
    queues = s3.get_bucket_notification_configuration(Bucket=bronze)["QueueConfigurations"]
    assert sorted(q["QueueArn"] for q in queues) == sorted([str(other_queue["QueueArn"]), AWS_STYLE_ARN])

    assert run_s3_part(client, settings).changed == []


@pytest.mark.parametrize(
    ("days_before", "days_after", "action"),
    [
        pytest.param(1, 1, "unchanged", id="same-days"),
        pytest.param(1, 3, "updated", id="days-changed"),
    ],
)
def test_the_abort_rule_follows_its_setting(
    client: Minio, settings: InitSettings, days_before: int, days_after: int, action: str, moto_server: Any
) -> None:
    bucket = settings.gold_bucket
    storage.ensure_bucket(client, bucket)
    storage.ensure_abort_incomplete_uploads(client, bucket, days_before)
    change = storage.ensure_abort_incomplete_uploads(client, bucket, days_after)
    assert change.action == action
    (rule,) = moto_server.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": days_after}


def test_moto_rejects_the_minio_arn_as_the_init_reports_it(client: Minio, settings: InitSettings) -> None:
    """What MinIO answers for an ARN it does not know yet is the same S3 error code (InvalidArgument)."""
    storage.ensure_bucket(client, settings.bronze_bucket)
    with pytest.raises(NotificationTargetUnknownError, match="arn:minio:sqs::bridge:webhook"):
        storage.ensure_queue_notification(client, settings.bronze_bucket, settings.notification_arn)
