"""Source contracts: one YAML file per source declares how bronze becomes silver.

A contract names the bronze format, the columns (source path, type, nullability,
normalisation), the primary key, the partition column, child tables exploded from lists,
and expectations. Each expectation carries an action, in the manner of Delta Live Tables:
``warn`` keeps the row and counts it, ``drop`` quarantines the row, ``fail`` rejects the file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakehouse_common.exceptions import ContractError, UnknownSourceError

ColumnType = Literal["string", "int64", "float64", "bool", "date", "timestamp", "list<string>", "json"]
Normalizer = Literal["strip", "lower", "upper", "collapse_spaces", "strip_html", "null_if_empty"]
Action = Literal["warn", "drop", "fail"]
NewColumnPolicy = Literal["fail", "rescue", "add"]
Granularity = Literal["year", "month", "day", "value"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PATH = re.compile(r"^[A-Za-z0-9_\- ]+(\[\])?(\.[A-Za-z0-9_\- ]+(\[\])?)*$")
ASCII_COMPATIBLE = {"utf-8", "utf8", "utf-8-sig", "cp1251", "windows-1251", "koi8-r", "latin-1", "iso-8859-1", "ascii"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FormatSpec(_Strict):
    type: Literal["csv", "json", "ndjson"]
    encoding: str = "utf-8"
    delimiter: str = ","
    quote_char: str = '"'
    header: bool = True
    multiline: bool = Field(default=False, description="CSV values may contain line breaks.")
    records_path: str | None = Field(
        default=None, description="json only: dotted path to the list of records; unset means one record per document."
    )

    @field_validator("encoding")
    @classmethod
    def _ascii_compatible(cls, value: str) -> str:
        if value.lower() not in ASCII_COMPATIBLE:
            raise ValueError(
                f"encoding {value!r} is not supported; valid encodings are: {', '.join(sorted(ASCII_COMPATIBLE))}"
            )
        return value.lower()

    @field_validator("delimiter", "quote_char")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError(f"must be a single character, got {value!r}")
        return value


class Column(_Strict):
    name: str
    source: str | None = Field(default=None, description="Path in the record (a.b, list[].field) or CSV header.")
    type: ColumnType = "string"
    nullable: bool = True
    format: str | None = Field(default=None, description="strptime format for date and timestamp columns.")
    normalize: tuple[Normalizer, ...] = ()
    map: dict[str, str] = Field(default_factory=dict, description="Replace whole values after normalisation.")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _snake(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"column name {value!r} must be snake_case ([a-z][a-z0-9_]*)")
        return value

    @property
    def path(self) -> str:
        return self.source if self.source is not None else self.name

    @property
    def strptime_format(self) -> str:
        if self.format:
            return self.format
        return "%Y-%m-%d" if self.type == "date" else "%Y-%m-%dT%H:%M:%S%z"


class Expectation(_Strict):
    name: str
    sql: str = Field(description="A boolean SQL expression over the silver columns; NULL counts as a pass.")
    action: Action = "warn"
    description: str = ""


class Partition(_Strict):
    column: str
    granularity: Granularity = "month"
    name: str | None = None

    @property
    def directory(self) -> str:
        return self.name or f"{self.column}_{self.granularity}"


class ChildTable(_Strict):
    """A silver table exploded from a list in each record (one row per list element)."""

    name: str
    explode: str = Field(description="Name of a list<string> column of the parent.")
    column: Column = Field(description="The exploded element's column.")
    parent_columns: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    description: str = ""


class Contract(_Strict):
    name: str
    version: int = 1
    description: str = ""
    bronze_prefix: str | None = None
    format: FormatSpec
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    partition: Partition | None = None
    expectations: tuple[Expectation, ...] = ()
    children: tuple[ChildTable, ...] = ()
    on_new_columns: NewColumnPolicy = "rescue"
    inferred: bool = False

    @field_validator("name")
    @classmethod
    def _snake(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"source name {value!r} must be snake_case ([a-z][a-z0-9_]*)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate column names: {', '.join(sorted(dupes))}")
        for col in self.columns:
            if not _PATH.match(col.path) and self.format.type != "csv":
                raise ValueError(f"column {col.name!r}: source path {col.path!r} is not like 'a.b' or 'a[].b'")
            if "[]" in col.path and col.type != "list<string>":
                raise ValueError(f"column {col.name!r}: a path through a list ('[]') needs type list<string>")
        known = set(names)
        for key in self.primary_key:
            if key not in known:
                raise ValueError(f"primary key column {key!r} is not a column; valid columns: {', '.join(names)}")
        if self.partition is not None:
            part = self.column(self.partition.column)
            if part is None:
                raise ValueError(f"partition column {self.partition.column!r} is not a column")
            if self.partition.granularity != "value" and part.type not in {"date", "timestamp"}:
                raise ValueError(
                    f"partition granularity {self.partition.granularity!r} needs a date or timestamp column; "
                    f"{part.name!r} is {part.type} (use granularity: value)"
                )
        for child in self.children:
            parent = self.column(child.explode)
            if parent is None or parent.type != "list<string>":
                raise ValueError(f"child {child.name!r}: explode must name a list<string> column")
            for parent_column in child.parent_columns:
                if parent_column not in known:
                    raise ValueError(f"child {child.name!r}: parent column {parent_column!r} is not a column")
        return self

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def prefix(self) -> str:
        return (self.bronze_prefix or f"{self.name}/").lstrip("/")

    @property
    def tables(self) -> list[str]:
        return [self.name, *(child.name for child in self.children)]

    @property
    def fingerprint(self) -> str:
        """The contract version recorded in the ledger: ``v<version>-<hash of the contract>``."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:10]
        return f"v{self.version}-{digest}"

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["name"] = self.name
        data["format"] = self.format.model_dump(mode="json")
        data["on_new_columns"] = self.on_new_columns
        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def parse_contract(text: str, origin: str) -> Contract:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ContractError(f"{origin}: a contract is a YAML mapping with name, format and columns")
    try:
        return Contract.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors())
        raise ContractError(f"{origin}: invalid contract: {problems}") from exc


def load_contract(path: Path) -> Contract:
    contract = parse_contract(path.read_text(encoding="utf-8"), str(path))
    if contract.name != path.stem:
        raise ContractError(f"{path}: the file name must be the source name ({contract.name}.yml)")
    return contract


class ContractRegistry:
    """Every declared source: the ``*.yml`` files in the contracts directory."""

    def __init__(self, contracts: Iterable[Contract]) -> None:
        self._by_name = {c.name: c for c in contracts}

    @classmethod
    def from_dir(cls, directory: Path) -> ContractRegistry:
        if not directory.is_dir():
            raise ContractError(f"contracts directory {directory} does not exist (set LAKEHOUSE_CONTRACTS_DIR)")
        return cls(load_contract(p) for p in sorted(directory.glob("*.yml")))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Contract:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownSourceError(name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_name.values())
