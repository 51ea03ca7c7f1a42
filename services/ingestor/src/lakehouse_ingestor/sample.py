"""A deterministic, realistic sample of the three bronze sources, in hh.ru's documented shapes.

What it produces (:func:`generate_sample`), for ``size`` vacancies published over ``days`` days
from ``start`` (Moscow time, ``+0300``):

``vacancies`` (``.json``)
    Search-result pages of ``GET /vacancies``: ``{"items": [...], "found", "pages", "page",
    "per_page", "clusters", "arguments", "fixes", "suggests", "alternate_url"}``. hh.ru answers at
    most 100 items per page and at most 2000 results per query (``page * per_page < 2000``), so
    the period is split into date windows (``window_days`` long; a window holding more than 2000
    vacancies is halved until none does), each paged with ``order_by=publication_time``.
``vacancy_details`` (``.ndjson``)
    For every non-empty search page, one NDJSON object with the ``GET /vacancies/{id}`` document of
    each vacancy on that page, in page order: description (HTML), key_skills, employment, ...
``currency_rates`` (``.csv``)
    One ``date,currency,rate`` file: roubles per unit of RUR (1), USD, EUR, KZT, BYR and UZS for
    every day of the period, a seeded random walk around USD ~90, EUR ~98, KZT ~0.19, BYR ~28,
    UZS ~0.0072.

Determinism: every random draw comes from ``random.Random(seed)`` (bad records from their own
``random.Random(f"{seed}:bad")``), the period starts at a fixed date, never today, and every
object's fetch instant is derived from its data window (a page of the window ``[a, b)`` was
"fetched" at ``b`` plus ``page`` seconds; the rates file at the end of the period). The same
configuration therefore yields byte-identical payloads under identical bronze keys.

Bad records injected when ``bad_records`` is on (so the quarantine has something to show):

1. three vacancies whose ``salary.from`` is greater than ``salary.to`` (in the search item and
   the detail document alike): dropped by ``vacancies.salary_range_ordered``;
2. one vacancy with a salary amount but ``salary.currency`` null: dropped by
   ``vacancies.salary_has_currency``;
3. one vacancy paid in ``UAH``, a currency the contract does not know: warned by
   ``vacancies.known_currency`` (kept);
4. one ``vacancy_details`` line cut in half, so it is not valid JSON;
5. one detail document with an empty ``description``: warned by ``vacancy_details.has_description``;
6. one ``currency_rates`` row whose rate is ``n/a`` (not a number);
7. one ``currency_rates`` row whose rate is ``0``: dropped by ``currency_rates.rate_positive``.

The vacancies are chosen by the bad-record generator among those that fit (for 1 and 2: a salary
with both bounds), so they do not move when other settings stay equal.
"""

# ruff: noqa: RUF001 - Russian reference data: Cyrillic letters that look Latin are intended.

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from lakehouse_ingestor.exceptions import SampleConfigError
from lakehouse_ingestor.settings import HH_MAX_PER_PAGE, IngestorSettings

MSK = timezone(timedelta(hours=3), "MSK")
HH_MAX_DEPTH = 2000
"""hh.ru returns at most 2000 results per query, whatever the paging."""

PUBLISHED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
API = "https://api.hh.ru"
SITE = "https://hh.ru"

Json = dict[str, Any]


# -- reference data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Area:
    id: str
    name: str
    weight: float
    pay: float
    currencies: tuple[tuple[str, float], ...] = (("RUR", 0.94), ("USD", 0.04), ("EUR", 0.02))


AREAS: tuple[Area, ...] = (
    Area("1", "Москва", 36, 1.2),
    Area("2", "Санкт-Петербург", 15, 1.05),
    Area("3", "Екатеринбург", 5, 0.85),
    Area("4", "Новосибирск", 5, 0.85),
    Area("88", "Казань", 4, 0.8),
    Area("66", "Нижний Новгород", 3, 0.8),
    Area("78", "Самара", 2, 0.75),
    Area("53", "Краснодар", 3, 0.78),
    Area("76", "Ростов-на-Дону", 2, 0.75),
    Area("72", "Пермь", 2, 0.75),
    Area("26", "Воронеж", 2, 0.72),
    Area("104", "Челябинск", 2, 0.72),
    Area("99", "Уфа", 1.5, 0.72),
    Area("90", "Томск", 1.5, 0.78),
    Area("54", "Красноярск", 1.5, 0.8),
    Area("95", "Тюмень", 1.5, 0.85),
    Area("160", "Алматы", 5, 0.7, (("KZT", 0.85), ("USD", 0.15))),
    Area("159", "Астана", 2.5, 0.68, (("KZT", 0.9), ("USD", 0.1))),
    Area("1002", "Минск", 3, 0.65, (("BYR", 0.55), ("USD", 0.45))),
    Area("2759", "Ташкент", 2, 0.55, (("UZS", 0.5), ("USD", 0.5))),
)

APPROX_RUR = {"RUR": 1.0, "USD": 90.0, "EUR": 98.0, "KZT": 0.19, "BYR": 28.0, "UZS": 0.0072, "UAH": 2.2}
ROUND_TO = {"RUR": 5000, "USD": 100, "EUR": 100, "KZT": 10000, "BYR": 100, "UZS": 100000, "UAH": 1000}
RATE_DECIMALS = {"USD": 4, "EUR": 4, "KZT": 5, "BYR": 4, "UZS": 6}

ROLES: dict[str, str] = {
    "96": "Программист, разработчик",
    "156": "BI-аналитик, аналитик данных",
    "165": "Дата-сайентист",
    "160": "DevOps-инженер",
    "114": "Системный администратор",
    "124": "Тестировщик",
    "148": "Системный аналитик",
    "104": "Руководитель группы разработки",
}


@dataclass(frozen=True)
class Title:
    name: str
    roles: tuple[str, ...]
    pay: float
    weight: float
    skills: tuple[str, ...]
    duties: tuple[str, ...]
    seniority: bool = True


# fmt: off
TITLES: tuple[Title, ...] = (
    Title(
        "Python-разработчик", ("96",), 1.0, 12,
        ("Python", "Django", "FastAPI", "PostgreSQL", "SQL", "Docker", "Git", "Redis", "Celery", "Linux", "REST API"),
        ("разработка и поддержка backend-сервисов", "проектирование REST API", "оптимизация запросов к базе данных",
         "написание unit-тестов", "участие в code review"),
    ),
    Title(
        "Backend-разработчик (Go)", ("96",), 1.1, 6,
        ("Go", "PostgreSQL", "Kafka", "Docker", "Kubernetes", "gRPC", "Redis", "Git", "Linux"),
        ("разработка высоконагруженных микросервисов", "проектирование gRPC API", "интеграция с Kafka",
         "мониторинг и профилирование сервисов"),
    ),
    Title(
        "Java-разработчик", ("96",), 1.05, 8,
        ("Java", "Spring Framework", "Spring Boot", "Hibernate", "PostgreSQL", "Kafka", "Maven", "Git", "SQL"),
        ("разработка микросервисов на Spring Boot", "доработка существующего функционала",
         "интеграция с внешними системами", "участие в code review"),
    ),
    Title(
        "Frontend-разработчик (React)", ("96",), 0.95, 8,
        ("JavaScript", "TypeScript", "React", "Redux", "HTML5", "CSS3", "Git", "Webpack", "REST API"),
        ("разработка интерфейсов на React", "вёрстка по макетам Figma", "оптимизация производительности SPA",
         "взаимодействие с backend-командой"),
    ),
    Title(
        "Программист 1С", ("96",), 0.85, 7,
        ("1С: Предприятие 8", "1С программирование", "1С: Управление торговлей", "SQL", "Git"),
        ("доработка типовых конфигураций 1С", "разработка отчётов и обработок", "интеграция 1С с внешними системами"),
        seniority=False,
    ),
    Title(
        "Data Engineer", ("96", "156"), 1.15, 5,
        ("Python", "SQL", "Apache Airflow", "Apache Spark", "Hadoop", "Kafka", "ClickHouse", "PostgreSQL", "dbt",
         "Docker", "ETL"),
        ("разработка ETL/ELT-пайплайнов", "построение хранилища данных", "настройка DAG в Airflow",
         "контроль качества данных"),
    ),
    Title(
        "Аналитик данных", ("156",), 0.8, 9,
        ("SQL", "Python", "pandas", "Power BI", "Tableau", "MS Excel", "Статистический анализ", "A/B тесты",
         "ClickHouse"),
        ("анализ продуктовых метрик", "построение дашбордов", "проведение A/B-тестов",
         "подготовка аналитических отчётов для бизнеса"),
    ),
    Title(
        "BI-аналитик", ("156",), 0.85, 5,
        ("Power BI", "SQL", "DAX", "Tableau", "Apache Superset", "MS Excel", "ETL", "PostgreSQL"),
        ("разработка отчётности в Power BI", "сбор требований к дашбордам", "моделирование данных для отчётов"),
    ),
    Title(
        "Data Scientist", ("165",), 1.2, 5,
        ("Python", "Machine Learning", "pandas", "NumPy", "scikit-learn", "PyTorch", "SQL", "Математическая статистика",
         "Apache Spark"),
        ("построение моделей машинного обучения", "исследование данных и проверка гипотез",
         "вывод моделей в продакшн", "оценка качества моделей"),
    ),
    Title(
        "ML-инженер", ("165", "96"), 1.3, 3,
        ("Python", "PyTorch", "MLOps", "Docker", "Kubernetes", "Apache Airflow", "SQL", "NLP", "Git"),
        ("разработка ML-сервисов", "построение MLOps-инфраструктуры", "оптимизация инференса моделей"),
    ),
    Title(
        "DevOps-инженер", ("160",), 1.15, 7,
        ("Linux", "Docker", "Kubernetes", "Ansible", "Terraform", "CI/CD", "GitLab", "Prometheus", "Grafana", "Bash",
         "Nginx"),
        ("поддержка и развитие CI/CD", "администрирование кластеров Kubernetes", "настройка мониторинга и алертинга",
         "автоматизация инфраструктуры (IaC)"),
    ),
    Title(
        "SRE-инженер", ("160",), 1.25, 2,
        ("Linux", "Kubernetes", "Prometheus", "Grafana", "Python", "Go", "PostgreSQL", "Terraform"),
        ("обеспечение надёжности сервисов", "разбор инцидентов и постмортемы", "планирование мощностей"),
    ),
    Title(
        "Системный администратор", ("114",), 0.6, 8,
        ("Linux", "Windows Server", "Active Directory", "Bash", "Сетевое администрирование", "TCP/IP", "Zabbix",
         "VMware", "PowerShell"),
        ("администрирование серверов Linux и Windows", "поддержка пользователей", "настройка сетевого оборудования",
         "резервное копирование"),
    ),
    Title(
        "Инженер по тестированию", ("124",), 0.75, 6,
        ("Тестирование", "SQL", "Postman", "Jira", "Selenium", "Python", "Git", "API"),
        ("ручное и автоматизированное тестирование", "написание тест-кейсов", "заведение и сопровождение дефектов"),
    ),
    Title(
        "Системный аналитик", ("148",), 0.95, 6,
        ("Системный анализ", "SQL", "UML", "BPMN", "REST API", "Confluence", "Jira", "Разработка технических заданий"),
        ("сбор и анализ требований", "написание спецификаций и ТЗ", "проектирование интеграций"),
    ),
    Title(
        "Руководитель группы разработки", ("104", "96"), 1.6, 2,
        ("Управление командой", "Agile", "Scrum", "Python", "Java", "Архитектура ПО", "Jira"),
        ("руководство командой из 5-10 разработчиков", "планирование спринтов", "развитие архитектуры продукта"),
        seniority=False,
    ),
)

EXPERIENCE: tuple[tuple[str, str, float, float], ...] = (
    # id, name, weight, pay multiplier
    ("noExperience", "Нет опыта", 10, 0.45),
    ("between1And3", "От 1 года до 3 лет", 45, 0.8),
    ("between3And6", "От 3 до 6 лет", 35, 1.25),
    ("moreThan6", "Более 6 лет", 10, 1.6),
)
SENIORITY: dict[str, tuple[str, ...]] = {
    "noExperience": ("Junior ", "Стажер ", "Младший "),
    "between1And3": ("", "", "Middle "),
    "between3And6": ("Middle+ ", "Senior ", "", "Ведущий "),
    "moreThan6": ("Senior ", "Lead ", "Ведущий ", "Главный "),
}
YEARS = {"noExperience": 0, "between1And3": 1, "between3And6": 3, "moreThan6": 6}
SCHEDULES: tuple[tuple[str, str, float], ...] = (
    ("fullDay", "Полный день", 55),
    ("remote", "Удаленная работа", 30),
    ("flexible", "Гибкий график", 12),
    ("shift", "Сменный график", 3),
)
EMPLOYMENTS: tuple[tuple[str, str, float], ...] = (
    ("full", "Полная занятость", 90),
    ("part", "Частичная занятость", 3),
    ("project", "Проектная работа", 4),
    ("probation", "Стажировка", 3),
)
WORKING_TIME_MODES = {"id": "start_after_sixteen", "name": "Можно начинать работать после 16:00"}
EMPLOYER_STEMS = (
    "Техносфера", "Цифровые решения", "ДатаЛаб", "СеверСофт", "Инфосистемы", "Альфа Системс", "Вектор",
    "НоваТех", "Бизнес Аналитика", "Облачные технологии", "Интеграл", "КодФабрика", "Сигма", "ТелекомИнжиниринг",
    "Финтех Лаб", "Ритейл Технологии", "Логистика Онлайн", "МедТех", "ГеоДата", "Энергосбыт Цифра", "Атлас",
    "Прогресс", "Орбита", "Меридиан", "Квант", "Спектр", "Парус", "Гранит ИТ", "Байт", "Стек",
)
EMPLOYER_FORMS = ("ООО", "ООО", "АО", "ПАО", "", "ТОО")
EMPLOYER_SUFFIXES = ("", "", " Групп", " Софт", " Диджитал", " Лаб", " Консалтинг")
CONDITIONS = (
    "официальное оформление по ТК РФ",
    "ДМС со стоматологией",
    "гибкое начало рабочего дня",
    "компенсация обучения и конференций",
    "современная техника на выбор",
    "возможность удалённой работы",
    "годовой бонус по результатам работы",
)
MONTH_SEASON = (0.75, 1.1, 1.15, 1.05, 0.85, 0.95, 0.9, 0.95, 1.15, 1.15, 1.05, 0.8)
WEEKDAY = (1.0, 1.05, 1.05, 1.0, 0.9, 0.3, 0.25)
HOUR_WEIGHTS = (
    0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.6, 2.4, 2.8, 2.7,
    2.4, 2.5, 2.6, 2.4, 2.1, 1.6, 1.0, 0.6, 0.4, 0.3, 0.2, 0.15,
)
# fmt: on
RATE_START = {"USD": 90.0, "EUR": 98.0, "KZT": 0.19, "BYR": 28.0, "UZS": 0.0072}
RATE_VOLATILITY = {"USD": 0.006, "EUR": 0.006, "KZT": 0.007, "BYR": 0.005, "UZS": 0.006}


# -- configuration and results ----------------------------------------------------------------------
@dataclass(frozen=True)
class SampleConfig:
    """What to generate; :meth:`from_settings` reads it from ``LAKEHOUSE_INGESTOR_SAMPLE_*``."""

    seed: int = 20250101
    size: int = 3000
    start: date = date(2025, 1, 1)
    days: int = 365
    window_days: int = 14
    per_page: int = HH_MAX_PER_PAGE
    bad_records: bool = True

    def __post_init__(self) -> None:
        if self.size < 1:
            raise SampleConfigError(f"size must be at least 1, got {self.size}")
        if self.days < 1:
            raise SampleConfigError(f"days must be at least 1, got {self.days}")
        if self.window_days < 1:
            raise SampleConfigError(f"window_days must be at least 1, got {self.window_days}")
        if not 1 <= self.per_page <= HH_MAX_PER_PAGE:
            raise SampleConfigError(f"per_page must be within 1..{HH_MAX_PER_PAGE} (hh.ru's cap), got {self.per_page}")

    @classmethod
    def from_settings(cls, settings: IngestorSettings) -> SampleConfig:
        return cls(
            seed=settings.sample_seed,
            size=settings.sample_size,
            start=settings.sample_start,
            days=settings.sample_days,
            window_days=settings.sample_window_days,
            per_page=settings.sample_per_page,
            bad_records=settings.sample_bad_records,
        )

    @property
    def period_start(self) -> datetime:
        return datetime.combine(self.start, time(), MSK)

    @property
    def period_end(self) -> datetime:
        return self.period_start + timedelta(days=self.days)


@dataclass(frozen=True)
class SampleObject:
    """One payload as the ingestor would have fetched it."""

    source: str
    ext: str
    data: bytes
    fetched_at: datetime
    label: str


@dataclass(frozen=True)
class BadRecord:
    """A deliberately broken record and the contract rule that should catch it."""

    source: str
    record: str
    rule: str
    detail: str


@dataclass(frozen=True)
class Sample:
    config: SampleConfig
    objects: tuple[SampleObject, ...]
    vacancies: int
    windows: int
    first_published: datetime
    last_published: datetime
    salary_null: int
    currencies: dict[str, int]
    bad_records: tuple[BadRecord, ...]

    def by_source(self) -> dict[str, list[SampleObject]]:
        grouped: dict[str, list[SampleObject]] = {}
        for obj in self.objects:
            grouped.setdefault(obj.source, []).append(obj)
        return grouped


@dataclass
class _Vacancy:
    published: datetime
    id: str = ""
    item: Json = field(default_factory=dict)
    detail: Json = field(default_factory=dict)


@dataclass(frozen=True)
class _Employer:
    id: str
    name: str
    trusted: bool
    accredited: bool
    has_logo: bool


# -- generation -------------------------------------------------------------------------------------
def _pick(rng: random.Random, options: Sequence[tuple[Any, ...]], weight_at: int) -> tuple[Any, ...]:
    return rng.choices(options, weights=[o[weight_at] for o in options])[0]


def _employers(rng: random.Random, count: int) -> list[_Employer]:
    ids = rng.sample(range(1_000, 12_000_000), k=count)
    combos = sorted(
        {
            (f"{form} {stem}{suffix}" if form else f"{stem}{suffix}")
            for form in EMPLOYER_FORMS
            for stem in EMPLOYER_STEMS
            for suffix in EMPLOYER_SUFFIXES
        }
    )
    rng.shuffle(combos)
    out: list[_Employer] = []
    for i, emp_id in enumerate(ids):
        cycle, pos = divmod(i, len(combos))
        name = combos[pos] if cycle == 0 else f"{combos[pos]} {cycle + 1}"
        out.append(_Employer(str(emp_id), name, rng.random() < 0.97, rng.random() < 0.4, rng.random() < 0.8))
    return out


def _publication_times(rng: random.Random, config: SampleConfig) -> list[datetime]:
    days = [config.start + timedelta(days=i) for i in range(config.days)]
    weights = []
    for i, day in enumerate(days):
        holiday = 0.25 if (day.month == 1 and day.day <= 8) else 1.0
        trend = 1.0 + 0.15 * i / max(1, config.days)
        weights.append(MONTH_SEASON[day.month - 1] * WEEKDAY[day.weekday()] * holiday * trend)
    cum = list(itertools.accumulate(weights))
    hours_cum = list(itertools.accumulate(HOUR_WEIGHTS))
    out = []
    for _ in range(config.size):
        day = days[bisect.bisect_right(cum, rng.random() * cum[-1])]
        hour = bisect.bisect_right(hours_cum, rng.random() * hours_cum[-1])
        stamp = datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), MSK)
        out.append(stamp)
    out.sort()
    return out


def _round(amount: float, currency: str) -> int:
    step = ROUND_TO[currency]
    return max(step, round(amount / step) * step)


def _salary(rng: random.Random, monthly_rur: float, area: Area) -> Json | None:
    if rng.random() < 0.5:
        return None
    currency = _pick(rng, area.currencies, 1)[0]
    low = _round(monthly_rur * rng.uniform(0.8, 1.0) / APPROX_RUR[currency], currency)
    high = _round(low * rng.uniform(1.15, 1.6), currency)
    high = max(high, low + ROUND_TO[currency])
    shape = rng.random()
    return {
        "from": low if shape < 0.85 else None,
        "to": high if shape >= 0.6 else None,
        "currency": currency,
        "gross": rng.random() < 0.4,
    }


def _salary_range(salary: Json | None) -> Json | None:
    if salary is None:
        return None
    return {
        **salary,
        "mode": {"id": "MONTH", "name": "За месяц"},
        "frequency": {"id": "TWICE_PER_MONTH", "name": "Два раза в месяц"},
    }


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _hl(word: str) -> str:
    return f"<highlighttext>{word}</highlighttext>"


def _years(years: int) -> str:
    return f"от {years} года" if years % 10 == 1 and years % 100 != 11 else f"от {years} лет"


def _snippet(rng: random.Random, title: Title, experience: str, skills: list[str]) -> Json:
    core, *rest = skills or list(title.skills[:3])
    years = YEARS[experience]
    stack = ", ".join(rest[:2]) if rest else title.skills[-1]
    if years:
        requirement = f"Опыт работы {_years(years)}. Уверенное владение {_hl(core)}, {stack}..."
    else:
        requirement = f"Базовые знания: {_hl(core)}, {stack}. Желание учиться и развиваться..."
    duties = rng.sample(title.duties, k=min(2, len(title.duties)))
    responsibility = ". ".join(_capital(d) for d in duties) + "..."
    return {
        "requirement": requirement if rng.random() > 0.04 else None,
        "responsibility": responsibility if rng.random() > 0.04 else None,
    }


def _description(rng: random.Random, title: Title, employer: _Employer | None, skills: list[str], years: int) -> str:
    who = employer.name if employer is not None else "Наша компания"
    duties = "".join(f"<li>{d}</li>" for d in rng.sample(title.duties, k=min(3, len(title.duties))))
    needs = [f"опыт работы {_years(years)}" if years else "готовность учиться"]
    needs += [f"{s} — уверенное владение" for s in (skills or list(title.skills))[:4]]
    reqs = "".join(f"<li>{n}</li>" for n in needs)
    conds = "".join(f"<li>{c}</li>" for c in rng.sample(CONDITIONS, k=3))
    return (
        f"<p><strong>{who}</strong> ищет в команду специалиста на позицию «{title.name}».</p>"
        f"<p><strong>Обязанности:</strong></p><ul>{duties}</ul>"
        f"<p><strong>Требования:</strong></p><ul>{reqs}</ul>"
        f"<p><strong>Условия:</strong></p><ul>{conds}</ul>"
    )


def _build_vacancy(rng: random.Random, vac: _Vacancy, employers: list[_Employer]) -> None:
    area: Area = rng.choices(AREAS, weights=[a.weight for a in AREAS])[0]
    title: Title = rng.choices(TITLES, weights=[t.weight for t in TITLES])[0]
    exp_id, exp_name, _w, exp_pay = _pick(rng, EXPERIENCE, 2)
    sched_id, sched_name, _ = _pick(rng, SCHEDULES, 2)
    empl_id, empl_name, _ = _pick(rng, EMPLOYMENTS, 2)
    prefix = rng.choice(SENIORITY[exp_id]) if title.seniority else ""
    name = f"{prefix}{title.name}"
    employer = None if rng.random() < 0.04 else employers[int(len(employers) * rng.random() ** 1.8)]
    monthly = 200_000 * title.pay * exp_pay * area.pay * (1.05 if sched_id == "remote" else 1.0)
    salary = _salary(rng, monthly, area)
    n_skills = 0 if rng.random() < 0.1 else rng.randint(2, min(8, len(title.skills)))
    skills = rng.sample(title.skills, k=n_skills)
    published = vac.published.strftime(PUBLISHED_AT_FORMAT)
    vid = vac.id
    area_json = {"id": area.id, "name": area.name, "url": f"{API}/areas/{area.id}"}
    employer_json: Json | None = None
    if employer is not None:
        employer_json = {
            "id": employer.id,
            "name": employer.name,
            "url": f"{API}/employers/{employer.id}",
            "alternate_url": f"{SITE}/employer/{employer.id}",
            "logo_urls": (
                {
                    "90": f"https://img.hhcdn.ru/employer-logo/{employer.id}.png",
                    "original": f"https://img.hhcdn.ru/employer-logo-original/{employer.id}.png",
                }
                if employer.has_logo
                else None
            ),
            "vacancies_url": f"{API}/vacancies?employer_id={employer.id}",
            "accredited_it_employer": employer.accredited,
            "trusted": employer.trusted,
        }
    vtype = {"id": "open", "name": "Открытая"} if employer is not None else {"id": "anonymous", "name": "Анонимная"}
    roles = [{"id": r, "name": ROLES[r]} for r in title.roles]
    schedule = {"id": sched_id, "name": sched_name}
    experience = {"id": exp_id, "name": exp_name}
    employment = {"id": empl_id, "name": empl_name}
    night_ok = rng.random() < 0.05
    vac.item = {
        "id": vid,
        "premium": False,
        "name": name,
        "department": None,
        "has_test": rng.random() < 0.08,
        "response_letter_required": rng.random() < 0.05,
        "area": area_json,
        "salary": salary,
        "salary_range": _salary_range(salary),
        "type": vtype,
        "address": None,
        "response_url": None,
        "sort_point_distance": None,
        "published_at": published,
        "created_at": published,
        "archived": False,
        "apply_alternate_url": f"{SITE}/applicant/vacancy_response?vacancyId={vid}",
        "show_logo_in_search": None,
        "insider_interview": None,
        "url": f"{API}/vacancies/{vid}?host=hh.ru",
        "alternate_url": f"{SITE}/vacancy/{vid}",
        "relations": [],
        "employer": employer_json,
        "snippet": _snippet(rng, title, exp_id, skills),
        "contacts": None,
        "schedule": schedule,
        "working_days": [],
        "working_time_intervals": [],
        "working_time_modes": [WORKING_TIME_MODES] if night_ok else [],
        "accept_temporary": rng.random() < 0.1,
        "professional_roles": roles,
        "accept_incomplete_resumes": rng.random() < 0.2,
        "experience": experience,
        "employment": employment,
        "adv_response_url": None,
        "is_adv_vacancy": False,
        "adv_context": None,
    }
    vac.detail = {
        "id": vid,
        "premium": False,
        "billing_type": {"id": "standard", "name": "Стандарт"},
        "relations": [],
        "name": name,
        "insider_interview": None,
        "response_letter_required": vac.item["response_letter_required"],
        "area": area_json,
        "salary": salary,
        "salary_range": _salary_range(salary),
        "type": vtype,
        "address": None,
        "allow_messages": True,
        "experience": experience,
        "schedule": schedule,
        "employment": employment,
        "department": None,
        "contacts": None,
        "description": _description(rng, title, employer, skills, YEARS[exp_id]),
        "branded_description": None,
        "vacancy_constructor_template": None,
        "key_skills": [{"name": s} for s in skills],
        "accept_handicapped": rng.random() < 0.15,
        "accept_kids": False,
        "archived": False,
        "response_url": None,
        "specializations": [],
        "professional_roles": roles,
        "code": None,
        "hidden": False,
        "quick_responses_allowed": False,
        "driver_license_types": [],
        "accept_incomplete_resumes": vac.item["accept_incomplete_resumes"],
        "employer": employer_json,
        "published_at": published,
        "created_at": published,
        "initial_created_at": published,
        "negotiations_url": None,
        "suitable_resumes_url": None,
        "apply_alternate_url": vac.item["apply_alternate_url"],
        "has_test": vac.item["has_test"],
        "test": None,
        "alternate_url": vac.item["alternate_url"],
        "working_days": [],
        "working_time_intervals": [],
        "working_time_modes": vac.item["working_time_modes"],
        "accept_temporary": vac.item["accept_temporary"],
        "languages": [{"id": "eng", "name": "Английский", "level": {"id": "b1", "name": "B1 — Средний"}}]
        if rng.random() < 0.3
        else [],
        "approved": True,
    }


def _set_salary(vac: _Vacancy, salary: Json) -> None:
    vac.item["salary"] = salary
    vac.item["salary_range"] = _salary_range(salary)
    vac.detail["salary"] = salary
    vac.detail["salary_range"] = _salary_range(salary)


def _inject_vacancy_faults(config: SampleConfig, vacancies: list[_Vacancy]) -> list[BadRecord]:
    """Break a few vacancies on purpose (see the module docstring); returns what was broken."""
    rng = random.Random(f"{config.seed}:bad")
    bounded = [v for v in vacancies if v.item["salary"] and v.item["salary"]["from"] and v.item["salary"]["to"]]
    if len(bounded) < 4:
        return []
    chosen = rng.sample(bounded, k=4)
    bad: list[BadRecord] = []
    for vac in chosen[:3]:
        s = dict(vac.item["salary"])
        s["from"], s["to"] = s["to"], s["from"]
        _set_salary(vac, s)
        bad.append(BadRecord("vacancies", vac.id, "salary_range_ordered", f"salary from {s['from']} > to {s['to']}"))
    vac = chosen[3]
    _set_salary(vac, {**vac.item["salary"], "currency": None})
    bad.append(BadRecord("vacancies", vac.id, "salary_has_currency", "salary amount without a currency"))
    others = [v for v in vacancies if v not in chosen]
    if others:
        vac = rng.choice(others)
        _set_salary(vac, {"from": 40_000, "to": 60_000, "currency": "UAH", "gross": False})
        bad.append(BadRecord("vacancies", vac.id, "known_currency (warn)", "salary in UAH"))
        rest = [v for v in others if v is not vac]
        if rest:
            empty = rng.choice(rest)
            empty.detail["description"] = ""
            bad.append(BadRecord("vacancy_details", empty.id, "has_description (warn)", "empty description"))
    return bad


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime
    vacancies: tuple[_Vacancy, ...]


def _windows(config: SampleConfig, vacancies: list[_Vacancy]) -> list[_Window]:
    """Date windows of ``window_days`` (halved while they hold more than hh.ru's 2000 results)."""
    times = [v.published for v in vacancies]
    out: list[_Window] = []

    def add(start: datetime, end: datetime) -> None:
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_left(times, end)
        if hi - lo > HH_MAX_DEPTH:
            if end - start <= timedelta(seconds=1):
                raise SampleConfigError(f"more than {HH_MAX_DEPTH} vacancies published within one second at {start}")
            middle = start + timedelta(seconds=math.ceil((end - start).total_seconds() / 2))
            add(start, middle)
            add(middle, end)
            return
        # hh.ru with order_by=publication_time: newest first.
        out.append(_Window(start, end, tuple(reversed(vacancies[lo:hi]))))

    step = timedelta(days=config.window_days)
    cursor = config.period_start
    while cursor < config.period_end:
        add(cursor, min(cursor + step, config.period_end))
        cursor += step
    return out


def _dumps(doc: Json) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _search_url(window: _Window, page: int, per_page: int) -> str:
    roles = "&".join(f"professional_role={r}" for r in ROLES)
    return (
        f"{SITE}/search/vacancy?date_from={window.start:%Y-%m-%dT%H:%M:%S}&date_to={window.end:%Y-%m-%dT%H:%M:%S}"
        f"&enable_snippets=true&items_on_page={per_page}&order_by=publication_time&page={page}&{roles}"
    )


def _pages(config: SampleConfig, windows: list[_Window], broken_detail: str | None) -> Iterator[SampleObject]:
    for window in windows:
        found = len(window.vacancies)
        pages = math.ceil(found / config.per_page)
        fetched = window.end.astimezone(UTC)
        label = f"{window.start:%Y-%m-%d %H:%M}..{window.end:%Y-%m-%d %H:%M}"
        for page in range(max(1, pages)):
            chunk = window.vacancies[page * config.per_page : (page + 1) * config.per_page]
            doc = {
                "items": [v.item for v in chunk],
                "found": found,
                "pages": pages,
                "page": page,
                "per_page": config.per_page,
                "clusters": None,
                "arguments": None,
                "fixes": None,
                "suggests": None,
                "alternate_url": _search_url(window, page, config.per_page),
            }
            at = fetched + timedelta(seconds=page)
            yield SampleObject("vacancies", "json", _dumps(doc), at, f"{label} page {page + 1}/{max(1, pages)}")
            if not chunk:
                continue
            lines = []
            for vac in chunk:
                line = _dumps(vac.detail)
                if vac.id == broken_detail:
                    line = line[: len(line) // 2].decode("utf-8", errors="ignore").encode("utf-8")
                lines.append(line)
            yield SampleObject(
                "vacancy_details", "ndjson", b"\n".join(lines) + b"\n", at, f"{label} page {page + 1}/{pages}"
            )


def _rates(rng: random.Random, config: SampleConfig) -> tuple[bytes, list[BadRecord]]:
    level = dict(RATE_START)
    rows: list[list[str]] = []
    for i in range(config.days):
        day = config.start + timedelta(days=i)
        rows.append([day.isoformat(), "RUR", "1"])
        for cur in sorted(level):
            shock = rng.gauss(0.0, RATE_VOLATILITY[cur])
            pull = 0.02 * math.log(RATE_START[cur] / level[cur])
            level[cur] *= math.exp(shock + pull)
            rows.append([day.isoformat(), cur, f"{level[cur]:.{RATE_DECIMALS[cur]}f}"])
    bad: list[BadRecord] = []
    if config.bad_records:
        bad_rng = random.Random(f"{config.seed}:bad-rates")
        non_rur = [i for i, r in enumerate(rows) if r[1] != "RUR"]
        first, second = bad_rng.sample(non_rur, k=2)  # five non-RUR rows a day: always enough
        rows[first][2] = "n/a"
        bad.append(BadRecord("currency_rates", f"{rows[first][0]} {rows[first][1]}", "rate is not a number", "n/a"))
        rows[second][2] = "0"
        bad.append(BadRecord("currency_rates", f"{rows[second][0]} {rows[second][1]}", "rate_positive", "rate 0"))
    text = "date,currency,rate\n" + "".join(",".join(r) + "\n" for r in rows)
    return text.encode("utf-8"), bad


def generate_sample(config: SampleConfig) -> Sample:
    """Generate the whole sample in memory (a few MB for the default 3000 vacancies)."""
    rng = random.Random(config.seed)
    employers = _employers(rng, max(20, config.size // 25))
    vacancies = [_Vacancy(published=t) for t in _publication_times(rng, config)]
    next_id = 112_000_000 + rng.randrange(1_000_000)
    for vac in vacancies:
        next_id += rng.randint(1, 9_000)
        vac.id = str(next_id)
        _build_vacancy(rng, vac, employers)

    bad: list[BadRecord] = []
    broken_detail: str | None = None
    if config.bad_records:
        bad = _inject_vacancy_faults(config, vacancies)
        taken = {b.record for b in bad}
        candidates = [v.id for v in vacancies if v.id not in taken]
        if candidates:
            broken_detail = random.Random(f"{config.seed}:bad-json").choice(candidates)
            bad.append(BadRecord("vacancy_details", broken_detail, "not valid JSON", "line cut in half"))

    windows = _windows(config, vacancies)
    objects = list(_pages(config, windows, broken_detail))
    rates, rate_bad = _rates(rng, config)
    objects.append(SampleObject("currency_rates", "csv", rates, config.period_end.astimezone(UTC), "daily rates"))
    currencies = Counter(
        str(v.item["salary"]["currency"] or "(none)") for v in vacancies if v.item["salary"] is not None
    )
    return Sample(
        config=config,
        objects=tuple(objects),
        vacancies=len(vacancies),
        windows=len(windows),
        first_published=vacancies[0].published,
        last_published=vacancies[-1].published,
        salary_null=sum(1 for v in vacancies if v.item["salary"] is None),
        currencies=dict(currencies.most_common()),
        bad_records=tuple(bad + rate_bad),
    )
