"""A recorded stand-in for MinIO's admin and S3 APIs, served by pytest-httpserver.

MinIO itself cannot run on the build machines (no server package, no Docker), so the init's admin
calls are checked against the behaviour recorded here from MinIO's API: the paths, methods and query
strings of ``/minio/admin/v3/*``, the bodies it encrypts with the root secret key (madmin's
argon2id + AES-GCM format, decrypted with ``minio.crypto``), its 404 error codes, secrets shown as
``*redacted*`` by ``get-config-kv``, notification targets that exist only after a restart, and its
refusal of an ``AbortIncompleteMultipartUpload``-only lifecycle rule (``MalformedXML``). Every
request must carry a valid AWS signature V4 of a known user; each is recorded as a :class:`Call`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from minio.credentials.credentials import Credentials
from minio.crypto import decrypt, encrypt
from minio.signer import sign_v4_s3
from werkzeug import Request, Response

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
ADMIN = "/minio/admin/v3/"
SECRET_KEYS = frozenset({"auth_token", "client_key"})
WEBHOOK_DEFAULTS = {
    "endpoint": "",
    "auth_token": "",
    "queue_limit": "0",
    "queue_dir": "",
    "client_cert": "",
    "client_key": "",
}
UNKNOWN_ARN = "A specified destination ARN does not exist or is not well-formed. Verify the destination ARN."
API_DEFAULTS = {"requests_max": "0", "stale_uploads_expiry": "24h", "stale_uploads_cleanup_interval": "6h"}


@dataclass(frozen=True)
class Call:
    """One request as the server saw it: who signed it, and the body (decrypted when MinIO encrypts it)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    signer: str
    body: str = ""

    @property
    def line(self) -> tuple[str, str, dict[str, str]]:
        return (self.method, self.path, dict(self.query))


class _Body:
    """Enough of a urllib3 response for ``minio.crypto.decrypt``."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


@dataclass
class FakeMinio:
    root_user: str
    root_password: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    config: dict[str, dict[str, str]] = field(default_factory=lambda: {"api": dict(API_DEFAULTS)})
    applied_targets: set[str] = field(default_factory=set)
    buckets: dict[str, dict[str, str | None]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    restarts: int = 0

    # -- helpers for tests --------------------------------------------------------------------------
    def admin_calls(self) -> list[Call]:
        return [call for call in self.calls if call.path.startswith(ADMIN)]

    def writes(self) -> list[Call]:
        return [call for call in self.calls if call.method not in {"GET", "HEAD"}]

    def set_target(self, key: str, values: dict[str, str], *, applied: bool) -> None:
        self.config[key] = {**WEBHOOK_DEFAULTS, **values}
        if applied:
            self.applied_targets.add(key.split(":", 1)[1])

    # -- the server --------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.path == "/minio/health/ready":
            return Response(status=200)
        raw = request.get_data()
        signer, error = self._verify(request, raw)
        if error is not None:
            return error
        query = tuple(parse_qsl(request.query_string.decode(), keep_blank_values=True))
        if request.path.startswith(ADMIN):
            if signer != self.root_user:
                return self._admin_error(403, "AccessDenied", "Access Denied.")
            return self._admin(request, query, raw, signer)
        self.calls.append(Call(request.method, request.path, query, signer, raw.decode("utf-8", "replace")))
        return self._s3(request, dict(query), raw, signer)

    def _secret_of(self, access_key: str) -> str | None:
        if access_key == self.root_user:
            return self.root_password
        user = self.users.get(access_key)
        return None if user is None else str(user["secret"])

    def _verify(self, request: Request, raw: bytes) -> tuple[str, Response | None]:
        match = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]*)/s3/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
            request.headers.get("Authorization", ""),
        )
        if match is None:
            return "", self._s3_error(403, "AccessDenied", "unsigned request")
        access_key, region, signed, signature = match.groups()
        secret = self._secret_of(access_key)
        if secret is None:
            return access_key, self._s3_error(
                403, "InvalidAccessKeyId", "The Access Key Id you provided does not exist."
            )
        content_sha256 = request.headers.get("x-amz-content-sha256", "")
        if content_sha256 not in {hashlib.sha256(raw).hexdigest(), "UNSIGNED-PAYLOAD"}:
            return access_key, self._s3_error(400, "XAmzContentSHA256Mismatch", "content sha256 mismatch")
        headers: dict[str, str | list[str] | tuple[str]] = {name: request.headers[name] for name in signed.split(";")}
        date = datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        url = urlsplit(f"http://{request.headers['Host']}{request.path}?{request.query_string.decode()}")
        expected = sign_v4_s3(
            method=request.method,
            url=url,
            region=region,
            headers=headers,
            credentials=Credentials(access_key, secret),
            content_sha256=content_sha256,
            date=date,
        )["Authorization"]
        if not str(expected).endswith(f"Signature={signature}"):
            return access_key, self._s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return access_key, None

    # -- admin API ---------------------------------------------------------------------------------
    def _decrypt(self, raw: bytes) -> str:
        return decrypt(_Body(raw), self.root_password).decode()  # type: ignore[arg-type]

    def _encrypted(self, text: str) -> Response:
        return Response(encrypt(text.encode(), self.root_password), status=200, content_type="application/octet-stream")

    @staticmethod
    def _admin_error(status: int, code: str, message: str) -> Response:
        body = json.dumps({"Code": code, "Message": message, "Resource": "/", "RequestId": "fake", "HostId": "fake"})
        return Response(body, status=status, content_type="application/json")

    def _admin(self, request: Request, query: tuple[tuple[str, str], ...], raw: bytes, signer: str) -> Response:
        command = request.path.removeprefix(ADMIN)
        params = dict(query)
        encrypted_body = command in {
            "add-user",
            "set-config-kv",
            "idp/builtin/policy/attach",
            "idp/builtin/policy/detach",
        }
        body = self._decrypt(raw) if encrypted_body and raw else raw.decode()
        self.calls.append(Call(request.method, request.path, query, signer, body))
        route = (request.method, command)
        if route == ("GET", "info-canned-policy"):
            policy = self.policies.get(params["name"])
            if policy is None:
                return self._admin_error(404, "XMinioAdminNoSuchPolicy", "The canned policy does not exist.")
            return Response(policy, status=200, content_type="application/json")
        if route == ("PUT", "add-canned-policy"):
            json.loads(body)
            self.policies[params["name"]] = body
            return Response(status=200)
        if route == ("GET", "user-info"):
            user = self.users.get(params["accessKey"])
            if user is None:
                return self._admin_error(404, "XMinioAdminNoSuchUser", "The specified user does not exist.")
            info = {"status": user["status"], "updatedAt": "2026-11-26T10:00:00Z"}
            if user["policies"]:
                info["policyName"] = ",".join(user["policies"])
            return Response(json.dumps(info), status=200, content_type="application/json")
        if route == ("PUT", "add-user"):
            data = json.loads(body)
            user = self.users.setdefault(params["accessKey"], {"policies": []})
            user.update(secret=data["secretKey"], status=data["status"])
            return Response(status=200)
        if route in {("POST", "idp/builtin/policy/attach"), ("POST", "idp/builtin/policy/detach")}:
            return self._attach_detach(command.endswith("attach"), json.loads(body))
        if route == ("GET", "get-config-kv"):
            return self._encrypted(self._config_text(params["key"]))
        if route == ("PUT", "set-config-kv"):
            key, *pairs = shlex.split(body)
            subsystem = key.split(":", 1)[0]
            defaults = WEBHOOK_DEFAULTS if subsystem == "notify_webhook" else {}
            current = self.config.setdefault(key, dict(defaults))
            current.update(pair.partition("=")[::2] for pair in pairs)
            return Response(status=200)
        if route == ("POST", "service") and params.get("action") == "restart":
            self.restarts += 1
            self.applied_targets = {k.split(":", 1)[1] for k in self.config if k.startswith("notify_webhook:")}
            return Response(json.dumps({"action": "restart"}), status=200, content_type="application/json")
        return self._admin_error(400, "XMinioAdminUnexpected", f"the fake does not know {route}")

    def _attach_detach(self, attach: bool, data: dict[str, Any]) -> Response:
        user = self.users.get(data["user"])
        if user is None:
            return self._admin_error(404, "XMinioAdminNoSuchUser", "The specified user does not exist.")
        wanted = list(data["policies"])
        if attach:
            missing = [name for name in wanted if name not in self.policies]
            if missing:
                return self._admin_error(404, "XMinioAdminNoSuchPolicy", "The canned policy does not exist.")
            new = [name for name in wanted if name not in user["policies"]]
            if not new:
                return self._admin_error(
                    400, "XMinioAdminPolicyChangeAlreadyApplied", "The specified policy change is already in effect."
                )
            user["policies"].extend(new)
            result = {"policiesAttached": new}
        else:
            gone = [name for name in wanted if name in user["policies"]]
            if not gone:
                return self._admin_error(
                    400, "XMinioAdminPolicyChangeAlreadyApplied", "The specified policy change is already in effect."
                )
            user["policies"] = [name for name in user["policies"] if name not in gone]
            result = {"policiesDetached": gone}
        return self._encrypted(json.dumps({"updatedAt": "2026-11-26T10:00:00Z", **result}))

    def _config_text(self, key: str) -> str:
        lines = []
        for name, values in sorted(self.config.items()):
            if name != key and not name.startswith(f"{key}:"):
                continue
            shown = {k: ("*redacted*" if k in SECRET_KEYS and v else v) for k, v in values.items()}
            lines.append(" ".join([name, *(f"{k}={shlex.quote(v) if ' ' in v else v}" for k, v in shown.items())]))
        if key == "notify_webhook":
            lines.insert(0, "notify_webhook " + " ".join(f"{k}={v}" for k, v in WEBHOOK_DEFAULTS.items()))
        return "\n".join(lines) + "\n"

    # -- S3 API ------------------------------------------------------------------------------------
    @staticmethod
    def _s3_error(status: int, code: str, message: str) -> Response:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
            "<Resource>/</Resource><RequestId>fake</RequestId><HostId>fake</HostId></Error>"
        )
        return Response(body, status=status, content_type="application/xml")

    @staticmethod
    def _xml(body: str) -> Response:
        return Response(body, status=200, content_type="application/xml")

    def _s3(self, request: Request, params: dict[str, str], raw: bytes, signer: str) -> Response:
        if request.path == "/" and request.method == "GET":
            if signer == self.root_user:
                names = "".join(f"<Bucket><Name>{name}</Name></Bucket>" for name in self.buckets)
            else:
                names = ""  # MinIO lists only what the user's policy lets it list
            return self._xml(
                f'<ListAllMyBucketsResult xmlns="{S3_NS}"><Buckets>{names}</Buckets></ListAllMyBucketsResult>'
            )
        if signer != self.root_user:
            return self._s3_error(403, "AccessDenied", "Access Denied.")
        bucket_name = request.path.strip("/")
        bucket = self.buckets.get(bucket_name)
        if request.method == "PUT" and not params:
            if bucket is not None:
                return self._s3_error(
                    409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded."
                )
            self.buckets[bucket_name] = {"versioning": None, "lifecycle": None, "notification": None}
            return Response(status=200)
        if bucket is None:
            if request.method == "HEAD":
                return Response(status=404)
            return self._s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
        if request.method == "HEAD":
            return Response(status=200)
        for sub in ("versioning", "lifecycle", "notification"):
            if sub in params:
                return self._subresource(request.method, sub, bucket, raw)
        return self._s3_error(400, "NotImplemented", f"the fake does not know {request.method} {request.path}")

    def _subresource(self, method: str, sub: str, bucket: dict[str, str | None], raw: bytes) -> Response:
        if method == "GET":
            stored = bucket[sub]
            if sub == "versioning":
                status = f"<Status>{stored}</Status>" if stored else ""
                return self._xml(f'<VersioningConfiguration xmlns="{S3_NS}">{status}</VersioningConfiguration>')
            if sub == "lifecycle" and stored is None:
                return self._s3_error(404, "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist")
            return self._xml(stored or f'<NotificationConfiguration xmlns="{S3_NS}"></NotificationConfiguration>')
        document = ET.fromstring(raw)
        if sub == "versioning":
            bucket[sub] = document.findtext(f"{{{S3_NS}}}Status") or document.findtext("Status")
        elif sub == "lifecycle":
            actions = (
                "Expiration",
                "Transition",
                "NoncurrentVersionExpiration",
                "NoncurrentVersionTransition",
                "DelMarkerExpiration",
            )
            for rule in document.iter():
                if rule.tag.rsplit("}", 1)[-1] == "Rule" and not any(
                    child.tag.rsplit("}", 1)[-1] in actions for child in rule
                ):
                    return self._s3_error(
                        400,
                        "MalformedXML",
                        "The XML you provided was not well-formed or did not validate against our published schema.",
                    )
            bucket[sub] = raw.decode()
        else:
            for queue in document.iter():
                if queue.tag.rsplit("}", 1)[-1] == "Queue":
                    target = (queue.text or "").split(":")
                    if (
                        len(target) != 6
                        or target[:3] != ["arn", "minio", "sqs"]
                        or target[4] not in self.applied_targets
                    ):
                        return self._s3_error(400, "InvalidArgument", UNKNOWN_ARN)
            bucket[sub] = raw.decode()
        return Response(status=200)
