"""Errors of the silverizer. Each names the bronze object and, where known, the row and field."""

from __future__ import annotations

from lakehouse_common.exceptions import LakehouseError


class SilverizerError(LakehouseError):
    """Base class for silverizer errors."""


class FileUnreadableError(SilverizerError):
    """The whole bronze object cannot be read: wrong encoding, truncated, empty, wrong shape."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class ExpectationFailedError(SilverizerError):
    """An expectation with action ``fail`` did not hold: the object is rejected."""

    def __init__(self, key: str, expectation: str, sql: str, row: int | None) -> None:
        where = f" at row {row}" if row is not None else ""
        self.reason = f"expectation {expectation!r} ({sql}) failed{where}; its action is 'fail'"
        super().__init__(f"{key}: {self.reason}")
        self.key = key
        self.expectation = expectation
        self.row = row


class NewColumnsError(FileUnreadableError):
    """Columns that the contract does not know arrived and the policy is ``fail``."""

    def __init__(self, key: str, columns: list[str]) -> None:
        super().__init__(
            key,
            f"new columns {', '.join(columns)} are not in the contract and on_new_columns is 'fail' "
            "(valid policies: fail, rescue, add)",
        )
        self.columns = columns


class ObjectNotPendingError(SilverizerError):
    """``run --key`` named an object that the ledger already holds."""


class ObjectClaimedError(SilverizerError):
    """``run --key`` named an object that another run is processing (it holds the object's claim)."""


class ClaimLostError(ObjectClaimedError):
    """The run's claim was taken over while it worked (its lease ran out): it commits nothing."""

    def __init__(self, key: str, lease_s: float) -> None:
        super().__init__(
            f"{key}: another run took over this run's claim (no renewal within the {lease_s:g} s lease, "
            "LAKEHOUSE_SILVERIZER_CLAIM_LEASE_S); nothing was committed, the other run's result stands"
        )
        self.key = key


class ObjectSupersededError(ObjectNotPendingError):
    """The bronze object changed while this version was processed, and nothing orders the two
    versions (the same modification time: S3 keeps whole seconds): this version is not committed."""

    def __init__(self, key: str, etag: str, current_etag: str, modified: str) -> None:
        super().__init__(
            f"{key} changed while it was processed (ETag {etag} -> {current_etag}, both modified at {modified}): "
            "the processed version is not committed; the current one is pending"
        )
        self.key = key


class CommitConflictError(SilverizerError):
    """Other writers kept committing to a silver table first, for every attempt."""

    def __init__(self, what: str, attempts: int, detail: str) -> None:
        super().__init__(
            f"{what}: another writer committed first {attempts} times in a row ({detail}); nothing of this "
            "batch is lost: its objects stay pending, run again (or lower the number of concurrent runs)"
        )


class SchemaConflictError(SilverizerError):
    """A silver table already holds a column with another type than the contract's."""

    def __init__(self, table: str, column: str, have: str, want: str) -> None:
        super().__init__(
            f"silver table {table}: column {column} is {have} in the Delta table but {want} in the contract; "
            "a column's type cannot change in place: give the column a new name in the contract, or move "
            "the table away and reprocess the source"
        )
        self.table = table
        self.column = column
