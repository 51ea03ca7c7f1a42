"""``lakehouse-gold show``: the headline rows of each published mart and where it lives."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse_common.storage import Lake
from lakehouse_gold.manifest import GoldManifest, MartEntry, read_manifest, read_mart_bytes

# Headline order per mart: newest month first, then the mart's main measure, largest first.
HEADLINE_ORDER: dict[str, list[tuple[str, str]]] = {
    "vacancies_by_region_month": [("published_month", "descending"), ("vacancy_count", "descending")],
    "skills_demand_by_month": [("published_month", "descending"), ("vacancy_count", "descending")],
    "salary_by_role_month": [("published_month", "descending"), ("salaried_vacancy_count", "descending")],
    "load_history": [("finished_at", "descending"), ("bronze_key", "ascending")],
}
# Columns shown per mart when not all of them fit on a screen (default: every column).
HEADLINE_COLUMNS: dict[str, list[str]] = {
    "load_history": [
        "finished_at",
        "source_name",
        "status",
        "rows_in",
        "rows_out",
        "rows_quarantined",
        "load_seconds",
        "bronze_key",
    ],
}


@dataclass(frozen=True)
class MartPreview:
    entry: MartEntry
    uri: str
    headline: pa.Table


def read_mart(lake: Lake, entry: MartEntry) -> pa.Table:
    """The mart as the manifest describes it (its sha256 is checked; see :func:`read_mart_bytes`)."""
    return pq.read_table(pa.BufferReader(read_mart_bytes(lake, entry)))


def headline(table: pa.Table, name: str, rows: int) -> pa.Table:
    order = [(column, direction) for column, direction in HEADLINE_ORDER.get(name, []) if column in table.schema.names]
    if order:
        table = table.sort_by(order)
    columns = [c for c in HEADLINE_COLUMNS.get(name, []) if c in table.schema.names]
    return (table.select(columns) if columns else table).slice(0, rows)


def preview_marts(lake: Lake, *, rows: int = 5, manifest: GoldManifest | None = None) -> list[MartPreview]:
    manifest = manifest or read_manifest(lake)
    return [
        MartPreview(
            entry=entry, uri=lake.gold.uri(entry.key), headline=headline(read_mart(lake, entry), entry.name, rows)
        )
        for entry in manifest.marts
    ]


def format_table(table: pa.Table) -> str:
    """A plain fixed-width rendering of a small table."""
    names = table.schema.names
    cells = [[_cell(value) for value in row.values()] for row in table.to_pylist()]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(names)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(names, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4f}"
    return str(value)
