"""Synthetic silver tables for the gold tests, and the marts they should produce.

The expected marts are computed here in plain Python, independently of the dbt SQL, from the
same rows that are written to silver.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_common.ledger import Ledger, LedgerEntry
from lakehouse_common.storage import LayerStore

Row = dict[str, Any]

AREAS = {"1": "Москва", "2": "Санкт-Петербург", "88": "Казань"}
ROLES = {"96": "Программист, разработчик", "10": "Аналитик", "156": "BI-аналитик"}
SKILLS = ["Python", "SQL", "Git", "Docker", "Linux", "Airflow", "Excel"]
EXPERIENCE = ["noExperience", "between1And3", "between3And6", "moreThan6"]

_STR = pa.string()
_TS = pa.timestamp("us", tz="UTC")
_META = [("_bronze_key", _STR), ("_bronze_row", pa.int64()), ("_ingested_at", _TS)]
SCHEMAS: dict[str, pa.Schema] = {
    "vacancies": pa.schema(
        [
            ("vacancy_id", _STR),
            ("vacancy_name", _STR),
            ("area_id", _STR),
            ("area_name", _STR),
            ("salary_from", pa.float64()),
            ("salary_to", pa.float64()),
            ("salary_currency", _STR),
            ("salary_gross", pa.bool_()),
            ("employer_id", _STR),
            ("employer_name", _STR),
            ("requirement", _STR),
            ("responsibility", _STR),
            ("schedule_id", _STR),
            ("experience_id", _STR),
            ("professional_role_ids", pa.list_(_STR)),
            ("professional_role_names", pa.list_(_STR)),
            ("published_at", _TS),
            *_META,
        ]
    ),
    "vacancy_details": pa.schema(
        [
            ("vacancy_id", _STR),
            ("vacancy_name", _STR),
            ("area_id", _STR),
            ("employer_id", _STR),
            ("description_text", _STR),
            ("key_skills", pa.list_(_STR)),
            ("experience_id", _STR),
            ("employment_id", _STR),
            ("published_at", _TS),
            *_META,
        ]
    ),
    "vacancy_skills": pa.schema([("vacancy_id", _STR), ("skill", _STR), ("published_at", _TS), *_META]),
    "currency_rates": pa.schema([("rate_date", pa.date32()), ("currency", _STR), ("rate", pa.float64()), *_META]),
}
PARTITIONS = {
    "vacancies": ("published_month", "published_at"),
    "vacancy_details": ("published_month", "published_at"),
    "vacancy_skills": ("published_month", "published_at"),
    "currency_rates": ("rate_month", "rate_date"),
}


@dataclass
class Silver:
    """Rows of the four silver tables, each row carrying its bronze metadata."""

    tables: dict[str, list[Row]] = field(default_factory=lambda: {name: [] for name in SCHEMAS})

    def add_details(self, vacancy: Row, skills: list[str], bronze_key: str, row: int, ingested_at: datetime) -> None:
        meta = {"_bronze_key": bronze_key, "_bronze_row": row, "_ingested_at": ingested_at}
        self.tables["vacancy_details"].append(
            {
                "vacancy_id": vacancy["vacancy_id"],
                "vacancy_name": vacancy["vacancy_name"],
                "area_id": vacancy["area_id"],
                "employer_id": vacancy["employer_id"],
                "description_text": "Описание",
                "key_skills": skills,
                "experience_id": vacancy["experience_id"],
                "employment_id": "full",
                "published_at": vacancy["published_at"],
                **meta,
            }
        )
        for skill in skills:
            self.tables["vacancy_skills"].append(
                {"vacancy_id": vacancy["vacancy_id"], "skill": skill, "published_at": vacancy["published_at"], **meta}
            )

    def copy(self) -> Silver:
        return Silver({name: [dict(r) for r in rows] for name, rows in self.tables.items()})


def make_silver(seed: int = 7, n_vacancies: int = 40) -> Silver:
    """Two months of vacancies in three areas, with duplicates across bronze files."""
    rnd = random.Random(seed)
    silver = Silver()
    t0 = datetime(2024, 3, 1, tzinfo=UTC)

    # Rates: USD/EUR three times a month, KZT monthly; the USD rate of Jan 10 is corrected later.
    rates_key, rates_fix_key = "currency_rates/2024-02-29.csv", "currency_rates/2024-03-01-fix.csv"
    row = 0
    for month in (1, 2):
        for day, usd, eur in ((1, 89.0 + month, 97.0 + month), (10, 90.0 + month, 98.5 + month), (20, 92.0, 99.0)):
            for currency, rate in (("USD", usd), ("EUR", eur)):
                silver.tables["currency_rates"].append(
                    _rate(date(2024, month, day), currency, rate, rates_key, row, t0)
                )
                row += 1
        silver.tables["currency_rates"].append(_rate(date(2024, month, 1), "KZT", 0.2, rates_key, row, t0))
        row += 1
    silver.tables["currency_rates"].append(_rate(date(2024, 1, 10), "USD", 91.5, rates_fix_key, 0, t0 + timedelta(1)))

    roles = list(ROLES)
    for i in range(n_vacancies):
        month = 1 + i % 2
        published = datetime(2024, month, 1 + rnd.randrange(28), 6 + rnd.randrange(14), tzinfo=UTC)
        area = rnd.choice(list(AREAS))
        role_ids = rnd.sample(roles, 1 + rnd.randrange(2))
        salary_from: float | None = None
        salary_to: float | None = None
        currency: str | None = None
        if rnd.random() < 0.55:
            currency = rnd.choices(["RUR", "USD", "EUR", "KZT"], weights=[7, 1, 1, 1])[0]
            scale = {"RUR": 1000.0, "USD": 10.0, "EUR": 10.0, "KZT": 5000.0}[currency]
            low = scale * rnd.randrange(60, 200)
            shape = rnd.randrange(3)
            salary_from = low if shape != 2 else None
            salary_to = low + scale * rnd.randrange(10, 80) if shape != 1 else None
        page = i // 10
        vacancy = {
            "vacancy_id": str(100000 + i),
            "vacancy_name": f"Вакансия {i}",
            "area_id": area,
            "area_name": AREAS[area],
            "salary_from": salary_from,
            "salary_to": salary_to,
            "salary_currency": currency,
            "salary_gross": None if currency is None else rnd.random() < 0.5,
            "employer_id": None if i % 9 == 0 else str(500 + i % 7),
            "employer_name": None if i % 9 == 0 else f"Employer {i % 7}",
            "requirement": "Опыт",
            "responsibility": "Работа",
            "schedule_id": "fullDay",
            "experience_id": rnd.choice(EXPERIENCE),
            "professional_role_ids": role_ids,
            "professional_role_names": [ROLES[r] for r in role_ids],
            "published_at": published,
            "_bronze_key": f"vacancies/2024-03-01/page-{page:03d}.json",
            "_bronze_row": i % 10,
            "_ingested_at": t0 + timedelta(hours=page),
        }
        silver.tables["vacancies"].append(vacancy)
        if i % 4 != 3:
            skills = rnd.sample(SKILLS, rnd.randrange(4))
            silver.add_details(vacancy, skills, f"vacancy_details/2024-03-01/batch-{page}.ndjson", i % 10, t0)

    # A later search page repeats five vacancies with new salaries (its key sorts *before* the
    # first pages, so only _ingested_at can tell which version is newer), and the details of two
    # vacancies are fetched again with other skills.
    later = t0 + timedelta(days=3)
    for n, vacancy in enumerate(silver.tables["vacancies"][:5]):
        newer = dict(vacancy, _bronze_key="vacancies/2024-02-30/again.json", _bronze_row=n, _ingested_at=later)
        newer.update(salary_from=120000.0 + 1000 * n, salary_to=None, salary_currency="RUR", salary_gross=True)
        silver.tables["vacancies"].append(newer)
    details_again = [v for v in silver.tables["vacancies"][:8] if _has_details(silver, v["vacancy_id"])][:2]
    for n, vacancy in enumerate(details_again):
        silver.add_details(vacancy, ["Kafka", "SQL"], "vacancy_details/2024-03-04/again.ndjson", n, later)
    return silver


def _rate(day: date, currency: str, rate: float, key: str, row: int, ingested: datetime) -> Row:
    return {
        "rate_date": day,
        "currency": currency,
        "rate": rate,
        "_bronze_key": key,
        "_bronze_row": row,
        "_ingested_at": ingested,
    }


def _has_details(silver: Silver, vacancy_id: str) -> bool:
    return any(d["vacancy_id"] == vacancy_id for d in silver.tables["vacancy_details"])


# The source (ledger) that writes each silver table: skills are a child table of the details.
SOURCE_OF = {
    "vacancies": "vacancies",
    "vacancy_details": "vacancy_details",
    "vacancy_skills": "vacancy_details",
    "currency_rates": "currency_rates",
}
Written = dict[tuple[str, str], list[str]]


def write_silver(
    store: LayerStore, silver: Silver, *, only_bronze_keys: set[str] | None = None, commit: bool = True
) -> Written:
    """Write the rows as the silverizer does: one file per (table, bronze file, partition), each
    attempt under names of its own, then (``commit``) one ledger entry per bronze file naming them,
    since dbt reads only committed files. Returns the files per ``(source, bronze key)``."""
    written: Written = defaultdict(list)
    attempt = uuid.uuid4().hex[:8]
    for table, rows in silver.tables.items():
        part_dir, part_col = PARTITIONS[table]
        groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for row in rows:
            if only_bronze_keys is not None and row["_bronze_key"] not in only_bronze_keys:
                continue
            groups[(row["_bronze_key"], row[part_col].strftime("%Y-%m"))].append(row)
        for (bronze_key, month), group in sorted(groups.items()):
            digest = hashlib.sha256(bronze_key.encode()).hexdigest()[:12]
            key = f"{table}/{part_dir}={month}/part-{digest}-test-{attempt}.parquet"
            arrow = pa.Table.from_pylist(group, schema=SCHEMAS[table])
            with store.open_output(key) as out:
                pq.write_table(arrow, out, compression="zstd")
            written[(SOURCE_OF[table], bronze_key)].append(key)
    if commit:
        commit_silver(store, written)
    return dict(written)


def commit_silver(store: LayerStore, written: Written) -> list[LedgerEntry]:
    """One ``loaded`` ledger entry per bronze file, newer than any before it, naming its files."""
    ledger = Ledger(store)
    entries = []
    for (source, bronze_key), outputs in sorted(written.items()):
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        entry = LedgerEntry(
            source=source,
            key=bronze_key,
            etag=f"test-{uuid.uuid4().hex[:12]}",
            size=1,
            status="loaded",
            contract_version="test",
            outputs=sorted(outputs),
            started_at=now,
            finished_at=now,
            bronze_modified=now,
        )
        ledger.record(entry)
        entries.append(entry)
    return entries


# -- expected marts ---------------------------------------------------------------------------


def _latest(rows: list[Row], key: tuple[str, ...]) -> dict[tuple[Any, ...], Row]:
    best: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        rank = (row["_ingested_at"], row["_bronze_key"], row["_bronze_row"])
        if k not in best or rank > (best[k]["_ingested_at"], best[k]["_bronze_key"], best[k]["_bronze_row"]):
            best[k] = row
    return best


def _month(ts: datetime) -> date:
    return date(ts.year, ts.month, 1)


def linear_quantile(values: list[float], q: float) -> float:
    """Quantile with linear interpolation between order statistics (DuckDB's quantile_cont)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def salaries_rur(silver: Silver) -> dict[str, float | None]:
    rates = _latest(silver.tables["currency_rates"], ("rate_date", "currency"))
    out: dict[str, float | None] = {}
    for (vacancy_id,), v in _latest(silver.tables["vacancies"], ("vacancy_id",)).items():
        low, high = v["salary_from"], v["salary_to"]
        point = (low + high) / 2 if low is not None and high is not None else (low if low is not None else high)
        factor: float | None = None
        if v["salary_currency"] == "RUR":
            factor = 1.0
        elif v["salary_currency"] is not None:
            day = v["published_at"].astimezone(UTC).date()
            usable = [(d, r["rate"]) for (d, c), r in rates.items() if c == v["salary_currency"] and d <= day]
            factor = max(usable)[1] if usable else None
        out[vacancy_id] = point * factor if point is not None and factor is not None else None
    return out


def expected_region_month(silver: Silver) -> dict[tuple[str, date], Row]:
    salary = salaries_rur(silver)
    groups: dict[tuple[str, date], list[Row]] = defaultdict(list)
    for (vacancy_id,), v in _latest(silver.tables["vacancies"], ("vacancy_id",)).items():
        groups[(v["area_id"], _month(v["published_at"]))].append({**v, "salary_rur": salary[vacancy_id]})
    out: dict[tuple[str, date], Row] = {}
    for k, rows in groups.items():
        paid = [r["salary_rur"] for r in rows if r["salary_rur"] is not None]
        out[k] = {
            "area_name": AREAS[k[0]],
            "vacancy_count": len(rows),
            "salaried_vacancy_count": len(paid),
            "median_salary_rur": statistics.median(paid) if paid else None,
        }
    return out


def expected_skills_month(silver: Silver) -> dict[tuple[str, date], Row]:
    details = _latest(silver.tables["vacancy_details"], ("vacancy_id",))
    totals: dict[date, int] = defaultdict(int)
    skill_vacancies: dict[tuple[str, date], set[str]] = defaultdict(set)
    for (vacancy_id,), d in details.items():
        month = _month(d["published_at"])
        totals[month] += 1
        for s in silver.tables["vacancy_skills"]:
            if s["vacancy_id"] == vacancy_id and s["_bronze_key"] == d["_bronze_key"]:
                skill_vacancies[(s["skill"], month)].add(vacancy_id)
    return {
        (skill, month): {
            "vacancy_count": len(ids),
            "vacancies_with_details": totals[month],
            "vacancy_share": len(ids) / totals[month],
        }
        for (skill, month), ids in skill_vacancies.items()
    }


def expected_role_month(silver: Silver) -> dict[tuple[str, date], Row]:
    salary = salaries_rur(silver)
    groups: dict[tuple[str, date], list[float]] = defaultdict(list)
    for (vacancy_id,), v in _latest(silver.tables["vacancies"], ("vacancy_id",)).items():
        if salary[vacancy_id] is None:
            continue
        for role in set(v["professional_role_ids"]):
            groups[(role, _month(v["published_at"]))].append(salary[vacancy_id])  # type: ignore[arg-type]
    return {
        k: {
            "professional_role_name": ROLES[k[0]],
            "salaried_vacancy_count": len(values),
            "salary_p25_rur": linear_quantile(values, 0.25),
            "salary_median_rur": linear_quantile(values, 0.5),
            "salary_p75_rur": linear_quantile(values, 0.75),
        }
        for k, values in groups.items()
    }


# -- checking published marts -----------------------------------------------------------------


def read_mart(store: LayerStore, key: str) -> list[Row]:
    with store.open_input(key) as stream:
        return pq.read_table(pa.BufferReader(stream.read())).to_pylist()


def assert_marts_match(store: LayerStore, silver: Silver) -> None:
    """The published marts hold exactly the rows computed from ``silver`` in Python."""
    regions = {
        (r["area_id"], r["published_month"]): r for r in read_mart(store, "marts/vacancies_by_region_month.parquet")
    }
    expected_regions = expected_region_month(silver)
    assert regions.keys() == expected_regions.keys()
    for k, want in expected_regions.items():
        got = regions[k]
        assert got["area_name"] == want["area_name"]
        assert (got["vacancy_count"], got["salaried_vacancy_count"]) == (
            want["vacancy_count"],
            want["salaried_vacancy_count"],
        )
        assert got["median_salary_rur"] == pytest.approx(want["median_salary_rur"]), k

    skills = {
        (r["skill_name"], r["published_month"]): r for r in read_mart(store, "marts/skills_demand_by_month.parquet")
    }
    expected_skills = expected_skills_month(silver)
    assert skills.keys() == expected_skills.keys()
    for k, want in expected_skills.items():
        got = skills[k]
        assert (got["vacancy_count"], got["vacancies_with_details"]) == (
            want["vacancy_count"],
            want["vacancies_with_details"],
        )
        assert got["vacancy_share"] == pytest.approx(want["vacancy_share"]), k

    roles = {
        (r["professional_role_id"], r["published_month"]): r
        for r in read_mart(store, "marts/salary_by_role_month.parquet")
    }
    expected_roles = expected_role_month(silver)
    assert roles.keys() == expected_roles.keys()
    for k, want in expected_roles.items():
        got = roles[k]
        assert got["professional_role_name"] == want["professional_role_name"]
        assert got["salaried_vacancy_count"] == want["salaried_vacancy_count"]
        for q in ("salary_p25_rur", "salary_median_rur", "salary_p75_rur"):
            assert got[q] == pytest.approx(want[q]), (k, q)


def vacancy_without_area(silver: Silver, bronze_key: str = "vacancies/2024-03-09/bad.json") -> Silver:
    """``silver`` plus one vacancy with no area (fails the error-severity not_null test on area_id).

    The silverizer's contract never lets such a row through; a file dropped into silver by
    another writer can, and gold must then refuse to publish.
    """
    changed = silver.copy()
    template = changed.tables["vacancies"][0]
    changed.tables["vacancies"].append(
        dict(
            template,
            vacancy_id="999999",
            salary_from=1000.0,
            salary_to=None,
            salary_currency="RUR",
            area_id=None,
            _bronze_key=bronze_key,
            _bronze_row=0,
            _ingested_at=datetime(2024, 3, 9, tzinfo=UTC),
        )
    )
    return changed


def refetched_details(silver: Silver, bronze_key: str = "vacancy_details/2024-03-10/again.ndjson") -> Silver:
    """``silver`` plus a newer detail document of one vacancy, with other skills (changes only the skills mart)."""
    changed = silver.copy()
    vacancy = next(v for v in changed.tables["vacancies"] if _has_details(changed, v["vacancy_id"]))
    changed.add_details(vacancy, ["Rust", "Python", "ClickHouse"], bronze_key, 0, datetime(2024, 3, 10, tzinfo=UTC))
    return changed
