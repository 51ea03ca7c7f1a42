"""Running sources: once (``lakehouse-ingest run``), forever (``serve``), or an import of local files.

A :class:`Runner` reads the contracts, and for each run builds an
:class:`~lakehouse_ingestor.sources.IngestContext` (lake, lander, state store, clock, stop token,
log, progress) and turns the outcome into a :class:`~lakehouse_ingestor.sources.RunReport`:
``ok``, ``stopped`` (a stop request between pages: everything written is kept and the rerun
goes on from the cursor) or ``failed`` (the typed error's message).

``serve`` runs every source with an ``ingest`` section on its own interval (the contract's
``ingest.interval``, or ``LAKEHOUSE_INGESTOR_INTERVALS``), one at a time, sleeping in between;
a failed run is tried again after ``min(interval, serve_retry_s)``. SIGTERM ends it cleanly.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import requests

from lakehouse_common.contracts import Contract, ContractRegistry, HttpFileSpec, LocalFilesSpec, RestJsonSpec
from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.storage import Lake
from lakehouse_ingestor.control import Clock, StopToken, SystemClock
from lakehouse_ingestor.endpoint import resolve_text
from lakehouse_ingestor.exceptions import IngestConfigError, IngestStopped
from lakehouse_ingestor.landing import ContentIndex, Lander
from lakehouse_ingestor.logs import EventLog, NoProgress, Progress
from lakehouse_ingestor.settings import IngestorSettings
from lakehouse_ingestor.sources import FileImporter, IngestContext, RunReport, build_source
from lakehouse_ingestor.state import StateStore


@dataclass(frozen=True)
class SourceInfo:
    """One line of ``lakehouse-ingest sources``."""

    name: str
    kind: str
    target: str
    interval: timedelta | None
    cursor: datetime | None
    note: str = ""


class Runner:
    def __init__(
        self,
        lake: Lake,
        registry: ContractRegistry,
        settings: IngestorSettings,
        *,
        clock: Clock | None = None,
        stop: StopToken | None = None,
        environ: Mapping[str, str] | None = None,
        session_factory: Callable[[], requests.Session] = requests.Session,
        progress: Progress | None = None,
        log: EventLog | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.lake = lake
        self.registry = registry
        self.settings = settings
        self.stop = stop or StopToken()
        self.clock = clock or SystemClock(self.stop)
        self.environ = dict(os.environ) if environ is None else dict(environ)
        self.session_factory = session_factory
        self.progress = progress or NoProgress()
        self.log = log or EventLog()
        self.rng = rng or random.Random()
        self.states = StateStore(lake.bronze)
        self.indexes: dict[str, ContentIndex] = {}  # listed once per process, then kept up to date

    # -- what is configured ---------------------------------------------------------------------
    def contracts(self) -> list[Contract]:
        return [self.registry.get(name) for name in self.registry.names()]

    def ingestable(self) -> list[str]:
        return [c.name for c in self.contracts() if c.ingest is not None]

    def contract(self, name: str) -> Contract:
        contract = self.registry.get(name)
        if contract.ingest is None:
            filled_by = self.filled_by(name)
            how = f"it is filled by the details fan-out of {filled_by}" if filled_by else "add one to fetch it"
            raise IngestConfigError(
                f"source {name} has no ingest section in its contract ({how}); "
                f"sources that can run: {', '.join(self.ingestable()) or '(none)'}"
            )
        return contract

    def filled_by(self, name: str) -> str | None:
        for contract in self.contracts():
            spec = contract.ingest
            if isinstance(spec, RestJsonSpec) and spec.details is not None and spec.details.source == name:
                return contract.name
        return None

    def interval(self, contract: Contract) -> timedelta:
        assert contract.ingest is not None
        return self.settings.intervals.get(contract.name, contract.ingest.interval)

    def describe(self, *, with_state: bool = True) -> list[SourceInfo]:
        infos: list[SourceInfo] = []
        for contract in self.contracts():
            spec = contract.ingest
            if spec is None:
                parent = self.filled_by(contract.name)
                note = f"filled by the details of {parent}" if parent else "no ingest section (import files by hand)"
                infos.append(SourceInfo(contract.name, "-", "-", None, None, note))
                continue
            cursor = self.states.load(contract.name).cursor if with_state and isinstance(spec, RestJsonSpec) else None
            infos.append(SourceInfo(contract.name, spec.kind, self._target(contract), self.interval(contract), cursor))
        return infos

    def _target(self, contract: Contract) -> str:
        spec = contract.ingest
        if isinstance(spec, (RestJsonSpec, HttpFileSpec)):
            try:
                base = resolve_text(spec.base_url, self.environ, "base_url").rstrip("/")
            except IngestConfigError:
                base = "${" + getattr(spec.base_url, "env", "?") + "}"
            return f"{base}{spec.path}"
        if isinstance(spec, LocalFilesSpec):
            try:
                root = resolve_text(spec.path, self.environ, "path")
            except IngestConfigError:
                root = "${" + getattr(spec.path, "env", "?") + "}"
            return f"{root}/{'**/' if spec.recursive else ''}{spec.pattern}"
        return "-"

    # -- running --------------------------------------------------------------------------------
    def _context(self, run_id: str, until: datetime | None) -> IngestContext:
        return IngestContext(
            lake=self.lake,
            registry=self.registry,
            lander=Lander(self.lake, run_id, self.indexes),
            states=self.states,
            clock=self.clock,
            stop=self.stop,
            log=self.log.bind(run_id=run_id),
            run_id=run_id,
            environ=self.environ,
            progress=self.progress,
            rng=self.rng,
            session_factory=self.session_factory,
            rate_limit_override=self.settings.rate_limit_per_s,
            until=until,
        )

    def _run_id(self) -> str:
        return f"{self.clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"

    def run_once(self, name: str, *, until: datetime | None = None) -> RunReport:
        """One run of one source; never raises for the source's own failures (see the report)."""
        contract = self.contract(name)
        assert contract.ingest is not None
        run_id = self._run_id()
        ctx = self._context(run_id, until)
        report = RunReport(name, contract.ingest.kind, run_id)
        return self._execute(report, ctx, lambda: build_source(contract, ctx).run(report))

    def import_path(self, name: str, path: Path, *, pattern: str = "*", recursive: bool = False) -> RunReport:
        """Import local files into ``name``'s bronze prefix, whatever its ingest kind (or none)."""
        default_ext = self.registry.get(name).format.type if name in self.registry else "csv"
        run_id = self._run_id()
        ctx = self._context(run_id, None)
        report = RunReport(name, "import", run_id)
        importer = FileImporter(name, ctx, default_ext)
        return self._execute(report, ctx, lambda: importer.import_path(path, pattern, recursive, report))

    def _execute(self, report: RunReport, ctx: IngestContext, work: Callable[[], None]) -> RunReport:
        log = ctx.log.bind(source=report.source)
        started = time.monotonic()
        log.info("run.start", kind=report.kind)
        try:
            work()
        except IngestStopped as exc:
            report.status, report.error, report.exception = "stopped", str(exc), exc
        except LakehouseError as exc:
            report.status, report.error, report.exception = "failed", str(exc), exc
        finally:
            report.seconds = time.monotonic() - started
            self.progress.finish()
        fields = {k: v for k, v in report.to_json().items() if k not in {"source", "run_id", "kind", "counters"}}
        if report.status == "failed" and report.exception is not None:
            fields["error_type"] = type(report.exception).__name__
        level = {"ok": log.info, "stopped": log.warning, "failed": log.error}[report.status]
        level("run.end", **fields, **dict(sorted(report.counters.items())))
        return report

    def serve(self, names: Sequence[str] | None = None, **announce: object) -> list[RunReport]:
        """Run the sources on their intervals until a stop request; returns every run's report.

        ``announce`` adds fields to the ``serve.start`` event (the metrics URL)."""
        chosen = list(names) if names else self.ingestable()
        contracts = [self.contract(name) for name in chosen]
        if not contracts:
            raise IngestConfigError("no source has an ingest section: nothing to serve")
        due = dict.fromkeys((c.name for c in contracts), self.clock.monotonic())
        reports: list[RunReport] = []
        self.log.info(
            "serve.start",
            sources=",".join(due),
            intervals=",".join(f"{c.name}={self.interval(c)}" for c in contracts),
            **announce,
        )
        while not self.stop.requested:
            name = min(due, key=lambda n: due[n])
            wait = due[name] - self.clock.monotonic()
            if wait > 0:
                self.clock.sleep(wait)
                continue
            report = self.run_once(name)
            reports.append(report)
            interval = self.interval(self.registry.get(name)).total_seconds()
            if report.status == "failed":
                interval = min(interval, self.settings.serve_retry_s)
            due[name] = self.clock.monotonic() + interval
            self.log.info("serve.next", source=name, in_s=round(interval, 3))
        self.log.info("serve.stop", reason=self.stop.reason or "stop requested", runs=len(reports))
        return reports
