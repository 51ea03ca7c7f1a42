"""Generate vacancy-like bronze files for the benchmark: flat rows as CSV and as NDJSON.

``python -m bench.generate --sizes 200MB,2GB --formats csv,ndjson`` writes
``bench/data/vacancies_<size>.<csv|ndjson>`` (about ``size`` bytes each; 1 MB = 10**6 bytes)
plus a ``.meta.json`` sidecar with the row count. A file whose sidecar exists is not generated
again. Generation is vectorised: numpy draws indices into small pools of realistic values,
pyarrow ``take``s them and writes CSV batches; NDJSON lines are built with Arrow string
kernels from pre-encoded JSON fragments and written straight from the Arrow buffers.

Rows are deterministic (a numpy generator seeded per chunk) and come in publication order over
two years, as an export or a date-windowed search does, so each month is a contiguous run. About 0.05 % of them have
``salary_from > salary_to`` (0.4 % of rows are swapped, an eighth of those have both bounds) and
0.05 % a ``UAH`` salary (0.1 %, half of them without a salary), for the bench contracts'
expectations (drop and warn).
"""

# ruff: noqa: RUF001 - Russian sample values: Cyrillic letters that look Latin are intended.

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bench.sizes import (
    DATA_DIR,
    FORMATS,
    GeneratedFile,
    GenerateError,
    data_path,
    meta_path,
    parse_size,
    size_label,
)

GENERATOR_VERSION = 4
CHUNK_ROWS = 100_000
PROBE_ROWS = 4_000
PROBE_CHUNK = 999_999  # seed index of the size probe, never a real chunk
DEFAULT_SEED = 20250101

MSK = timezone(timedelta(hours=3))
PERIOD_START = datetime(2024, 1, 1, tzinfo=MSK)
PERIOD_SECONDS = int((datetime(2026, 1, 1, tzinfo=MSK) - PERIOD_START).total_seconds())

COLUMNS = (
    "id", "name", "area_id", "area_name", "salary_from", "salary_to", "currency", "gross", "employer_id",
    "employer_name", "schedule", "experience", "published_at", "requirement", "responsibility",
)  # fmt: skip

# -- value pools ---------------------------------------------------------------------------------------
AREAS = (
    ("1", "Москва", 36), ("2", "Санкт-Петербург", 15), ("3", "Екатеринбург", 5), ("4", "Новосибирск", 5),
    ("88", "Казань", 4), ("66", "Нижний Новгород", 3), ("53", "Краснодар", 3), ("78", "Самара", 2),
    ("76", "Ростов-на-Дону", 2), ("72", "Пермь", 2), ("26", "Воронеж", 2), ("104", "Челябинск", 2),
    ("160", "Алматы", 5), ("159", "Астана", 2), ("1002", "Минск", 3), ("2759", "Ташкент", 2),
)  # fmt: skip
TITLES = (
    "Python-разработчик", "Backend-разработчик (Go)", "Java-разработчик", "Frontend-разработчик (React)",
    "Программист 1С", "Data Engineer", "Аналитик данных", "BI-аналитик", "Data Scientist", "ML-инженер",
    "DevOps-инженер", "SRE-инженер", "Системный администратор", "Инженер по тестированию", "Системный аналитик",
)  # fmt: skip
LEVELS = ("", "Junior ", "Middle ", "Senior ", "Ведущий ", "Lead ")
SKILLS = (
    "Python", "SQL", "PostgreSQL", "Docker", "Kubernetes", "Apache Airflow", "Apache Spark", "Kafka", "Git",
    "Linux", "pandas", "ClickHouse", "Java", "Go", "React", "TypeScript", "Power BI", "Terraform", "Ansible",
    "Redis", "FastAPI", "Django", "Spring Boot", "dbt", "Hadoop", "scikit-learn", "PyTorch", "1С",
)  # fmt: skip
DUTIES = (
    "разработка и поддержка сервисов", "проектирование REST API", "построение ETL-пайплайнов",
    "оптимизация SQL-запросов", "участие в code review", "построение дашбордов", "настройка CI/CD",
    "администрирование кластеров Kubernetes", "анализ продуктовых метрик", "написание автотестов",
    "взаимодействие с заказчиками", "проектирование архитектуры хранилища данных",
)  # fmt: skip
EMPLOYER_STEMS = (
    "Техносфера", "Цифровые решения", "ДатаЛаб", "СеверСофт", "Инфосистемы", "Альфа Системс", "Вектор",
    "НоваТех", "Бизнес Аналитика", "Облачные технологии", "Интеграл", "КодФабрика", "Сигма", "Финтех Лаб",
    "Ритейл Технологии", "Логистика Онлайн", "МедТех", "ГеоДата", "Атлас", "Прогресс", "Орбита", "Меридиан",
)  # fmt: skip
EMPLOYER_FORMS = ("ООО", "АО", "ПАО", "", "ТОО")
SCHEDULES = (("fullDay", 55), ("remote", 30), ("flexible", 12), ("shift", 3))
EXPERIENCES = (
    ("noExperience", 10, 0.45), ("between1And3", 45, 0.8), ("between3And6", 35, 1.25), ("moreThan6", 10, 1.6),
)  # fmt: skip
CURRENCIES = (("RUR", 90, 1.0, 5000), ("USD", 5, 90.0, 100), ("EUR", 2, 98.0, 100), ("KZT", 3, 0.19, 10000))
EMPLOYERS = 5_000


@dataclass(frozen=True)
class _Pools:
    names: pa.Array
    names_json: pa.Array
    area_ids: pa.Array
    area_names: pa.Array
    area_names_json: pa.Array
    area_p: np.ndarray
    employer_ids: pa.Array
    employer_names: pa.Array
    employer_names_json: pa.Array
    schedules: pa.Array
    schedule_p: np.ndarray
    experiences: pa.Array
    experience_p: np.ndarray
    experience_pay: np.ndarray
    currencies: pa.Array
    currency_p: np.ndarray
    currency_rate: np.ndarray
    currency_step: np.ndarray
    requirements: pa.Array
    requirements_json: pa.Array
    responsibilities: pa.Array
    responsibilities_json: pa.Array


def _json_strings(values: Sequence[str]) -> pa.Array:
    return pa.array([json.dumps(v, ensure_ascii=False) for v in values], pa.string())


def _weights(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    result: np.ndarray = arr / float(arr.sum())
    return result


def _pools(seed: int) -> _Pools:
    rng = np.random.default_rng(seed)
    names = [f"{level}{title}" for title in TITLES for level in LEVELS]
    employer_names = []
    for i in range(EMPLOYERS):
        form = EMPLOYER_FORMS[i % len(EMPLOYER_FORMS)]
        stem = EMPLOYER_STEMS[(i // len(EMPLOYER_FORMS)) % len(EMPLOYER_STEMS)]
        base = f"{form} {stem}".strip()
        cycle = i // (len(EMPLOYER_FORMS) * len(EMPLOYER_STEMS))
        employer_names.append(base if cycle == 0 else f"{base} {cycle + 1}")
    employer_ids = [str(x) for x in rng.choice(np.arange(1_000, 12_000_000), size=EMPLOYERS, replace=False)]
    requirements = []
    responsibilities = []
    for i in range(1_000):
        picks = rng.choice(len(SKILLS), size=4, replace=False)
        core, *rest = (SKILLS[j] for j in picks)
        years = (1, 2, 3, 5)[i % 4]
        requirements.append(
            f"Опыт работы от {years} лет. Уверенное владение <highlighttext>{core}</highlighttext>, "
            f"{', '.join(rest)}. Понимание принципов построения распределённых систем, "
            f"умение писать понятный и тестируемый код..."
        )
        duties = rng.choice(len(DUTIES), size=2, replace=False)
        first, second = (DUTIES[j] for j in duties)
        responsibilities.append(f"{first[:1].upper()}{first[1:]}, {second}. Работа в команде по Scrum...")
    return _Pools(
        names=pa.array(names),
        names_json=_json_strings(names),
        area_ids=pa.array([a[0] for a in AREAS]),
        area_names=pa.array([a[1] for a in AREAS]),
        area_names_json=_json_strings([a[1] for a in AREAS]),
        area_p=_weights([a[2] for a in AREAS]),
        employer_ids=pa.array(employer_ids),
        employer_names=pa.array(employer_names),
        employer_names_json=_json_strings(employer_names),
        schedules=pa.array([s[0] for s in SCHEDULES]),
        schedule_p=_weights([s[1] for s in SCHEDULES]),
        experiences=pa.array([e[0] for e in EXPERIENCES]),
        experience_p=_weights([e[1] for e in EXPERIENCES]),
        experience_pay=np.array([e[2] for e in EXPERIENCES]),
        currencies=pa.array([c[0] for c in CURRENCIES] + ["UAH"]),
        currency_p=_weights([c[1] for c in CURRENCIES]),
        currency_rate=np.array([c[2] for c in CURRENCIES] + [2.2]),
        currency_step=np.array([c[3] for c in CURRENCIES] + [1000]),
        requirements=pa.array(requirements),
        requirements_json=_json_strings(requirements),
        responsibilities=pa.array(responsibilities),
        responsibilities_json=_json_strings(responsibilities),
    )


# -- chunks -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Chunk:
    """One batch of rows: the Arrow columns plus the pool indices the JSON writer reuses."""

    table: pa.Table
    name_idx: pa.Array
    area_idx: pa.Array
    employer_idx: pa.Array
    requirement_idx: pa.Array
    responsibility_idx: pa.Array


def _chunk(pools: _Pools, seed: int, index: int, first_id: int, rows: int, position: int, total_rows: int) -> _Chunk:
    rng = np.random.default_rng([seed, index])
    name_idx = pa.array(rng.integers(0, len(pools.names), rows), pa.int32())
    area_i = rng.choice(len(pools.area_ids), size=rows, p=pools.area_p)
    area_idx = pa.array(area_i, pa.int32())
    exp_i = rng.choice(len(pools.experiences), size=rows, p=pools.experience_p)
    cur_i = rng.choice(len(pools.currency_p), size=rows, p=pools.currency_p)
    cur_i[rng.random(rows) < 0.001] = len(pools.currency_p)  # UAH: known_currency warns
    monthly = 200_000 * pools.experience_pay[exp_i] * rng.lognormal(0.0, 0.25, rows)
    step = pools.currency_step[cur_i]
    low = np.maximum(step, np.round(monthly / pools.currency_rate[cur_i] / step) * step)
    high = np.maximum(low + step, np.round(low * rng.uniform(1.15, 1.6, rows) / step) * step)
    swap = rng.random(rows) < 0.004  # salary_from > salary_to: salary_range_ordered drops these
    low, high = np.where(swap, high, low), np.where(swap, low, high)
    no_salary = rng.random(rows) < 0.5
    shape = rng.random(rows)
    from_null = no_salary | (shape >= 0.85)
    to_null = no_salary | (shape < 0.6)
    salary_from = pa.array(low.astype(np.int64), mask=from_null)
    salary_to = pa.array(high.astype(np.int64), mask=to_null)
    currency = pools.currencies.take(pa.array(cur_i, pa.int32(), mask=no_salary))
    gross = pa.array(rng.random(rows) < 0.4, mask=no_salary)
    anonymous = rng.random(rows) < 0.05
    employer_idx = pa.array((EMPLOYERS * rng.random(rows) ** 1.8).astype(np.int32), mask=anonymous)
    # Moscow wall-clock times, held as naive timestamps and printed with a fixed +0300 offset.
    # Rows come in publication order over the period, as an API export or a search paged with
    # order_by=publication_time does (each search page covers a date window): a few minutes of
    # jitter, so neighbouring rows are not strictly sorted.
    spacing = PERIOD_SECONDS / max(total_rows, 1)
    offsets = (np.arange(position, position + rows) * spacing).astype(np.int64) + rng.integers(0, 300, rows)
    wall_clock = np.minimum(offsets, PERIOD_SECONDS - 1) + int(PERIOD_START.replace(tzinfo=UTC).timestamp())
    local = pa.array(wall_clock, pa.timestamp("s"))
    published = pc.binary_join_element_wise(pc.strftime(local, format="%Y-%m-%dT%H:%M:%S"), "+0300", "")
    requirement_idx = pa.array(rng.integers(0, len(pools.requirements), rows), pa.int32(), mask=rng.random(rows) < 0.03)
    responsibility_idx = pa.array(rng.integers(0, len(pools.responsibilities), rows), pa.int32())
    ids = pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)).cast(pa.string())
    table = pa.table(
        {
            "id": ids,
            "name": pools.names.take(name_idx),
            "area_id": pools.area_ids.take(area_idx),
            "area_name": pools.area_names.take(area_idx),
            "salary_from": salary_from,
            "salary_to": salary_to,
            "currency": currency,
            "gross": gross,
            "employer_id": pools.employer_ids.take(employer_idx),
            "employer_name": pools.employer_names.take(employer_idx),
            "schedule": pools.schedules.take(pa.array(rng.choice(len(pools.schedules), rows, p=pools.schedule_p))),
            "experience": pools.experiences.take(pa.array(exp_i)),
            "published_at": published,
            "requirement": pools.requirements.take(requirement_idx),
            "responsibility": pools.responsibilities.take(responsibility_idx),
        }
    )
    return _Chunk(table, name_idx, area_idx, employer_idx, requirement_idx, responsibility_idx)


def _slice(chunk: _Chunk, rows: int) -> _Chunk:
    if rows >= chunk.table.num_rows:
        return chunk
    return _Chunk(
        chunk.table.slice(0, rows),
        chunk.name_idx.slice(0, rows),
        chunk.area_idx.slice(0, rows),
        chunk.employer_idx.slice(0, rows),
        chunk.requirement_idx.slice(0, rows),
        chunk.responsibility_idx.slice(0, rows),
    )


def _field(key: str, value: pa.Array) -> pa.Array:
    """``"key":<value>`` for every row, ``"key":null`` where the value is null."""
    return pc.binary_join_element_wise(f'"{key}":', pc.fill_null(value, "null"), "")


def _quoted(value: pa.Array) -> pa.Array:
    """A JSON string literal, for values known to need no escaping (digits, ids, timestamps)."""
    return pc.binary_join_element_wise('"', value, '"', "")


def ndjson_lines(pools: _Pools, chunk: _Chunk) -> pa.Array:
    """The chunk's rows as NDJSON lines (each ending in a newline) in one Arrow string array."""
    t = chunk.table
    as_text = {name: t.column(name).combine_chunks() for name in t.column_names}
    fields = [
        _field("id", _quoted(as_text["id"])),
        _field("name", pools.names_json.take(chunk.name_idx)),
        _field("area_id", _quoted(as_text["area_id"])),
        _field("area_name", pools.area_names_json.take(chunk.area_idx)),
        _field("salary_from", as_text["salary_from"].cast(pa.string())),
        _field("salary_to", as_text["salary_to"].cast(pa.string())),
        _field("currency", _quoted(as_text["currency"])),
        _field("gross", as_text["gross"].cast(pa.string())),
        _field("employer_id", _quoted(as_text["employer_id"])),
        _field("employer_name", pools.employer_names_json.take(chunk.employer_idx)),
        _field("schedule", _quoted(as_text["schedule"])),
        _field("experience", _quoted(as_text["experience"])),
        _field("published_at", _quoted(as_text["published_at"])),
        _field("requirement", pools.requirements_json.take(chunk.requirement_idx)),
        _field("responsibility", pools.responsibilities_json.take(chunk.responsibility_idx)),
    ]
    body = pc.binary_join_element_wise(*fields, ",")
    return pc.binary_join_element_wise("{", body, "}\n", "")


def _value_range(strings: pa.Array) -> tuple[int, int]:
    """Start and end, in the data buffer, of a (32-bit offset) string array's values."""
    if not pa.types.is_string(strings.type):
        raise GenerateError(f"expected a string array, got {strings.type}")
    offsets_buffer = strings.buffers()[1]
    if offsets_buffer is None or len(strings) == 0:
        return 0, 0
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=len(strings) + 1, offset=strings.offset * 4)
    return int(offsets[0]), int(offsets[-1])


def _write_string_buffer(lines: pa.Array, sink: BinaryIO) -> int:
    """Write the concatenation of a null-free string array's values without copying them to Python."""
    if lines.null_count:
        raise GenerateError("NDJSON lines must not be null")
    start, end = _value_range(lines)
    data = lines.buffers()[2]
    if data is not None and end > start:
        sink.write(memoryview(data)[start:end])
    return int(end - start)


class _CsvSink:
    def __init__(self, handle: BinaryIO, schema: pa.Schema) -> None:
        self._writer = pacsv.CSVWriter(handle, schema)
        self._handle = handle

    def write(self, pools: _Pools, chunk: _Chunk) -> None:
        self._writer.write_table(chunk.table)

    def close(self) -> None:
        self._writer.close()


class _NdjsonSink:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def write(self, pools: _Pools, chunk: _Chunk) -> None:
        _write_string_buffer(ndjson_lines(pools, chunk), self._handle)

    def close(self) -> None:
        self._handle.flush()


def _bytes_per_row(pools: _Pools, fmt: str, seed: int) -> float:
    probe = _chunk(pools, seed, PROBE_CHUNK, 1, PROBE_ROWS, 0, PROBE_ROWS)
    if fmt == "csv":
        out = pa.BufferOutputStream()
        pacsv.write_csv(probe.table, out)
        return float(out.getvalue().size) / PROBE_ROWS
    start, end = _value_range(ndjson_lines(pools, probe))
    return float(end - start) / PROBE_ROWS


def generate(
    size: str, fmt: str, *, data_dir: Path = DATA_DIR, seed: int = DEFAULT_SEED, force: bool = False
) -> GeneratedFile:
    """Write ``vacancies_<size>.<fmt>`` under ``data_dir`` unless it (and its sidecar) already exist."""
    path = data_path(size, fmt, data_dir)
    sidecar = meta_path(path)
    if not force and path.exists() and sidecar.exists():
        meta = json.loads(sidecar.read_text())
        current = {"version": GENERATOR_VERSION, "seed": seed, "bytes": path.stat().st_size}
        if all(meta.get(k) == v for k, v in current.items()):
            return GeneratedFile(path, fmt, size_label(size), meta["bytes"], meta["rows"], 0.0, cached=True)
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    pools = _pools(seed)
    target = parse_size(size)
    total_rows = max(1, math.ceil(target / _bytes_per_row(pools, fmt, seed)))
    chunk_rows = min(CHUNK_ROWS, max(2_000, target // 2_000))  # depends on the size only, not the format
    # Publication times advance by the CSV row count in both formats, so row n is the same in both.
    period_rows = max(1, math.ceil(target / _bytes_per_row(pools, "csv", seed)))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    first_id = 100_000_000
    try:
        with open(tmp, "wb") as handle:
            sink: _CsvSink | _NdjsonSink | None = None
            done = 0
            index = 0
            while done < total_rows:
                rows = min(chunk_rows, total_rows - done)
                # Always draw a whole chunk, so that row n is the same in both formats of a size.
                chunk = _slice(_chunk(pools, seed, index, first_id + done, chunk_rows, done, period_rows), rows)
                if sink is None:
                    sink = _CsvSink(handle, chunk.table.schema) if fmt == "csv" else _NdjsonSink(handle)
                sink.write(pools, chunk)
                done += rows
                index += 1
            if sink is not None:
                sink.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    nbytes = path.stat().st_size
    sidecar.write_text(
        json.dumps({"version": GENERATOR_VERSION, "seed": seed, "rows": total_rows, "bytes": nbytes, "format": fmt})
    )
    return GeneratedFile(path, fmt, size_label(size), nbytes, total_rows, time.perf_counter() - started, cached=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200MB,2GB", help="comma-separated sizes, e.g. 1MB,200MB,2GB")
    parser.add_argument("--formats", default="csv,ndjson", help="comma-separated: csv, ndjson")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--force", action="store_true", help="regenerate even when cached")
    args = parser.parse_args(argv)
    try:
        for size in [s for s in args.sizes.split(",") if s.strip()]:
            for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
                made = generate(size, fmt, data_dir=args.data_dir, seed=args.seed, force=args.force)
                how = "cached" if made.cached else f"generated in {made.seconds:.1f} s"
                print(f"{made.path}: {made.mb:,.1f} MB, {made.rows:,} rows ({how})")
    except GenerateError as exc:
        print(f"bench.generate: error: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = ["COLUMNS", "FORMATS", "GenerateError", "GeneratedFile", "data_path", "generate", "parse_size", "size_label"]

if __name__ == "__main__":
    sys.exit(main())
