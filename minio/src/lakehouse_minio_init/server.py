"""Waiting for MinIO: at start, and after the init restarts it to apply a notification target."""

from __future__ import annotations

import time
from collections.abc import Callable

import urllib3
from urllib3.exceptions import HTTPError

from lakehouse_minio_init.exceptions import ServerNotReadyError

READY_PATH = "/minio/health/ready"
RESTART_GRACE_S = 1.0
"""After asking for a restart, wait this long before probing, so the old process is not the one that answers."""


class Readiness:
    """Polls ``GET <url>/minio/health/ready`` (no credentials needed) until it answers 200."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        *,
        interval_s: float = 1.0,
        http: urllib3.PoolManager | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self._http = http or urllib3.PoolManager(timeout=urllib3.Timeout(connect=2.0, read=5.0), retries=False)
        self._sleep = sleep
        self._clock = clock

    def wait(self) -> None:
        deadline = self._clock() + self.timeout_s
        last_error = "no answer yet"
        while True:
            try:
                response = self._http.request("GET", self.url + READY_PATH, retries=False)
                if response.status == 200:
                    return
                last_error = f"{READY_PATH} answered {response.status}"
            except HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if self._clock() >= deadline:
                raise ServerNotReadyError(self.url, self.timeout_s, last_error)
            self._sleep(self.interval_s)

    def after_restart(self) -> None:
        self._sleep(RESTART_GRACE_S)
        self.wait()
