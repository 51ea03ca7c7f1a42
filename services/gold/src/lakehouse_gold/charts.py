"""Server-side SVG charts for the report: pure functions from numbers to SVG text.

No JavaScript and no fonts or styles from the network: each chart is one inline ``<svg>`` whose
data marks (bars, points, lines, bands) carry the class ``mark``, so a test can count them, and a
``<title>`` child, so a reader hovering a mark sees its exact value. Every label is escaped.
An empty input gives a chart that says so (class ``chart-empty``, no marks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# Tableau 10: distinguishable, and readable by most colour-blind readers in this order.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
CHAR_WIDTH = 6.6  # average advance of a 11-12 px sans-serif glyph, for layout only
NO_VALUE = "\u2013"  # an en dash: a value that is missing
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One line (or one bar per category): values aligned with the chart's categories; None is a gap."""

    name: str
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Band:
    """A range with a middle mark: the 25th percentile, the median and the 75th percentile of a group."""

    label: str
    low: float
    mid: float
    high: float
    count: int | None = None


@dataclass(frozen=True)
class _Frame:
    """Plot area inside the SVG: left, top, width, height."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


def format_number(value: float) -> str:
    """Short, human numbers: ``950``, ``1.2k``, ``85k``, ``1.5M``, ``0.25``."""
    if not math.isfinite(value):
        return NO_VALUE
    magnitude = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            scaled = value / limit
            text = f"{scaled:.1f}" if abs(scaled) < 10 else f"{scaled:.0f}"
            return text.removesuffix(".0") + suffix
    if magnitude == 0 or magnitude >= 10 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_percent(value: float) -> str:
    """A share in [0, 1] as a percentage: ``0.25`` -> ``25%``, ``0.031`` -> ``3.1%``."""
    pct = value * 100
    return f"{pct:.0f}%" if abs(pct) >= 10 or float(pct).is_integer() else f"{pct:.1f}%"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering ``[low, high]``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, got {low!r} and {high!r}")
    low, high = min(low, high), max(low, high)
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = (0.0, high + pad) if low >= 0 and low - pad < 0 else (low - pad, high + pad)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step + 1e-9) * step
    end = math.ceil(high / step - 1e-9) * step
    n = round((end - start) / step)
    return [_clean(start + i * step) for i in range(n + 1)]


def _clean(value: float) -> float:
    rounded = round(value, 10)
    return 0.0 if rounded == 0 else rounded


def _fmt(value: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max(1, max_chars - 1)].rstrip() + "…"


def _open_svg(chart_id: str, title: str, width: int, height: int, *, empty: bool = False) -> list[str]:
    css_class = "chart chart-empty" if empty else "chart"
    ident = escape(chart_id, quote=True)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" data-chart="{ident}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-title" style="{FONT};font-size:11px">',
        f'<title id="{ident}-title">{escape(title)}</title>',
    ]


def empty_chart(chart_id: str, title: str, message: str = "no data yet", *, width: int = 640, height: int = 120) -> str:
    """A chart with no marks that says why."""
    parts = _open_svg(chart_id, title, width, height, empty=True)
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="#666" '
        f'font-size="13">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: Sequence[str], left: float, top: float, width: float) -> tuple[list[str], float]:
    """Swatches and names in rows across ``width``; returns the parts and the height used."""
    parts: list[str] = []
    x, y, row_height = left, top, 16.0
    for i, name in enumerate(names):
        label = _truncate(name, 28)
        item_width = 18 + len(label) * CHAR_WIDTH + 14
        if x > left and x + item_width > left + width:
            x, y = left, y + row_height
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<g class="legend-item"><rect x="{_fmt(x)}" y="{_fmt(y)}" width="12" height="12" rx="2" fill="{color}"/>'
            f'<text x="{_fmt(x + 17)}" y="{_fmt(y + 10)}" fill="#333">{escape(label)}</text></g>'
        )
        x += item_width
    return parts, (y - top) + row_height if names else 0.0


def _y_axis(frame: _Frame, ticks: Sequence[float], fmt: Formatter) -> list[str]:
    lo, hi = ticks[0], ticks[-1]
    parts = []
    for tick in ticks:
        y = frame.bottom - (tick - lo) / (hi - lo) * frame.height
        parts.append(
            f'<line class="grid" x1="{_fmt(frame.left)}" x2="{_fmt(frame.right)}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
            f'stroke="#e5e5e5"/>'
            f'<text x="{_fmt(frame.left - 6)}" y="{_fmt(y + 4)}" text-anchor="end" fill="#555">'
            f"{escape(fmt(tick))}</text>"
        )
    return parts


def _x_labels(categories: Sequence[str], xs: Sequence[float], y: float, plot_width: float) -> list[str]:
    longest = max((len(c) for c in categories), default=1)
    fits = max(1, int(plot_width // (longest * CHAR_WIDTH + 10)))
    every = max(1, math.ceil(len(categories) / fits))
    last = len(categories) - 1
    return [
        f'<text x="{_fmt(x)}" y="{_fmt(y)}" text-anchor="middle" fill="#555">{escape(category)}</text>'
        for i, (category, x) in enumerate(zip(categories, xs, strict=True))
        if (last - i) % every == 0  # always label the newest category
    ]


def line_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    height: int = 300,
    y_format: Formatter = format_number,
    y_from_zero: bool = True,
) -> str:
    """One line per series over ordered categories (months); a point mark per value, a path per run of values."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not values:
        return empty_chart(chart_id, title, width=width)
    for s in series:
        if len(s.values) != len(categories):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(categories)} categories")
    legend, legend_height = _legend([s.name for s in series], 56, 8, width - 64)
    frame = _Frame(left=56, top=16 + legend_height, width=width - 56 - 16, height=height - 16 - legend_height - 30)
    ticks = nice_ticks(0.0 if y_from_zero else min(values), max(values))
    lo, hi = ticks[0], ticks[-1]
    step = frame.width / len(categories)
    xs = [frame.left + step * (i + 0.5) for i in range(len(categories))]

    def y_of(value: float) -> float:
        return frame.bottom - (value - lo) / (hi - lo) * frame.height

    parts = _open_svg(chart_id, title, width, height)
    parts += legend
    parts += _y_axis(frame, ticks, y_format)
    parts += _x_labels(categories, xs, frame.bottom + 16, frame.width)
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        commands: list[str] = []
        pen_down = False
        for x, value in zip(xs, s.values, strict=True):
            if value is None:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{_fmt(x)},{_fmt(y_of(value))}")
            pen_down = True
        parts.append(
            f'<g class="series" data-series="{escape(s.name, quote=True)}">'
            f'<path class="mark line" d="{" ".join(commands)}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )
        for x, category, value in zip(xs, categories, s.values, strict=True):
            if value is not None:
                parts.append(
                    f'<circle class="mark point" cx="{_fmt(x)}" cy="{_fmt(y_of(value))}" r="3" fill="{color}">'
                    f"<title>{escape(s.name)}, {escape(category)}: {escape(y_format(value))}</title></circle>"
                )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[tuple[str, float]],
    *,
    width: int = 640,
    bar_height: int = 20,
    value_format: Formatter = format_number,
    color: str = PALETTE[0],
) -> str:
    """Horizontal bars from zero, one per (label, value), in the given order, each with its value at its end."""
    if not bars:
        return empty_chart(chart_id, title, width=width)
    if any(value < 0 for _, value in bars):
        raise ValueError("bar_chart draws non-negative values only")
    labels = [_truncate(label, 30) for label, _ in bars]
    left = 12 + max(len(label) for label in labels) * CHAR_WIDTH
    gap = 6
    height = 8 + len(bars) * (bar_height + gap) + 24
    frame = _Frame(left=left, top=8, width=width - left - 56, height=len(bars) * (bar_height + gap))
    ticks = nice_ticks(0.0, max(value for _, value in bars))
    hi = ticks[-1]
    parts = _open_svg(chart_id, title, width, height)
    for tick in ticks:
        x = frame.left + tick / hi * frame.width
        parts.append(
            f'<line class="grid" x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(frame.top)}" y2="{_fmt(frame.bottom)}" '
            f'stroke="#e5e5e5"/>'
            f'<text x="{_fmt(x)}" y="{_fmt(frame.bottom + 14)}" text-anchor="middle" fill="#555">'
            f"{escape(value_format(tick))}</text>"
        )
    for i, ((label, value), short) in enumerate(zip(bars, labels, strict=True)):
        y = frame.top + i * (bar_height + gap)
        length = max(value / hi * frame.width, 1.0)
        parts.append(
            f'<text x="{_fmt(frame.left - 6)}" y="{_fmt(y + bar_height * 0.7)}" text-anchor="end" fill="#333">'
            f"{escape(short)}</text>"
            f'<rect class="mark bar" x="{_fmt(frame.left)}" y="{_fmt(y)}" width="{_fmt(length)}" '
            f'height="{bar_height}" rx="2" fill="{color}"><title>{escape(label)}: {escape(value_format(value))}</title>'
            f"</rect>"
            f'<text x="{_fmt(frame.left + length + 4)}" y="{_fmt(y + bar_height * 0.7)}" fill="#333">'
            f"{escape(value_format(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def grouped_bar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    height: int = 280,
    y_format: Formatter = format_number,
) -> str:
    """Vertical bars grouped by category, one colour per series (e.g. rows in, out, quarantined per source).

    A zero or missing value draws no bar; a positive value draws at least a 1 px bar, so a small
    but real count (a few quarantined rows beside thousands loaded) stays visible.
    """
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not values or max(values) <= 0:
        return empty_chart(chart_id, title, width=width)
    for s in series:
        if len(s.values) != len(categories):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(categories)} categories")
    legend, legend_height = _legend([s.name for s in series], 56, 8, width - 64)
    frame = _Frame(left=56, top=16 + legend_height, width=width - 56 - 16, height=height - 16 - legend_height - 30)
    ticks = nice_ticks(0.0, max(values))
    hi = ticks[-1]
    group = frame.width / len(categories)
    bar = min(36.0, group * 0.8 / len(series))
    parts = _open_svg(chart_id, title, width, height)
    parts += legend
    parts += _y_axis(frame, ticks, y_format)
    centres = [frame.left + group * (i + 0.5) for i in range(len(categories))]
    parts += _x_labels([_truncate(c, 24) for c in categories], centres, frame.bottom + 16, frame.width)
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        for centre, category, value in zip(centres, categories, s.values, strict=True):
            if value is None or value <= 0:
                continue
            x = centre - bar * len(series) / 2 + index * bar
            h = max(value / hi * frame.height, 1.0)
            parts.append(
                f'<rect class="mark bar" x="{_fmt(x)}" y="{_fmt(frame.bottom - h)}" width="{_fmt(bar - 2)}" '
                f'height="{_fmt(h)}" fill="{color}"><title>{escape(category)}, {escape(s.name)}: '
                f"{escape(y_format(value))}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def band_chart(
    chart_id: str,
    title: str,
    bands: Sequence[Band],
    *,
    width: int = 640,
    row_height: int = 22,
    value_format: Formatter = format_number,
    color: str = PALETTE[0],
) -> str:
    """One row per group: a bar from ``low`` to ``high`` and a tick at ``mid`` (salary p25, median, p75)."""
    if not bands:
        return empty_chart(chart_id, title, width=width)
    for band in bands:
        if not band.low <= band.mid <= band.high:
            raise ValueError(f"band {band.label!r} needs low <= mid <= high, got {band.low}, {band.mid}, {band.high}")
    labels = [_truncate(b.label, 30) for b in bands]
    left = 12 + max(len(label) for label in labels) * CHAR_WIDTH
    gap = 6
    height = 8 + len(bands) * (row_height + gap) + 24
    frame = _Frame(left=left, top=8, width=width - left - 24, height=len(bands) * (row_height + gap))
    ticks = nice_ticks(min(b.low for b in bands), max(b.high for b in bands))
    lo, hi = ticks[0], ticks[-1]

    def x_of(value: float) -> float:
        return frame.left + (value - lo) / (hi - lo) * frame.width

    parts = _open_svg(chart_id, title, width, height)
    for tick in ticks:
        x = x_of(tick)
        parts.append(
            f'<line class="grid" x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(frame.top)}" y2="{_fmt(frame.bottom)}" '
            f'stroke="#e5e5e5"/>'
            f'<text x="{_fmt(x)}" y="{_fmt(frame.bottom + 14)}" text-anchor="middle" fill="#555">'
            f"{escape(value_format(tick))}</text>"
        )
    for i, (band, short) in enumerate(zip(bands, labels, strict=True)):
        y = frame.top + i * (row_height + gap)
        x0, x1, xm = x_of(band.low), x_of(band.high), x_of(band.mid)
        count = f" ({band.count} vacancies)" if band.count is not None else ""
        tip = (
            f"{band.label}{count}: p25 {value_format(band.low)}, median {value_format(band.mid)}, "
            f"p75 {value_format(band.high)}"
        )
        parts.append(
            f'<text x="{_fmt(frame.left - 6)}" y="{_fmt(y + row_height * 0.7)}" text-anchor="end" fill="#333">'
            f"{escape(short)}</text>"
            f'<g class="mark band"><title>{escape(tip)}</title>'
            f'<rect x="{_fmt(x0)}" y="{_fmt(y + 3)}" width="{_fmt(max(x1 - x0, 2.0))}" height="{row_height - 6}" '
            f'rx="3" fill="{color}" fill-opacity="0.35" stroke="{color}"/>'
            f'<line x1="{_fmt(xm)}" x2="{_fmt(xm)}" y1="{_fmt(y)}" y2="{_fmt(y + row_height)}" stroke="#1f3b57" '
            f'stroke-width="3"/></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
