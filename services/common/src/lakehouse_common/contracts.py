"""Source contracts: one YAML file per source declares how bronze becomes silver.

A contract names the bronze format, the columns (source path, type, nullability,
normalisation), the primary key, the partition column, child tables exploded from lists,
and expectations. Each expectation carries an action, in the manner of Delta Live Tables:
``warn`` keeps the row and counts it, ``drop`` quarantines the row, ``fail`` rejects the file.

An optional ``ingest:`` section says how the ingestor fetches the source into bronze
(:data:`IngestSpec`: ``rest_json``, ``http_file`` or ``local_files``). The silverizer ignores it,
and it is not part of the contract version recorded in the load history.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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


# -- ingestion (read by the ingestor only) ------------------------------------------------------
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_FIELD_PATH = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_DURATION_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 604800),
}
FORBIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def parse_duration(value: object) -> object:
    """``"90s"``, ``"15 min"``, ``"6h"``, ``"1 day"``, ``"2w"`` as a timedelta; numbers (seconds)
    and ISO 8601 durations (``P1D``) are left to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            unit = match[2].lower()
            if unit not in _DURATION_UNITS:
                raise ValueError(f"unknown duration unit {match[2]!r} in {value!r}; valid units: s, m(in), h, d(ay), w")
            return timedelta(seconds=float(match[1]) * _DURATION_UNITS[unit])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"environment variable name {value!r} must look like UPPER_SNAKE_CASE")
    return value


def _field_path(value: str) -> str:
    if not _FIELD_PATH.match(value):
        raise ValueError(f"JSON field path {value!r} must be dotted names like 'items' or 'links.next'")
    return value


class FromEnv(_Strict):
    """A value read from an environment variable when the ingestor runs (an empty one counts as
    unset), else ``default``; with no default the variable is required."""

    env: str
    default: str | None = None

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: str) -> str:
        return _env_name(value)


Text = str | FromEnv
ParamValue = bool | int | float | str | FromEnv | tuple[str | int, ...]


class AuthSpec(_Strict):
    """Credentials taken from the environment at run time, never logged or stored.

    ``bearer`` sends ``Authorization: Bearer <token>``; ``header`` sends ``<header>: <token>``.
    """

    type: Literal["bearer", "header"] = "bearer"
    token_env: str
    header: str | None = Field(default=None, description="header only: the header that carries the token.")

    @field_validator("token_env")
    @classmethod
    def _check_env(cls, value: str) -> str:
        return _env_name(value)

    @model_validator(mode="after")
    def _header_fits_type(self) -> AuthSpec:
        if self.type == "header" and not self.header:
            raise ValueError("auth type 'header' needs header: the name of the header that carries the token")
        if self.type == "bearer" and self.header is not None:
            raise ValueError("auth type 'bearer' always uses the Authorization header; remove header")
        return self


class RetrySpec(_Strict):
    """Retries on connection errors, timeouts, 429 and 5xx: exponential backoff with full jitter,
    or the server's ``Retry-After`` when it sends one."""

    attempts: int = Field(default=5, ge=1, le=20, description="Attempts in all, the first one included.")
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    jitter: Literal["full", "none"] = "full"
    retry_after_max_s: float = Field(
        default=120.0, ge=0, le=3600, description="A longer Retry-After fails the request instead of waiting."
    )


class NoPagination(_Strict):
    """One request per run (or per window)."""

    type: Literal["none"] = "none"
    items_field: str | None = None

    @field_validator("items_field")
    @classmethod
    def _check_items(cls, value: str | None) -> str | None:
        return value if value is None else _field_path(value)


class PageNumberPagination(_Strict):
    """``?page=N&per_page=M`` as hh.ru's ``/vacancies``: the answer carries items, pages and found.

    ``max_results`` is the API's depth cap (hh.ru: 2000 per query): when ``found`` is larger, a
    windowed source splits its window until every slice fits; an unwindowed one fails.
    """

    type: Literal["page_number"]
    page_param: str = "page"
    per_page_param: str = "per_page"
    per_page: int = Field(default=100, ge=1, le=1000)
    first_page: int = Field(default=0, ge=0)
    items_field: str = "items"
    pages_field: str | None = "pages"
    found_field: str | None = "found"
    max_results: int | None = Field(default=None, ge=1)

    @field_validator("items_field", "pages_field", "found_field")
    @classmethod
    def _check_paths(cls, value: str | None) -> str | None:
        return value if value is None else _field_path(value)

    @model_validator(mode="after")
    def _cap_fits(self) -> PageNumberPagination:
        if self.max_results is not None and self.max_results < self.per_page:
            raise ValueError(f"max_results ({self.max_results}) must be at least per_page ({self.per_page})")
        return self

    @property
    def reachable(self) -> int | None:
        """How many results the cap lets one query page through (whole pages only)."""
        return None if self.max_results is None else (self.max_results // self.per_page) * self.per_page


class NextLinkPagination(_Strict):
    """Each answer names the next page's URL (absolute or relative) at ``next_field``."""

    type: Literal["next_link"]
    next_field: str
    items_field: str | None = None

    @field_validator("next_field", "items_field")
    @classmethod
    def _check_paths(cls, value: str | None) -> str | None:
        return value if value is None else _field_path(value)


class CursorPagination(_Strict):
    """Each answer carries an opaque cursor at ``cursor_field``, sent back as ``cursor_param``."""

    type: Literal["cursor"]
    cursor_field: str
    cursor_param: str
    has_more_field: str | None = None
    items_field: str | None = None

    @field_validator("cursor_field", "has_more_field", "items_field")
    @classmethod
    def _check_paths(cls, value: str | None) -> str | None:
        return value if value is None else _field_path(value)


Pagination = Annotated[
    NoPagination | PageNumberPagination | NextLinkPagination | CursorPagination, Field(discriminator="type")
]


class WindowSpec(_Strict):
    """An incremental time window sent as two query parameters.

    A run asks for ``[cursor, cursor + step)`` windows up to ``now - lag``, oldest first; the
    cursor (the high-water mark, kept in bronze) starts at ``initial`` and moves to a window's end
    only once every page of it is in bronze. The parameters are formatted with ``format`` in the
    UTC offset of ``initial``.
    """

    param_from: str = "date_from"
    param_to: str = "date_to"
    field: str | None = Field(
        default=None, description="Item field the API filters on; out-of-window items are logged."
    )
    initial: datetime
    step: Duration = timedelta(days=1)
    lag: Duration = timedelta(0)
    min_span: Duration = Field(default=timedelta(seconds=1), description="The smallest window splitting may create.")
    format: str = "%Y-%m-%dT%H:%M:%S%z"

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str | None) -> str | None:
        return value if value is None else _field_path(value)

    @model_validator(mode="after")
    def _sane(self) -> WindowSpec:
        if self.initial.tzinfo is None or self.initial.utcoffset() is None:
            raise ValueError(f"initial must carry a UTC offset, like 2025-01-01T00:00:00+03:00; got {self.initial}")
        if self.step <= timedelta(0) or self.min_span <= timedelta(0):
            raise ValueError("step and min_span must be positive durations, like '1 day' or '1s'")
        if self.lag < timedelta(0):
            raise ValueError("lag must not be negative")
        if self.min_span > self.step:
            raise ValueError(f"min_span ({self.min_span}) must not exceed step ({self.step})")
        return self


class DetailsSpec(_Strict):
    """Fan-out: for each new item id in a page, ``GET <path with {id}>`` into another source.

    The bodies of one page's details land as one NDJSON object of ``source`` (whose contract
    reads ndjson). Ids already fetched are remembered for ``remember_days`` and not fetched again.
    """

    source: str
    path: str
    id_field: str = "id"
    params: dict[str, ParamValue] = Field(default_factory=dict)
    on_missing: Literal["skip", "fail"] = Field(default="skip", description="What a 404 or 410 for one id does.")
    remember_days: int = Field(default=30, ge=1, le=3660)

    @field_validator("id_field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        return _field_path(value)

    @field_validator("source")
    @classmethod
    def _snake(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"details source {value!r} must be snake_case ([a-z][a-z0-9_]*)")
        return value

    @field_validator("path")
    @classmethod
    def _has_id(cls, value: str) -> str:
        if value.count("{id}") != 1:
            raise ValueError(f"details path {value!r} must contain {{id}} exactly once, like /vacancies/{{id}}")
        return value


class _HttpSpec(_Strict):
    base_url: Text = Field(description="http(s)://host[:port][/prefix]; from the environment with {env, default}.")
    path: str = ""
    params: dict[str, ParamValue] = Field(default_factory=dict)
    headers: dict[str, Text] = Field(default_factory=dict)
    auth: AuthSpec | None = None
    timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Connect and read timeout, and whole-response deadline."
    )
    retries: RetrySpec = Field(default_factory=RetrySpec)
    rate_limit_per_s: float = Field(default=2.0, gt=0, le=1000, description="Requests per second (pages and details).")
    burst: int = Field(default=1, ge=1, le=1000)
    interval: Duration = Field(default=timedelta(hours=1), description="How often `lakehouse-ingest serve` runs it.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: Text) -> Text:
        literal = value if isinstance(value, str) else value.default
        if literal is not None and not re.match(r"^https?://[^/\s]+", literal):
            raise ValueError(f"base_url {literal!r} must start with http:// or https:// and a host")
        return value

    @field_validator("headers")
    @classmethod
    def _no_secrets(cls, value: dict[str, Text]) -> dict[str, Text]:
        bad = sorted(name for name in value if name.lower() in FORBIDDEN_HEADERS)
        if bad:
            raise ValueError(f"headers {', '.join(bad)} carry credentials: use auth: {{type, token_env}} instead")
        return value


class RestJsonSpec(_HttpSpec):
    """A paginated JSON API; each page's body lands byte for byte as one ``.json`` object."""

    kind: Literal["rest_json"]
    pagination: Pagination = Field(default_factory=NoPagination)
    window: WindowSpec | None = None
    details: DetailsSpec | None = None
    max_pages: int = Field(default=10_000, ge=1, description="Safety stop for one query (or window).")


class HttpFileSpec(_HttpSpec):
    """One CSV or JSON document over HTTP (daily rates, an export); unchanged content is not rewritten."""

    kind: Literal["http_file"]
    format: Literal["csv", "json", "ndjson"] | None = Field(default=None, description="Default: the contract's format.")


class LocalFilesSpec(_Strict):
    """Files from a local directory (or one file) imported into bronze byte for byte."""

    kind: Literal["local_files"]
    path: Text
    pattern: str = "*"
    recursive: bool = False
    interval: Duration = Field(default=timedelta(hours=1))


IngestSpec = Annotated[RestJsonSpec | HttpFileSpec | LocalFilesSpec, Field(discriminator="kind")]


WriteMode = Literal["merge", "append"]


class Contract(_Strict):
    name: str
    version: int = 1
    description: str = ""
    bronze_prefix: str | None = None
    format: FormatSpec
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    mode: WriteMode | None = Field(
        default=None,
        description="How silver takes new rows: merge (one row per primary key, the newest wins) or "
        "append. Default: merge when there is a primary key, append otherwise.",
    )
    order_by: tuple[str, ...] = Field(
        default=(),
        description="merge: the columns that say which row of a key is the newest (e.g. updated_at), "
        "compared in order; ties go to the latest ingested bronze object.",
    )
    partition: Partition | None = None
    expectations: tuple[Expectation, ...] = ()
    children: tuple[ChildTable, ...] = ()
    on_new_columns: NewColumnPolicy = "rescue"
    inferred: bool = False
    ingest: IngestSpec | None = None

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
        self._check_mode(known)
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
        self._check_ingest()
        return self

    def _check_mode(self, known: set[str]) -> None:
        if self.mode == "merge" and not self.primary_key:
            raise ValueError("mode merge needs a primary_key (the rows to merge on); use mode append without one")
        if self.order_by and self.write_mode != "merge":
            raise ValueError("order_by says which row of a key is the newest: it needs mode merge and a primary_key")
        for name in self.order_by:
            column = self.column(name)
            if column is None:
                raise ValueError(f"order_by column {name!r} is not a column; valid columns: {', '.join(sorted(known))}")
            if column.type == "list<string>":
                raise ValueError(f"order_by column {name!r} is a list; order by a date, timestamp, number or string")
        if self.write_mode == "merge":
            for child in self.children:
                missing = [k for k in self.primary_key if k not in child.parent_columns]
                if missing:
                    raise ValueError(
                        f"child {child.name!r}: parent_columns must include the primary key "
                        f"({', '.join(missing)} missing): a child's rows are replaced with their parent's"
                    )

    @property
    def write_mode(self) -> WriteMode:
        """``mode``, or its default: merge with a primary key, append without."""
        return self.mode or ("merge" if self.primary_key else "append")

    def _check_ingest(self) -> None:
        spec = self.ingest
        if isinstance(spec, RestJsonSpec):
            if self.format.type != "json":
                raise ValueError(
                    "ingest kind rest_json lands one JSON document per page: "
                    f"set format type json, not {self.format.type}"
                )
            if spec.details is not None and spec.details.source == self.name:
                raise ValueError("ingest.details.source must name another source (the detail documents' contract)")
        if isinstance(spec, HttpFileSpec) and spec.format is not None and spec.format != self.format.type:
            raise ValueError(f"ingest.format {spec.format} differs from the contract's format {self.format.type}")

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
        """The contract version recorded in the load history: ``v<version>-<hash of the contract>``."""
        # How a source is fetched (ingest) does not change what silver holds.
        digest = hashlib.sha256(self.model_dump_json(exclude={"ingest"}).encode()).hexdigest()[:10]
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
