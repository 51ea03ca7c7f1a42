from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pytest

from lakehouse_common.contracts import ContractRegistry

REPO = Path(__file__).resolve().parents[3]
PUBLISHED_AT = "%Y-%m-%dT%H:%M:%S%z"


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO))
        return importlib.import_module("bench.generate")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1MB", 1_000_000, id="mb"),
        pytest.param("2GB", 2_000_000_000, id="gb"),
        pytest.param("500kb", 500_000, id="kb-lowercase"),
        pytest.param("1.5 MB", 1_500_000, id="fraction"),
        pytest.param("200", 200_000_000, id="bare-number-is-mb"),
    ],
)
def test_parse_size(generate: ModuleType, text: str, expected: int) -> None:
    assert generate.parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "label"),
    [pytest.param("2 GB", "2gb", id="spaces-and-case"), pytest.param("200", "200mb", id="bare-number")],
)
def test_size_label(generate: ModuleType, text: str, label: str) -> None:
    assert generate.size_label(text) == label


def test_bad_size_is_rejected(generate: ModuleType) -> None:
    with pytest.raises(generate.GenerateError):
        generate.parse_size("2 parsecs")


def read(fmt: str, path: Path) -> pa.Table:
    """Read a bench file with pyarrow, keeping ids and timestamps as the text they are."""
    as_text = {"id": pa.string(), "area_id": pa.string(), "employer_id": pa.string(), "published_at": pa.string()}
    if fmt == "csv":
        convert = pacsv.ConvertOptions(column_types=as_text, strings_can_be_null=True)
        return pacsv.read_csv(path, convert_options=convert)
    options = pajson.ParseOptions(explicit_schema=pa.schema(as_text), unexpected_field_behavior="infer")
    return pajson.read_json(path, parse_options=options)


@pytest.mark.parametrize("fmt", [pytest.param("csv", id="csv"), pytest.param("ndjson", id="ndjson")])
def test_tiny_file_parses_with_pyarrow(generate: ModuleType, tmp_path: Path, fmt: str) -> None:
    made = generate.generate("1MB", fmt, data_dir=tmp_path)
    assert made.path == tmp_path / f"vacancies_1mb.{fmt}"
    assert 0.9e6 < made.bytes < 1.1e6
    table = read(fmt, made.path)
    assert table.num_rows == made.rows > 1000
    assert sorted(table.column_names) == sorted(generate.COLUMNS)
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    published = pc.strptime(table.column("published_at"), format=PUBLISHED_AT, unit="s")
    assert published.null_count == 0
    salary_null = table.column("salary_from").null_count / table.num_rows
    assert 0.45 < salary_null < 0.7
    currencies = set(table.column("currency").drop_null().to_pylist())
    assert {"RUR", "USD", "EUR", "KZT"} <= currencies
    assert any(a == "Москва" for a in table.column("area_name").to_pylist())


def test_csv_and_ndjson_hold_the_same_rows(generate: ModuleType, tmp_path: Path) -> None:
    csv_table = read("csv", generate.generate("1MB", "csv", data_dir=tmp_path).path)
    json_table = read("ndjson", generate.generate("1MB", "ndjson", data_dir=tmp_path).path)
    n = min(csv_table.num_rows, json_table.num_rows)
    for name in ("name", "area_name", "employer_name", "requirement", "published_at", "salary_to"):
        assert csv_table.column(name)[:n].to_pylist() == json_table.column(name)[:n].to_pylist(), name


def test_generation_is_cached_and_deterministic(generate: ModuleType, tmp_path: Path) -> None:
    first = generate.generate("1MB", "ndjson", data_dir=tmp_path)
    data = first.path.read_bytes()
    again = generate.generate("1MB", "ndjson", data_dir=tmp_path)
    assert again.cached and not first.cached
    assert json.loads(first.path.with_name(first.path.name + ".meta.json").read_text())["rows"] == first.rows
    other = generate.generate("1MB", "ndjson", data_dir=tmp_path / "other")
    assert other.path.read_bytes() == data


def test_bench_contracts_are_valid() -> None:
    registry = ContractRegistry.from_dir(REPO / "bench" / "contracts")
    assert registry.names() == ["bench_csv", "bench_ndjson"]
    for contract in registry:
        assert contract.primary_key == ("id",)
        assert contract.partition is not None and contract.partition.column == "published_at"
        assert {e.action for e in contract.expectations} >= {"drop", "warn"}
