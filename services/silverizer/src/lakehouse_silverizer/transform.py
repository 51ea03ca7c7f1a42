"""Apply a contract to a raw batch: normalise, cast, check expectations, hash keys.

Everything here is vectorised with pyarrow compute; a per-row Python path runs only for a
column that holds at least one value that does not convert, to name each bad row. The
expectations of a contract are evaluated by DuckDB over the Arrow batch in one query, which
also hashes the primary key for de-duplication.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_common.contracts import Column, Contract, Expectation
from lakehouse_silverizer.exceptions import ExpectationFailedError
from lakehouse_silverizer.readers import RawBatch, RowError

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "json": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list<string>": pa.list_(pa.string()),
}
META_FIELDS = [
    pa.field("_bronze_key", pa.string(), nullable=False),
    pa.field("_bronze_row", pa.int64(), nullable=False),
    pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
]
RESCUED = pa.field("_rescued_data", pa.string())
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def silver_schema(columns: Sequence[Column], rescued: bool = False) -> pa.Schema:
    fields = [pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in columns]
    return pa.schema([*fields, *([RESCUED] if rescued else []), *META_FIELDS])


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------
def normalize(array: pa.Array, column: Column) -> pa.Array:
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        return array
    for step in column.normalize:
        if step == "strip":
            array = pc.utf8_trim_whitespace(array)
        elif step == "lower":
            array = pc.utf8_lower(array)
        elif step == "upper":
            array = pc.utf8_upper(array)
        elif step == "collapse_spaces":
            array = pc.replace_substring_regex(array, r"\s+", " ")
        elif step == "strip_html":
            array = pc.replace_substring_regex(array, r"<[^>]*>", "")
            for entity, char in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&")):
                array = pc.replace_substring(array, entity, char)
        elif step == "null_if_empty":
            array = pc.if_else(pc.equal(array, ""), pa.scalar(None, array.type), array)
    for old, new in column.map.items():
        array = pc.if_else(pc.equal(array, old), pa.scalar(new, array.type), array)
    return array


# ---------------------------------------------------------------------------------------------
# Casting with per-row error capture
# ---------------------------------------------------------------------------------------------
def _convert_one(text: str, type_name: str) -> object:
    value = text.strip()
    if type_name == "int64":
        return int(value)
    if type_name == "float64":
        return float(value)
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


def cast_column(array: pa.Array, column: Column) -> tuple[pa.Array, np.ndarray | None, str]:
    """Cast to the contract type. Returns (typed array, mask of bad rows or None, reason)."""
    target = ARROW_TYPES[column.type]
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type == target:
        return array, None, ""
    if column.type in {"date", "timestamp"}:
        if not pa.types.is_string(array.type):
            array = pc.cast(array, pa.string())
        fmt = column.strptime_format
        parsed = pc.strptime(array, format=fmt, unit="us", error_is_null=True)
        if parsed.type.tz is None and column.type == "timestamp":
            parsed = pc.assume_timezone(parsed, "UTC")
        bad = pc.and_(pc.is_valid(array), pc.is_null(parsed))
        typed = pc.cast(parsed, target)
        if pc.any(bad).as_py():
            return typed, bad.to_numpy(zero_copy_only=False), f"does not match the format {fmt!r}"
        return typed, None, ""
    if column.type == "list<string>":
        return pc.cast(array, target), None, ""
    if column.type in {"string", "json"}:
        return pc.cast(array, target), None, ""
    try:
        source = array
        if pa.types.is_string(array.type):
            source = pc.utf8_trim_whitespace(array)
            if column.type == "bool":
                source = pc.utf8_lower(source)
        return pc.cast(source, target), None, ""
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = array.to_pylist()
    converted: list[object] = []
    bad_rows = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if value is None:
            converted.append(None)
            continue
        try:
            converted.append(_convert_one(str(value), column.type))
        except (ValueError, OverflowError):
            bad_rows[i] = True
            converted.append(None)
    return pa.array(converted, type=target), bad_rows, f"is not a valid {column.type}"


# ---------------------------------------------------------------------------------------------
# Expectations and key hashing through DuckDB
# ---------------------------------------------------------------------------------------------
_local = threading.local()


def _duckdb() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(config={"threads": 1})
        _local.con = con
    return con


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def evaluate(
    table: pa.Table, expectations: Sequence[Expectation], key: Sequence[str]
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Per expectation a boolean mask of failing rows, and the key hashes (uint64)."""
    selects = [f"coalesce(({e.sql}), true) AS e{i}" for i, e in enumerate(expectations)]
    if key:
        selects.append(f"hash({', '.join(_quote(k) for k in key)}) AS __key")
    if not selects or table.num_rows == 0:
        return [np.zeros(table.num_rows, dtype=bool) for _ in expectations], (
            np.zeros(0, dtype=np.uint64) if key else None
        )
    con = _duckdb()
    con.register("batch", table)
    try:
        result = con.execute(f"SELECT {', '.join(selects)} FROM batch").arrow()
        if isinstance(result, pa.RecordBatchReader):
            result = result.read_all()
    finally:
        con.unregister("batch")
    failing = [~result.column(f"e{i}").to_numpy() for i in range(len(expectations))]
    hashes = result.column("__key").to_numpy().astype(np.uint64, copy=False) if key else None
    return failing, hashes


# ---------------------------------------------------------------------------------------------
# A converted batch
# ---------------------------------------------------------------------------------------------
@dataclass
class Converted:
    table: pa.Table
    rows: np.ndarray
    hashes: np.ndarray | None
    errors: list[RowError]
    rows_in: int
    warnings: dict[str, int] = field(default_factory=dict)


def convert(batch: RawBatch, contract: Contract, key: str, rescued: bool = False) -> Converted:
    n = batch.table.num_rows if contract.columns else len(batch.rows)
    rows_in = n + len(batch.errors)
    errors = list(batch.errors)
    bad_any = np.zeros(n, dtype=bool)
    first_reason: list[tuple[str, str] | None] = [None] * n
    typed: dict[str, pa.Array] = {}
    for column in contract.columns:
        array = normalize(batch.table.column(column.name), column)
        values, bad, reason = cast_column(array, column)
        if bad is not None:
            for i in np.flatnonzero(bad & ~bad_any):
                first_reason[i] = (column.name, f"field {column.name!r}: value {array[int(i)].as_py()!r} {reason}")
            bad_any |= bad
        if not column.nullable:
            missing = pc.is_null(values).to_numpy(zero_copy_only=False) & ~bad_any
            for i in np.flatnonzero(missing):
                first_reason[i] = (column.name, f"field {column.name!r} is required (not nullable) but missing")
            bad_any |= missing
        typed[column.name] = values
    if rescued:
        typed[RESCUED.name] = batch.extra.get(RESCUED.name, pa.nulls(n, pa.string()))
    table = pa.table(typed) if typed else pa.table({"_": pa.nulls(n)})
    rows = batch.rows.to_numpy(zero_copy_only=False) if isinstance(batch.rows, pa.Array) else np.asarray(batch.rows)
    for i in np.flatnonzero(bad_any):
        field_name, reason = first_reason[i] or (None, "invalid row")
        errors.append(RowError(int(rows[i]), field_name, reason, batch.raw_text(int(i))))
    if bad_any.any():
        keep_idx = np.flatnonzero(~bad_any)
        source_index = keep_idx
        table = table.take(pa.array(keep_idx))
        rows = rows[keep_idx]
    else:
        source_index = np.arange(n)

    errors.sort(key=lambda e: e.row or 0)
    failing, hashes = evaluate(table, contract.expectations, contract.primary_key)
    warnings: dict[str, int] = {}
    drop = np.zeros(table.num_rows, dtype=bool)
    for expectation, mask in zip(contract.expectations, failing, strict=True):
        if not mask.any():
            continue
        if expectation.action == "fail":
            first = int(np.flatnonzero(mask)[0])
            raise ExpectationFailedError(key, expectation.name, expectation.sql, int(rows[first]))
        if expectation.action == "warn":
            warnings[expectation.name] = int(mask.sum())
            continue
        for i in np.flatnonzero(mask & ~drop):
            errors.append(
                RowError(
                    int(rows[i]),
                    None,
                    f"expectation {expectation.name!r} failed: {expectation.sql}",
                    batch.raw_text(int(source_index[i])),
                )
            )
        drop |= mask
    if drop.any():
        keep = np.flatnonzero(~drop)
        table = table.take(pa.array(keep))
        rows = rows[keep]
        hashes = hashes[keep] if hashes is not None else None
    return Converted(table=table, rows=rows, hashes=hashes, errors=errors, rows_in=rows_in, warnings=warnings)


class KeySet:
    """Seen primary-key hashes, kept as sorted uint64 runs (8 bytes a key, no Python objects)."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def first_seen(self, hashes: np.ndarray) -> np.ndarray:
        """Mask of rows whose key appears for the first time (earlier rows and batches win)."""
        if len(hashes) == 0:
            return np.zeros(0, dtype=bool)
        _, first_index = np.unique(hashes, return_index=True)
        mask = np.zeros(len(hashes), dtype=bool)
        mask[first_index] = True
        for run in self._runs:
            pos = np.searchsorted(run, hashes)
            pos[pos == len(run)] = 0
            mask &= run[pos] != hashes
        new = np.sort(hashes[mask])
        if len(new):
            self._runs.append(new)
            if len(self._runs) > 8:
                self._runs = [np.sort(np.concatenate(self._runs))]
        return mask


def explode(
    table: pa.Table, list_column: str, parent_columns: Sequence[str], child: Column
) -> tuple[pa.Table, np.ndarray]:
    """One row per list element, with the parent's columns; returns (table, parent row index)."""
    lists = table.column(list_column).combine_chunks()
    parents = pc.list_parent_indices(lists)
    values = normalize(pc.list_flatten(lists), child)
    valid = pc.is_valid(values)
    parents = parents.filter(valid)
    values = values.filter(valid)
    columns = {name: table.column(name).take(parents) for name in parent_columns}
    columns[child.name] = pc.cast(values, ARROW_TYPES[child.type])
    return pa.table(columns), parents.to_numpy(zero_copy_only=False)
