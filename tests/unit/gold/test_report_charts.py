"""The report's SVG charts and the shaping of marts and load-history rows into their input: pure functions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from lakehouse_gold import charts, report
from lakehouse_gold import report_template as tpl

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """The chart as XML: it must be well-formed on its own (it is inlined into the page)."""
    return ET.fromstring(svg)


def marks(root: ET.Element) -> list[ET.Element]:
    return [el for el in root.iter() if "mark" in (el.get("class") or "").split()]


# -- numbers and ticks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "count", "expected"),
    [
        pytest.param(0, 23, 5, [0, 5, 10, 15, 20, 25], id="counts-step-5"),
        pytest.param(0, 1, 5, [0, 0.2, 0.4, 0.6, 0.8, 1.0], id="unit-interval"),
        pytest.param(0, 0.39, 4, [0, 0.1, 0.2, 0.3, 0.4], id="shares"),
        pytest.param(103_000, 243_000, 5, [100_000, 150_000, 200_000, 250_000], id="salaries-not-from-zero"),
        pytest.param(0, 2574, 4, [0, 1000, 2000, 3000], id="rows-step-1000"),
        pytest.param(0, 0, 5, [0, 0.2, 0.4, 0.6, 0.8, 1.0], id="all-zero-still-has-a-span"),
        pytest.param(7, 7, 5, [6, 6.5, 7, 7.5, 8], id="one-value-padded-both-sides"),
        pytest.param(-12, 30, 4, [-20, 0, 20, 40], id="negative-low"),
        pytest.param(30, 0, 3, [0, 10, 20, 30], id="bounds-in-any-order"),
    ],
)
def test_nice_ticks(low: float, high: float, count: int, expected: list[float]) -> None:
    ticks = charts.nice_ticks(low, high, count)
    assert ticks == pytest.approx(expected)
    assert ticks[0] <= min(low, high) and ticks[-1] >= max(low, high)


@pytest.mark.parametrize(
    ("low", "high", "count"),
    [
        pytest.param(0, float("nan"), 5, id="nan"),
        pytest.param(0, float("inf"), 5, id="infinite"),
        pytest.param(0, 10, 0, id="no-ticks"),
    ],
)
def test_nice_ticks_rejects(low: float, high: float, count: int) -> None:
    with pytest.raises(ValueError):
        charts.nice_ticks(low, high, count)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, "0", id="zero"),
        pytest.param(7, "7", id="small-int"),
        pytest.param(950, "950", id="hundreds"),
        pytest.param(1_234, "1.2k", id="thousands-one-decimal"),
        pytest.param(2_000, "2k", id="round-thousands"),
        pytest.param(85_300, "85k", id="tens-of-thousands"),
        pytest.param(250_000, "250k", id="salary"),
        pytest.param(1_500_000, "1.5M", id="millions"),
        pytest.param(0.25, "0.25", id="fraction"),
        pytest.param(-3_400, "-3.4k", id="negative"),
        pytest.param(float("nan"), charts.NO_VALUE, id="nan"),
    ],
)
def test_format_number(value: float, expected: str) -> None:
    assert charts.format_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0.25, "25%", id="quarter"),
        pytest.param(0.031, "3.1%", id="small-share-one-decimal"),
        pytest.param(0.0, "0%", id="zero"),
        pytest.param(1.0, "100%", id="all"),
    ],
)
def test_format_percent(value: float, expected: str) -> None:
    assert charts.format_percent(value) == expected


# -- charts ----------------------------------------------------------------------------------

MONTHS = ["2025-01", "2025-02", "2025-03"]


@pytest.mark.parametrize(
    ("series", "expected_marks"),
    [
        pytest.param([charts.Series("Москва", (5.0, 7.0, 9.0))], 1 + 3, id="one-line-three-points"),
        pytest.param([charts.Series("a", (1.0, 2.0, 3.0)), charts.Series("b", (3.0, 2.0, 1.0))], 2 + 6, id="two-lines"),
        pytest.param([charts.Series("gap", (1.0, None, 3.0))], 1 + 2, id="a-gap-draws-no-point"),
    ],
)
def test_line_chart_marks(series: list[charts.Series], expected_marks: int) -> None:
    root = parse(charts.line_chart("regions", "Vacancies", MONTHS, series))
    assert root.get("data-chart") == "regions"
    assert root.get("class") == "chart"
    assert len(marks(root)) == expected_marks
    assert float(root.get("width", 0)) > 0 and float(root.get("height", 0)) > 0


def test_line_chart_gap_starts_a_new_segment() -> None:
    root = parse(charts.line_chart("c", "t", MONTHS, [charts.Series("gap", (1.0, None, 3.0))]))
    path = next(el for el in marks(root) if el.tag == f"{SVG}path")
    assert path.get("d", "").count("M") == 2 and "L" not in path.get("d", "")


def test_line_chart_puts_larger_values_higher() -> None:
    root = parse(charts.line_chart("c", "t", MONTHS, [charts.Series("up", (1.0, 5.0, 10.0))]))
    ys = [float(el.get("cy", 0)) for el in marks(root) if el.tag == f"{SVG}circle"]
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]


def test_line_chart_rejects_misaligned_series() -> None:
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        charts.line_chart("c", "t", MONTHS, [charts.Series("short", (1.0, 2.0))])


@pytest.mark.parametrize(
    "svg",
    [
        pytest.param(charts.line_chart("c", "t", [], []), id="line-no-categories"),
        pytest.param(charts.line_chart("c", "t", MONTHS, [charts.Series("x", (None, None, None))]), id="line-all-gaps"),
        pytest.param(charts.bar_chart("c", "t", []), id="bars-none"),
        pytest.param(charts.grouped_bar_chart("c", "t", ["a"], [charts.Series("x", (0.0,))]), id="grouped-all-zero"),
        pytest.param(charts.band_chart("c", "t", []), id="bands-none"),
    ],
)
def test_empty_input_draws_no_marks_and_says_so(svg: str) -> None:
    root = parse(svg)
    assert "chart-empty" in (root.get("class") or "")
    assert marks(root) == []
    assert "no data yet" in "".join(root.itertext())


@pytest.mark.parametrize(
    ("bars", "longest_first"),
    [
        pytest.param([("SQL", 23.0), ("Git", 16.0), ("Linux", 7.0)], True, id="descending"),
        pytest.param([("tiny", 0.0), ("big", 100.0)], False, id="zero-still-drawn-1px"),
    ],
)
def test_bar_chart_lengths_follow_values(bars: list[tuple[str, float]], longest_first: bool) -> None:
    root = parse(charts.bar_chart("skills", "Top skills", bars))
    rects = [el for el in marks(root) if el.tag == f"{SVG}rect"]
    assert len(rects) == len(bars)
    widths = [float(el.get("width", 0)) for el in rects]
    assert all(w >= 1 for w in widths)
    assert (widths == sorted(widths, reverse=True)) is longest_first
    titles = [el.findtext(f"{SVG}title") for el in rects]
    assert titles == [f"{label}: {charts.format_number(value)}" for label, value in bars]


def test_bar_chart_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        charts.bar_chart("c", "t", [("x", -1.0)])


def test_grouped_bar_chart_draws_positive_values_only() -> None:
    series = [charts.Series("rows in", (2190.0, 2574.0)), charts.Series("quarantined", (2.0, 0.0))]
    root = parse(charts.grouped_bar_chart("rows", "Rows", ["currency_rates", "vacancies"], series))
    rects = marks(root)
    assert len(rects) == 3  # the zero quarantined bar is not drawn
    small = next(el for el in rects if "quarantined: 2" in (el.findtext(f"{SVG}title") or ""))
    assert float(small.get("height", 0)) >= 1  # a few bad rows beside thousands stay visible


@pytest.mark.parametrize(
    "band",
    [
        pytest.param(charts.Band("Аналитик", 100_000, 150_000, 200_000, 12), id="normal"),
        pytest.param(charts.Band("flat", 90_000, 90_000, 90_000), id="all-equal"),
    ],
)
def test_band_chart_spans_low_to_high_with_a_median_tick(band: charts.Band) -> None:
    other = charts.Band("other", 50_000, 60_000, 250_000)
    root = parse(charts.band_chart("salary", "Salary", [band, other]))
    groups = marks(root)
    assert len(groups) == 2
    rect = groups[0].find(f"{SVG}rect")
    tick = groups[0].find(f"{SVG}line")
    assert rect is not None and tick is not None
    x0, width = float(rect.get("x", 0)), float(rect.get("width", 0))
    assert width >= 2
    assert x0 <= float(tick.get("x1", 0)) <= x0 + width
    assert band.label in (groups[0].findtext(f"{SVG}title") or "")


def test_band_chart_rejects_unordered_band() -> None:
    with pytest.raises(ValueError, match="low <= mid <= high"):
        charts.band_chart("c", "t", [charts.Band("bad", 3, 1, 2)])


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("<script>alert(1)</script>", id="markup"),
        pytest.param('R&D "quoted"', id="ampersand-and-quotes"),
    ],
)
def test_labels_are_escaped(label: str) -> None:
    svgs = [
        charts.bar_chart(label, label, [(label, 1.0)]),
        charts.line_chart(label, label, [label], [charts.Series(label, (1.0,))]),
        charts.band_chart(label, label, [charts.Band(label, 1, 2, 3)]),
        charts.grouped_bar_chart(label, label, [label], [charts.Series(label, (1.0,))]),
    ]
    for svg in svgs:
        parse(svg)  # still well-formed
        assert "<script>" not in svg


def test_long_labels_are_truncated_with_the_full_text_in_the_tooltip() -> None:
    label = "Руководитель отдела аналитики и больших данных"
    root = parse(charts.bar_chart("c", "t", [(label, 3.0)]))
    texts = [el.text or "" for el in root.iter(f"{SVG}text")]
    assert any(t.endswith("…") and len(t) <= 30 for t in texts)
    assert root.find(f".//{SVG}rect/{SVG}title") is not None
    assert label in (root.find(f".//{SVG}rect/{SVG}title").text or "")  # type: ignore[union-attr]


# -- shaping marts and the load history------------------------------------------------------


def _region(area: str, name: str, month: date, count: int) -> dict[str, Any]:
    return {"area_id": area, "area_name": name, "published_month": month, "vacancy_count": count}


def test_region_series_keeps_top_regions_and_sums_the_rest() -> None:
    jan, feb = date(2025, 1, 1), date(2025, 2, 1)
    rows = [
        _region("1", "Москва", jan, 50),
        _region("1", "Москва", feb, 60),
        _region("2", "Санкт-Петербург", jan, 20),
        _region("3", "Казань", feb, 5),
        _region("4", "Сочи", jan, 1),
    ]
    months, series = report.region_series(rows, top=2)
    assert months == ["2025-01", "2025-02"]
    assert [(s.name, s.values) for s in series] == [
        ("Москва", (50.0, 60.0)),
        ("Санкт-Петербург", (20.0, None)),
        ("2 other regions", (1.0, 5.0)),
    ]


def test_skills_shaping_uses_the_latest_month() -> None:
    def row(skill: str, month: date, count: int, share: float) -> dict[str, Any]:
        return {"skill_name": skill, "published_month": month, "vacancy_count": count, "vacancy_share": share}

    jan, feb = date(2025, 1, 1), date(2025, 2, 1)
    rows = [row("SQL", jan, 9, 0.9), row("Git", jan, 3, 0.3), row("Git", feb, 8, 0.4), row("SQL", feb, 4, 0.2)]
    month, bars = report.top_skills(rows, n=1)
    assert (month, bars) == ("2025-02", [("Git", 8.0)])
    months, trend = report.skill_trend(rows, n=2)
    assert months == ["2025-01", "2025-02"]
    assert [(s.name, s.values) for s in trend] == [("Git", (0.3, 0.4)), ("SQL", (0.9, 0.2))]


def test_salary_bands_latest_month_by_median() -> None:
    def row(role: str, month: date, n: int, p25: float, p50: float, p75: float) -> dict[str, Any]:
        return {
            "professional_role_id": role,
            "professional_role_name": f"role {role}",
            "published_month": month,
            "salaried_vacancy_count": n,
            "salary_p25_rur": p25,
            "salary_median_rur": p50,
            "salary_p75_rur": p75,
        }

    feb = date(2025, 2, 1)
    rows = [row("1", date(2025, 1, 1), 99, 1, 2, 3), row("1", feb, 5, 10, 20, 30), row("2", feb, 7, 40, 50, 60)]
    month, bands = report.salary_bands(rows)
    assert month == "2025-02"
    assert bands == [charts.Band("role 2", 40, 50, 60, 7), charts.Band("role 1", 10, 20, 30, 5)]


def _entry(source: str, finished: str, status: str = "loaded", rows: int = 10, quarantined: int = 0) -> report.Load:
    return report.Load(
        source=source,
        key=f"{source}/{finished}.json",
        status=status,
        finished_at=datetime.fromisoformat(finished),
        rows_in=rows,
        rows_out=rows - quarantined,
        rows_quarantined=quarantined,
    )


def test_source_totals_and_last_loads() -> None:
    entries = [
        _entry("vacancies", "2026-01-01T10:00:00+00:00", rows=10, quarantined=2),
        _entry("vacancies", "2026-01-01T11:00:00+00:00", status="quarantined", rows=0),
        _entry("currency_rates", "2026-01-01T09:00:00+00:00", rows=5),
    ]
    totals = report.source_totals(entries)
    assert [(t.source, t.objects, t.rows_in, t.rows_out, t.rows_quarantined, t.not_loaded) for t in totals] == [
        ("currency_rates", 1, 5, 5, 0, 0),
        ("vacancies", 2, 10, 8, 2, 1),
    ]
    assert [e.finished_at.hour for e in report.last_loads(entries, n=2)] == [11, 10]


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        pytest.param(timedelta(seconds=5), "just now", id="seconds"),
        pytest.param(timedelta(minutes=7), "7 min ago", id="minutes"),
        pytest.param(timedelta(hours=3, minutes=10), "3 h ago", id="hours"),
        pytest.param(timedelta(days=2), "2 d ago", id="days"),
        pytest.param(timedelta(seconds=-30), "in the future", id="clock-skew"),
    ],
)
def test_format_age(delta: timedelta, expected: str) -> None:
    assert report.format_age(delta) == expected


def test_table_escapes_cells_unless_raw() -> None:
    html = tpl.table(["a"], [["<b>x</b>"]])
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>x</b>" in tpl.table(["a"], [["<b>x</b>"]], raw=True)


def test_render_before_anything_was_loaded_says_what_is_missing() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    data = report.ReportData(
        generated_at=now,
        backend="local",
        location="/lake",
        manifest=None,
        marts={},
        loads=[],
        freshness=[report.Freshness("bronze", now - timedelta(hours=2), "vacancies/a.json")],
    )
    html, svgs = report.render(data)
    assert set(svgs) == {"vacancies-by-region", "top-skills", "skills-trend", "salary-bands", "rows-by-source"}
    assert all(report.count_marks(svg) == 0 and "chart-empty" in svg for svg in svgs.values())
    assert "<script" not in html and "gold not published yet" in html and "2 h ago" in html
    assert "lakehouse-silverize run" in html  # the empty last-loads panel says what to run
