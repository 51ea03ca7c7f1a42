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
    """``run --key`` named an object that the load history already holds."""


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
