"""HTTP for the ingestor: one ``requests.Session`` per source run, hardened.

* Every attempt has a timeout: ``timeout_s`` for connecting and for each read, and the whole
  response must arrive within ``timeout_s`` of its start (a server dripping bytes is cut off).
* Retries on connection errors, timeouts, 429 and 5xx, with exponential backoff and full jitter
  (``uniform(0, min(max, base * 2**n))``), or exactly the server's ``Retry-After`` (seconds or an
  HTTP date) when it sends one; a ``Retry-After`` longer than ``retry_after_max_s`` fails at once.
* No retry on other 4xx: :class:`~lakehouse_ingestor.exceptions.HttpStatusError` names the status,
  the URL and an excerpt of the body.
* A token bucket (``rate_limit_per_s``, ``burst``) paces every request of the source, pages and
  details alike, retries included.

Sleeping goes through the injected :class:`~lakehouse_ingestor.control.Clock`, and a stop request
interrupts a retry wait with :class:`~lakehouse_ingestor.exceptions.IngestStopped`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from lakehouse_common.contracts import RetrySpec
from lakehouse_ingestor.control import Clock, StopToken
from lakehouse_ingestor.exceptions import HttpStatusError, RetriesExhaustedError
from lakehouse_ingestor.logs import EventLog

RETRYABLE_STATUS = frozenset({429}) | frozenset(range(500, 600))
EXCERPT_CHARS = 300
CHUNK_BYTES = 64 * 1024
KEPT_RESPONSE_HEADERS = ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Date")

Params = Sequence[tuple[str, str]]
_EPSILON = 1e-9


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: bool = True
    retry_after_max_s: float = 120.0

    @classmethod
    def from_spec(cls, spec: RetrySpec) -> RetryPolicy:
        return cls(
            attempts=spec.attempts,
            backoff_base_s=spec.backoff_base_s,
            backoff_max_s=spec.backoff_max_s,
            jitter=spec.jitter == "full",
            retry_after_max_s=spec.retry_after_max_s,
        )

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))
        return rng.uniform(0.0, ceiling) if self.jitter else ceiling


class TokenBucket:
    """``rate`` requests per second on average, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Clock, stop: StopToken | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {rate} and {burst}")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._stop = stop
        self._tokens = float(burst)
        self._updated = clock.monotonic()
        self.waited_s = 0.0

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def acquire(self) -> float:
        """Take one token, sleeping until one is there; returns the seconds waited."""
        waited = 0.0
        self._refill()
        while self._tokens < 1.0 - _EPSILON:  # (a float sum may land a hair below 1)
            if self._stop is not None and self._stop.requested:
                return waited  # the caller checks the stop request next
            wait = (1.0 - self._tokens) / self.rate
            self._clock.sleep(wait)
            waited += wait
            self._refill()
        self._tokens = max(0.0, self._tokens - 1.0)
        self.waited_s += waited
        return waited


@dataclass(frozen=True)
class HttpResponse:
    """A complete answer: what was asked (``url`` with its query, no credentials) and the body."""

    method: str
    url: str
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    attempts: int
    elapsed_s: float

    @property
    def kept_headers(self) -> dict[str, str]:
        """The response headers worth recording with the payload."""
        return {name: self.headers[name] for name in KEPT_RESPONSE_HEADERS if name in self.headers}


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/invalid."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def excerpt(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(body[: limit * 4].decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Retryable(Exception):
    def __init__(self, why: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after
        self.status = status


class HttpClient:
    """GET with a timeout, retries, a rate limit and a stop check; see the module docstring."""

    def __init__(
        self,
        *,
        session: requests.Session,
        timeout_s: float,
        retry: RetryPolicy,
        limiter: TokenBucket,
        clock: Clock,
        stop: StopToken,
        log: EventLog,
        rng: random.Random | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.timeout_s = timeout_s
        self.retry = retry
        self.limiter = limiter
        self.clock = clock
        self.stop = stop
        self.log = log
        self.rng = rng or random.Random()
        self.headers = dict(headers or {})
        self.stats = HttpStats()

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, params: Params = ()) -> HttpResponse:
        """The 2xx answer to ``GET url?params``, after retries; raises a typed error otherwise."""
        request = requests.Request("GET", url, params=list(params), headers=self.headers)
        prepared = self.session.prepare_request(request)
        shown = str(prepared.url)
        started = self.clock.monotonic()
        last = "no attempt made"
        for attempt in range(1, self.retry.attempts + 1):
            self.limiter.acquire()
            self.stop.check()
            try:
                return self._attempt(prepared, shown, attempt, started)
            except _Retryable as exc:
                last = exc.why
                if attempt == self.retry.attempts:
                    break
                if exc.retry_after is not None:
                    if exc.retry_after > self.retry.retry_after_max_s:
                        raise RetriesExhaustedError(
                            f"GET {shown}: {exc.why}, and the server asks to wait {exc.retry_after:.0f} s, "
                            f"more than retries.retry_after_max_s ({self.retry.retry_after_max_s:.0f} s)",
                            url=shown,
                            status=exc.status,
                        ) from None
                    delay = exc.retry_after
                else:
                    delay = self.retry.backoff(attempt, self.rng)
                self.stats.retries += 1
                self.log.warning(
                    "http.retry",
                    url=shown,
                    attempt=attempt,
                    of=self.retry.attempts,
                    why=exc.why,
                    wait_s=round(delay, 3),
                    retry_after=exc.retry_after is not None,
                )
                self.clock.sleep(delay)
                self.stop.check()
        raise RetriesExhaustedError(
            f"GET {shown} failed after {self.retry.attempts} attempts; last: {last} "
            "(retried on connection errors, timeouts, 429 and 5xx; raise retries.attempts or try later)",
            url=shown,
        )

    def _attempt(self, prepared: requests.PreparedRequest, shown: str, attempt: int, started: float) -> HttpResponse:
        self.stats.requests += 1
        began = time.monotonic()
        try:
            response = self.session.send(
                prepared, timeout=(self.timeout_s, self.timeout_s), stream=True, allow_redirects=True
            )
        except requests.Timeout as exc:
            self.log.debug("http.failed", url=shown, attempt=attempt, why="timeout")
            raise _Retryable(f"timeout after {self.timeout_s:g} s ({type(exc).__name__})") from exc
        except requests.ConnectionError as exc:
            self.log.debug("http.failed", url=shown, attempt=attempt, why="connection")
            raise _Retryable(f"connection error: {_short(exc)}") from exc
        try:
            body = self._read(response, began)
        except _Retryable:
            self.log.debug("http.failed", url=shown, attempt=attempt, why="read", status=response.status_code)
            raise
        finally:
            response.close()
        self.stats.bytes += len(body)
        self.stats.statuses[response.status_code] = self.stats.statuses.get(response.status_code, 0) + 1
        status = response.status_code
        self.log.debug("http.response", url=shown, attempt=attempt, status=status, size=len(body))
        headers: dict[str, Any] = dict(response.headers)
        if 200 <= status < 300:
            return HttpResponse(
                method="GET",
                url=shown,
                status=status,
                reason=response.reason or "",
                headers=headers,
                body=body,
                attempts=attempt,
                elapsed_s=round(self.clock.monotonic() - started, 6),
            )
        if status in RETRYABLE_STATUS:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock.now())
            raise _Retryable(f"{status} {response.reason or ''}: {excerpt(body, 120)}".strip(), retry_after, status)
        raise HttpStatusError(
            method="GET", url=shown, status=status, reason=response.reason or "", excerpt=excerpt(body)
        )

    def _read(self, response: requests.Response, began: float) -> bytes:
        chunks: list[bytes] = []
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                chunks.append(chunk)
                if time.monotonic() - began > self.timeout_s:
                    raise _Retryable(f"the response took longer than {self.timeout_s:g} s")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"connection broken while reading: {_short(exc)}") from exc
        except requests.Timeout as exc:
            raise _Retryable(f"read timeout after {self.timeout_s:g} s") from exc
        return b"".join(chunks)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:199] + "…"
