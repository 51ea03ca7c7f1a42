from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lakehouse_common.contracts import Column, parse_contract
from lakehouse_silverizer.exceptions import ExpectationFailedError
from lakehouse_silverizer.readers import RawBatch
from lakehouse_silverizer.transform import KeySet, cast_column, convert, normalize

CONTRACT = parse_contract(
    """
name: vac
format: {type: ndjson}
primary_key: [vacancy_id]
columns:
  - {name: vacancy_id, type: string, nullable: false}
  - {name: salary_from, type: float64}
  - {name: currency, type: string, normalize: [strip, upper], map: {RUB: RUR}}
  - {name: published_at, type: timestamp, format: "%Y-%m-%dT%H:%M:%S%z"}
expectations:
  - {name: positive, sql: "salary_from > 0", action: drop}
  - {name: known, sql: "currency IN ('RUR', 'USD')", action: warn}
""",
    "test",
)


def _batch(**columns: list[object]) -> RawBatch:
    n = len(next(iter(columns.values())))
    return RawBatch(
        table=pa.table({k: pa.array(v, type=pa.string()) for k, v in columns.items()}),
        rows=pa.array(range(10, 10 + n), type=pa.int64()),
    )


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        pytest.param(
            Column(name="c", normalize=("strip", "upper"), map={"RUB": "RUR"}),
            [" rub ", "usd"],
            ["RUR", "USD"],
            id="map",
        ),
        pytest.param(
            Column(name="c", normalize=("strip_html", "collapse_spaces", "strip")),
            ["<b>a</b>  &amp; b "],
            ["a & b"],
            id="html",
        ),
        pytest.param(Column(name="c", normalize=("null_if_empty",)), ["", "x"], [None, "x"], id="null-if-empty"),
    ],
)
def test_normalize(column: Column, values: list[str], expected: list[str | None]) -> None:
    assert normalize(pa.array(values), column).to_pylist() == expected


@pytest.mark.parametrize(
    ("column", "values", "expected", "bad"),
    [
        pytest.param(Column(name="n", type="int64"), ["1", " 2 ", None], [1, 2, None], None, id="int"),
        pytest.param(Column(name="n", type="int64"), ["1", "x", "3"], [1, None, 3], [False, True, False], id="int-bad"),
        pytest.param(Column(name="f", type="float64"), ["1.5", "1e3"], [1.5, 1000.0], None, id="float"),
        pytest.param(
            Column(name="b", type="bool"),
            ["true", "False", "maybe"],
            [True, False, None],
            [False, False, True],
            id="bool",
        ),
        pytest.param(Column(name="d", type="date"), ["2025-01-02", "02.01.2025"], None, [False, True], id="date"),
        pytest.param(
            Column(name="t", type="timestamp"),
            ["2013-07-08T16:17:21+0400"],
            None,
            None,
            id="timestamp-offset-without-colon",
        ),
    ],
)
def test_cast_column_flags_each_bad_value(
    column: Column, values: list[str | None], expected: list[object] | None, bad: list[bool] | None
) -> None:
    typed, mask, _reason = cast_column(pa.array(values, type=pa.string()), column)
    if expected is not None:
        assert typed.to_pylist() == expected
    assert (mask.tolist() if mask is not None else None) == bad


def test_timestamp_is_converted_to_utc() -> None:
    typed, _, _ = cast_column(pa.array(["2013-07-08T16:17:21+0400"]), Column(name="t", type="timestamp"))
    assert typed.type == pa.timestamp("us", tz="UTC")
    assert typed[0].as_py().isoformat() == "2013-07-08T12:17:21+00:00"


def test_convert_quarantines_cast_errors_and_dropped_expectations_and_counts_warnings() -> None:
    batch = _batch(
        vacancy_id=["1", "2", None, "4", "5"],
        salary_from=["100", "abc", "5", "-1", "7"],
        currency=["rub", "USD", "USD", "USD", "KZT"],
        published_at=["2025-01-01T00:00:00+0300"] * 5,
    )
    out = convert(batch, CONTRACT, "vac/x.ndjson")
    assert out.keep is not None
    kept = out.table.filter(pa.array(out.keep))
    assert kept.column("vacancy_id").to_pylist() == ["1", "5"]
    assert kept.column("currency").to_pylist() == ["RUR", "KZT"]
    assert out.rows[out.keep].tolist() == [10, 14]
    reasons = {e.row: (e.field, e.reason) for e in out.errors}
    assert reasons[11] == ("salary_from", "field 'salary_from': value 'abc' is not a valid float64")
    assert reasons[12][0] == "vacancy_id"
    assert "expectation 'positive' failed" in reasons[13][1]
    assert out.warnings == {"known": 1}
    assert out.rows_in == 5


def test_fail_expectation_rejects_with_the_row() -> None:
    contract = CONTRACT.model_copy(
        update={"expectations": (CONTRACT.expectations[0].model_copy(update={"action": "fail"}),)}
    )
    batch = _batch(vacancy_id=["1", "2"], salary_from=["1", "0"], currency=["RUR", "RUR"], published_at=[None, None])
    with pytest.raises(ExpectationFailedError, match=r"'positive'.*at row 11"):
        convert(batch, contract, "vac/x.ndjson")


def test_keyset_keeps_the_first_occurrence_across_batches() -> None:
    keys = KeySet()
    assert keys.first_seen(np.array([5, 3, 5], dtype=np.uint64)).tolist() == [True, True, False]
    assert keys.first_seen(np.array([3, 9], dtype=np.uint64)).tolist() == [False, True]
    for i in range(20):  # many runs get merged, membership stays exact
        keys.first_seen(np.array([100 + i], dtype=np.uint64))
    assert keys.first_seen(np.array([105, 9, 1000], dtype=np.uint64)).tolist() == [False, False, True]
    assert len(keys) == 24
