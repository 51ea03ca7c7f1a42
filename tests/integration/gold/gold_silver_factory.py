"""Synthetic silver Delta tables for the gold tests, and the marts they should produce.

Silver is written as the silverizer leaves it, without running it (it is rewritten separately):
every declared table exists first (``DeltaCommitter.ensure`` of each contract's
``table_specs``, plus the load history and the quarantine), keyed tables hold one row per key
(the newest by the contract's ``order_by``, then ``_ingested_at``), a child table holds the
children of the parent version its parent table holds, and the load history holds one row per
bronze file. The expected marts are computed here in plain Python, independently of the dbt SQL,
from every version of every row (:class:`Silver`), so that they also check the de-duplication.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.storage import LayerStore
from lakehouse_silverizer.commits import DeltaCommitter, TableSpec, history_spec, quarantine_spec, table_specs

Row = dict[str, Any]

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "contracts"
RUN_ID = "gold-tests"
AREAS = {"1": "Москва", "2": "Санкт-Петербург", "88": "Казань"}
ROLES = {"96": "Программист, разработчик", "10": "Аналитик", "156": "BI-аналитик"}
SKILLS = ["Python", "SQL", "Git", "Docker", "Linux", "Airflow", "Excel"]
EXPERIENCE = ["noExperience", "between1And3", "between3And6", "moreThan6"]
TABLES = ("vacancies", "vacancy_details", "vacancy_skills", "currency_rates")
# Each table's partition: its column and the value it is derived from (the contracts' partition).
PARTITIONS = {
    "vacancies": ("published_month", "published_at"),
    "vacancy_details": ("published_month", "published_at"),
    "vacancy_skills": ("published_month", "published_at"),
    "currency_rates": ("rate_month", "rate_date"),
}
# The source (contract) whose bronze files feed each table: skills are a child table of the details.
SOURCE_OF = {
    "vacancies": "vacancies",
    "vacancy_details": "vacancy_details",
    "vacancy_skills": "vacancy_details",
    "currency_rates": "currency_rates",
}
# The newest version of a key: the contract's order_by, then the bronze object's time (then, for a
# tie the silverizer breaks by batch position, the later key and row).
ORDER_BY = {"vacancies": ("published_at",), "vacancy_details": ("published_at",), "currency_rates": ()}


@dataclass
class Silver:
    """Rows of the four silver tables, each row carrying its bronze metadata."""

    tables: dict[str, list[Row]] = field(default_factory=lambda: {name: [] for name in TABLES})

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
            for code, rate in (("USD", usd), ("EUR", eur)):
                silver.tables["currency_rates"].append(_rate(date(2024, month, day), code, rate, rates_key, row, t0))
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


# -- writing silver as Delta tables ------------------------------------------------------------


def silver_specs() -> dict[str, TableSpec]:
    """Every silver table of the repository's contracts, by name."""
    return {spec.name: spec for contract in ContractRegistry.from_dir(CONTRACTS_DIR) for spec in table_specs(contract)}


def ensure_silver(store: LayerStore) -> dict[str, TableSpec]:
    """Create every declared silver table, the load history and the quarantine (empty), as the silverizer does."""
    committer = DeltaCommitter(store, RUN_ID)
    specs = silver_specs()
    for spec in [*specs.values(), history_spec(), quarantine_spec()]:
        committer.ensure(spec)
    return specs


def _rank(row: Row, table: str) -> tuple[Any, ...]:
    return (*(row[c] for c in ORDER_BY.get(table, ())), row["_ingested_at"], row["_bronze_key"], row["_bronze_row"])


def newest(rows: Iterable[Row], table: str, key: Sequence[str]) -> dict[tuple[Any, ...], Row]:
    """The newest version of each key (what a keyed silver table holds)."""
    best: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        if k not in best or _rank(row, table) > _rank(best[k], table):
            best[k] = row
    return best


def _arrow(rows: Sequence[Row], spec: TableSpec) -> pa.Table:
    part = PARTITIONS.get(spec.name)
    shaped = [
        {**row, part[0]: row[part[1]].strftime("%Y-%m")} if part and spec.partition == part[0] else row for row in rows
    ]
    return pa.Table.from_pylist(shaped, schema=spec.schema)


def _open(store: LayerStore, name: str) -> DeltaTable:
    return DeltaTable(store.table_uri(name), storage_options=store.delta_options or None)


def _append(store: LayerStore, spec: TableSpec, data: pa.Table) -> None:
    if data.num_rows:
        write_deltalake(
            store.table_uri(spec.name),
            data,
            mode="append",
            partition_by=spec.partition_by or None,
            storage_options=store.delta_options or None,
        )


def _sql_in(column: str, values: Iterable[str]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))
    return f"{column} IN ({quoted})"


def write_silver(
    store: LayerStore, silver: Silver, *, only_bronze_keys: set[str] | None = None, record: bool = True
) -> list[Row]:
    """Load the bronze files of ``silver`` (or only ``only_bronze_keys``) into the Delta tables as the
    silverizer would: newer versions of a key replace older ones, older ones change nothing, a
    detail document's skills replace its vacancy's skills. Returns one ``loaded`` load-history
    row per file, appended to ``silver/_load_history`` when ``record``."""
    specs = ensure_silver(store)

    def chosen(row: Row) -> bool:
        return only_bronze_keys is None or row["_bronze_key"] in only_bronze_keys

    for name in TABLES:
        spec = specs[name]
        rows = silver.tables[name]
        if spec.parent is not None:
            winners = newest(silver.tables[spec.parent], spec.parent, specs[spec.parent].key)
            owners = {k: w["_bronze_key"] for k, w in winners.items() if chosen(w)}
            if not owners:
                continue
            children = [r for r in rows if owners.get(tuple(r[c] for c in spec.parent_key)) == r["_bronze_key"]]
            (column,) = spec.parent_key
            _open(store, name).delete(_sql_in(column, (k[0] for k in owners)))
            _append(store, spec, _arrow(children, spec))
        elif spec.key:
            changed = [w for w in newest(rows, name, spec.key).values() if chosen(w)]
            if not changed:
                continue
            on = " AND ".join(f"t.{k} = s.{k}" for k in spec.key)
            _open(store, name).merge(
                _arrow(changed, spec), predicate=on, source_alias="s", target_alias="t"
            ).when_matched_update_all().when_not_matched_insert_all().execute()
        else:
            _append(store, spec, _arrow([r for r in rows if chosen(r)], spec))

    files: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for name in TABLES:
        if specs[name].parent is None:
            for row in silver.tables[name]:
                if chosen(row):
                    files[(SOURCE_OF[name], row["_bronze_key"])].append(row)
    history = [
        history_row(
            source,
            key,
            rows_in=len(rows),
            rows_out=len(rows),
            bronze_modified=max(r["_ingested_at"] for r in rows),
        )
        for (source, key), rows in sorted(files.items())
    ]
    if record:
        record_history(store, history)
    return history


def history_row(source: str, key: str, status: str = "loaded", **values: Any) -> Row:
    """One load-history row (``tables.load_history_schema()``), finished now unless ``values`` say otherwise."""
    now = datetime.now(UTC)
    etag = values.pop("bronze_etag", f"test-{uuid.uuid4().hex[:12]}")
    row: Row = {
        "source": source,
        "bronze_key": key,
        "bronze_etag": etag,
        "bronze_size": 1000,
        "bronze_modified": now,
        "version_id": etag,
        "status": status,
        "contract_version": "v1-test",
        "rows_in": 0,
        "rows_out": 0,
        "rows_quarantined": 0,
        "rows_deduplicated": 0,
        "reason": None,
        "warnings": "{}",
        "table_versions": json.dumps({source: 1} if status == "loaded" else {}),
        "run_id": RUN_ID,
        "started_at": now - timedelta(seconds=2),
        "finished_at": now,
        "seconds": 2.0,
    }
    unknown = set(values) - set(row)
    assert not unknown, f"not load-history columns: {sorted(unknown)}"
    row.update(values)
    return row


def record_history(store: LayerStore, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append load-history rows to ``silver/_load_history`` (created when missing)."""
    spec = history_spec()
    DeltaCommitter(store, RUN_ID).ensure(spec)
    data = pa.Table.from_pylist([dict(r) for r in rows], schema=tables.load_history_schema())
    _append(store, spec, data.select(spec.schema.names).cast(spec.schema))


def record_quarantine(store: LayerStore, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows to ``silver/_quarantine`` (``tables.quarantine_schema()``; created when missing)."""
    spec = quarantine_spec()
    DeltaCommitter(store, RUN_ID).ensure(spec)
    data = pa.Table.from_pylist([dict(r) for r in rows], schema=tables.quarantine_schema())
    _append(store, spec, data.select(spec.schema.names).cast(spec.schema))


def delta_rows(store: LayerStore, name: str) -> int:
    """Rows of a silver Delta table's newest version (read by deltalake, not by DuckDB)."""
    return int(_open(store, name).to_pyarrow_dataset().count_rows())


# -- expected marts ---------------------------------------------------------------------------


def _month(ts: datetime) -> date:
    return date(ts.year, ts.month, 1)


def linear_quantile(values: list[float], q: float) -> float:
    """Quantile with linear interpolation between order statistics (DuckDB's quantile_cont)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def salaries_rur(silver: Silver) -> dict[str, float | None]:
    rates = newest(silver.tables["currency_rates"], "currency_rates", ("rate_date", "currency"))
    out: dict[str, float | None] = {}
    for (vacancy_id,), v in newest(silver.tables["vacancies"], "vacancies", ("vacancy_id",)).items():
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
    for (vacancy_id,), v in newest(silver.tables["vacancies"], "vacancies", ("vacancy_id",)).items():
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
    details = newest(silver.tables["vacancy_details"], "vacancy_details", ("vacancy_id",))
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
    for (vacancy_id,), v in newest(silver.tables["vacancies"], "vacancies", ("vacancy_id",)).items():
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
        rows: list[Row] = pq.read_table(pa.BufferReader(stream.read())).to_pylist()
    return rows


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


def negative_rate(silver: Silver, bronze_key: str = "currency_rates/2024-03-09-bad.csv") -> Silver:
    """``silver`` plus a negative exchange rate (fails the error-severity accepted_range test on
    stg_currency_rates.rub_per_unit).

    The silverizer's contract drops such a row (its rate_positive expectation); another writer
    of the Delta table can commit it, and gold must then refuse to publish.
    """
    changed = silver.copy()
    changed.tables["currency_rates"].append(
        _rate(date(2024, 3, 9), "GEL", -1.0, bronze_key, 0, datetime(2024, 3, 9, tzinfo=UTC))
    )
    return changed


def refetched_details(silver: Silver, bronze_key: str = "vacancy_details/2024-03-10/again.ndjson") -> Silver:
    """``silver`` plus a newer detail document of one vacancy, with other skills (changes only the skills mart)."""
    changed = silver.copy()
    vacancy = next(v for v in changed.tables["vacancies"] if _has_details(changed, v["vacancy_id"]))
    changed.add_details(vacancy, ["Rust", "Python", "ClickHouse"], bronze_key, 0, datetime(2024, 3, 10, tzinfo=UTC))
    return changed
