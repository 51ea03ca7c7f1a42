"""The ingestor under its own MinIO policy (minio/policies/ingestor.json), enforced by the moto
server's IAM emulation: it can fetch, land, resume from its cursor, and cannot read what it wrote.

MinIO cannot run here; moto stands in. One difference is bridged in the test, not in the policy:
moto authorises ``HEAD bucket`` as the action ``s3:HeadBucket``, where AWS and MinIO check
``s3:ListBucket`` (which the policy grants), so the test policy adds ``s3:HeadBucket``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ingest_fakes import (
    DAY0,
    REPO,
    FakeClock,
    FakeHh,
    make_runner,
    repo_contract,
    spread,
    vacancies_contracts,
    write_contract,
)
from moto.core.authorization import enable_iam_authentication

from lakehouse_common.exceptions import StorageError
from lakehouse_common.settings import get_settings
from lakehouse_common.storage import Lake

RATES = b"date,currency,rate\n2025-03-01,USD,88.6512\n"


@pytest.fixture
def ingestor_lake(moto_server: Any, tmp_path: Path) -> Iterator[Lake]:
    """An S3 lake reached with the keys of an IAM user holding the ingestor's policy, enforced."""
    admin_s3, admin_iam = moto_server.client(), _iam(moto_server)
    bucket = moto_server.create_bucket("bronze")
    text = (REPO / "minio" / "policies" / "ingestor.json").read_text(encoding="utf-8")
    policy = json.loads(text.replace("arn:aws:s3:::bronze", f"arn:aws:s3:::{bucket}"))
    policy["Statement"].append({"Effect": "Allow", "Action": ["s3:HeadBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]})
    user = f"ingestor-{uuid.uuid4().hex[:8]}"
    admin_iam.create_user(UserName=user)
    admin_iam.put_user_policy(UserName=user, PolicyName="lakehouse-ingestor", PolicyDocument=json.dumps(policy))
    key = admin_iam.create_access_key(UserName=user)["AccessKey"]
    admin_s3.put_object(Bucket=bucket, Key="vacancies/ingest_date=2025-01-01/someone-elses.json", Body=b"{}")
    settings = get_settings(
        backend="s3",
        s3_endpoint_url=moto_server.endpoint_url,
        s3_access_key_id=key["AccessKeyId"],
        s3_secret_access_key=key["SecretAccessKey"],
        bronze_bucket=bucket,
        scratch_dir=tmp_path / "scratch",
    )
    with enable_iam_authentication():
        lake = Lake(settings)
        lake.ensure(["bronze"])
        yield lake


def _iam(moto_server: Any) -> Any:
    import boto3  # noqa: PLC0415 - only this test talks to IAM

    return boto3.client(
        "iam",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
    )


def test_the_ingestor_works_with_least_privilege(ingestor_lake: Lake, fake_hh: FakeHh, contracts_dir: Path) -> None:
    fake_hh.vacancies = spread(120, DAY0, timedelta(days=2))
    fake_hh.server.expect_request("/rates.csv").respond_with_data(RATES)
    vacancies_contracts(contracts_dir)
    write_contract(contracts_dir, repo_contract("currency_rates"))
    env = {"LAKEHOUSE_INGESTOR_HH_BASE_URL": fake_hh.url, "LAKEHOUSE_INGESTOR_API_URL": fake_hh.url}
    clock = FakeClock(DAY0 + timedelta(days=1))

    first = make_runner(ingestor_lake, contracts_dir, clock, env).run_once("vacancies")
    assert first.status == "ok", first.error
    assert make_runner(ingestor_lake, contracts_dir, clock, env).run_once("currency_rates").status == "ok"
    clock.set(DAY0 + timedelta(days=2, minutes=10))
    second = make_runner(ingestor_lake, contracts_dir, clock, env).run_once("vacancies")  # reads _state/
    assert second.status == "ok", second.error
    assert second.cursor_before == first.cursor_after
    assert second.counters["details_fetched"] == 120 - first.counters["details_fetched"]

    with pytest.raises(StorageError, match="403"):  # no reading back what is in bronze
        ingestor_lake.bronze.read_bytes(first.keys[0])
