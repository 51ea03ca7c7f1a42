"""The Postgres type of each dbt contract ``data_type`` (DuckDB type names), stated explicitly.

Each mapping also says which Parquet (Arrow) types may carry it, so a file that does not match
its contract is refused with a clear message before anything is copied. Anything not listed is
refused by :func:`pg_type` with :class:`UnsupportedColumnTypeError`: no silent fallback to ``text``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from psycopg import sql

from lakehouse_gold.exceptions import UnsupportedColumnTypeError

# DuckDB's DECIMAL without arguments, and its largest precision.
DEFAULT_DECIMAL = (18, 3)
MAX_DECIMAL_PRECISION = 38


@dataclass(frozen=True)
class PgType:
    """A Postgres column type: its DDL, the name psycopg's binary COPY dumps it as, the Arrow types that fit."""

    ddl: str
    copy_type: str
    accepts: Callable[[pa.DataType], bool]

    @property
    def sql(self) -> sql.SQL:
        # ``ddl`` comes only from this module's table (or validated integers), never from input.
        return sql.SQL(self.ddl)


def _string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _integer(max_signed_bits: int) -> Callable[[pa.DataType], bool]:
    def accepts(t: pa.DataType) -> bool:
        if pa.types.is_signed_integer(t):
            return bool(t.bit_width <= max_signed_bits)
        return bool(pa.types.is_unsigned_integer(t) and t.bit_width < max_signed_bits)

    return accepts


def _floating(max_bits: int) -> Callable[[pa.DataType], bool]:
    return lambda t: bool(pa.types.is_floating(t) and t.bit_width <= max_bits)


def _timestamp(with_zone: bool) -> Callable[[pa.DataType], bool]:
    return lambda t: bool(pa.types.is_timestamp(t) and (t.tz is not None) == with_zone)


def _binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t))


TEXT = PgType("text", "text", _string)
BOOLEAN = PgType("boolean", "bool", pa.types.is_boolean)
SMALLINT = PgType("smallint", "int2", _integer(16))
INTEGER = PgType("integer", "int4", _integer(32))
BIGINT = PgType("bigint", "int8", _integer(64))
REAL = PgType("real", "float4", _floating(32))
DOUBLE = PgType("double precision", "float8", _floating(64))
DATE = PgType("date", "date", pa.types.is_date)
TIMESTAMP = PgType("timestamp without time zone", "timestamp", _timestamp(with_zone=False))
TIMESTAMPTZ = PgType("timestamp with time zone", "timestamptz", _timestamp(with_zone=True))
TIME = PgType("time without time zone", "time", pa.types.is_time)
BYTEA = PgType("bytea", "bytea", _binary)

# dbt contract data_type (DuckDB spelling and its aliases, lower case) -> Postgres type.
PG_TYPES: dict[str, PgType] = {
    "varchar": TEXT,
    "text": TEXT,
    "string": TEXT,
    "char": TEXT,
    "bpchar": TEXT,
    "boolean": BOOLEAN,
    "bool": BOOLEAN,
    "logical": BOOLEAN,
    "tinyint": SMALLINT,
    "int1": SMALLINT,
    "smallint": SMALLINT,
    "int2": SMALLINT,
    "short": SMALLINT,
    "integer": INTEGER,
    "int": INTEGER,
    "int4": INTEGER,
    "signed": INTEGER,
    "bigint": BIGINT,
    "int8": BIGINT,
    "long": BIGINT,
    "float": REAL,  # DuckDB's FLOAT is single precision
    "float4": REAL,
    "real": REAL,
    "double": DOUBLE,
    "float8": DOUBLE,
    "double precision": DOUBLE,
    "date": DATE,
    "timestamp": TIMESTAMP,
    "datetime": TIMESTAMP,
    "timestamp without time zone": TIMESTAMP,
    "timestamptz": TIMESTAMPTZ,
    "timestamp with time zone": TIMESTAMPTZ,
    "time": TIME,
    "time without time zone": TIME,
    "blob": BYTEA,
    "bytea": BYTEA,
    "binary": BYTEA,
    "varbinary": BYTEA,
}

_SIZED_TEXT = re.compile(r"^(?:varchar|char|bpchar|character varying|character)\s*\(\s*\d+\s*\)$")
_DECIMAL = re.compile(r"^(?:decimal|numeric)(?:\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$")


def numeric(precision: int, scale: int) -> PgType:
    return PgType(f"numeric({precision},{scale})", "numeric", pa.types.is_decimal)


def normalize(data_type: str) -> str:
    """Lower case, single spaces: ``'DOUBLE  Precision'`` -> ``'double precision'``."""
    return " ".join(data_type.lower().split())


def pg_type(data_type: str | None, *, mart: str, column: str) -> PgType:
    """The Postgres type for a contract ``data_type``; raises naming the mart, column and type if there is none."""
    if data_type is None:
        raise UnsupportedColumnTypeError(mart, column, "(no data_type declared)", supported_types())
    key = normalize(data_type)
    if key in PG_TYPES:
        return PG_TYPES[key]
    if _SIZED_TEXT.match(key):
        return TEXT  # DuckDB ignores VARCHAR lengths, so no length is enforced here either
    decimal = _DECIMAL.match(key)
    if decimal:
        precision = int(decimal.group(1)) if decimal.group(1) else DEFAULT_DECIMAL[0]
        scale = int(decimal.group(2)) if decimal.group(2) else (0 if decimal.group(1) else DEFAULT_DECIMAL[1])
        if 1 <= precision <= MAX_DECIMAL_PRECISION and 0 <= scale <= precision:
            return numeric(precision, scale)
    raise UnsupportedColumnTypeError(mart, column, data_type, supported_types())


def supported_types() -> list[str]:
    return sorted(PG_TYPES)
