"""Drive Debian's headless Chromium over the DevTools protocol: load a page, collect its console
errors and network requests, evaluate a script, take a screenshot.

Chromium starts with the flags that work on a closed network (no background requests, no
component updates, no sync), as root (``--no-sandbox``), with a new empty profile, and picks its
own debugging port (``--remote-debugging-port=0``; it writes the port to ``DevToolsActivePort`` in
the profile). One websocket to the page target carries the commands and the events.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class ChromiumError(RuntimeError):
    """Chromium did not start, or a DevTools command failed or timed out."""


@dataclass
class PageSession:
    """A DevTools session on one page target; events are kept as they arrive."""

    ws: ClientConnection
    timeout_s: float = 30.0
    events: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise ChromiumError(f"{method} failed: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        """The first event named ``method`` (already received or arriving within the timeout)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(message)
            if message.get("method") == method:
                return message
        raise ChromiumError(f"no {method} event within {self.timeout_s} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise ChromiumError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    # -- what the page did --------------------------------------------------------------------
    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (failed loads, CSP violations)."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                errors.append(str(params.get("exceptionDetails", {}).get("text", "exception")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(str(params["entry"].get("text", "")))
        return errors

    def requested_urls(self) -> list[str]:
        return [
            str(e["params"]["request"]["url"]) for e in self.events if e.get("method") == "Network.requestWillBeSent"
        ]

    def screenshot(self, path: Path, *, width: int, max_height: int = 4000) -> tuple[int, int]:
        """A PNG of the page, ``width`` wide and as tall as the page (at most ``max_height``)."""
        height = min(int(self.evaluate("document.documentElement.scrollHeight")), max_height)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return width, height


def chromium_binary() -> str | None:
    return CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")


@contextmanager
def open_page(url: str, profile: Path, *, width: int = 1280, height: int = 900) -> Iterator[PageSession]:
    """Start Chromium, load ``url`` with console, log and network events on, and yield the session."""
    binary = chromium_binary()
    if binary is None:
        raise ChromiumError("no chromium binary: apt-get install chromium")
    profile.mkdir(parents=True, exist_ok=True)
    log_file = (profile.parent / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ChromiumError(f"chromium did not open its DevTools port; see {profile.parent / 'chromium.log'}")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t.get("type") == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 << 20, open_timeout=10) as ws:
            session = PageSession(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                session.send(f"{domain}.enable")
            session.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            session.send("Page.navigate", {"url": url})
            session.wait_for("Page.loadEventFired")
            yield session
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
