"""The admin half of the init, through the ``minio`` SDK's :class:`~minio.MinioAdmin`: canned
policies, users and their policy attachments, the ``notify_webhook`` target of the event bridge,
and (where the bucket lifecycle cannot) the server-wide expiry of stale multipart uploads.

Every function reads first and writes only what differs. The admin API encrypts some bodies with
the root secret key (``add-user``, ``set-config-kv``, policy attach/detach, ``get-config-kv``
answers); the SDK does that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from minio import MinioAdmin
from minio.error import MinioAdminException

from lakehouse_minio_init import config_kv
from lakehouse_minio_init.changes import Action, Change
from lakehouse_minio_init.exceptions import AdminApiError
from lakehouse_minio_init.policies import canonical
from lakehouse_minio_init.settings import ServiceUser

T = TypeVar("T")
REDACTED = frozenset({"*redacted*", ""})
"""How current MinIO releases show a secret (``auth_token``) in ``get-config-kv`` answers."""

CredentialCheck = Callable[[str, str], bool]
"""``(access_key, secret_key) -> True`` when the server accepts those credentials."""


def _status(exc: MinioAdminException) -> str:
    return str(getattr(exc, "_code", "")) or "error"


def _body(exc: MinioAdminException) -> str:
    return str(getattr(exc, "_body", "")) or str(exc)


def _call(action: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except MinioAdminException as exc:
        raise AdminApiError(action, _status(exc), _body(exc)) from exc


def _lookup(action: str, call: Callable[[], str]) -> str | None:
    """The answer of a read call, or None when MinIO answers 404 (no such user, policy...)."""
    try:
        return call()
    except MinioAdminException as exc:
        if _status(exc) == "404":
            return None
        raise AdminApiError(action, _status(exc), _body(exc)) from exc


# -- policies ------------------------------------------------------------------------------------
def ensure_policy(admin: MinioAdmin, name: str, document: dict[str, Any]) -> Change:
    """Canned policy ``name`` holds ``document`` (compared in canonical form)."""
    subject = f"policy {name}"
    stored = _lookup(f"read policy {name}", lambda: admin.policy_info(name))
    if stored is not None:
        try:
            current = json.loads(stored)
        except json.JSONDecodeError:
            current = {}
        # Some releases wrap the document: {"PolicyName": ..., "Policy": {...}}.
        if isinstance(current, dict) and isinstance(current.get("Policy"), dict):
            current = current["Policy"]
        if isinstance(current, dict) and canonical(current) == canonical(document):
            return Change(subject, "unchanged")
    _call(f"create policy {name}", lambda: admin.policy_add(name, policy=document))
    return Change(subject, "created" if stored is None else "updated")


# -- users ---------------------------------------------------------------------------------------
def user_info(admin: MinioAdmin, access_key: str) -> dict[str, Any] | None:
    text = _lookup(f"read user {access_key}", lambda: admin.user_info(access_key))
    if text is None:
        return None
    info = json.loads(text or "{}")
    return info if isinstance(info, dict) else {}


def attached_policies(info: dict[str, Any] | None) -> set[str]:
    return {name.strip() for name in str((info or {}).get("policyName") or "").split(",") if name.strip()}


def ensure_user(admin: MinioAdmin, user: ServiceUser, credentials_work: CredentialCheck) -> Change:
    """User ``user.access_key`` exists, is enabled and has ``user.secret_key``.

    MinIO never returns a secret key, so an existing user's secret is checked by signing a request
    with it (``credentials_work``); ``add-user`` runs only for a new user, a disabled one or a
    rotated secret.
    """
    subject = f"user {user.access_key} ({user.role})"
    info = user_info(admin, user.access_key)
    action: Action
    if info is None:
        reason, action = "", "created"
    elif info.get("status") != "enabled":
        reason, action = f"was {info.get('status') or 'not enabled'}, enabled", "updated"
    elif not credentials_work(user.access_key, user.secret_key):
        reason, action = "secret key changed in the environment, rotated", "updated"
    else:
        return Change(subject, "unchanged")
    _call(f"create user {user.access_key}", lambda: admin.user_add(user.access_key, user.secret_key))
    return Change(subject, action, reason)


def ensure_policy_attached(admin: MinioAdmin, user: ServiceUser) -> Change:
    """User ``user`` has exactly its own policy: it is attached, and any other policy is detached."""
    subject = f"policies of user {user.access_key}"
    attached = attached_policies(user_info(admin, user.access_key))
    extra = sorted(attached - {user.policy_name})
    if not extra and user.policy_name in attached:
        return Change(subject, "unchanged", user.policy_name)
    notes = []
    if user.policy_name not in attached:
        _call(
            f"attach policy {user.policy_name} to {user.access_key}",
            lambda: admin.attach_policy([user.policy_name], user=user.access_key),
        )
        notes.append(f"attached {user.policy_name}")
    if extra:
        _call(f"detach {extra} from {user.access_key}", lambda: admin.detach_policy(extra, user=user.access_key))
        notes.append(f"detached {', '.join(extra)} (least privilege: one policy per service)")
    return Change(subject, "updated", "; ".join(notes))


# -- the event bridge's webhook ------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookTarget:
    """A ``notify_webhook:<name>`` target; its bucket-notification ARN is ``arn:minio:sqs::<name>:webhook``."""

    name: str
    endpoint: str
    auth_token: str = field(repr=False)
    queue_dir: str
    queue_limit: int

    @property
    def key(self) -> str:
        return f"notify_webhook:{self.name}"

    def config(self) -> dict[str, str]:
        """What ``set-config-kv`` receives (after the key): the admin body is
        ``notify_webhook:<name> endpoint=... auth_token=... queue_dir=... queue_limit=... comment=... enable=on``."""
        return {
            "endpoint": self.endpoint,
            "auth_token": self.auth_token,
            "queue_dir": self.queue_dir,
            "queue_limit": str(self.queue_limit),
            "comment": config_kv.token_fingerprint(self.auth_token),
            "enable": "on",
        }

    def comparable(self) -> dict[str, str]:
        """The values that can be read back: everything but the (redacted) token, whose fingerprint is the comment."""
        wanted = self.config()
        del wanted["auth_token"], wanted["enable"]
        return wanted


def ensure_webhook_target(admin: MinioAdmin, target: WebhookTarget) -> Change:
    """The webhook target exists with these values. A change is stored but only takes effect after a
    server restart (notification targets are not dynamic in MinIO): the caller restarts."""
    subject = f"config {target.key}"
    text = _call("read notify_webhook config", lambda: admin.config_get("notify_webhook"))
    current = config_kv.parse(text).get(target.key)
    differs = config_kv.differences(current, target.comparable())
    if current is not None:
        shown_token = current.get("auth_token", "")
        if shown_token not in REDACTED and shown_token != target.auth_token:
            differs.append("auth_token")
        if current.get("enable") == "off":
            differs.append("enable")
    if current is not None and not differs:
        return Change(subject, "unchanged", target.endpoint)
    _call(f"set {target.key}", lambda: admin.config_set(target.key, target.config()))
    if current is None:
        return Change(subject, "created", target.endpoint)
    return Change(subject, "updated", "changed: " + ", ".join(sorted(set(differs))))


def ensure_stale_uploads_expiry(admin: MinioAdmin, hours: int) -> Change:
    """MinIO's server-wide stand-in for a bucket's AbortIncompleteMultipartUpload rule: incomplete
    multipart uploads older than ``api stale_uploads_expiry`` are removed (a dynamic setting: no restart)."""
    subject = "config api stale_uploads_expiry"
    wanted = f"{hours}h"
    text = _call("read api config", lambda: admin.config_get("api"))
    current = config_kv.parse(text).get("api", {}).get("stale_uploads_expiry")
    if current == wanted:
        return Change(subject, "unchanged", wanted)
    _call("set api stale_uploads_expiry", lambda: admin.config_set("api", {"stale_uploads_expiry": wanted}))
    return Change(subject, "updated", f"{current or 'unset'} -> {wanted}")


def restart(admin: MinioAdmin) -> None:
    """Ask MinIO to restart in place (it re-executes itself; the container keeps running)."""
    _call("restart the server", admin.service_restart)
