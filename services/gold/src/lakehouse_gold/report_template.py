"""The report's HTML frame: one self-contained page (inline CSS, inline SVG, no script, no fetch).

Pure string building; every value that comes from data is escaped here or by the caller's chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d2330;
       font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }
header { background: #1f3b57; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; opacity: .85; font-size: 13px; }
main { max-width: 1360px; margin: 0 auto; padding: 18px 20px 40px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin-bottom: 18px; }
.card { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { color: #5b6475; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; }
section { background: #fff; border-radius: 8px; padding: 14px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08);
          overflow-x: auto; }
section h2 { margin: 0 0 2px; font-size: 16px; font-weight: 600; }
section .caption { margin: 0 0 10px; color: #5b6475; font-size: 12px; }
h2.part { margin: 26px 4px 10px; font-size: 18px; color: #1f3b57; }
svg.chart { display: block; max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eceef2; text-align: left; white-space: nowrap; }
th { color: #5b6475; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; word-break: break-all; max-width: 420px; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 11.5px; font-weight: 600; }
.badge.loaded { background: #e3f4e6; color: #1e6b2f; }
.badge.quarantined, .badge.failed { background: #fde5e5; color: #9b1c1c; }
.badge.missing { background: #eceef2; color: #5b6475; }
footer { color: #5b6475; font-size: 12px; margin-top: 24px; }
"""


def page(title: str, subtitle: str, body: Sequence[str]) -> str:
    """The whole document."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may be fetched: no script, no images or fonts from elsewhere.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>\n"
        f"<main>\n{''.join(body)}\n</main></body></html>\n"
    )


def part(title: str) -> str:
    return f'<h2 class="part">{escape(title)}</h2>\n'


def cards(items: Sequence[tuple[str, str]]) -> str:
    """Headline numbers: (value, label) pairs."""
    inner = "".join(
        f'<div class="card"><div class="value">{escape(value)}</div><div class="label">{escape(label)}</div></div>'
        for value, label in items
    )
    return f'<div class="cards">{inner}</div>\n'


def section(section_id: str, title: str, caption: str, content: str) -> str:
    """A panel: a heading, a one-line caption, and a chart or a table (already HTML)."""
    return (
        f'<section id="{escape(section_id, quote=True)}"><h2>{escape(title)}</h2>'
        f'<p class="caption">{escape(caption)}</p>{content}</section>\n'
    )


def grid(sections: Sequence[str]) -> str:
    return f'<div class="grid">{"".join(sections)}</div>\n'


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {escape(kind, quote=True)}">{escape(text)}</span>'


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    wrap: Sequence[int] = (),
    raw: bool = False,
) -> str:
    """A table of text cells; columns in ``numeric`` are right-aligned, those in ``wrap`` may break long
    values (object keys). With ``raw`` the cells are HTML already."""
    num, wrapped = set(numeric), set(wrap)
    numeric_th = ' class="num"'
    head = "".join(f"<th{numeric_th if i in num else ''}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if raw else escape(cell)
            css = ' class="num"' if i in num else (' class="wrap"' if i in wrapped else "")
            cells.append(f"<td{css}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def footer(text: str) -> str:
    return f"<footer>{escape(text)}</footer>\n"
