"""Property tests (matrix row 14): random CSV and NDJSON, with quotes, line breaks, unicode and
values of the wrong type, give silver rows that round-trip (equal to the input after the
contract's casts) or a typed quarantine entry, never a crash; and rows_in = rows_out +
rows_quarantined + rows_deduplicated."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import get_settings
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import SilverizerSettings

COLUMNS = """
primary_key: [row_id]
columns:
  - {name: row_id, type: int64, nullable: false}
  - {name: label, type: string}
  - {name: count, type: int64}
  - {name: ratio, type: float64}
  - {name: flag, type: bool}
  - {name: day, type: date}
"""
CONTRACTS = {
    "csvsrc": "name: csvsrc\nformat: {type: csv, multiline: true}\n" + COLUMNS,
    "ndsrc": "name: ndsrc\nformat: {type: ndjson}\n" + COLUMNS,
}
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))


@dataclass(frozen=True)
class Row:
    label: str
    count: int | str  # a str is a value that must not cast ("x..." or a JSON object for NDJSON)
    ratio: float | str
    flag: bool | str
    day: date | str

    @property
    def valid(self) -> bool:
        return not any(isinstance(v, str) for v in (self.count, self.ratio, self.flag, self.day))


def bad(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, valid, TEXT.map(lambda t: "x" + t))


ROWS = st.lists(st.builds(Row, TEXT, bad(INT64), bad(FLOATS), bad(st.booleans()), bad(DATES)), max_size=25)


def silverize(source: str, name: str, data: bytes) -> tuple[Any, dict[int, dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as tmp:
        contracts = Path(tmp) / "contracts"
        contracts.mkdir()
        (contracts / f"{source}.yml").write_text(CONTRACTS[source])
        lake = get_settings(
            backend="local", data_dir=Path(tmp) / "data", contracts_dir=contracts, scratch_dir=Path(tmp)
        )
        run = Silverizer(lake, ContractRegistry.from_dir(contracts), SilverizerSettings(block_size=1 << 16, threads=2))
        run.lake.bronze.put_bytes(f"{source}/{name}", data)
        (entry,) = run.run_source(source).entries
        rows: dict[int, dict[str, Any]] = {}
        table_dir = Path(tmp) / "data" / "silver" / source
        if table_dir.exists():
            for row in ds.dataset(str(table_dir), format="parquet").to_table().to_pylist():
                rows[int(row["row_id"])] = row
        return entry, rows


def check(entry: Any, rows: dict[int, dict[str, Any]], given_rows: list[Row], *, empty_is_null: bool) -> None:
    assert entry.rows_in == entry.rows_out + entry.rows_quarantined + entry.rows_deduplicated
    if not given_rows:
        assert entry.rows_out == 0
        return
    assert entry.status == "loaded", entry.reason
    expected = {i: r for i, r in enumerate(given_rows) if r.valid}
    assert sorted(rows) == sorted(expected)
    assert entry.rows_quarantined == len(given_rows) - len(expected)
    for i, want in expected.items():
        got = rows[i]
        label = None if empty_is_null and want.label == "" else want.label
        assert (got["label"], got["count"], got["ratio"], got["flag"], got["day"]) == (
            label,
            want.count,
            want.ratio,
            want.flag,
            want.day,
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_random_csv_round_trips_or_is_quarantined(given_rows: list[Row]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)  # CRLF rows: fields holding a CR or LF are quoted
    writer.writerow(["row_id", "label", "count", "ratio", "flag", "day"])
    for i, r in enumerate(given_rows):
        flag = ("true" if r.flag else "false") if isinstance(r.flag, bool) else r.flag
        ratio = repr(r.ratio) if isinstance(r.ratio, float) else r.ratio
        writer.writerow([i, r.label, r.count, ratio, flag, r.day])
    entry, rows = silverize("csvsrc", "r.csv", out.getvalue().encode())
    check(entry, rows, given_rows, empty_is_null=True)  # CSV has no null but the empty field


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_random_ndjson_round_trips_or_is_quarantined(given_rows: list[Row]) -> None:
    lines = []
    for i, r in enumerate(given_rows):
        record = {
            "row_id": i,
            "label": r.label,
            "count": r.count,
            "ratio": r.ratio,
            "flag": r.flag,
            "day": r.day.isoformat() if isinstance(r.day, date) else {"nested": r.day},
        }
        lines.append(json.dumps(record, ensure_ascii=len(lines) % 2 == 0))
    data = "".join(line + "\n" for line in lines).encode()
    entry, rows = silverize("ndsrc", "r.ndjson", data)
    check(entry, rows, given_rows, empty_is_null=False)
