"""Replication of a local gold to an (in-process, moto-mocked) AWS S3 bucket."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pyarrow as pa
import pytest
from moto import mock_aws

from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_gold.exceptions import ManifestNotFoundError, ReplicationError, ReplicaVerificationError
from lakehouse_gold.manifest import GoldManifest, mart_key
from lakehouse_gold.replicate import replica_client, replicate_gold

PublishMarts = Callable[[dict[str, pa.Table]], GoldManifest]  # the publish_marts fixture
REGIONS = pa.table({"area_id": ["1", "2"], "vacancy_count": pa.array([3, 4], pa.int64())})
SKILLS = pa.table({"skill_name": ["SQL"], "vacancy_count": pa.array([9], pa.int64())})
# Upload order: the run files the manifest names, the manifest (the replica's commit), the latest copies.
ALL = [
    "marts/regions/run=run-1.parquet",
    "marts/skills/run=run-1.parquet",
    "_manifest.json",
    "marts/regions.parquet",
    "marts/skills.parquet",
]


@pytest.fixture
def replica(gold_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings with a replica on (mocked) AWS S3, in eu-central-1, with its own credentials."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        boto3.client("s3", region_name="eu-central-1").create_bucket(
            Bucket="gold-replica", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        yield with_replica(gold_settings, "s3://gold-replica/lakehouse")


def with_replica(base: Settings, uri: str) -> Settings:
    return get_settings(
        backend="local",
        data_dir=base.data_dir,
        scratch_dir=base.scratch_dir,
        replica_uri=uri,
        replica_region="eu-central-1",
        replica_access_key_id="replica-key",
        replica_secret_access_key="replica-secret",
    )


def replica_keys(settings: Settings) -> list[str]:
    return [o["Key"] for o in replica_client(settings).list_objects_v2(Bucket="gold-replica").get("Contents", [])]


def head(settings: Settings, key: str) -> dict[str, Any]:
    return dict(replica_client(settings).head_object(Bucket="gold-replica", Key=f"lakehouse/{key}"))


def test_copies_new_objects_manifest_last_then_nothing(
    replica: Settings, gold_lake: Lake, publish_marts: PublishMarts
) -> None:
    manifest = publish_marts({"regions": REGIONS, "skills": SKILLS})

    first = replicate_gold(replica, lake=gold_lake)
    second = replicate_gold(replica, lake=gold_lake)

    assert (first.copied, first.verified, first.unchanged) == (ALL, ALL, [])
    assert (second.copied, second.verified, second.unchanged) == ([], [], ALL)
    assert second.summary() == (
        "replicated gold to s3://gold-replica/lakehouse: copied 0, unchanged 5, verified 0, old files deleted 0"
    )
    for entry in manifest.marts:
        for key in (entry.key, mart_key(entry.name)):
            assert head(replica, key)["Metadata"]["sha256"] == entry.sha256
            body = replica_client(replica).get_object(Bucket="gold-replica", Key=f"lakehouse/{key}")["Body"]
            assert body.read() == gold_lake.gold.read_bytes(entry.key)


def test_copies_only_what_changed(replica: Settings, gold_lake: Lake, publish_marts: PublishMarts) -> None:
    publish_marts({"regions": REGIONS, "skills": SKILLS})
    replicate_gold(replica, lake=gold_lake)

    publish_marts({"regions": REGIONS.slice(0, 1), "skills": SKILLS})
    report = replicate_gold(replica, lake=gold_lake)

    assert report.copied == ["marts/regions/run=run-2.parquet", "_manifest.json", "marts/regions.parquet"]
    assert report.unchanged == ["marts/skills/run=run-1.parquet", "marts/skills.parquet"]
    assert report.deleted == []  # run-1's regions file: the replica's previous manifest names it


def test_old_run_files_are_deleted_from_the_replica(
    replica: Settings, gold_lake: Lake, publish_marts: PublishMarts
) -> None:
    publish_marts({"regions": REGIONS, "skills": SKILLS})
    replicate_gold(replica, lake=gold_lake)
    publish_marts({"regions": REGIONS.slice(0, 1)})
    replicate_gold(replica, lake=gold_lake)
    publish_marts({"regions": REGIONS})

    report = replicate_gold(replica, lake=gold_lake)

    assert sorted(report.deleted) == ["marts/regions/run=run-1.parquet", "marts/skills/run=run-1.parquet"]
    assert sorted(replica_keys(replica)) == [
        "lakehouse/_manifest.json",
        "lakehouse/marts/regions.parquet",
        "lakehouse/marts/regions/run=run-2.parquet",
        "lakehouse/marts/regions/run=run-3.parquet",
    ]


def test_a_replica_object_changed_behind_our_back_is_copied_again(
    replica: Settings, gold_lake: Lake, publish_marts: PublishMarts
) -> None:
    publish_marts({"regions": REGIONS, "skills": SKILLS})
    replicate_gold(replica, lake=gold_lake)
    client = replica_client(replica)
    client.put_object(Bucket="gold-replica", Key="lakehouse/marts/skills.parquet", Body=b"junk")
    client.delete_object(Bucket="gold-replica", Key="lakehouse/marts/regions/run=run-1.parquet")

    assert replicate_gold(replica, lake=gold_lake).copied == ["marts/regions/run=run-1.parquet", "marts/skills.parquet"]


class _CorruptingClient:
    """A boto3 client whose head_object reports one byte more than was stored."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        response = dict(self._real.head_object(**kwargs))
        response["ContentLength"] += 1
        return response


def test_a_copy_that_does_not_verify_is_an_error(
    replica: Settings, gold_lake: Lake, publish_marts: PublishMarts
) -> None:
    publish_marts({"regions": REGIONS})
    with pytest.raises(
        ReplicaVerificationError, match=r"lakehouse/marts/regions/run=run-1\.parquet does not match .*size"
    ):
        replicate_gold(replica, lake=gold_lake, client=_CorruptingClient(replica_client(replica)))


def test_the_replica_prefix_may_be_empty(replica: Settings, gold_lake: Lake, publish_marts: PublishMarts) -> None:
    publish_marts({"regions": REGIONS})
    settings = with_replica(replica, "s3://gold-replica")

    replicate_gold(settings, lake=gold_lake)

    listed = replica_client(settings).list_objects_v2(Bucket="gold-replica")["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        "_manifest.json",
        "marts/regions.parquet",
        "marts/regions/run=run-1.parquet",
    ]


def test_a_missing_replica_bucket_is_named(replica: Settings, gold_lake: Lake, publish_marts: PublishMarts) -> None:
    publish_marts({"regions": REGIONS})
    settings = with_replica(replica, "s3://no-such-bucket/x")
    with pytest.raises(ReplicationError, match="replica bucket 'no-such-bucket' is not reachable"):
        replicate_gold(settings, lake=gold_lake)


def test_nothing_published_yet_is_an_error(replica: Settings, gold_lake: Lake) -> None:
    with pytest.raises(ManifestNotFoundError, match="run `lakehouse-gold build` first"):
        replicate_gold(replica, lake=gold_lake)


def test_without_replica_uri_it_skips_with_one_log_line(
    gold_settings: Settings, gold_lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="lakehouse_gold"):
        report = replicate_gold(gold_settings, lake=gold_lake)

    assert report.skipped and report.copied == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "replication skipped: LAKEHOUSE_REPLICA_URI is not set")
    ]
