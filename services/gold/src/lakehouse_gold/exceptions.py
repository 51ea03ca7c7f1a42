"""Typed errors of the gold service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lakehouse_common.exceptions import LakehouseError


class GoldError(LakehouseError):
    """Base class for errors raised while building, publishing or replicating gold."""


@dataclass(frozen=True)
class FailedNode:
    """A dbt node (model, data test, unit test) that did not pass."""

    unique_id: str
    status: str
    message: str

    def describe(self) -> str:
        first_line = (self.message or "").strip().splitlines()[0:1]
        return f"{self.unique_id} ({self.status}{': ' + first_line[0] if first_line else ''})"


class DbtInvocationError(GoldError):
    """dbt did not get as far as running nodes (bad profile, parse error, missing project)."""

    def __init__(self, returncode: int, output_tail: str) -> None:
        super().__init__(f"dbt exited with code {returncode} before running any node; last output:\n{output_tail}")
        self.returncode = returncode
        self.output_tail = output_tail


class DbtBuildError(GoldError):
    """At least one model or test failed: nothing was published and the previous gold is unchanged."""

    def __init__(self, run_id: str, failed: Sequence[FailedNode], skipped: Sequence[str], returncode: int) -> None:
        names = "; ".join(node.describe() for node in failed) or f"none reported (dbt exited with code {returncode})"
        super().__init__(
            f"gold build {run_id} failed, previous gold left untouched. Failed nodes: {names}"
            + (f". Skipped because of them: {len(skipped)} node(s)" if skipped else "")
        )
        self.returncode = returncode
        self.run_id = run_id
        self.failed = tuple(failed)
        self.skipped = tuple(skipped)

    @property
    def failed_ids(self) -> list[str]:
        return [node.unique_id for node in self.failed]


class PublishError(GoldError):
    """The staged marts could not be published to their final keys."""


class ManifestError(GoldError):
    """The gold manifest is missing or unreadable."""


class ManifestNotFoundError(ManifestError):
    def __init__(self, location: str) -> None:
        super().__init__(f"no gold manifest at {location}: run `lakehouse-gold build` first")
        self.location = location


class ReplicationError(GoldError):
    """Gold could not be copied to the replica."""


class ReplicaVerificationError(ReplicationError):
    """An object in the replica does not match what was uploaded."""
