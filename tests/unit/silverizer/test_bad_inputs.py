"""Bad CSV and JSON input (matrix rows 7 and 8) and schema drift (row 9), through a whole run:
each bad row or file is quarantined with its reason, everything else loads, and silver files
written before a drift keep reading with their schema."""

from __future__ import annotations

import codecs
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_silverizer.runner import LoadRecord, Silverizer
from lakehouse_silverizer.settings import SilverizerSettings

PEOPLE_CSV = """
name: people
format: {type: csv, encoding: cp1251, delimiter: ";"}
primary_key: [person_id]
columns:
  - {name: person_id, source: id, type: int64, nullable: false}
  - {name: person_name, source: name, type: string}
  - {name: born, type: date}
"""
EVENTS_NDJSON = """
name: events
format: {type: ndjson}
columns:
  - {name: event_id, source: id, type: string, nullable: false}
  - {name: amount, type: float64}
  - {name: city, source: place.city, type: string}
  - {name: tags, source: "tags[]", type: "list<string>"}
"""
PAGES_JSON = """
name: pages
format: {type: json, records_path: items}
columns:
  - {name: item_id, source: id, type: string, nullable: false}
  - {name: price, type: float64}
"""


@pytest.fixture
def lake(tmp_path: Path) -> Silverizer:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    for name, text in (("people", PEOPLE_CSV), ("events", EVENTS_NDJSON), ("pages", PAGES_JSON)):
        (contracts / f"{name}.yml").write_text(text)
    settings: Settings = get_settings(
        backend="local", data_dir=tmp_path / "data", contracts_dir=contracts, scratch_dir=tmp_path / "s"
    )
    return Silverizer(settings, ContractRegistry.from_dir(contracts), SilverizerSettings(block_size=1 << 16))


def quarantined_rows(lake: Silverizer, key: str) -> list[dict[str, object]]:
    """The ``_quarantine`` Delta table's rows of one bronze object, in row order (deltalake reads them)."""
    table = DeltaTable(lake.lake.silver.table_uri(tables.QUARANTINE)).to_pyarrow_table()
    rows = [r for r in table.to_pylist() if r["bronze_key"] == key]
    return sorted(rows, key=lambda r: (r["row"] is not None, r["row"] or 0))  # type: ignore[operator]


def run_one(lake: Silverizer, key: str, data: bytes) -> tuple[LoadRecord, list[dict[str, object]]]:
    lake.lake.bronze.put_bytes(key, data)
    (entry,) = lake.run_source(key.split("/", maxsplit=1)[0]).entries
    quarantined = quarantined_rows(lake, key)
    assert entry.rows_in == entry.rows_out + entry.rows_quarantined + entry.rows_deduplicated
    return entry, quarantined


CP1251_ROWS = "id;name;born\n1;Иванов Иван;1990-01-02\n2;Пётр «Старший»;1985-12-31\n"


@pytest.mark.parametrize(
    ("data", "status", "rows_out", "reasons"),
    [
        pytest.param(codecs.BOM_UTF8 + CP1251_ROWS.encode("cp1251"), "loaded", 2, [], id="cp1251-semicolon-with-bom"),
        pytest.param(CP1251_ROWS.encode("cp1251"), "loaded", 2, [], id="cp1251-semicolon"),
        pytest.param(
            "id;name;born\n1;a;1990-01-01\n2;b\n3;c;1990-01-03;extra\n".encode("cp1251"),
            "loaded",
            1,
            ["expected 3 fields, found 2", "expected 3 fields, found 4"],
            id="wrong-column-count",
        ),
        pytest.param(
            "id;name;born\nx;a;1990-01-01\n2;b;31.12.1990\n3;c;1990-01-03\n".encode("cp1251"),
            "loaded",
            1,
            ["'x' is not a valid int64", "'31.12.1990' does not match the format"],
            id="values-that-do-not-cast",
        ),
        pytest.param(
            'id;name;born\n1;"unterminated;1990-01-01\n2;b;1990-01-02\n'.encode("cp1251"),
            "loaded",
            1,
            ["malformed CSV row"],
            id="unterminated-quote",
        ),
        pytest.param(b"id;name;born\n", "loaded", 0, [], id="header-only"),
        pytest.param(b"", "quarantined", 0, ["empty"], id="empty-file"),
        pytest.param(b"id;name;born\n1;\x98;1990-01-01\n", "quarantined", 0, ["not valid cp1251"], id="invalid-cp1251"),
    ],
)
def test_bad_csv_is_quarantined_with_its_reason_and_the_rest_loads(
    lake: Silverizer, data: bytes, status: str, rows_out: int, reasons: list[str]
) -> None:
    entry, quarantined = run_one(lake, "people/export.csv", data)
    assert (entry.status, entry.rows_out) == (status, rows_out), entry.reason
    got = [str(q["reason"]) for q in quarantined]
    assert len(got) == len(reasons), got
    for want, reason in zip(reasons, got, strict=True):
        assert want in reason
    if status == "loaded" and rows_out:
        names = ds.dataset(str(lake.settings.data_dir / "silver" / "people"), format="parquet").to_table()
        assert names.num_rows == rows_out
        if "Иванов" in CP1251_ROWS and entry.rows_quarantined == 0:
            assert "Иванов Иван" in names.column("person_name").to_pylist()


@pytest.mark.parametrize(
    ("data", "status", "rows_out", "reasons"),
    [
        pytest.param(b'{"id": "1", "amount": 1.5}\n{"id": "2", "amo', "loaded", 1, ["invalid JSON"], id="truncated"),
        pytest.param(
            b'{"id": "1"}\n[1, 2]\n"text"\n',
            "loaded",
            1,
            ["expected a JSON object, got list", "got str"],
            id="not-an-object",
        ),
        pytest.param(
            b'{"id": "1", "amount": "lots"}\n{"id": "2", "amount": 2}\n',
            "loaded",
            1,
            ["'lots' is not a valid float64"],
            id="wrong-types",
        ),
        pytest.param(
            b'{"id": "1", "place": "Moscow", "tags": "a"}\n{"id": "2", "place": {"city": {"name": "Omsk"}}}\n',
            "loaded",
            2,
            [],
            id="unexpected-nesting",
        ),
        pytest.param(b"\xff\xfe{}\n", "quarantined", 0, ["not valid utf-8"], id="invalid-utf8"),
    ],
)
def test_bad_ndjson_is_quarantined_with_its_reason_and_the_rest_loads(
    lake: Silverizer, data: bytes, status: str, rows_out: int, reasons: list[str]
) -> None:
    entry, quarantined = run_one(lake, "events/e.ndjson", data)
    assert (entry.status, entry.rows_out) == (status, rows_out), entry.reason
    got = [str(q["reason"]) for q in quarantined]
    assert len(got) == len(reasons), got
    for want, reason in zip(reasons, got, strict=True):
        assert want in reason


@pytest.mark.parametrize(
    ("document", "status", "reason"),
    [
        pytest.param(b'{"items": [{"id": "1"}', "quarantined", "invalid or truncated JSON", id="truncated"),
        pytest.param(b'{"items": 5}', "quarantined", "is a int, not a list", id="records-not-a-list"),
        pytest.param(b"[1, 2]", "quarantined", "records_path 'items' not found", id="not-an-object"),
        pytest.param(
            b'{"items": [{"id": "1", "price": "x"}, 7]}', "loaded", "is a int, not an object", id="mixed-items"
        ),
    ],
)
def test_bad_json_documents(lake: Silverizer, document: bytes, status: str, reason: str) -> None:
    entry, quarantined = run_one(lake, "pages/p.json", document)
    assert entry.status == status
    assert any(reason in str(q["reason"]) for q in quarantined), quarantined
