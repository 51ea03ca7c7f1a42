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


class GoldInconsistentError(ManifestError):
    """A published mart does not match the gold manifest: a publish was interrupted or is in progress."""

    def __init__(self, manifest_run_id: str | None, mismatches: list[tuple[str, str, str]]) -> None:
        detail = "; ".join(f"{key} has sha256 {got}, the manifest says {want}" for key, want, got in mismatches)
        run = f" (run {manifest_run_id})" if manifest_run_id else ""
        super().__init__(
            f"gold does not match its manifest{run}: {detail}. A gold publish was interrupted "
            "or is in progress; rerun `lakehouse-gold build` (or wait for the running one), then read again"
        )
        self.manifest_run_id = manifest_run_id
        self.mismatches = mismatches


class ServingError(GoldError):
    """The marts could not be loaded into the Postgres serving schema; served tables are unchanged."""


class ServingConnectionError(ServingError):
    """Postgres is unreachable or refused the serving user."""


class InvalidIdentifierError(ServingError):
    def __init__(self, what: str, value: str, reason: str) -> None:
        super().__init__(
            f"{what} {value!r} is not a usable Postgres identifier: {reason}; "
            "valid identifiers are 1 to 63 bytes of UTF-8 without NUL characters"
        )
        self.what = what
        self.value = value


class UnsupportedColumnTypeError(ServingError):
    def __init__(self, mart: str, column: str, data_type: str, valid: Sequence[str]) -> None:
        super().__init__(
            f"mart {mart!r}, column {column!r}: contract data_type {data_type!r} has no Postgres mapping; "
            f"valid data types are: {', '.join(valid)}, decimal(p,s)/numeric(p,s)"
        )
        self.mart = mart
        self.column = column
        self.data_type = data_type


class MartContractError(ServingError):
    """A published mart has no dbt contract, or its Parquet file does not match it."""


class MartChecksumError(ServingError):
    def __init__(self, mart: str, key: str, expected: str, actual: str) -> None:
        super().__init__(
            f"mart {mart!r}: {key} has sha256 {actual}, the gold manifest says {expected} "
            "(gold changed during the load, or the file was altered); nothing was swapped, rerun after the next publish"
        )
        self.mart = mart
        self.expected = expected
        self.actual = actual


class RowCountMismatchError(ServingError):
    def __init__(self, mart: str, expected: int, loaded: int) -> None:
        super().__init__(
            f"mart {mart!r}: loaded {loaded} rows into the staging table, the gold manifest says {expected}; "
            "the staging table was discarded and the served table is unchanged"
        )
        self.mart = mart
        self.expected = expected
        self.loaded = loaded


class DependentViewsError(ServingError):
    def __init__(self, table: str, views: Sequence[str]) -> None:
        super().__init__(
            f"{table} cannot be swapped: the view(s) {', '.join(views)} depend on it and a rename swap would have to "
            "drop them. Define such views in the BI tool, or drop them before the load and recreate them after it"
        )
        self.table = table
        self.views = tuple(views)


class SwapLockTimeoutError(ServingError):
    def __init__(self, table: str, attempts: int, lock_timeout_s: float) -> None:
        super().__init__(
            f"{table} stayed in use by other transactions: no exclusive lock after {attempts} attempt(s) of "
            f"{lock_timeout_s:g} s (LAKEHOUSE_SERVING_LOCK_TIMEOUT_S, LAKEHOUSE_SERVING_SWAP_ATTEMPTS); "
            "the served table is unchanged"
        )
        self.table = table


class CatalogError(GoldError):
    """The DuckDB catalog file could not be built."""


class DocsError(GoldError):
    """``dbt docs generate`` could not run or did not write its files."""
