"""The ingestion engine's pieces without a server: Retry-After, backoff, the token bucket,
pagination, endpoints from the environment, known ids, file extensions, logs, signals."""

from __future__ import annotations

import io
import json
import logging
import os
import random
import signal
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakehouse_common.contracts import (
    CursorPagination,
    FromEnv,
    NextLinkPagination,
    PageNumberPagination,
    RestJsonSpec,
)
from lakehouse_ingestor.control import StopToken, stop_on_signals
from lakehouse_ingestor.endpoint import resolve_endpoint, resolve_params, resolve_text
from lakehouse_ingestor.exceptions import IngestConfigError, IngestStopped
from lakehouse_ingestor.http import RetryPolicy, TokenBucket, excerpt, parse_retry_after
from lakehouse_ingestor.logs import JsonFormatter, LogfmtFormatter, NoProgress, TerminalProgress, configure_logging
from lakehouse_ingestor.pagination import Cursors, NextLinks, PageNumbers, PageRequest, PageShapeError, lookup
from lakehouse_ingestor.sources import _one_line, file_ext
from lakehouse_ingestor.state import KnownIds

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class TickClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return NOW + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


# -- Retry-After and backoff ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("1", 1.0, id="seconds"),
        pytest.param(" 120 ", 120.0, id="padded"),
        pytest.param("0.5", 0.5, id="fraction"),
        pytest.param("Sat, 01 Mar 2025 12:00:30 GMT", 30.0, id="http-date"),
        pytest.param("Sat, 01 Mar 2025 11:00:00 GMT", 0.0, id="http-date-in-the-past"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-5", None, id="negative"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_backoff_grows_exponentially_with_full_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=10, backoff_base_s=0.5, backoff_max_s=4.0)
    rng = random.Random(1)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        draws = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # jitter spreads over the whole range
    assert RetryPolicy(backoff_base_s=0.5, jitter=False).backoff(3, rng) == 2.0


def test_the_token_bucket_allows_a_burst_then_paces() -> None:
    clock = TickClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    for _ in range(5):
        bucket.acquire()
    assert clock.sleeps == pytest.approx([0.5, 0.5])
    clock.t += 10  # idle: the bucket refills up to its burst only
    for _ in range(4):
        bucket.acquire()
    assert clock.sleeps[2:] == pytest.approx([0.5])


def test_a_stop_request_ends_a_rate_limit_wait() -> None:
    stop = StopToken()

    class StoppingClock(TickClock):
        def sleep(self, seconds: float) -> None:
            stop.request("test")  # the sleep is cut short: no time passes

    bucket = TokenBucket(rate=1.0, burst=1, clock=StoppingClock(), stop=stop)
    bucket.acquire()
    assert bucket.acquire() == pytest.approx(1.0)  # returned instead of spinning
    with pytest.raises(IngestStopped, match="stopped by test"):
        stop.check()


def test_excerpt_is_short_and_on_one_line() -> None:
    text = excerpt(b"<html>\n  <body>" + b"x" * 1000 + b"</body></html>", limit=50)
    assert len(text) == 50 and "\n" not in text and text.endswith("…")
    assert excerpt(b"\xff\xfe bad bytes") == "�� bad bytes"


# -- pagination -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("items", [1, 2], id="top"),
        pytest.param("links.next", "/p2", id="nested"),
        pytest.param("pages.0.n", 5, id="list-index"),
        pytest.param("links.prev", None, id="missing"),
        pytest.param("items.x", None, id="through-a-list"),
    ],
)
def test_lookup(path: str, expected: Any) -> None:
    doc = {"items": [1, 2], "links": {"next": "/p2"}, "pages": [{"n": 5}]}
    assert lookup(doc, path) == expected


def page_doc(items: int, pages: int | None = None, found: int | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"items": list(range(items))}
    if pages is not None:
        doc["pages"] = pages
    if found is not None:
        doc["found"] = found
    return doc


@pytest.mark.parametrize(
    ("number", "doc", "has_next"),
    [
        pytest.param(0, page_doc(100, pages=3, found=250), True, id="more-pages"),
        pytest.param(2, page_doc(50, pages=3, found=250), False, id="last-page"),
        pytest.param(0, page_doc(0, pages=0, found=0), False, id="empty"),
        pytest.param(0, page_doc(100), True, id="no-counts-full-page"),
        pytest.param(4, page_doc(70), False, id="no-counts-short-page"),
        pytest.param(19, page_doc(100, pages=20, found=5000), False, id="the-cap"),
    ],
)
def test_page_numbers(number: int, doc: dict[str, Any], has_next: bool) -> None:
    pages = PageNumbers(PageNumberPagination(type="page_number", per_page=100, max_results=2000))
    request = pages.first("https://x/v", (("text", "a"), ("page", "9")))
    assert request.params == (("text", "a"), ("page", "0"), ("per_page", "100"))
    current = PageRequest(request.url, request.params, number)
    following = pages.next(current, doc)
    assert (following is not None) is has_next
    if following is not None:
        assert dict(following.params)["page"] == str(number + 1)


def test_page_numbers_start_where_the_api_does() -> None:
    pages = PageNumbers(PageNumberPagination(type="page_number", first_page=1, page_param="p", per_page=10))
    first = pages.first("https://x/v", ())
    assert dict(first.params) == {"p": "1", "per_page": "10"}
    following = pages.next(first, page_doc(10, pages=2))
    assert following is not None and dict(following.params)["p"] == "2"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param({"items": {"a": 1}}, "no list at 'items' (dict)", id="items-not-a-list"),
        pytest.param({"data": []}, "no list at 'items' (missing)", id="items-missing"),
        pytest.param({"items": [], "found": "many"}, "'found' must be an integer", id="found-not-int"),
    ],
)
def test_page_shape_errors(doc: dict[str, Any], message: str) -> None:
    pages = PageNumbers(PageNumberPagination(type="page_number"))
    with pytest.raises(PageShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pages.items(doc)
        pages.found(doc)


def test_next_links_resolve_relative_links_and_stop_on_none() -> None:
    links = NextLinks(NextLinkPagination(type="next_link", next_field="links.next"))
    first = links.first("https://api.x/v1/events", (("kind", "a"),))
    second = links.next(first, {"links": {"next": "events?page=2"}})
    assert second == PageRequest("https://api.x/v1/events?page=2", (), 1)
    assert links.next(second, {"links": {"next": None}}) is None
    assert links.next(second, {"links": {}}) is None


def test_cursors_replace_the_cursor_and_honour_has_more() -> None:
    cursors = Cursors(
        CursorPagination(type="cursor", cursor_field="meta.c", cursor_param="after", has_more_field="meta.more")
    )
    first = cursors.first("https://x/feed", (("after", "stale"), ("n", "5")))
    assert first.params == (("n", "5"),)
    second = cursors.next(first, {"meta": {"c": 17, "more": True}})
    assert second is not None and second.params == (("n", "5"), ("after", "17"))
    third = cursors.next(second, {"meta": {"c": "x", "more": True}})
    assert third is not None and third.params == (("n", "5"), ("after", "x"))
    assert cursors.next(third, {"meta": {"c": "y", "more": False}}) is None


# -- endpoints and the environment ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        pytest.param("literal", {}, "literal", id="literal"),
        pytest.param(FromEnv(env="A", default="d"), {"A": "set"}, "set", id="from-env"),
        pytest.param(FromEnv(env="A", default="d"), {}, "d", id="default"),
        pytest.param(FromEnv(env="A", default="d"), {"A": ""}, "d", id="empty-is-unset"),
    ],
)
def test_resolve_text(value: Any, environ: dict[str, str], expected: str) -> None:
    assert resolve_text(value, environ, "what") == expected


def test_a_required_variable_names_itself() -> None:
    with pytest.raises(IngestConfigError, match="set the environment variable API_URL"):
        resolve_text(FromEnv(env="API_URL"), {}, "source x: ingest.base_url")


def test_params_repeat_lists_spell_booleans_and_drop_empty_values() -> None:
    params = {"role": (96, 165), "archived": False, "text": FromEnv(env="T", default=""), "area": 1, "q": ""}
    assert resolve_params(params, {}, "p") == [("role", "96"), ("role", "165"), ("archived", "false"), ("area", "1")]


def spec(**changes: Any) -> RestJsonSpec:
    base: dict[str, Any] = {
        "kind": "rest_json",
        "base_url": "https://api.x.org/v2/",
        "path": "/things",
        "headers": {"User-Agent": "ua/1"},
    }
    return RestJsonSpec.model_validate({**base, **changes})


@pytest.mark.parametrize(
    ("auth", "environ", "secret"),
    [
        pytest.param({"type": "bearer", "token_env": "TOK"}, {"TOK": "abc"}, {"Authorization": "Bearer abc"}, id="b"),
        pytest.param(
            {"type": "header", "token_env": "TOK", "header": "X-Api-Key"}, {"TOK": "abc"}, {"X-Api-Key": "abc"}, id="h"
        ),
    ],
)
def test_auth_goes_only_to_the_secret_headers(auth: dict[str, str], environ: dict[str, str], secret: Any) -> None:
    endpoint = resolve_endpoint("things", spec(auth=auth), environ)
    assert endpoint.secret_headers == secret
    assert endpoint.public_headers == {"User-Agent": "ua/1"}
    assert endpoint.headers == {"User-Agent": "ua/1", **secret}
    assert "abc" not in repr(endpoint)


def test_endpoint_urls_keep_the_base_path() -> None:
    endpoint = resolve_endpoint("things", spec(), {})
    assert endpoint.url == "https://api.x.org/v2/things"
    assert endpoint.detail_url("/things/{id}", "a/b c") == "https://api.x.org/v2/things/a%2Fb%20c"


def test_a_base_url_from_the_environment_is_checked() -> None:
    with pytest.raises(IngestConfigError, match="must look like https://host"):
        resolve_endpoint("things", spec(base_url={"env": "BASE", "default": "https://x.org"}), {"BASE": "x.org"})


# -- small helpers ------------------------------------------------------------------------------------
def test_known_ids_are_kept_for_a_number_of_days() -> None:
    known = KnownIds({"2025-01-01": ["1", "2"], "2025-02-20": ["3"]})
    known.add(["4", "2"], date(2025, 3, 1))
    assert {"1", "2", "3", "4"} <= {i for i in ["1", "2", "3", "4"] if i in known}
    assert known.prune(date(2025, 3, 1), remember_days=30) == 2
    assert "1" not in known and "2" in known and "3" in known
    assert known.to_json() == {"2025-02-20": ["3"], "2025-03-01": ["2", "4"]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("rates.csv", "csv", id="csv"),
        pytest.param("Dump.NDJSON.GZ", "ndjson.gz", id="compressed"),
        pytest.param("rates.2025-03.csv", "csv", id="dotted-name"),
        pytest.param("rates", "json", id="no-suffix"),
        pytest.param("archive.gz", "gz", id="bare-compression"),
    ],
)
def test_file_ext(name: str, expected: str) -> None:
    assert file_ext(Path(name), "json") == expected


@pytest.mark.parametrize(
    ("body", "expected", "changed"),
    [
        pytest.param(b'{"a":1}', b'{"a":1}', False, id="compact"),
        pytest.param(b'{"a":1}\n', b'{"a":1}', False, id="trailing-newline"),
        pytest.param(b'{\n  "a": 1\r\n}', b'{   "a": 1  }', True, id="pretty"),
    ],
)
def test_one_ndjson_line(body: bytes, expected: bytes, changed: bool) -> None:
    line, was_changed = _one_line(body)
    assert (line, was_changed) == (expected, changed)
    assert json.loads(line) == json.loads(body)


# -- logs and progress -----------------------------------------------------------------------------
def record(event: str, **fields: Any) -> logging.LogRecord:
    rec = logging.LogRecord("lakehouse_ingestor", logging.INFO, __file__, 1, event, None, None)
    rec.event_fields = fields  # type: ignore[attr-defined]
    return rec


def test_logfmt_quotes_what_needs_quoting() -> None:
    line = LogfmtFormatter().format(record("page.landed", source="vacancies", key="a b", n=3, empty="", ok=True))
    assert line.split(" ", 1)[1] == 'level=info event=page.landed source=vacancies key="a b" n=3 empty="" ok=true'


def test_json_lines() -> None:
    doc = json.loads(JsonFormatter().format(record("run.end", source="vacancies", pages=3)))
    assert doc["event"] == "run.end" and doc["pages"] == 3 and doc["level"] == "info" and doc["ts"].endswith("Z")


def test_the_progress_line() -> None:
    out = io.StringIO()
    bar = TerminalProgress(out)
    bar.start("vacancies", 10.0, "d")
    bar.update(4.0, pages=12)
    assert bar.line() == "vacancies [##########..............]  40% 4/10 d pages 12"
    bar.finish()
    assert out.getvalue().endswith("\n")


def test_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    progress = configure_logging("text", "INFO", io.StringIO())
    assert isinstance(progress, NoProgress)
    assert isinstance(configure_logging("json", "INFO", io.StringIO(), progress=True), TerminalProgress)
    configure_logging("text", "INFO", io.StringIO())  # leave no progress-aware handler behind


# -- signals -------------------------------------------------------------------------------------------
def test_the_first_sigterm_requests_a_stop_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = StopToken()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(IngestStopped, match="SIGTERM"):
            stop.check()
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_second_ctrl_c_interrupts_at_once() -> None:
    stop = StopToken()
    with stop_on_signals(stop), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        os.kill(os.getpid(), signal.SIGINT)
