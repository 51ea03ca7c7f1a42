"""A local HTTP API that answers like hh.ru, serving the deterministic sample (``lakehouse-ingest sample-api``).

``make demo`` and the tests ingest from it over real HTTP. It serves what :func:`generate_sample`
generates for a :class:`~lakehouse_ingestor.sample.SampleConfig` (the same
``LAKEHOUSE_INGESTOR_SAMPLE_*`` settings as ``lakehouse-ingest sample``), in hh.ru's documented
shapes and with hh.ru's rules:

``GET /vacancies``
    ``{"items", "found", "pages", "page", "per_page", "clusters", "arguments", "fixes", "suggests",
    "alternate_url"}``, newest first (``order_by=publication_time``, the only order served). Filters:
    ``date_from`` (inclusive) and ``date_to`` (exclusive), ISO 8601 with ``+0300``, ``+03:00`` or
    ``Z``, or without an offset (Moscow time, as hh.ru), or a bare date (its midnight, Moscow
    time); ``text`` (every word, case-insensitively, in the name, employer, snippet or key skills);
    ``area`` (repeatable; a city or its country, ``113`` is Russia) and ``professional_role``
    (repeatable). ``per_page`` is 20 by default and at most 100, and at most 2000 results are
    reachable per query: ``page * per_page + per_page > 2000`` is refused with 400. ``found`` is
    the true total for the filter; ``pages`` is ``min(ceil(found / per_page), 2000 // per_page)``.
``GET /vacancies/{id}``
    The detail document, byte for byte as the sample's ``vacancy_details`` line (the line the
    generator cuts in half is served whole: a real API answers valid JSON). Unknown ids: 404.
``GET /rates.csv``, ``GET /rates.json``
    The sample's ``currency_rates`` CSV byte for byte, or its rows as ``{"rates": [{"date",
    "currency", "rate"}]}`` (the rate as the CSV writes it, a string).

Every request needs a ``User-Agent`` (or hh.ru's ``HH-User-Agent``) header; without one the answer
is hh.ru's 400 ``bad_user_agent``. Errors carry hh.ru's body, ``{"description", "errors": [{"type",
"value"}]}``. Bodies are compact UTF-8 JSON (``application/json; charset=utf-8``), no raw newline.

Fault injection, so that a client's retries show: a request (method, path and sorted query) is
answered ``429`` (with ``Retry-After: 1``), ``500`` or ``503`` with probability ``fault_rate``,
decided by a hash of the seed, the request and how many times it was made before. The same
requests in the same order therefore meet the same faults, and a request that just failed never
fails the next time, so a client that retries always gets through.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from lakehouse_ingestor.exceptions import SampleApiError
from lakehouse_ingestor.sample import HH_MAX_DEPTH, MSK, SITE, Sample, SampleConfig, generate_sample
from lakehouse_ingestor.settings import HH_MAX_PER_PAGE

logger = logging.getLogger(__name__)

Json = dict[str, Any]

DEFAULT_PER_PAGE = 20
"""hh.ru's page size when ``per_page`` is not given."""

RETRY_AFTER_SECONDS = 1
FAULT_STATUSES: tuple[tuple[int, float], ...] = ((429, 0.5), (500, 0.25), (503, 0.25))
"""Which status an injected fault answers, and how often (shares summing to 1)."""

JSON_TYPE = "application/json; charset=utf-8"
CSV_TYPE = "text/csv; charset=utf-8"
ORDER_BY = "publication_time"

RUSSIA, KAZAKHSTAN, BELARUS, UZBEKISTAN = "113", "40", "16", "97"
COUNTRY_OF_AREA: dict[str, str] = {
    **dict.fromkeys(
        ("1", "2", "3", "4", "88", "66", "78", "53", "76", "72", "26", "104", "99", "90", "54", "95"), RUSSIA
    ),
    **dict.fromkeys(("160", "159"), KAZAKHSTAN),
    "1002": BELARUS,
    "2759": UZBEKISTAN,
}
"""hh.ru's country of each sample city: ``area=113`` (Russia) finds Moscow's vacancies, as on hh.ru."""

_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_DETAIL_PATH = re.compile(r"^/vacancies/([^/]+)$")
_HIGHLIGHT = re.compile(r"</?highlighttext>")


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- hh.ru's errors ---------------------------------------------------------------------------------
class ApiRefusal(Exception):
    """A request the API answers with an hh.ru-style error instead of data."""

    def __init__(self, status: int, error_type: str, value: str | None, description: str) -> None:
        super().__init__(f"{status} {error_type} {value or ''}: {description}")
        self.status = status
        self.error_type = error_type
        self.value = value
        self.description = description

    def body(self) -> bytes:
        error: Json = {"type": self.error_type}
        if self.value is not None:
            error["value"] = self.value
        doc: Json = {"description": self.description, "errors": [error]}
        if self.error_type == "bad_argument" and self.value is not None:
            doc["bad_argument"] = self.value
            doc["bad_arguments"] = [{"name": self.value, "description": self.description}]
        return _dumps(doc)


def _bad_argument(name: str, description: str) -> ApiRefusal:
    return ApiRefusal(400, "bad_argument", name, description)


# -- query parsing ----------------------------------------------------------------------------------
def parse_hh_datetime(text: str) -> datetime:
    """An hh.ru ``date_from``/``date_to`` value: ISO 8601 with or without an offset, or a bare date.

    Without an offset the time is Moscow time, as on hh.ru. ``+0300`` that arrived unescaped in a
    query string reads ``" 0300"``; that is taken as ``+0300``. Raises :class:`ValueError`.
    """
    value = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=MSK)


def _int_argument(pairs: Mapping[str, list[str]], name: str, default: int) -> int:
    values = pairs.get(name)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise _bad_argument(name, f"{name} must be an integer, got {values[-1]!r}") from None


def _date_argument(pairs: Mapping[str, list[str]], name: str) -> datetime | None:
    values = [v for v in pairs.get(name, []) if v]
    if not values:
        return None
    try:
        return parse_hh_datetime(values[-1])
    except ValueError:
        raise _bad_argument(name, f"{name} must be an ISO 8601 date or date-time, got {values[-1]!r}") from None


@dataclass(frozen=True)
class SearchQuery:
    """The arguments of one ``GET /vacancies``, checked against hh.ru's rules."""

    page: int = 0
    per_page: int = DEFAULT_PER_PAGE
    date_from: datetime | None = None
    date_to: datetime | None = None
    text: str = ""
    areas: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, pairs: Sequence[tuple[str, str]]) -> SearchQuery:
        """Read a query string's pairs; raises :class:`ApiRefusal` (400) as hh.ru would."""
        grouped: dict[str, list[str]] = {}
        for name, value in pairs:
            grouped.setdefault(name, []).append(value)
        page = _int_argument(grouped, "page", 0)
        per_page = _int_argument(grouped, "per_page", DEFAULT_PER_PAGE)
        if page < 0:
            raise _bad_argument("page", f"page must not be negative, got {page}")
        if not 1 <= per_page <= HH_MAX_PER_PAGE:
            raise _bad_argument("per_page", f"per_page must be within 1..{HH_MAX_PER_PAGE}, got {per_page}")
        if page * per_page + per_page > HH_MAX_DEPTH:
            raise _bad_argument(
                "page", f"at most {HH_MAX_DEPTH} results are reachable: page * per_page + per_page > {HH_MAX_DEPTH}"
            )
        order_by = [v for v in grouped.get("order_by", []) if v]
        if order_by and order_by[-1] != ORDER_BY:
            raise _bad_argument("order_by", f"the sample API orders by {ORDER_BY} only, got {order_by[-1]!r}")
        date_from = _date_argument(grouped, "date_from")
        date_to = _date_argument(grouped, "date_to")
        if date_from is not None and date_to is not None and date_from > date_to:
            raise _bad_argument("date_from", "date_from is later than date_to")
        return cls(
            page=page,
            per_page=per_page,
            date_from=date_from,
            date_to=date_to,
            text=" ".join(grouped.get("text", [])).strip(),
            areas=frozenset(v for v in grouped.get("area", []) if v),
            roles=frozenset(v for v in grouped.get("professional_role", []) if v),
        )

    def alternate_url(self) -> str:
        """The hh.ru site search this query stands for (deterministic: built from the parsed query)."""
        pairs: list[tuple[str, str]] = []
        if self.date_from is not None:
            pairs.append(("date_from", f"{self.date_from.astimezone(MSK):%Y-%m-%dT%H:%M:%S}"))
        if self.date_to is not None:
            pairs.append(("date_to", f"{self.date_to.astimezone(MSK):%Y-%m-%dT%H:%M:%S}"))
        if self.text:
            pairs.append(("text", self.text))
        pairs += [("area", a) for a in sorted(self.areas)]
        pairs += [("professional_role", r) for r in sorted(self.roles)]
        pairs += [("items_on_page", str(self.per_page)), ("order_by", ORDER_BY), ("page", str(self.page))]
        return f"{SITE}/search/vacancy?{urlencode(pairs)}"


# -- the sample, indexed ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiVacancy:
    """One vacancy as the API serves it: its search item and its detail document."""

    id: str
    published: datetime
    item: Json
    detail: bytes
    words: str
    """Lower-case text that ``text=`` searches: name, employer, snippet and key skills."""

    @property
    def area(self) -> str:
        return str(self.item["area"]["id"])

    @property
    def areas(self) -> frozenset[str]:
        """The vacancy's city and, when known, its country: what an ``area=`` filter matches."""
        country = COUNTRY_OF_AREA.get(self.area)
        return frozenset({self.area} if country is None else {self.area, country})

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(str(r["id"]) for r in self.item["professional_roles"])


@dataclass(frozen=True)
class SearchResult:
    found: int
    items: list[Json]


def _split_pages(sample: Sample) -> tuple[list[Json], dict[str, bytes], list[str]]:
    """The sample's search items, each id's detail line, and the ids whose line is not valid JSON."""
    items: list[Json] = []
    details: dict[str, bytes] = {}
    broken: list[str] = []
    page_items: list[Json] = []
    for obj in sample.objects:
        if obj.source == "vacancies":
            page_items = json.loads(obj.data)["items"]
            items += page_items
        elif obj.source == "vacancy_details":
            lines = obj.data.rstrip(b"\n").split(b"\n")
            if len(lines) != len(page_items):
                raise SampleApiError(f"{obj.label}: {len(lines)} detail lines for {len(page_items)} search items")
            for item, line in zip(page_items, lines, strict=True):
                try:
                    json.loads(line)
                except ValueError:
                    broken.append(str(item["id"]))
                    continue
                details[str(item["id"])] = line
    return items, details, broken


def _words(item: Json, detail: Json) -> str:
    snippet = item.get("snippet") or {}
    parts = [item["name"], (item.get("employer") or {}).get("name") or ""]
    parts += [_HIGHLIGHT.sub("", snippet.get(k) or "") for k in ("requirement", "responsibility")]
    parts += [s["name"] for s in detail.get("key_skills", [])]
    return " ".join(parts).lower()


class SampleCatalog:
    """The generated sample indexed for the API: vacancies by publication time and by id, the rates."""

    def __init__(self, vacancies: Iterable[ApiVacancy], rates_csv: bytes) -> None:
        self.vacancies: tuple[ApiVacancy, ...] = tuple(sorted(vacancies, key=lambda v: (v.published, int(v.id))))
        self.by_id: dict[str, ApiVacancy] = {v.id: v for v in self.vacancies}
        self.rates_csv = rates_csv
        self._times = [v.published for v in self.vacancies]

    @classmethod
    def from_sample(cls, sample: Sample) -> SampleCatalog:
        items, details, broken = _split_pages(sample)
        if broken:  # the generator cut these lines on purpose; the same sample without bad records has them whole
            _, whole, _ = _split_pages(generate_sample(replace(sample.config, bad_records=False)))
            details.update({vid: whole[vid] for vid in broken})
        rates = next((o.data for o in sample.objects if o.source == "currency_rates"), b"")
        vacancies = []
        for item in items:
            vid = str(item["id"])
            line = details[vid]
            published = datetime.fromisoformat(item["published_at"])
            vacancies.append(ApiVacancy(vid, published, item, line, _words(item, json.loads(line))))
        return cls(vacancies, rates)

    @classmethod
    def generate(cls, config: SampleConfig) -> SampleCatalog:
        return cls.from_sample(generate_sample(config))

    def search(self, query: SearchQuery) -> SearchResult:
        """Every vacancy matching ``query`` (``found``) and the requested page of them, newest first."""
        lo = 0 if query.date_from is None else bisect.bisect_left(self._times, query.date_from)
        hi = len(self._times) if query.date_to is None else bisect.bisect_left(self._times, query.date_to)
        words = query.text.lower().split()
        matching = [
            v
            for v in self.vacancies[lo:hi]
            if (not query.areas or v.areas & query.areas)
            and (not query.roles or v.roles & query.roles)
            and all(w in v.words for w in words)
        ]
        matching.reverse()
        start = query.page * query.per_page
        return SearchResult(len(matching), [v.item for v in matching[start : start + query.per_page]])

    def rates_json(self) -> bytes:
        rows = csv.DictReader(io.StringIO(self.rates_csv.decode("utf-8")))
        return _dumps({"rates": [{"date": r["date"], "currency": r["currency"], "rate": r["rate"]} for r in rows]})


# -- fault injection --------------------------------------------------------------------------------
class FaultInjector:
    """Seeded, per-request faults that never hit the same request twice in a row."""

    def __init__(self, rate: float, seed: int) -> None:
        if not 0.0 <= rate <= 1.0:
            raise SampleApiError(f"fault rate must be within 0..1, got {rate}")
        self.rate = rate
        self.seed = seed
        self._attempts: dict[str, tuple[int, bool]] = {}
        self._lock = threading.Lock()

    def next_fault(self, request: str) -> int | None:
        """The status to answer this attempt at ``request`` with instead of the data, or None."""
        with self._lock:
            attempt, failed_last = self._attempts.get(request, (0, False))
            status = None if failed_last else self._draw(request, attempt)
            self._attempts[request] = (attempt + 1, status is not None)
        return status

    def _draw(self, request: str, attempt: int) -> int | None:
        if self.rate <= 0.0:
            return None
        digest = hashlib.blake2b(f"{self.seed}\0{request}\0{attempt}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big") / 2**64
        if draw >= self.rate:
            return None
        pick = draw / self.rate  # uniform in [0, 1) again, given that this attempt fails
        for status, share in FAULT_STATUSES:
            if pick < share:
                return status
            pick -= share
        return FAULT_STATUSES[-1][0]


_FAULT_ERRORS = {
    429: ("too_many_requests", "Too Many Requests"),
    500: ("internal_error", "Internal Server Error"),
    503: ("service_unavailable", "Service Unavailable"),
}


# -- the application --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def _refused(refusal: ApiRefusal) -> Response:
    return Response(refusal.status, refusal.body())


class SampleApi:
    """What the server answers, independent of sockets: ``respond(target, user_agent)``."""

    def __init__(self, catalog: SampleCatalog, faults: FaultInjector) -> None:
        self.catalog = catalog
        self.faults = faults
        self._statuses: Counter[int] = Counter()
        self._lock = threading.Lock()

    def statuses(self) -> dict[int, int]:
        """How many responses of each status were given so far."""
        with self._lock:
            return dict(sorted(self._statuses.items()))

    def respond(self, target: str, user_agent: str | None) -> Response:
        """Answer ``GET target`` (path and query string)."""
        response = self._respond(target, user_agent)
        with self._lock:
            self._statuses[response.status] += 1
        return response

    def _respond(self, target: str, user_agent: str | None) -> Response:
        if not (user_agent or "").strip():
            return _refused(ApiRefusal(400, "bad_user_agent", "header_missing", "User-Agent header is required"))
        parts = urlsplit(target)
        path = unquote(parts.path).rstrip("/") or "/"
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        fault = self.faults.next_fault(f"GET {path}?{urlencode(sorted(pairs))}")
        if fault is not None:
            error_type, description = _FAULT_ERRORS[fault]
            headers = (("Retry-After", str(RETRY_AFTER_SECONDS)),) if fault == 429 else ()
            return Response(fault, ApiRefusal(fault, error_type, None, description).body(), headers=headers)
        try:
            return self._route(path, pairs)
        except ApiRefusal as refusal:
            return _refused(refusal)

    def _route(self, path: str, pairs: Sequence[tuple[str, str]]) -> Response:
        if path == "/vacancies":
            query = SearchQuery.parse(pairs)
            result = self.catalog.search(query)
            doc = {
                "items": result.items,
                "found": result.found,
                "pages": min(math.ceil(result.found / query.per_page), HH_MAX_DEPTH // query.per_page),
                "page": query.page,
                "per_page": query.per_page,
                "clusters": None,
                "arguments": None,
                "fixes": None,
                "suggests": None,
                "alternate_url": query.alternate_url(),
            }
            return Response(200, _dumps(doc))
        if match := _DETAIL_PATH.match(path):
            vacancy = self.catalog.by_id.get(match.group(1))
            if vacancy is None:
                raise ApiRefusal(404, "not_found", None, "Not Found")
            return Response(200, vacancy.detail)
        if path == "/rates.csv":
            return Response(200, self.catalog.rates_csv, CSV_TYPE)
        if path == "/rates.json":
            return Response(200, self.catalog.rates_json())
        if path == "/":
            endpoints = ["/vacancies", "/vacancies/{id}", "/rates.csv", "/rates.json"]
            return Response(200, _dumps({"endpoints": endpoints, "vacancies": len(self.catalog.vacancies)}))
        raise ApiRefusal(404, "not_found", None, "Not Found")


# -- the server -------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: SampleApi) -> None:
        self.api = api
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up is its own business (debug); anything else is logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("%s: %s", client_address, error)
        else:
            logger.exception("sample API: error while answering %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: a client's session reuses its connection
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for a delayed ACK
    server_version = "lakehouse-sample-api"
    timeout = 60  # an idle keep-alive connection is closed after a minute

    def do_GET(self) -> None:
        user_agent = self.headers.get("HH-User-Agent") or self.headers.get("User-Agent")
        response = self.server.api.respond(self.path, user_agent)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by http.server itself (unsupported method, malformed request) in hh.ru's shape too."""
        phrase = HTTPStatus(code).phrase
        body = ApiRefusal(code, re.sub(r"[^a-z]+", "_", phrase.lower()), None, message or phrase).body()
        self.send_response(code, message)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class SampleApiHandle:
    """A sample API serving on a background thread; ``stop()`` (or leaving ``with``) shuts it down."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sample-api", daemon=True
        )
        self._thread.start()
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"

    @property
    def api(self) -> SampleApi:
        return self._server.api

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> SampleApiHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sample_api(
    config: SampleConfig | SampleCatalog,
    host: str = "127.0.0.1",
    port: int = 0,
    fault_rate: float = 0.0,
    *,
    fault_seed: int | None = None,
) -> SampleApiHandle:
    """Serve the sample of ``config`` (or an already built catalog) on ``host:port`` (0: a free port).

    ``fault_rate`` defaults to 0 here (the CLI's default comes from the settings); ``fault_seed``
    defaults to the sample's seed.
    """
    catalog = config if isinstance(config, SampleCatalog) else SampleCatalog.generate(config)
    seed = fault_seed if fault_seed is not None else (config.seed if isinstance(config, SampleConfig) else 0)
    api = SampleApi(catalog, FaultInjector(fault_rate, seed))
    try:
        server = _Server((host, port), api)
    except (OSError, OverflowError) as exc:
        raise SampleApiError(f"cannot listen on {host}:{port}: {exc}") from exc
    return SampleApiHandle(server)


def _write_ready_file(path: Path, url: str) -> None:
    """Write ``url`` to ``path`` atomically, so that a waiting reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(url + "\n", encoding="utf-8")
    os.replace(temporary, path)


def serve_until_signalled(handle: SampleApiHandle, out: TextIO, ready_file: Path | None = None) -> dict[int, int]:
    """Report the URL (and write ``ready_file``), serve until SIGTERM or SIGINT, then stop cleanly.

    Must run on the main thread (signal handlers). Removes ``ready_file`` on the way out and
    returns how many responses of each status were given.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        catalog = handle.api.catalog
        first, last = catalog.vacancies[0].published, catalog.vacancies[-1].published
        out.write(
            f"sample API listening on {handle.url}\n"
            f"  {len(catalog.vacancies)} vacancies published {first:%Y-%m-%d} .. {last:%Y-%m-%d}, "
            f"fault rate {handle.api.faults.rate:g}; SIGTERM or Ctrl-C stops it\n"
        )
        out.flush()
        if ready_file is not None:
            _write_ready_file(ready_file, handle.url)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        handle.stop()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
    statuses = handle.api.statuses()
    counts = ", ".join(f"{status}: {n}" for status, n in statuses.items()) or "none"
    out.write(f"sample API stopped: {sum(statuses.values())} responses ({counts})\n")
    out.flush()
    return statuses
