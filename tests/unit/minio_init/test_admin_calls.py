"""The init against recorded MinIO API expectations (fake_minio.FakeMinio, served by pytest-httpserver).

MinIO itself cannot run here: no Debian or PyPI package carries the server, and there is no Docker
engine. So these tests pin down what the init sends to MinIO's admin API (method, path and query of
every ``/minio/admin/v3/*`` call, and the decrypted bodies MinIO would decrypt) and how it reacts to
MinIO's answers: 404 for a missing user or policy, redacted secrets, a notification target that only
exists after a restart, an AbortIncompleteMultipartUpload rule refused. A machine with Docker runs
the real thing (``make up``; see the report of issue 5).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fake_minio import ADMIN, Call, FakeMinio
from init_env import REPO, ROOT_USER, WEBHOOK_TOKEN, make_settings
from pytest_httpserver import HTTPServer

from lakehouse_minio_init import config_kv, policies
from lakehouse_minio_init.changes import Report
from lakehouse_minio_init.exceptions import MinioInitError, ServerNotReadyError
from lakehouse_minio_init.provision import Provisioner, credentials_work
from lakehouse_minio_init.server import Readiness
from lakehouse_minio_init.settings import ROLES, InitSettings

Line = tuple[str, str, dict[str, str]]
BuildProvisioner = Callable[[InitSettings], Provisioner]


def admin(method: str, command: str, **query: str) -> Line:
    return (method, ADMIN + command, query)


def per_user(*lines: Callable[[str], Line]) -> list[Line]:
    return [line(f"lakehouse-{role}") for role in ROLES for line in lines]


POLICIES_FIRST_RUN = [
    line
    for role in ROLES
    for line in (
        admin("GET", "info-canned-policy", name=f"lakehouse-{role}"),
        admin("PUT", "add-canned-policy", name=f"lakehouse-{role}"),
    )
]
USERS_FIRST_RUN = per_user(
    lambda user: admin("GET", "user-info", accessKey=user),
    lambda user: admin("PUT", "add-user", accessKey=user),
    lambda user: admin("GET", "user-info", accessKey=user),
    lambda user: admin("POST", "idp/builtin/policy/attach"),
)
FIRST_RUN_ADMIN_CALLS = [
    admin("GET", "get-config-kv", key="api", subSys=""),  # after MinIO refused the lifecycle rule
    *POLICIES_FIRST_RUN,
    *USERS_FIRST_RUN,
    admin("GET", "get-config-kv", key="notify_webhook", subSys=""),
    admin("PUT", "set-config-kv"),
    admin("POST", "service", action="restart"),  # the ARN exists only after a restart
]
SECOND_RUN_ADMIN_CALLS = [
    admin("GET", "get-config-kv", key="api", subSys=""),
    *[admin("GET", "info-canned-policy", name=f"lakehouse-{role}") for role in ROLES],
    *per_user(
        lambda user: admin("GET", "user-info", accessKey=user),
        lambda user: admin("GET", "user-info", accessKey=user),
    ),
    admin("GET", "get-config-kv", key="notify_webhook", subSys=""),
]
REFUSED_LIFECYCLE_PUT: Line = ("PUT", "/bronze", {"lifecycle": ""})
"""MinIO refuses the rule; the init asks once per run (for the first bucket) and says so."""

WEBHOOK_BODY = (
    "notify_webhook:bridge endpoint=http://bridge:8090/minio/events "
    f"auth_token={WEBHOOK_TOKEN} queue_dir=/data/.minio-events queue_limit=100000 "
    f"comment={config_kv.token_fingerprint(WEBHOOK_TOKEN)} enable=on"
)


def lines(calls: list[Call]) -> list[Line]:
    return [call.line for call in calls]


def body_of(fake: FakeMinio, method: str, command: str, **query: str) -> list[str]:
    return [call.body for call in fake.admin_calls() if call.line == admin(method, command, **query)]


def provisioned(fake: FakeMinio, settings: InitSettings, build: BuildProvisioner) -> Report:
    report = build(settings).run()
    fake.calls.clear()
    return report


def test_first_run_makes_the_recorded_admin_calls_in_order(
    fake: FakeMinio, settings: InitSettings, provisioner_for: BuildProvisioner
) -> None:
    report = provisioner_for(settings).run()

    assert lines(fake.admin_calls()) == FIRST_RUN_ADMIN_CALLS
    assert {call.signer for call in fake.admin_calls()} == {ROOT_USER}, "only the root user may call the admin API"
    assert sorted(change.subject for change in report.changed) == sorted(
        [
            *(f"bucket {layer}" for layer in ("bronze", "silver", "gold")),
            "versioning of bronze",
            *(f"policy lakehouse-{role}" for role in ROLES),
            *(f"user lakehouse-{role} ({role})" for role in ROLES),
            *(f"policies of user lakehouse-{role}" for role in ROLES),
            "config notify_webhook:bridge",
            "server",
            "notifications of bronze",
        ]
    )


def test_first_run_sends_the_expected_bodies(
    fake: FakeMinio, settings: InitSettings, provisioner_for: BuildProvisioner
) -> None:
    provisioner_for(settings).run()

    for role in ROLES:
        (document,) = body_of(fake, "PUT", "add-canned-policy", name=f"lakehouse-{role}")
        assert json.loads(document) == policies.load(REPO / "minio" / "policies", role)
        (user,) = body_of(fake, "PUT", "add-user", accessKey=f"lakehouse-{role}")
        assert json.loads(user) == {"status": "enabled", "secretKey": f"{role}-secret-key"}
    attached = [json.loads(body) for body in body_of(fake, "POST", "idp/builtin/policy/attach")]
    assert attached == [{"policies": [f"lakehouse-{role}"], "user": f"lakehouse-{role}"} for role in ROLES]
    assert body_of(fake, "PUT", "set-config-kv") == [WEBHOOK_BODY]


def test_the_bucket_notification_comes_after_the_restart_that_creates_its_arn(
    fake: FakeMinio, settings: InitSettings, provisioner_for: BuildProvisioner
) -> None:
    provisioner_for(settings).run()

    order = [call.line for call in fake.calls]
    restart = order.index(admin("POST", "service", action="restart"))
    notification = order.index(("PUT", "/bronze", {"notification": ""}))
    assert order.index(admin("PUT", "set-config-kv")) < restart < notification
    assert fake.restarts == 1
    stored = fake.buckets["bronze"]["notification"] or ""
    assert "<Queue>arn:minio:sqs::bridge:webhook</Queue>" in stored
    assert "<Event>s3:ObjectCreated:*</Event>" in stored


def test_second_run_only_reads_and_says_nothing_changed(
    fake: FakeMinio, settings: InitSettings, provisioner_for: BuildProvisioner
) -> None:
    provisioned(fake, settings, provisioner_for)

    report = provisioner_for(settings).run()

    assert report.changed == [], [str(change) for change in report.changed]
    assert report.summary().startswith("nothing changed")
    assert lines(fake.admin_calls()) == SECOND_RUN_ADMIN_CALLS
    assert lines(fake.writes()) == [REFUSED_LIFECYCLE_PUT]
    assert fake.restarts == 1
    probes = [call for call in fake.calls if call.signer != ROOT_USER]
    assert sorted(call.signer for call in probes) == sorted(f"lakehouse-{role}" for role in ROLES)
    assert all(call.line == ("GET", "/", {}) for call in probes), "user keys only sign a ListBuckets probe"


def _rotate_secret(fake: FakeMinio) -> None:
    fake.users["lakehouse-pipeline"]["secret"] = "the-old-secret-key"


def _disable(fake: FakeMinio) -> None:
    fake.users["lakehouse-reader"]["status"] = "disabled"


def _attach_readwrite(fake: FakeMinio) -> None:
    fake.policies["readwrite"] = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]}],
        }
    )
    fake.users["lakehouse-reader"]["policies"].append("readwrite")


def _widen_policy(fake: FakeMinio) -> None:
    document = json.loads(fake.policies["lakehouse-reader"])
    document["Statement"][1]["Action"].append("s3:PutObject")
    fake.policies["lakehouse-reader"] = json.dumps(document)


def _reorder_policy(fake: FakeMinio) -> None:
    """MinIO may hand a stored policy back reordered, with a single resource as a string."""
    document = json.loads(fake.policies["lakehouse-ingestor"])
    document["Statement"].reverse()
    for statement in document["Statement"]:
        statement["Action"].reverse()
        if len(statement["Resource"]) == 1:
            statement["Resource"] = statement["Resource"][0]
    fake.policies["lakehouse-ingestor"] = json.dumps(document)


def _suspend_versioning(fake: FakeMinio) -> None:
    fake.buckets["bronze"]["versioning"] = "Suspended"


def _drop_notification(fake: FakeMinio) -> None:
    fake.buckets["bronze"]["notification"] = None


def _stale_uploads_72h(fake: FakeMinio) -> None:
    fake.config["api"]["stale_uploads_expiry"] = "72h"


def _nothing(fake: FakeMinio) -> None:
    pass


RESTART = admin("POST", "service", action="restart")


@pytest.mark.parametrize(
    ("drift", "overrides", "changed", "writes"),
    [
        pytest.param(
            _rotate_secret,
            {},
            ["user lakehouse-pipeline (pipeline)"],
            [admin("PUT", "add-user", accessKey="lakehouse-pipeline")],
            id="secret-key-rotated-in-env",
        ),
        pytest.param(
            _disable,
            {},
            ["user lakehouse-reader (reader)"],
            [admin("PUT", "add-user", accessKey="lakehouse-reader")],
            id="disabled-user-re-enabled",
        ),
        pytest.param(
            _attach_readwrite,
            {},
            ["policies of user lakehouse-reader"],
            [admin("POST", "idp/builtin/policy/detach")],
            id="extra-policy-detached",
        ),
        pytest.param(
            _widen_policy,
            {},
            ["policy lakehouse-reader"],
            [admin("PUT", "add-canned-policy", name="lakehouse-reader")],
            id="edited-policy-restored",
        ),
        pytest.param(_reorder_policy, {}, [], [], id="reordered-policy-is-the-same"),
        pytest.param(
            _nothing,
            {"bridge_webhook_token": "another-bridge-token-987654321"},
            ["config notify_webhook:bridge", "server"],
            [admin("PUT", "set-config-kv"), RESTART],
            id="webhook-token-rotated",
        ),
        pytest.param(
            _nothing,
            {"bridge_webhook_url": "http://bridge:9000/events"},
            ["config notify_webhook:bridge", "server"],
            [admin("PUT", "set-config-kv"), RESTART],
            id="webhook-endpoint-changed",
        ),
        pytest.param(
            _stale_uploads_72h,
            {},
            ["config api stale_uploads_expiry"],
            [admin("PUT", "set-config-kv")],
            id="stale-upload-expiry-restored",
        ),
        pytest.param(
            _suspend_versioning,
            {},
            ["versioning of bronze"],
            [("PUT", "/bronze", {"versioning": ""})],
            id="bronze-versioning-resumed",
        ),
        pytest.param(
            _drop_notification,
            {},
            ["notifications of bronze"],
            [("PUT", "/bronze", {"notification": ""})],
            id="notification-restored",
        ),
    ],
)
def test_a_rerun_repairs_exactly_what_drifted(
    fake: FakeMinio,
    httpserver: HTTPServer,
    provisioner_for: BuildProvisioner,
    drift: Callable[[FakeMinio], None],
    overrides: dict[str, Any],
    changed: list[str],
    writes: list[Line],
) -> None:
    provisioned(fake, make_settings(httpserver), provisioner_for)
    drift(fake)

    report = provisioner_for(make_settings(httpserver, **overrides)).run()

    assert [change.subject for change in report.changed] == changed
    assert [line for line in lines(fake.writes()) if line != REFUSED_LIFECYCLE_PUT] == writes
    assert provisioner_for(make_settings(httpserver, **overrides)).run().changed == []


def test_a_rotated_webhook_token_is_sent_and_fingerprinted(
    fake: FakeMinio, httpserver: HTTPServer, provisioner_for: BuildProvisioner
) -> None:
    provisioned(fake, make_settings(httpserver), provisioner_for)
    token = "another-bridge-token-987654321"

    provisioner_for(make_settings(httpserver, bridge_webhook_token=token)).run()

    (body,) = body_of(fake, "PUT", "set-config-kv")
    assert f"auth_token={token} " in body
    assert fake.config["notify_webhook:bridge"]["comment"] == config_kv.token_fingerprint(token)
    assert token not in config_kv.token_fingerprint(token)


def test_a_target_stored_but_not_applied_gets_a_restart_before_the_notification(
    fake: FakeMinio, settings: InitSettings, provisioner_for: BuildProvisioner
) -> None:
    """A previous run stored the webhook target and stopped before restarting MinIO."""
    provisioned(fake, settings, provisioner_for)
    fake.buckets["bronze"]["notification"] = None
    fake.applied_targets.clear()

    report = provisioner_for(settings).run()

    put_notification = ("PUT", "/bronze", {"notification": ""})
    assert [line for line in lines(fake.writes()) if line != REFUSED_LIFECYCLE_PUT] == [
        put_notification,  # refused: InvalidArgument, the ARN does not exist yet
        RESTART,
        put_notification,
    ]
    assert [str(change) for change in report.changed][-2:] == [
        "server: updated (restarted to the server does not know arn:minio:sqs::bridge:webhook yet)",
        "notifications of bronze: created (s3:ObjectCreated:* -> arn:minio:sqs::bridge:webhook)",
    ]


def test_without_a_webhook_url_no_target_and_no_notification_are_set(
    fake: FakeMinio, httpserver: HTTPServer, provisioner_for: BuildProvisioner
) -> None:
    report = provisioner_for(make_settings(httpserver, bridge_webhook_url="", bridge_webhook_token="")).run()

    assert admin("GET", "get-config-kv", key="notify_webhook", subSys="") not in lines(fake.admin_calls())
    assert not any("notification" in call.query[0] for call in fake.calls if call.query)
    assert str(report.changes[-1]) == "bridge webhook: skipped (LAKEHOUSE_BRIDGE_WEBHOOK_URL is empty)"


@pytest.mark.parametrize(
    ("stored_secret", "probe_secret", "accepted"),
    [
        pytest.param("reader-secret-key", "reader-secret-key", True, id="same-secret"),
        pytest.param("reader-secret-key", "another-secret", False, id="signature-does-not-match"),
        pytest.param(None, "reader-secret-key", False, id="unknown-access-key"),
    ],
)
def test_the_credential_probe(
    fake: FakeMinio, settings: InitSettings, stored_secret: str | None, probe_secret: str, accepted: bool
) -> None:
    if stored_secret is not None:
        fake.users["lakehouse-reader"] = {"secret": stored_secret, "status": "enabled", "policies": []}
    assert credentials_work(settings)("lakehouse-reader", probe_secret) is accepted


def test_a_wrong_root_password_stops_the_run_with_the_failing_step(
    fake: FakeMinio, httpserver: HTTPServer, provisioner_for: BuildProvisioner
) -> None:
    with pytest.raises(MinioInitError, match="bucket bronze") as raised:
        provisioner_for(make_settings(httpserver, root_password="not-the-root-password")).run()
    assert "SignatureDoesNotMatch" in str(raised.value) or "AccessDenied" in str(raised.value)
    assert fake.writes() == []


def test_a_server_that_never_gets_ready_times_out(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/minio/health/ready").respond_with_data("", status=503)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    readiness = Readiness(httpserver.url_for("/"), 10.0, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(ServerNotReadyError, match=r"not ready after 10 s \(/minio/health/ready answered 503\)"):
        readiness.wait()
    assert now[0] == pytest.approx(10.0)
