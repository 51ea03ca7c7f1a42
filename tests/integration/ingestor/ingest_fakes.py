"""Helpers of the ingestion-engine tests: an hh.ru-like API on pytest-httpserver, fake time, runners.

The HTTP server is real (pytest-httpserver: a werkzeug server on 127.0.0.1), so requests, retries,
timeouts and connection handling are exercised for real. Only time is fake: :class:`FakeClock`
records sleeps and moves its own time forward, so a ``Retry-After: 1`` costs nothing.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.storage import Lake
from lakehouse_ingestor.control import StopToken
from lakehouse_ingestor.logs import EventLog
from lakehouse_ingestor.runner import Runner
from lakehouse_ingestor.settings import IngestorSettings

REPO = Path(__file__).resolve().parents[3]
MSK = timezone(timedelta(hours=3))
DAY0 = datetime(2025, 3, 1, tzinfo=MSK)
"""The vacancies contract's windows start here in these tests (its ``initial`` is rewritten)."""
UA_ENV = {"LAKEHOUSE_INGESTOR_USER_AGENT": "lakehouse-tests/1.0 (tests@example.org)"}


class FakeClock:
    """Wall and monotonic time that only move when told to, or when something sleeps."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.offset = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def now(self) -> datetime:
        return (self.start + timedelta(seconds=self.offset)).astimezone(UTC)

    def monotonic(self) -> float:
        return self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += max(0.0, seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    def set(self, when: datetime) -> None:
        self.start = when
        self.offset = 0.0


# -- an hh.ru-like API ---------------------------------------------------------------------------
def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Vacancy:
    id: str
    published: datetime
    skills: tuple[str, ...] = ("SQL", "Python")

    @property
    def published_at(self) -> str:
        return self.published.astimezone(MSK).strftime("%Y-%m-%dT%H:%M:%S%z")

    def item(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": f"Data engineer {self.id}",
            "area": {"id": "1", "name": "Москва"},
            "salary": None,
            "published_at": self.published_at,
        }

    def detail(self) -> dict[str, Any]:
        return {
            **self.item(),
            "description": f"<p>Vacancy {self.id}</p>",
            "key_skills": [{"name": s} for s in self.skills],
        }


def spread(count: int, start: datetime, span: timedelta, first_id: int = 1000) -> list[Vacancy]:
    """``count`` vacancies published evenly over ``[start, start + span)``."""
    step = span / max(1, count)
    return [Vacancy(str(first_id + i), start + step * i) for i in range(count)]


Reply = Callable[[Request], Response | None]


@dataclass
class FakeHh:
    """GET /vacancies (date_from inclusive, date_to exclusive, newest first, 2000-result cap) and
    GET /vacancies/{id}, as hh.ru answers them; plus scripted faults and request hooks."""

    server: HTTPServer
    vacancies: list[Vacancy] = field(default_factory=list)
    cap: int = 2000
    max_per_page: int = 100
    faults: list[tuple[str | Callable[[Request], bool], list[Reply]]] = field(default_factory=list)
    detail_bodies: dict[str, bytes] = field(default_factory=dict)
    on_request: Callable[[Request], None] | None = None
    served: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def install(self) -> FakeHh:
        self.server.expect_request("/vacancies").respond_with_handler(self._handle(self.search))
        self.server.expect_request(re.compile(r"^/vacancies/[^/]+$")).respond_with_handler(self._handle(self.detail))
        return self

    def fail(self, match: str | Callable[[Request], bool], *replies: Reply) -> None:
        """Answer the next requests that match (a path prefix, or a predicate) with ``replies``, in order.
        A reply returning None lets the request through to the normal answer."""
        self.faults.append((match, list(replies)))

    def _handle(self, answer: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            if self.on_request is not None:
                self.on_request(request)
            target = request.full_path.rstrip("?")
            with self.lock:
                for match, replies in self.faults:
                    hit = target.startswith(match) if isinstance(match, str) else match(request)
                    if replies and hit:
                        reply = replies.pop(0)(request)
                        if reply is not None:
                            return reply
                        break
            if not request.headers.get("User-Agent"):
                return Response(dumps({"errors": [{"type": "bad_user_agent"}]}), 400, mimetype="application/json")
            response = answer(request)
            with self.lock:
                self.served.append((target, response.get_data()))
            return response

        return handler

    def search(self, request: Request) -> Response:
        args = request.args
        page = int(args.get("page", "0"))
        per_page = int(args.get("per_page", "20"))
        if per_page > self.max_per_page or (page + 1) * per_page > self.cap:
            return Response(dumps({"errors": [{"type": "bad_argument", "value": "page"}]}), 400)
        low = datetime.fromisoformat(args["date_from"]) if "date_from" in args else None
        high = datetime.fromisoformat(args["date_to"]) if "date_to" in args else None
        chosen = [
            v for v in self.vacancies if (low is None or v.published >= low) and (high is None or v.published < high)
        ]
        chosen.sort(key=lambda v: (v.published, v.id), reverse=True)
        found = len(chosen)
        pages = min(math.ceil(found / per_page), self.cap // per_page)
        doc = {
            "items": [v.item() for v in chosen[page * per_page : (page + 1) * per_page]],
            "found": found,
            "pages": pages,
            "page": page,
            "per_page": per_page,
        }
        return Response(dumps(doc), 200, mimetype="application/json")

    def detail(self, request: Request) -> Response:
        vid = request.path.rsplit("/", 1)[-1]
        if vid in self.detail_bodies:
            return Response(self.detail_bodies[vid], 200, mimetype="application/json")
        found = next((v for v in self.vacancies if v.id == vid), None)
        if found is None:
            return Response(dumps({"errors": [{"type": "not_found"}]}), 404, mimetype="application/json")
        return Response(dumps(found.detail()), 200, mimetype="application/json")

    # -- what was asked ----------------------------------------------------------------------
    def requests_to(self, path_prefix: str) -> list[str]:
        """Served (2xx or not, faults excluded) request targets starting with ``path_prefix``."""
        return [target for target, _ in self.served if target.startswith(path_prefix)]

    def search_requests(self) -> list[dict[str, str]]:
        out = []
        for target, _ in self.served:
            parts = urlsplit(target)
            if parts.path == "/vacancies":
                out.append(dict(parse_qsl(parts.query)))
        return out


def search_page(page: int) -> Callable[[Request], bool]:
    """Matches the search requests of page ``page`` (any window)."""
    return lambda request: request.path == "/vacancies" and request.args.get("page") == str(page)


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
    def reply(_request: Request) -> Response:
        return Response(body, code, headers=headers or {})

    return reply


# -- contracts ----------------------------------------------------------------------------------
def write_contract(directory: Path, doc: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{doc['name']}.yml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def repo_contract(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "contracts" / f"{name}.yml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def vacancies_contracts(directory: Path, **ingest_changes: Any) -> Path:
    """The repository's vacancies and vacancy_details contracts, with daily windows from
    :data:`DAY0` and ``ingest`` keys replaced (``None`` removes a key)."""
    doc = repo_contract("vacancies")
    doc["ingest"]["window"]["initial"] = DAY0.isoformat()
    doc["ingest"]["window"]["step"] = "1 day"  # these tests count daily windows
    for key, value in ingest_changes.items():
        if value is None:
            doc["ingest"].pop(key, None)
        elif isinstance(value, dict) and isinstance(doc["ingest"].get(key), dict):
            doc["ingest"][key] = {**doc["ingest"][key], **value}
        else:
            doc["ingest"][key] = value
    write_contract(directory, doc)
    write_contract(directory, repo_contract("vacancy_details"))
    return directory


# -- runners and bronze ----------------------------------------------------------------------
def make_runner(
    lake: Lake,
    contracts: Path,
    clock: FakeClock,
    environ: dict[str, str],
    *,
    stop: StopToken | None = None,
    **settings: Any,
) -> Runner:
    return Runner(
        lake,
        ContractRegistry.from_dir(contracts),
        IngestorSettings(**settings),
        clock=clock,
        stop=stop or StopToken(),
        environ={**UA_ENV, **environ},
        log=EventLog(),
        rng=random.Random(7),
    )


def raw(lake: Lake, key: str) -> bytes:
    """An object's stored bytes (pyarrow would otherwise decompress a ``.gz`` on the way)."""
    with lake.bronze.filesystem.open_input_stream(lake.bronze.fs_path(key), compression=None) as stream:
        return bytes(stream.read())


def bronze(lake: Lake, prefix: str) -> dict[str, bytes]:
    """Key -> stored bytes of every object under ``prefix``."""
    return {info.key: raw(lake, info.key) for info in lake.bronze.list(prefix)}


def payloads(lake: Lake, source: str) -> list[bytes]:
    return sorted(bronze(lake, f"{source}/").values())
