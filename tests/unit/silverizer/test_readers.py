from __future__ import annotations

import io

import pytest

from lakehouse_common.contracts import parse_contract
from lakehouse_silverizer.exceptions import FileUnreadableError
from lakehouse_silverizer.readers import CsvReader, NdjsonReader, iter_chunks, json_parse_schema, py_extract, split_path

CSV_CONTRACT = parse_contract(
    """
name: rates
format: {type: csv}
columns:
  - {name: day, source: date, type: date}
  - {name: rate, type: float64}
""",
    "test",
)
ND_CONTRACT = parse_contract(
    """
name: docs
format: {type: ndjson}
columns:
  - {name: doc_id, source: id}
  - {name: salary_from, source: salary.from, type: float64}
  - {name: skills, source: "key_skills[].name", type: "list<string>"}
""",
    "test",
)


@pytest.mark.parametrize(
    ("data", "block", "expected"),
    [
        pytest.param(b"a\nb\nc\n", 2, [(b"a\n", 1), (b"b\n", 2), (b"c\n", 3)], id="line-per-block"),
        pytest.param(b"aaaa\nb\nc", 3, [(b"aaaa\n", 1), (b"b\n", 2), (b"c", 3)], id="no-trailing-newline"),
        pytest.param(b"a\nb\nc\n", 100, [(b"a\nb\nc\n", 1)], id="one-block"),
    ],
)
def test_chunks_end_at_line_breaks_and_know_their_first_line(
    data: bytes, block: int, expected: list[tuple[bytes, int]]
) -> None:
    assert [(c.data, c.first_line) for c in iter_chunks(io.BytesIO(data), block)] == expected


@pytest.mark.parametrize(
    ("path", "record", "expected"),
    [
        pytest.param("a.b", {"a": {"b": 1}}, 1, id="nested"),
        pytest.param("a.b", {"a": None}, None, id="null-parent"),
        pytest.param("a[].b", {"a": [{"b": 1}, {"b": 2}, {}]}, [1, 2, None], id="list-of-objects"),
        pytest.param("a[].b", {"a": []}, [], id="empty-list"),
        pytest.param("a[].b", {}, None, id="missing-list"),
    ],
)
def test_py_extract(path: str, record: dict[str, object], expected: object) -> None:
    assert py_extract(record, split_path(path)) == expected


def test_json_parse_schema_nests_struct_and_list_paths() -> None:
    schema = json_parse_schema(ND_CONTRACT.columns)
    assert schema is not None
    assert str(schema.field("salary").type) == "struct<from: double>"
    assert str(schema.field("key_skills").type) == "list<item: struct<name: string>>"


def _csv_batches(data: bytes) -> list:  # type: ignore[type-arg]
    reader = CsvReader(CSV_CONTRACT, "rates/x.csv", block_size=1 << 16)
    return [reader.parse(chunk) for chunk in reader.open(io.BytesIO(data))]


def test_csv_rows_keep_physical_line_numbers_around_bad_and_blank_lines() -> None:
    data = b"date,rate\n2025-01-01,1\n\n2025-01-02\n2025-01-03,3\n2025-01-04,4,extra\n2025-01-05,5\n"
    (batch,) = _csv_batches(data)
    assert batch.rows.to_pylist() == [2, 5, 7]
    assert [(e.row, e.raw) for e in batch.errors] == [(4, "2025-01-02"), (6, "2025-01-04,4,extra")]
    assert batch.raw_text(1) == "2025-01-03,3"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"day,value\n1,2\n", "header lacks contract columns date, rate", id="missing-columns"),
        pytest.param(b"date,rate\n2025-01-01,\xff\xfe\n", "line 2 is not valid utf-8", id="bad-encoding"),
        pytest.param(b"date,rate,rate\n", "header repeats column names: rate", id="duplicate-header"),
    ],
)
def test_csv_file_errors_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(FileUnreadableError, match=message):
        _csv_batches(data)


def test_ndjson_fast_path_and_slow_path_agree() -> None:
    good = b'{"id":"1","salary":{"from":10},"key_skills":[{"name":"SQL"}]}\n{"id":"2","salary":null,"key_skills":[]}\n'
    bad = good + b"{not json\n"
    reader = NdjsonReader(ND_CONTRACT, "docs/x.ndjson", block_size=1 << 16)
    fast = reader.parse(next(iter_chunks(io.BytesIO(good), 1 << 16)))
    slow = reader.parse(next(iter_chunks(io.BytesIO(bad), 1 << 16)))
    assert fast.table.column("skills").to_pylist() == [["SQL"], []]
    assert slow.table.column("skills").to_pylist() == [["SQL"], []]
    assert fast.table.column("salary_from").to_pylist() == [10.0, None]
    assert slow.table.column("salary_from").to_pylist() == ["10", None]  # typed later by the cast stage
    assert fast.rows.to_pylist() == slow.rows.to_pylist() == [1, 2]
    assert [(e.row, e.raw) for e in slow.errors] == [(3, "{not json")]
