"""The service policies, kept as IAM JSON in ``minio/policies/<role>.json``.

The files name the buckets as the layers (``arn:aws:s3:::bronze``...); :func:`render` rewrites them to
the configured bucket names, so ``LAKEHOUSE_BRONZE_BUCKET=lake-bronze`` needs no edited policy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lakehouse_minio_init.exceptions import PolicyFileError

S3_ARN = "arn:aws:s3:::"


def load(policy_dir: Path, role: str) -> dict[str, Any]:
    """The policy document of ``role``; raises :class:`PolicyFileError` naming what is wrong."""
    path = policy_dir / f"{role}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        present = sorted(p.name for p in policy_dir.glob("*.json")) if policy_dir.is_dir() else []
        raise PolicyFileError(
            f"policy file {path} is missing (found: {', '.join(present) or 'nothing'}); "
            "set MINIO_INIT_POLICY_DIR to the folder holding ingestor.json, pipeline.json, reader.json and metrics.json"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyFileError(f"policy file {path} is not readable JSON: {exc}") from exc
    statements = document.get("Statement") if isinstance(document, dict) else None
    if document.get("Version") != "2012-10-17" or not isinstance(statements, list) or not statements:
        raise PolicyFileError(
            f"policy file {path} must be an IAM policy: Version 2012-10-17 and a non-empty Statement list"
        )
    return dict(document)


def _rename(resource: str, buckets: Mapping[str, str]) -> str:
    if not resource.startswith(S3_ARN):
        return resource
    bucket, slash, rest = resource[len(S3_ARN) :].partition("/")
    return f"{S3_ARN}{buckets.get(bucket, bucket)}{slash}{rest}"


def render(document: Mapping[str, Any], buckets: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``document`` whose S3 resources name ``buckets[layer]`` instead of ``layer``."""
    statements = []
    for statement in document["Statement"]:
        resources = statement.get("Resource", [])
        renamed = [_rename(r, buckets) for r in ([resources] if isinstance(resources, str) else resources)]
        statements.append({**statement, "Resource": renamed})
    return {**document, "Statement": statements}


def _as_sorted_list(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
    return sorted(str(item) for item in items)


def canonical(document: Mapping[str, Any]) -> str:
    """A form of a policy that is equal for equivalent documents: MinIO may return a stored policy with
    actions and resources reordered, a single string as a list, or an empty ``Sid`` dropped."""
    statements = []
    for statement in document.get("Statement", []):
        statements.append(
            {
                "Sid": statement.get("Sid") or "",
                "Effect": statement.get("Effect"),
                "Action": _as_sorted_list(statement.get("Action")),
                "NotAction": _as_sorted_list(statement.get("NotAction")),
                "Resource": _as_sorted_list(statement.get("Resource")),
                "NotResource": _as_sorted_list(statement.get("NotResource")),
                "Condition": statement.get("Condition") or {},
            }
        )
    statements.sort(key=lambda s: json.dumps(s, sort_keys=True))
    return json.dumps({"Version": document.get("Version"), "Statement": statements}, sort_keys=True)
