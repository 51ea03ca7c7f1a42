"""``lakehouse-gold report``: one static HTML page with the marts as charts and the pipeline's health.

The page is self-contained (inline CSS and server-side SVG, no script, no fetch), so it opens
offline from a file, an S3 console or a mail attachment. It is written atomically, through the
lake, to ``report/index.html`` in gold beside the marts (so S3 works), and to a local file whose
``file://`` address the command prints.

What it shows:

- vacancies by region over time, the top skills and their trend, salary bands (p25, median, p75)
  by professional role, all from the published gold marts (``_manifest.json`` names them);
- the pipeline's health, from silver's load history (the Delta table ``silver/_load_history``)
  and the layers: the last loads (one row per bronze object version: status, rows, time, reason),
  rows in, out and quarantined per source, and the freshness of each layer (newest bronze object,
  newest load, gold's ``published_at``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lakehouse_common import tables
from lakehouse_common.exceptions import StorageError
from lakehouse_common.progress import NoProgress, Progress
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold import charts
from lakehouse_gold import report_template as tpl
from lakehouse_gold.exceptions import ManifestNotFoundError
from lakehouse_gold.manifest import GoldManifest, read_manifest
from lakehouse_gold.show import read_mart

log = logging.getLogger(__name__)

REPORT_KEY = "report/index.html"
REGION_MART = "vacancies_by_region_month"
SKILLS_MART = "skills_demand_by_month"
SALARY_MART = "salary_by_role_month"
TOP_REGIONS = 6
TOP_SKILLS = 10
TREND_SKILLS = 5
TOP_ROLES = 12
LAST_LOADS = 15

Row = dict[str, Any]
# The load-history columns the page uses (lakehouse_common.tables.load_history_schema).
HISTORY_COLUMNS = (
    "source",
    "bronze_key",
    "status",
    "rows_in",
    "rows_out",
    "rows_quarantined",
    "rows_deduplicated",
    "reason",
    "finished_at",
    "seconds",
)


@dataclass(frozen=True)
class Load:
    """One row of silver's load history: what became of one bronze object version."""

    source: str
    key: str
    status: str  # loaded | quarantined | duplicate | failed
    finished_at: datetime
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    seconds: float = 0.0
    reason: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Load:
        return cls(
            source=str(row["source"]),
            key=str(row["bronze_key"]),
            status=str(row["status"]),
            finished_at=row["finished_at"],
            rows_in=int(row["rows_in"] or 0),
            rows_out=int(row["rows_out"] or 0),
            rows_quarantined=int(row["rows_quarantined"] or 0),
            rows_deduplicated=int(row["rows_deduplicated"] or 0),
            seconds=float(row["seconds"] or 0.0),
            reason=row.get("reason"),
        )


def read_loads(lake: Lake) -> list[Load]:
    """Every row of silver's load history, oldest first; none before the first silver run."""
    history = tables.read_history(lake.silver, columns=HISTORY_COLUMNS)
    return [Load.from_row(row) for row in history.to_pylist()]


def is_data_object(key: str) -> bool:
    """Whether a bronze key holds data: names starting with ``.`` or ``_`` are bookkeeping or temporary."""
    return not key.rsplit("/", 1)[-1].startswith((".", "_"))


@dataclass(frozen=True)
class Freshness:
    """The newest thing in one layer: when, and what."""

    layer: str
    newest: datetime | None
    what: str


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    backend: str
    location: str
    manifest: GoldManifest | None
    marts: dict[str, list[Row]]
    loads: list[Load]
    freshness: list[Freshness]


@dataclass(frozen=True)
class ReportResult:
    gold_uri: str
    local_path: Path
    size_bytes: int
    charts: dict[str, int]
    loads: int  # rows of the load history shown
    gold_run_id: str | None
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        drawn = ", ".join(f"{name} ({marks} marks)" for name, marks in self.charts.items())
        lines = [
            f"report   {self.local_path.resolve().as_uri()}",
            f"  in gold  {self.gold_uri}",
            f"  size     {self.size_bytes / 1024:.0f} KiB, built in {self.seconds:.1f} s",
            f"  gold run {self.gold_run_id or '(none published yet)'}",
            f"  loads    {self.loads} in the load history",
            f"  charts   {drawn}",
        ]
        lines += [f"  note     {note}" for note in self.notes]
        return "\n".join(lines)


# -- shaping the marts into chart input (pure) ------------------------------------------------


def month_label(value: object) -> str:
    """``2025-03`` for a date, datetime or ISO string."""
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m")
    return str(value)[:7]


def region_series(rows: Sequence[Row], top: int = TOP_REGIONS) -> tuple[list[str], list[charts.Series]]:
    """Vacancies per month of the ``top`` regions by total, plus one series summing the others."""
    months = sorted({month_label(r["published_month"]) for r in rows})
    totals: dict[str, int] = defaultdict(int)
    names: dict[str, tuple[str, str]] = {}  # area_id -> (newest month, name)
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for r in rows:
        area, month = str(r["area_id"]), month_label(r["published_month"])
        totals[area] += int(r["vacancy_count"])
        counts[(area, month)] += float(r["vacancy_count"])
        if r.get("area_name") and (area not in names or month >= names[area][0]):
            names[area] = (month, str(r["area_name"]))
    ranked = sorted(totals, key=lambda a: (-totals[a], a))
    series = [
        charts.Series(names.get(area, ("", area))[1], tuple(counts.get((area, m)) for m in months))
        for area in ranked[:top]
    ]
    rest = ranked[top:]
    if rest:
        other = tuple(sum(counts.get((a, m), 0.0) for a in rest) for m in months)
        series.append(charts.Series(f"{len(rest)} other regions", other))
    return months, series


def latest_month(rows: Sequence[Row]) -> str | None:
    return max((month_label(r["published_month"]) for r in rows), default=None)


def top_skills(rows: Sequence[Row], n: int = TOP_SKILLS) -> tuple[str | None, list[tuple[str, float]]]:
    """The ``n`` skills most asked for in the latest month, with their vacancy counts."""
    month = latest_month(rows)
    latest = [r for r in rows if month_label(r["published_month"]) == month]
    latest.sort(key=lambda r: (-int(r["vacancy_count"]), str(r["skill_name"])))
    return month, [(str(r["skill_name"]), float(r["vacancy_count"])) for r in latest[:n]]


def skill_trend(rows: Sequence[Row], n: int = TREND_SKILLS) -> tuple[list[str], list[charts.Series]]:
    """The share of vacancies asking for each of the latest month's ``n`` top skills, month by month."""
    _, leaders = top_skills(rows, n)
    months = sorted({month_label(r["published_month"]) for r in rows})
    share = {(str(r["skill_name"]), month_label(r["published_month"])): float(r["vacancy_share"]) for r in rows}
    return months, [charts.Series(skill, tuple(share.get((skill, m)) for m in months)) for skill, _ in leaders]


def salary_bands(rows: Sequence[Row], n: int = TOP_ROLES) -> tuple[str | None, list[charts.Band]]:
    """p25, median and p75 per role in the latest month, the ``n`` roles with most salaries, by median."""
    month = latest_month(rows)
    latest = [r for r in rows if month_label(r["published_month"]) == month]
    latest.sort(key=lambda r: (-int(r["salaried_vacancy_count"]), str(r["professional_role_id"])))
    bands = [
        charts.Band(
            label=str(r.get("professional_role_name") or r["professional_role_id"]),
            low=float(r["salary_p25_rur"]),
            mid=float(r["salary_median_rur"]),
            high=float(r["salary_p75_rur"]),
            count=int(r["salaried_vacancy_count"]),
        )
        for r in latest[:n]
    ]
    bands.sort(key=lambda b: (-b.mid, b.label))
    return month, bands


# -- shaping the load history (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class SourceTotals:
    source: str
    objects: int
    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_deduplicated: int
    not_loaded: int
    last_finished: datetime


def source_totals(entries: Iterable[Load]) -> list[SourceTotals]:
    by_source: dict[str, list[Load]] = defaultdict(list)
    for entry in entries:
        by_source[entry.source].append(entry)
    return [
        SourceTotals(
            source=source,
            objects=len(mine),
            rows_in=sum(e.rows_in for e in mine),
            rows_out=sum(e.rows_out for e in mine),
            rows_quarantined=sum(e.rows_quarantined for e in mine),
            rows_deduplicated=sum(e.rows_deduplicated for e in mine),
            not_loaded=sum(e.status != "loaded" for e in mine),
            last_finished=max(e.finished_at for e in mine),
        )
        for source, mine in sorted(by_source.items())
    ]


def rows_chart_input(totals: Sequence[SourceTotals]) -> tuple[list[str], list[charts.Series]]:
    categories = [t.source for t in totals]
    return categories, [
        charts.Series("rows in", tuple(float(t.rows_in) for t in totals)),
        charts.Series("rows out", tuple(float(t.rows_out) for t in totals)),
        charts.Series("quarantined", tuple(float(t.rows_quarantined) for t in totals)),
    ]


def last_loads(entries: Iterable[Load], n: int = LAST_LOADS) -> list[Load]:
    """The ``n`` most recently finished loads, newest first."""
    return sorted(entries, key=lambda e: (e.finished_at, e.key), reverse=True)[:n]


def format_age(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"  # pragma: no cover - unreachable


# -- reading the lake ------------------------------------------------------------------------


def _newest_bronze(lake: Lake) -> Freshness:
    try:
        return _scan_bronze(lake)
    except (StorageError, ClientError) as exc:  # e.g. a gold-only user that may not list bronze
        log.warning("cannot list bronze for the report's freshness table: %s", exc)
        return Freshness("bronze", None, f"not listable with these credentials ({type(exc).__name__})")


def _scan_bronze(lake: Lake) -> Freshness:
    newest = None
    for folder in lake.bronze.folders():
        if folder.startswith(("_", ".")):
            continue  # the ingestor's index, metadata and state
        for info in lake.bronze.list(f"{folder}/"):
            if not is_data_object(info.key) or "/_" in f"/{info.key}":
                continue  # sidecars and temporary files
            if newest is None or info.modified > newest.modified:
                newest = info
    if newest is None:
        return Freshness("bronze", None, "no objects")
    return Freshness("bronze", newest.modified, newest.key)


def collect(lake: Lake, *, now: datetime | None = None, progress: Progress | None = None) -> ReportData:
    """Everything the page shows, read from gold (manifest and marts), the load history and the bronze listing."""
    progress = progress or NoProgress()
    try:
        manifest: GoldManifest | None = read_manifest(lake)
    except ManifestNotFoundError:
        manifest = None
    marts: dict[str, list[Row]] = {}
    mart_entries = list(manifest.marts) if manifest else []
    total = len(mart_entries) + 2
    progress.start("report", total, "objects")
    done = 0
    for entry in mart_entries:
        marts[entry.name] = read_mart(lake, entry).to_pylist()
        done += 1
        progress.update(done, marts=len(marts))
    loads = read_loads(lake)  # one Delta table read, however many objects were loaded
    progress.update(done + 1, loads=len(loads))
    bronze = _newest_bronze(lake)
    progress.update(total)
    progress.finish()
    newest = max(loads, key=lambda e: e.finished_at, default=None)
    freshness = [
        bronze,
        Freshness(
            "silver",
            newest.finished_at if newest else None,
            f"load history: {newest.source} {newest.key}" if newest else "nothing loaded yet",
        ),
        Freshness(
            "gold",
            manifest.published_at if manifest else None,
            f"run {manifest.run_id}" if manifest else "not published: run `lakehouse-gold build`",
        ),
    ]
    settings = lake.settings
    location = str(settings.data_dir.resolve()) if settings.backend == "local" else settings.s3_endpoint_url or "AWS S3"
    return ReportData(
        generated_at=now or datetime.now(UTC),
        backend=settings.backend,
        location=location,
        manifest=manifest,
        marts=marts,
        loads=loads,
        freshness=freshness,
    )


# -- rendering (pure) ------------------------------------------------------------------------


def _stamp(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else charts.NO_VALUE


def _rur(value: float) -> str:
    return charts.format_number(value) + " ₽"


def _market_sections(data: ReportData) -> tuple[list[str], dict[str, str]]:
    regions = data.marts.get(REGION_MART, [])
    skills = data.marts.get(SKILLS_MART, [])
    salaries = data.marts.get(SALARY_MART, [])
    svgs: dict[str, str] = {}
    months, series = region_series(regions)
    svgs["vacancies-by-region"] = charts.line_chart(
        "vacancies-by-region", "Vacancies by region and month", months, series, width=640, height=320
    )
    skill_month, bars = top_skills(skills)
    svgs["top-skills"] = charts.bar_chart(
        "top-skills", f"Top skills in {skill_month}", bars, width=640, color=charts.PALETTE[4]
    )
    trend_months, trend = skill_trend(skills)
    svgs["skills-trend"] = charts.line_chart(
        "skills-trend",
        "Share of vacancies asking for each top skill",
        trend_months,
        trend,
        width=640,
        height=300,
        y_format=charts.format_percent,
    )
    salary_month, bands = salary_bands(salaries)
    svgs["salary-bands"] = charts.band_chart(
        "salary-bands", f"Salary bands by role in {salary_month}", bands, width=640, value_format=_rur
    )
    sections = [
        tpl.section(
            "vacancies-by-region",
            "Vacancies by region over time",
            f"Vacancies published per month, the {TOP_REGIONS} regions with most vacancies (mart {REGION_MART}).",
            svgs["vacancies-by-region"],
        ),
        tpl.section(
            "top-skills",
            "Top skills",
            f"Vacancies listing each key skill in {skill_month or charts.NO_VALUE}, the {TOP_SKILLS} most asked for "
            f"(mart {SKILLS_MART}).",
            svgs["top-skills"],
        ),
        tpl.section(
            "skills-trend",
            "Top skills: trend",
            f"Share of the month's vacancies (with details) that list the skill, for the {TREND_SKILLS} "
            "leading skills of the latest month.",
            svgs["skills-trend"],
        ),
        tpl.section(
            "salary-bands",
            "Salary bands by role",
            f"Salaries in RUR in {salary_month or charts.NO_VALUE}: the bar spans p25 to p75, the dark tick is "
            f"the median; the {TOP_ROLES} roles with most salaried vacancies (mart {SALARY_MART}).",
            svgs["salary-bands"],
        ),
    ]
    return sections, svgs


def _health_sections(data: ReportData) -> tuple[list[str], dict[str, str]]:
    totals = source_totals(data.loads)
    categories, series = rows_chart_input(totals)
    svgs = {
        "rows-by-source": charts.grouped_bar_chart(
            "rows-by-source", "Rows in, out and quarantined per source", categories, series, width=640, height=260
        )
    }
    totals_table = tpl.table(
        ["source", "objects", "rows in", "rows out", "quar.", "dups", "not loaded"],
        [
            [
                t.source,
                f"{t.objects:,}",
                f"{t.rows_in:,}",
                f"{t.rows_out:,}",
                f"{t.rows_quarantined:,}",
                f"{t.rows_deduplicated:,}",
                f"{t.not_loaded:,}",
            ]
            for t in totals
        ],
        numeric=(1, 2, 3, 4, 5, 6),
    )
    loads = last_loads(data.loads)
    loads_table = tpl.table(
        ["finished", "source", "bronze object", "status", "in", "out", "quar.", "dups", "seconds", "reason"],
        [
            [
                escape(_stamp(e.finished_at)),
                escape(e.source),
                escape(e.key),
                tpl.badge(e.status, e.status),
                f"{e.rows_in:,}",
                f"{e.rows_out:,}",
                f"{e.rows_quarantined:,}",
                f"{e.rows_deduplicated:,}",
                f"{e.seconds:.2f}",
                escape(e.reason or ""),
            ]
            for e in loads
        ],
        numeric=(4, 5, 6, 7, 8),
        wrap=(2, 9),
        raw=True,
    )
    fresh_rows = []
    for item in data.freshness:
        newest = escape(_stamp(item.newest)) if item.newest else tpl.badge("missing", "missing")
        age = format_age(data.generated_at - item.newest) if item.newest else charts.NO_VALUE
        fresh_rows.append([escape(item.layer), newest, escape(age), escape(item.what)])
    fresh_table = tpl.table(["layer", "newest", "age", "what"], fresh_rows, wrap=(3,), raw=True)
    sections = [
        tpl.section(
            "rows-by-source",
            "Rows in, out and quarantined per source",
            "Totals over the load history: rows read from bronze, written to silver, and set aside with a reason.",
            svgs["rows-by-source"] + (totals_table if totals else ""),
        ),
        tpl.section(
            "freshness",
            "Freshness of each layer",
            "Newest bronze object, newest load into silver, and when gold was last published.",
            fresh_table,
        ),
    ]
    last = tpl.section(
        "last-loads",
        "Last loads",
        f"The {LAST_LOADS} most recent loads: one per bronze object version processed into silver.",
        loads_table if loads else "<p>Nothing loaded yet: run <code>lakehouse-silverize run</code>.</p>",
    )
    return [tpl.grid(sections), last], svgs


def render(data: ReportData) -> tuple[str, dict[str, str]]:
    """The page and its charts by id (the SVG of each, for counting marks)."""
    market, market_svgs = _market_sections(data)
    health, health_svgs = _health_sections(data)
    manifest = data.manifest
    region_rows = data.marts.get(REGION_MART, [])
    latest = latest_month(region_rows)
    latest_vacancies = sum(int(r["vacancy_count"]) for r in region_rows if month_label(r["published_month"]) == latest)
    totals = source_totals(data.loads)
    headline = tpl.cards(
        [
            (f"{sum(int(r['vacancy_count']) for r in region_rows):,}", "vacancies in gold"),
            (f"{latest_vacancies:,}", f"published in {latest or charts.NO_VALUE}"),
            (f"{len({r['area_id'] for r in region_rows}):,}", "regions"),
            (f"{len({r['skill_name'] for r in data.marts.get(SKILLS_MART, [])}):,}", "distinct skills"),
            (f"{len(data.loads):,}", "bronze objects processed"),
            (f"{sum(t.rows_quarantined for t in totals):,}", "rows quarantined"),
            (f"{sum(t.not_loaded for t in totals):,}", "objects not loaded"),
        ]
    )
    subtitle = f"Generated {_stamp(data.generated_at)} · backend {data.backend} ({data.location}) · " + (
        f"gold run {manifest.run_id}, published {_stamp(manifest.published_at)}"
        if manifest
        else "gold not published yet"
    )
    body = [
        headline,
        tpl.part("Labour market"),
        tpl.grid(market),
        tpl.part("Pipeline health"),
        *health,
        tpl.footer(
            "Mini-Lakehouse report: one self-contained file (inline SVG, no script, no network). "
            "Rebuilt by `lakehouse-gold report` and by the gold DAG after each publish."
        ),
    ]
    return tpl.page("Mini-Lakehouse: labour market and pipeline health", subtitle, body), {
        **market_svgs,
        **health_svgs,
    }


def count_marks(svg: str) -> int:
    """Data marks in a chart (elements whose class list starts with ``mark``)."""
    return svg.count('class="mark ')


# -- writing ---------------------------------------------------------------------------------


def write_local(path: Path, data: bytes) -> None:
    """Write ``path`` atomically: a temporary file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def default_output(settings: Settings) -> Path:
    return settings.scratch_dir.resolve() / "report" / "index.html"


def build_report(
    settings: Settings,
    *,
    output: Path | None = None,
    lake: Lake | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ReportResult:
    """Render the report, store it in gold (``report/index.html``) and at ``output`` (a local file)."""
    started = time.monotonic()
    lake = lake or Lake(settings)
    lake.ensure(["silver", "gold"])
    data = collect(lake, now=now, progress=progress)
    html, svgs = render(data)
    payload = html.encode("utf-8")
    lake.gold.put_bytes(REPORT_KEY, payload)
    local = (output or default_output(settings)).resolve()
    write_local(local, payload)
    notes = []
    if data.manifest is None:
        notes.append("gold is not published yet: the market charts are empty (run `lakehouse-gold build`)")
    if not data.loads:
        notes.append("the load history is empty: run `lakehouse-silverize run`")
    result = ReportResult(
        gold_uri=lake.gold.uri(REPORT_KEY),
        local_path=local,
        size_bytes=len(payload),
        charts={name: count_marks(svg) for name, svg in svgs.items()},
        loads=len(data.loads),
        gold_run_id=data.manifest.run_id if data.manifest else None,
        seconds=time.monotonic() - started,
        notes=tuple(notes),
    )
    log.info("report written to %s and %s (%d bytes)", result.gold_uri, local, len(payload))
    return result
