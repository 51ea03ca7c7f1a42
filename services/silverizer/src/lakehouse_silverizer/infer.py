"""Contracts for sources that have none: inferred from the first file, as Auto Loader does.

The inferred contract is saved in the silver layer at ``_contracts/<source>.yml`` for review
(copy it into ``contracts/`` to make it a declared contract). Later files are checked against
it; columns it does not know follow its ``on_new_columns`` policy:

* ``fail``: the file is quarantined, naming the new columns;
* ``rescue``: the new fields go, as JSON, into a ``_rescued_data`` column;
* ``add``: the contract gains the columns (as nullable strings) and its version goes up.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from lakehouse_common.contracts import Column, Contract, FormatSpec, NewColumnPolicy, parse_contract
from lakehouse_common.storage import LayerStore, ObjectInfo
from lakehouse_silverizer.exceptions import FileUnreadableError
from lakehouse_silverizer.readers import split_path

CONTRACTS_PREFIX = "_contracts"
SAMPLE_BYTES = 1 << 20
_RECORD_KEYS = ("items", "data", "results", "records", "rows")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EXTENSIONS = ".csv, .tsv, .json, .ndjson, .jsonl (optionally .gz)"


def contract_key(source: str) -> str:
    return f"{CONTRACTS_PREFIX}/{source}.yml"


def load_inferred(store: LayerStore, source: str) -> Contract | None:
    key = contract_key(source)
    if store.stat(key) is None:
        return None
    return parse_contract(store.read_bytes(key).decode("utf-8"), store.uri(key))


def save_inferred(store: LayerStore, contract: Contract, *, replace: bool = False) -> Contract:
    """Save for review; when another run saved one first, that one wins."""
    header = (
        f"# Inferred by the silverizer from the first file of {contract.name!r}.\n"
        "# Review it, then copy it to contracts/ to declare the source.\n"
    )
    written = store.put_bytes(
        contract_key(contract.name), (header + contract.to_yaml()).encode(), if_absent=not replace
    )
    if written:
        return contract
    existing = load_inferred(store, contract.name)
    return existing if existing is not None else contract


def snake(name: str) -> str:
    cleaned = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip()).strip("_").lower()
    if not cleaned:
        return "column"
    return cleaned if cleaned[0].isalpha() else f"c_{cleaned}"


def _unique_names(paths: Iterable[str]) -> list[tuple[str, str]]:
    seen: dict[str, int] = {}
    out = []
    for path in paths:
        base = snake(path.replace("[]", ""))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append((base if count == 0 else f"{base}_{count + 1}", path))
    return out


def _value_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "string"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float64"
    if all(isinstance(v, str) and _DATE.match(v) for v in present):
        return "date"
    if any(isinstance(v, (list, dict)) for v in present):
        return "json"
    return "string"


def _flatten(record: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < 2:
            flat.update(_flatten(value, f"{path}.", depth + 1))
        else:
            flat[path] = value
    return flat


def _is_path_safe(key: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_\- ]+", key))


def columns_from_records(records: list[dict[str, Any]]) -> list[Column]:
    flats = [_flatten(r) for r in records]
    paths: list[str] = []
    for flat in flats:
        for path in flat:
            if path not in paths and all(_is_path_safe(p) for p in path.split(".")):
                paths.append(path)
    return [
        Column(name=name, source=path, type=_value_type([f.get(path) for f in flats]))  # type: ignore[arg-type]
        for name, path in _unique_names(paths)
    ]


def _format_for(key: str) -> str:
    name = key.lower().removesuffix(".gz")
    for ext, fmt in ((".csv", "csv"), (".tsv", "csv"), (".ndjson", "ndjson"), (".jsonl", "ndjson"), (".json", "json")):
        if name.endswith(ext):
            return fmt
    raise FileUnreadableError(key, f"cannot infer a contract from this file name; valid extensions are {_EXTENSIONS}")


def _sample(store: LayerStore, info: ObjectInfo, limit: int) -> bytes:
    with store.open_input(info.key) as stream:
        data = bytes(stream.read(limit))
    if not data.strip():
        raise FileUnreadableError(info.key, "cannot infer a contract from an empty file")
    return data


def sample_records(data: bytes, limit: int = 1000) -> list[dict[str, Any]]:
    records = []
    for line in data.split(b"\n")[:limit]:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def infer_contract(
    store: LayerStore, source: str, info: ObjectInfo, block_size: int, policy: NewColumnPolicy = "rescue"
) -> Contract:
    fmt = _format_for(info.key)
    if fmt == "csv":
        data = _sample(store, info, max(SAMPLE_BYTES, block_size))
        return _infer_csv(source, info.key, data, policy)
    if fmt == "ndjson":
        data = _sample(store, info, SAMPLE_BYTES)
        records = sample_records(data)
        if not records:
            raise FileUnreadableError(info.key, "cannot infer a contract: no JSON object in the first lines")
        spec = FormatSpec(type="ndjson")
    else:
        data = _sample(store, info, 256 << 20)
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise FileUnreadableError(info.key, f"cannot infer a contract: invalid JSON ({exc})") from exc
        records_path, records = _find_records(document)
        spec = FormatSpec(type="json", records_path=records_path)
    columns = columns_from_records(records[:1000])
    if not columns:
        raise FileUnreadableError(info.key, "cannot infer a contract: the records have no fields")
    return Contract(name=source, format=spec, columns=tuple(columns), inferred=True, on_new_columns=policy)


def _find_records(document: Any) -> tuple[str | None, list[dict[str, Any]]]:
    if isinstance(document, list):
        return None, [r for r in document if isinstance(r, dict)]
    if isinstance(document, dict):
        candidates = [k for k in _RECORD_KEYS if isinstance(document.get(k), list)]
        candidates += [k for k, v in document.items() if isinstance(v, list) and k not in candidates]
        for key in candidates:
            rows = [r for r in document[key] if isinstance(r, dict)]
            if rows:
                return key, rows
        return None, [document]
    return None, []


def _infer_csv(source: str, key: str, data: bytes, policy: NewColumnPolicy) -> Contract:
    cut = data.rfind(b"\n")
    sample = data[: cut + 1] if cut > 0 else data
    text = sample.decode("utf-8", "replace").lstrip("\ufeff")
    try:
        delimiter = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    try:
        table = pcsv.read_csv(
            io.BytesIO(text.encode()),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=lambda _row: "skip"),
        )
    except pa.ArrowInvalid as exc:
        raise FileUnreadableError(key, f"cannot infer a contract: {exc}") from exc
    columns = []
    for (name, header), column_field in zip(_unique_names(table.column_names), table.schema, strict=True):
        kind = column_field.type
        if pa.types.is_integer(kind):
            type_name = "int64"
        elif pa.types.is_floating(kind):
            type_name = "float64"
        elif pa.types.is_boolean(kind):
            type_name = "bool"
        elif pa.types.is_date(kind):
            type_name = "date"
        else:
            type_name = "string"
        columns.append(Column(name=name, source=header, type=type_name))  # type: ignore[arg-type]
    spec = FormatSpec(type="csv", delimiter=delimiter)
    return Contract(name=source, format=spec, columns=tuple(columns), inferred=True, on_new_columns=policy)


def new_fields(contract: Contract, records: list[Any]) -> list[str]:
    """Top-level fields of the records that the contract does not read."""
    known = {split_path(c.path)[0][0] for c in contract.columns}
    found: list[str] = []
    for record in records:
        if isinstance(record, dict):
            found.extend(k for k in record if k not in known and k not in found)
    return found


def evolve(store: LayerStore, contract: Contract, extra: list[str]) -> Contract:
    """Policy ``add``: the contract gains the new columns, as nullable strings, one version up."""
    taken = {c.name for c in contract.columns}
    added = []
    for name, path in _unique_names(extra):
        final = name if name not in taken else f"{name}_new"
        taken.add(final)
        added.append(Column(name=final, source=path, type="json" if contract.format.type != "csv" else "string"))
    evolved = contract.model_copy(update={"columns": (*contract.columns, *added), "version": contract.version + 1})
    evolved = Contract.model_validate(evolved.model_dump())
    return save_inferred(store, evolved, replace=True)
