"""The service policies in minio/policies/, enforced by moto's IAM emulation: each case signs one
S3 call with the keys of an IAM user that holds exactly one policy, rendered for this test's buckets
by the init's own ``policies.render``.

MinIO cannot run here; moto evaluates the same IAM policy language. One difference is bridged in the
test, not in the policies: moto authorises ``HEAD bucket`` as ``s3:HeadBucket`` where MinIO and AWS
check ``s3:ListBucket``, so no case uses HEAD bucket.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core.authorization import enable_iam_authentication

from lakehouse_minio_init import policies
from lakehouse_minio_init.settings import ROLES

REPO = Path(__file__).resolve().parents[3]
POLICY_DIR = REPO / "minio" / "policies"
SEEDED = (
    "data/seed.json",
    "_state/vacancies.json",
    "marts/seed.parquet",
    "_manifest.json",
    # silver's Delta tables: a source's table, the load history and the quarantine
    "vacancies/_delta_log/00000000000000000000.json",
    "vacancies/published_month=2025-01/part-seed.parquet",
    "_load_history/_delta_log/00000000000000000000.json",
    "_load_history/source=vacancies/part-seed.parquet",
    "_quarantine/_delta_log/00000000000000000000.json",
    "_quarantine/source=vacancies/part-seed.parquet",
)


@dataclass(frozen=True)
class Lake:
    buckets: dict[str, str]
    clients: dict[str, Any]
    admin: Any


def _iam(moto_server: Any) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
    )


@pytest.fixture(scope="module")
def lake(moto_server: Any) -> Iterator[Lake]:
    """Three buckets with a few objects, and one IAM user per role holding its rendered policy."""
    suffix = uuid.uuid4().hex[:8]
    buckets = {layer: f"{layer}-{suffix}" for layer in ("bronze", "silver", "gold")}
    admin, iam = moto_server.client(), _iam(moto_server)
    for bucket in buckets.values():
        admin.create_bucket(Bucket=bucket)
        for key in SEEDED:
            admin.put_object(Bucket=bucket, Key=key, Body=b"{}")
    clients = {}
    for role in ROLES:
        document = policies.render(policies.load(POLICY_DIR, role), buckets)
        user = f"{role}-{suffix}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=f"lakehouse-{role}", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        clients[role] = moto_server.client(key["AccessKeyId"], key["SecretAccessKey"])
    yield Lake(buckets=buckets, clients=clients, admin=admin)


Operation = Callable[[Any, str, str], object]
OPERATIONS: dict[str, Operation] = {
    "get": lambda s3, bucket, key: s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
    "put": lambda s3, bucket, key: s3.put_object(Bucket=bucket, Key=key, Body=b"{}"),
    "delete": lambda s3, bucket, key: s3.delete_object(Bucket=bucket, Key=key),
    "list": lambda s3, bucket, key: s3.list_objects_v2(Bucket=bucket, Prefix=key),
}


def case(role: str, operation: str, layer: str, key: str, allowed: bool) -> Any:
    verb = "can" if allowed else "cannot"
    return pytest.param(role, operation, layer, key, allowed, id=f"{role}-{verb}-{operation}-{layer}-{key}")


@pytest.mark.parametrize(
    ("role", "operation", "layer", "key", "allowed"),
    [
        # ingestor: write bronze (and read back its cursor), nothing else; never delete
        case("ingestor", "put", "bronze", "vacancies/new.json", True),
        case("ingestor", "list", "bronze", "_index/", True),
        case("ingestor", "get", "bronze", "_state/vacancies.json", True),
        case("ingestor", "get", "bronze", "data/seed.json", False),
        case("ingestor", "delete", "bronze", "data/seed.json", False),
        case("ingestor", "get", "silver", "data/seed.json", False),
        case("ingestor", "list", "silver", "", False),
        case("ingestor", "put", "silver", "data/x.json", False),
        case("ingestor", "delete", "silver", "data/seed.json", False),
        case("ingestor", "get", "gold", "marts/seed.parquet", False),
        case("ingestor", "put", "gold", "marts/x.parquet", False),
        case("ingestor", "delete", "gold", "marts/seed.parquet", False),
        # pipeline (Airflow's tasks): read bronze; write silver's Delta tables (commits, checkpoints,
        # data files; vacuum deletes) and gold
        case("pipeline", "get", "bronze", "data/seed.json", True),
        case("pipeline", "list", "bronze", "", True),
        case("pipeline", "put", "bronze", "data/x.json", False),
        case("pipeline", "delete", "bronze", "data/seed.json", False),
        case("pipeline", "get", "silver", "vacancies/_delta_log/00000000000000000000.json", True),
        case("pipeline", "put", "silver", "vacancies/_delta_log/00000000000000000001.json", True),
        case("pipeline", "put", "silver", "vacancies/_delta_log/00000000000000000001.checkpoint.parquet", True),
        case("pipeline", "put", "silver", "vacancies/published_month=2025-01/part-1.parquet", True),
        case("pipeline", "put", "silver", "_quarantine/source=vacancies/part-1.parquet", True),
        case("pipeline", "put", "silver", "_load_history/_delta_log/00000000000000000001.json", True),
        case("pipeline", "delete", "silver", "vacancies/published_month=2025-01/part-1.parquet", True),
        case("pipeline", "list", "silver", "vacancies/_delta_log/", True),
        case("pipeline", "put", "gold", "marts/x.parquet", True),
        case("pipeline", "get", "gold", "marts/seed.parquet", True),
        # reader (BI tools): read-only gold; silver stays with the pipeline
        case("reader", "get", "gold", "marts/seed.parquet", True),
        case("reader", "list", "gold", "marts/", True),
        case("reader", "put", "gold", "marts/x.parquet", False),
        case("reader", "delete", "gold", "marts/seed.parquet", False),
        case("reader", "list", "silver", "vacancies/_delta_log/", False),
        case("reader", "get", "silver", "vacancies/_delta_log/00000000000000000000.json", False),
        case("reader", "get", "silver", "vacancies/published_month=2025-01/part-seed.parquet", False),
        case("reader", "put", "silver", "vacancies/_delta_log/00000000000000000001.json", False),
        case("reader", "get", "bronze", "data/seed.json", False),
        case("reader", "list", "bronze", "", False),
        case("reader", "put", "bronze", "data/x.json", False),
        # metrics (the pipeline exporter): list every layer; read the load history, the Delta logs
        # and gold's manifest only
        case("metrics", "list", "bronze", "", True),
        case("metrics", "list", "silver", "_load_history/_delta_log/", True),
        case("metrics", "list", "gold", "", True),
        case("metrics", "get", "silver", "_load_history/_delta_log/00000000000000000000.json", True),
        case("metrics", "get", "silver", "_load_history/source=vacancies/part-seed.parquet", True),
        case("metrics", "get", "silver", "vacancies/_delta_log/00000000000000000000.json", True),
        case("metrics", "get", "gold", "_manifest.json", True),
        case("metrics", "get", "bronze", "_manifest.json", False),
        case("metrics", "get", "bronze", "data/seed.json", False),
        case("metrics", "get", "silver", "vacancies/published_month=2025-01/part-seed.parquet", False),
        case("metrics", "get", "silver", "_quarantine/source=vacancies/part-seed.parquet", False),
        case("metrics", "get", "gold", "marts/seed.parquet", False),
        case("metrics", "put", "gold", "_manifest.json", False),
        case("metrics", "put", "silver", "_load_history/_delta_log/00000000000000000001.json", False),
        case("metrics", "delete", "silver", "_load_history/source=vacancies/part-seed.parquet", False),
        case("metrics", "delete", "bronze", "data/seed.json", False),
    ],
)
def test_policy_is_enforced(lake: Lake, role: str, operation: str, layer: str, key: str, allowed: bool) -> None:
    bucket = lake.buckets[layer]
    with enable_iam_authentication():
        try:
            OPERATIONS[operation](lake.clients[role], bucket, key)
            outcome = "allowed"
        except ClientError as exc:
            outcome = exc.response["Error"]["Code"]
    if allowed:
        assert outcome == "allowed"
    else:
        assert outcome == "AccessDenied"
    if operation == "delete" and not allowed:  # and the object is really still there
        assert lake.admin.head_object(Bucket=bucket, Key=key)["ContentLength"] == 2
