"""The pure parts of the init: MinIO's config text, policy rendering and comparison, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse_minio_init import config_kv, policies
from lakehouse_minio_init.changes import Change, Report
from lakehouse_minio_init.exceptions import PolicyFileError

REPO = Path(__file__).resolve().parents[3]
POLICY_DIR = REPO / "minio" / "policies"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "notify_webhook:bridge endpoint=http://b:8090/e auth_token=*redacted* queue_limit=10\n",
            {"notify_webhook:bridge": {"endpoint": "http://b:8090/e", "auth_token": "*redacted*", "queue_limit": "10"}},
            id="one-target",
        ),
        pytest.param(
            "# MINIO_NOTIFY_WEBHOOK_ENABLE_BRIDGE=on\nnotify_webhook enable=off endpoint=\n"
            'notify_webhook:bridge comment="two words" queue_dir=/data/q\n',
            {
                "notify_webhook": {"enable": "off", "endpoint": ""},
                "notify_webhook:bridge": {"comment": "two words", "queue_dir": "/data/q"},
            },
            id="comments-default-and-quoted-values",
        ),
        pytest.param(
            "api stale_uploads_expiry=24h requests_max=0",
            {"api": {"stale_uploads_expiry": "24h", "requests_max": "0"}},
            id="api",
        ),
        pytest.param("", {}, id="empty"),
    ],
)
def test_config_text_is_parsed(text: str, expected: dict[str, dict[str, str]]) -> None:
    assert config_kv.parse(text) == expected


@pytest.mark.parametrize(
    ("current", "wanted", "differs"),
    [
        pytest.param(None, {"a": "1", "b": "2"}, ["a", "b"], id="absent"),
        pytest.param({"a": "1", "b": "2", "c": "x"}, {"a": "1", "b": "2"}, [], id="same-plus-extra"),
        pytest.param({"a": "1", "b": "3"}, {"a": "1", "b": "2"}, ["b"], id="one-differs"),
    ],
)
def test_config_differences(current: dict[str, str] | None, wanted: dict[str, str], differs: list[str]) -> None:
    assert config_kv.differences(current, wanted) == differs


def test_the_token_fingerprint_is_stable_distinct_and_not_the_token() -> None:
    first = config_kv.token_fingerprint("bridge-token-0123456789")
    assert first == config_kv.token_fingerprint("bridge-token-0123456789")
    assert first != config_kv.token_fingerprint("bridge-token-0123456780")
    assert "bridge-token" not in first and " " not in first and "=" not in first


def test_render_renames_only_the_layer_buckets() -> None:
    document: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::bronze"},
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::bronze/_state/*", "arn:aws:s3:::bronzer/*"],
            },
        ],
    }
    rendered = policies.render(document, {"bronze": "lake-bronze"})
    assert [s["Resource"] for s in rendered["Statement"]] == [
        ["arn:aws:s3:::lake-bronze"],
        ["arn:aws:s3:::lake-bronze/_state/*", "arn:aws:s3:::bronzer/*"],
    ]
    assert document["Statement"][0]["Resource"] == "arn:aws:s3:::bronze", "the input is not modified"


def test_canonical_ignores_order_and_string_or_list() -> None:
    a = policies.load(POLICY_DIR, "pipeline")
    b = json.loads(json.dumps(a))
    b["Statement"].reverse()
    for statement in b["Statement"]:
        statement["Action"].reverse()
    b["Statement"][1]["Resource"] = b["Statement"][1]["Resource"][0]
    assert policies.canonical(a) == policies.canonical(b)
    b["Statement"][0]["Action"].append("s3:DeleteObject")
    assert policies.canonical(a) != policies.canonical(b)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "is missing (found: ", id="missing"),
        pytest.param("{not json", "is not readable JSON", id="not-json"),
        pytest.param('{"Version": "2008-10-17", "Statement": []}', "Version 2012-10-17", id="not-a-policy"),
    ],
)
def test_bad_policy_files_are_named(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "reader.json").write_text(content, encoding="utf-8")
    with pytest.raises(PolicyFileError, match=r"reader\.json") as raised:
        policies.load(tmp_path, "reader")
    assert message in str(raised.value)


def test_the_report_says_whether_anything_changed() -> None:
    report = Report()
    report.add(Change("bucket bronze", "unchanged"))
    report.add(Change("lifecycle of bronze", "skipped", "refused"))
    assert report.summary() == "nothing changed: all 2 checks already matched the configuration"
    report.add(Change("user x", "created"))
    assert report.summary() == "1 change(s), 2 check(s) already matched"
    assert str(report.changes[1]) == "lifecycle of bronze: skipped (refused)"
