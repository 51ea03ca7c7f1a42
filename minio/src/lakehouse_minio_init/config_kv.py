"""MinIO's server configuration text (``get-config-kv`` / ``set-config-kv``), parsed and compared.

One line per subsystem target: ``notify_webhook:bridge endpoint=http://... queue_limit=100000 ...``;
values with spaces are double-quoted, lines starting with ``#`` are comments (MinIO writes one for
each setting an environment variable overrides). Secrets come back redacted (``auth_token=*redacted*``
on current releases), so the webhook's token is compared through a fingerprint kept in the target's
``comment``.
"""

from __future__ import annotations

import hashlib
import shlex

FINGERPRINT_PREFIX = "managed-by-lakehouse-minio-init/token-sha256:"


def parse(text: str) -> dict[str, dict[str, str]]:
    """``{"notify_webhook:bridge": {"endpoint": ..., ...}, "notify_webhook": {...}}`` from config text."""
    targets: dict[str, dict[str, str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, posix=True)
        except ValueError:  # an unbalanced quote: keep what splits on spaces
            words = line.split()
        name, *pairs = words
        values = targets.setdefault(name, {})
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if sep:
                values[key] = value
    return targets


def token_fingerprint(token: str) -> str:
    """A short, salted digest of the webhook token: tells a rotated token apart without revealing it."""
    digest = hashlib.sha256(b"lakehouse-minio-init/bridge-webhook\0" + token.encode("utf-8")).hexdigest()
    return FINGERPRINT_PREFIX + digest[:16]


def differences(current: dict[str, str] | None, wanted: dict[str, str]) -> list[str]:
    """The keys of ``wanted`` whose value differs in ``current`` (all of them when the target is absent)."""
    if current is None:
        return sorted(wanted)
    return sorted(key for key, value in wanted.items() if current.get(key) != value)
