"""A small client of Airflow 3's REST API: log in, find an Asset's id by name, post an Asset event.

* ``POST /auth/token`` with ``{"username", "password"}`` answers ``{"access_token": ...}`` (201
  with the simple auth manager); every other request sends ``Authorization: Bearer <token>``. A
  401 (the token expired) logs in again once and repeats the request.
* ``GET /api/v2/assets?name_pattern=<name>&limit=100`` answers ``{"assets": [{"id", "name", "uri",
  ...}], "total_entries": n}``. ``name_pattern`` is a case-insensitive substring match (SQL
  ``ILIKE '%name%'``), so the exact name is picked out here; ids are cached by name.
* ``POST /api/v2/assets/events`` with ``{"asset_id": <int>, "extra": {...}}`` records the event
  and queues the runs of the DAGs scheduled on the Asset.

Connection errors, timeouts, 429 and 5xx are retried with exponential backoff and jitter
(honouring ``Retry-After``); what is still failing after that raises
:class:`~lakehouse_bridge.exceptions.AirflowUnavailableError`.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests

from lakehouse_bridge.exceptions import AirflowAuthError, AirflowRequestError, AirflowUnavailableError
from lakehouse_bridge.logs import EventLog
from lakehouse_bridge.settings import AirflowConnection

TOKEN_PATH = "/auth/token"
ASSETS_PATH = "/api/v2/assets"
ASSET_EVENTS_PATH = "/api/v2/assets/events"
HEALTH_PATH = "/api/v2/monitor/health"
PAGE_LIMIT = 100
MAX_PAGES = 100
USER_AGENT = "lakehouse-bridge/0.1"


def _excerpt(response: requests.Response, limit: int = 200) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class AirflowClient:
    """Thread-safe: the token and the asset ids are shared under locks by the webhook's threads."""

    def __init__(
        self,
        connection: AirflowConnection,
        *,
        retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[], None] | None = None,
        log: EventLog | None = None,
    ) -> None:
        self.connection = connection
        self.base_url = connection.url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self._sessions: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
        self.sleep = sleep
        self.on_retry = on_retry
        self.log = log or EventLog()
        self._random = random.Random()
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self._asset_ids: dict[str, int] = {}
        self._assets_lock = threading.Lock()

    # -- transport -----------------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[requests.Session]:
        """A pooled session, used by one thread at a time (requests does not promise more), kept alive
        for the next request."""
        try:
            session = self._sessions.get_nowait()
        except queue.Empty:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        try:
            yield session
        finally:
            self._sessions.put(session)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before retry ``attempt`` (0-based): exponential, capped, jittered to 50-100 %."""
        if retry_after is not None:
            return min(self.backoff_max_s, max(0.0, retry_after))
        delay: float = min(self.backoff_max_s, self.backoff_s * 2.0**attempt)
        return delay * self._random.uniform(0.5, 1.0)

    @staticmethod
    def _retry_after(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After", "")
        try:
            return float(value)
        except ValueError:
            return None

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request, retried on connection errors, timeouts, 429 and 5xx."""
        url = f"{self.base_url}{path}"
        problem = ""
        for attempt in range(self.retries + 1):
            retry_after: float | None = None
            try:
                with self._session() as session:
                    response = session.request(method, url, timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if not _retryable(response.status_code):
                    return response
                problem = f"answered {response.status_code}: {_excerpt(response)}"
                retry_after = self._retry_after(response)
            if attempt < self.retries:
                delay = self.backoff(attempt, retry_after)
                self.log.warning(
                    "airflow.retry",
                    method=method,
                    url=url,
                    attempt=attempt + 1,
                    delay_s=round(delay, 3),
                    problem=problem,
                )
                if self.on_retry is not None:
                    self.on_retry()
                self.sleep(delay)
        raise AirflowUnavailableError(
            f"{method} {url} failed {self.retries + 1} times, last: {problem} "
            "(is LAKEHOUSE_BRIDGE_AIRFLOW_URL right and Airflow's API server up?)"
        )

    # -- authentication ------------------------------------------------------------------------
    def _login(self) -> str:
        response = self._send(
            "POST",
            TOKEN_PATH,
            json={"username": self.connection.username, "password": self.connection.password.get_secret_value()},
        )
        url = f"{self.base_url}{TOKEN_PATH}"
        if response.status_code in {400, 401, 403}:
            raise AirflowAuthError(
                f"POST {url} answered {response.status_code}: Airflow refused the credentials of user "
                f"{self.connection.username!r} (check LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME and _PASSWORD)"
            )
        if not response.ok:
            raise AirflowRequestError(method="POST", url=url, status=response.status_code, excerpt=_excerpt(response))
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AirflowAuthError(
                f'POST {url} answered {response.status_code} without {{"access_token": ...}}: {_excerpt(response)}'
            ) from exc
        if not isinstance(token, str) or not token:
            raise AirflowAuthError(f"POST {url} answered an empty access_token")
        self.log.info("airflow.logged_in", url=self.base_url, username=self.connection.username)
        return token

    def _current_token(self, stale: str | None = None) -> str:
        """The token to use; logs in when there is none, or when ``stale`` is still the current one."""
        with self._token_lock:
            if self._token is None or self._token == stale:
                self._token = self._login()
            return self._token

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> requests.Response:
        """An authenticated request; a 401 logs in again once and repeats it."""
        token = self._current_token()
        response = self._send(method, path, params=params, json=json, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 401:
            return response
        self.log.info("airflow.token_refresh", url=self.base_url)
        token = self._current_token(stale=token)
        response = self._send(method, path, params=params, json=json, headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            raise AirflowAuthError(
                f"{method} {self.base_url}{path} answered 401 to a fresh token: {_excerpt(response)} "
                "(check Airflow's auth manager and the bridge user's roles)"
            )
        return response

    # -- assets ----------------------------------------------------------------------------------
    def asset_id(self, name: str) -> int | None:
        """The id of the active Asset named exactly ``name``, or None when Airflow has no such Asset."""
        with self._assets_lock:
            cached = self._asset_ids.get(name)
        if cached is not None:
            return cached
        found = self._lookup_asset(name)
        if found is not None:
            with self._assets_lock:
                self._asset_ids[name] = found
        return found

    def forget_asset(self, name: str) -> None:
        with self._assets_lock:
            self._asset_ids.pop(name, None)

    def _lookup_asset(self, name: str) -> int | None:
        offset = 0
        for _ in range(MAX_PAGES):
            params = {"name_pattern": name, "limit": PAGE_LIMIT, "offset": offset}
            response = self.request("GET", ASSETS_PATH, params=params)
            if not response.ok:
                url = f"{self.base_url}{ASSETS_PATH}"
                raise AirflowRequestError(
                    method="GET", url=url, status=response.status_code, excerpt=_excerpt(response)
                )
            page = self._json_object(response, "GET", ASSETS_PATH)
            assets = page.get("assets")
            if not isinstance(assets, list):
                raise AirflowRequestError(
                    method="GET",
                    url=f"{self.base_url}{ASSETS_PATH}",
                    status=response.status_code,
                    excerpt=f'no "assets" list in {_excerpt(response)}',
                )
            for asset in assets:
                if isinstance(asset, Mapping) and asset.get("name") == name and isinstance(asset.get("id"), int):
                    return int(asset["id"])
            offset += len(assets)
            total = page.get("total_entries")
            if not assets or not isinstance(total, int) or offset >= total:
                return None
        return None

    def post_asset_event(self, asset_id: int, extra: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record an Asset event; its response document, or None when Airflow has no such Asset (404)."""
        response = self.request("POST", ASSET_EVENTS_PATH, json={"asset_id": asset_id, "extra": dict(extra)})
        if response.status_code == 404:
            return None
        if not response.ok:
            url = f"{self.base_url}{ASSET_EVENTS_PATH}"
            raise AirflowRequestError(method="POST", url=url, status=response.status_code, excerpt=_excerpt(response))
        return self._json_object(response, "POST", ASSET_EVENTS_PATH) if response.content else {}

    def _json_object(self, response: requests.Response, method: str, path: str) -> dict[str, Any]:
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            url = f"{self.base_url}{path}"
            raise AirflowRequestError(
                method=method, url=url, status=response.status_code, excerpt=f"not a JSON object: {_excerpt(response)}"
            )
        return doc

    # -- health ----------------------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        """Whether Airflow's API server answers ``GET /api/v2/monitor/health`` (one try, no login)."""
        url = f"{self.base_url}{HEALTH_PATH}"
        try:
            with self._session() as session:
                response = session.get(url, timeout=self.timeout_s)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return False, f"{url}: {type(exc).__name__}"
        return response.ok, f"{url} answered {response.status_code}"

    def close(self) -> None:
        while True:
            try:
                self._sessions.get_nowait().close()
            except queue.Empty:
                return
