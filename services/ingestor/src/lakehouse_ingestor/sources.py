"""One class per ``ingest.kind``: how a source's payloads get from where they live into bronze.

``rest_json`` (:class:`RestJsonSource`)
    A paginated JSON API. With a ``window`` the run walks ``[cursor, now - lag)`` in ``step``-long
    windows, oldest first. The first page of a window tells ``found``; when that is more than the
    API lets one query page through (``max_results``, hh.ru: 2000), the window is halved (by
    time) until every slice fits, so nothing is cut off; a slice shorter than ``min_span`` that
    still does not fit fails the run. Each page's body lands as one ``.json`` object. With
    ``details``, every new item id of a page is fetched from the detail endpoint under the same
    rate limit, and the page's detail bodies land, before the page, as one NDJSON object of the
    detail source. The cursor moves to a window's end only when all of it is in bronze.
``http_file`` (:class:`HttpFileSource`)
    One CSV or JSON document per run; unchanged content is not written again.
``local_files`` (:class:`LocalFilesSource`)
    Files under a local directory, streamed into bronze; a file already imported is skipped.

A page that keeps failing ends the run with a typed error; what was written before stays. A body
that is not valid JSON (or has no items list) is kept aside under ``_rejected/`` with the reason
and the run fails. A stop request (SIGTERM) is honoured between pages and between detail
requests: the page in progress is dropped whole, and the rerun fetches it again.
"""

from __future__ import annotations

import json
import math
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal

import requests

from lakehouse_common.contracts import (
    Contract,
    ContractRegistry,
    DetailsSpec,
    HttpFileSpec,
    LocalFilesSpec,
    RestJsonSpec,
    WindowSpec,
)
from lakehouse_common.exceptions import UnknownSourceError
from lakehouse_common.storage import Lake
from lakehouse_ingestor.control import Clock, StopToken
from lakehouse_ingestor.endpoint import Endpoint, resolve_endpoint, resolve_params, resolve_text
from lakehouse_ingestor.exceptions import (
    HttpStatusError,
    IngestConfigError,
    MalformedResponseError,
    ResultCapError,
)
from lakehouse_ingestor.http import HttpClient, HttpResponse, RetryPolicy, TokenBucket
from lakehouse_ingestor.landing import Lander, Payload, RequestRecord, iter_files
from lakehouse_ingestor.logs import EventLog, NoProgress, Progress
from lakehouse_ingestor.pagination import PageNumbers, PageRequest, PageShapeError, Paginator, lookup, paginator_for
from lakehouse_ingestor.state import KnownIds, SourceState, StateStore

Status = Literal["ok", "stopped", "failed"]
COMPRESSION_EXTS = frozenset({"gz", "zst", "bz2", "xz"})
MISSING_STATUSES = frozenset({404, 410})
HEARTBEAT_S = 30.0
"""A windowed run logs its progress (cursor and counters) at most this often."""


@dataclass
class RunReport:
    """What one run of one source did."""

    source: str
    kind: str
    run_id: str
    status: Status = "ok"
    counters: Counter[str] = field(default_factory=Counter)
    cursor_before: datetime | None = None
    cursor_after: datetime | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    seconds: float = 0.0
    keys: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "run_id": self.run_id,
            "status": self.status,
            "counters": dict(sorted(self.counters.items())),
            "cursor_before": self.cursor_before.isoformat() if self.cursor_before else None,
            "cursor_after": self.cursor_after.isoformat() if self.cursor_after else None,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class IngestContext:
    """Everything a source run needs, injected (tests pass fake clocks and their own environment)."""

    lake: Lake
    registry: ContractRegistry
    lander: Lander
    states: StateStore
    clock: Clock
    stop: StopToken
    log: EventLog
    run_id: str
    environ: Mapping[str, str]
    progress: Progress = field(default_factory=NoProgress)
    rng: random.Random = field(default_factory=random.Random)
    session_factory: Callable[[], requests.Session] = requests.Session
    rate_limit_override: float | None = None
    until: datetime | None = None


class Source(ABC):
    kind: ClassVar[str]

    def __init__(self, contract: Contract, ctx: IngestContext) -> None:
        self.contract = contract
        self.name = contract.name
        self.ctx = ctx
        self.log = ctx.log.bind(source=self.name)

    @abstractmethod
    def run(self, report: RunReport) -> None:
        """Fetch into bronze, counting into ``report``; raises a typed error on failure."""

    def land(self, report: RunReport, payload: Payload, counter: str) -> None:
        landed = self.ctx.lander.land(payload)
        if landed.written and landed.key is not None:
            report.counters[f"{counter}_written"] += 1
            report.counters["bytes_written"] += landed.size
            report.keys.append(landed.key)
            self.log.debug(
                "payload.landed", target=payload.source, key=landed.key, size=landed.size, sha256=landed.sha256[:16]
            )
        else:
            report.counters[f"{counter}_unchanged"] += 1
            self.log.debug("payload.unchanged", target=payload.source, size=landed.size, sha256=landed.sha256[:16])

    def reject(self, payload: Payload, reason: str, url: str) -> MalformedResponseError:
        key = self.ctx.lander.reject(payload, reason)
        self.log.error("payload.rejected", target=payload.source, url=url, reason=reason, rejected_key=key)
        return MalformedResponseError(f"source {self.name}: {reason}", url=url, rejected_key=key)


class _HttpSource(Source):
    spec: RestJsonSpec | HttpFileSpec

    def _client(self, endpoint: Endpoint) -> HttpClient:
        spec = self.spec
        rate = self.ctx.rate_limit_override or spec.rate_limit_per_s
        return HttpClient(
            session=self.ctx.session_factory(),
            timeout_s=spec.timeout_s,
            retry=RetryPolicy.from_spec(spec.retries),
            limiter=TokenBucket(rate, spec.burst, self.ctx.clock, self.ctx.stop),
            clock=self.ctx.clock,
            stop=self.ctx.stop,
            log=self.log,
            rng=self.ctx.rng,
            headers=endpoint.headers,
        )

    @staticmethod
    def record(response: HttpResponse, endpoint: Endpoint) -> RequestRecord:
        return RequestRecord(
            method=response.method,
            url=response.url,
            status=response.status,
            attempts=response.attempts,
            elapsed_s=response.elapsed_s,
            headers=endpoint.public_headers,
            response_headers=response.kept_headers,
        )

    @staticmethod
    def count_http(report: RunReport, client: HttpClient) -> None:
        report.counters["requests"] += client.stats.requests
        report.counters["retries"] += client.stats.retries
        report.counters["bytes_fetched"] += client.stats.bytes

    def parse_json(self, payload: Payload, url: str) -> Any:
        try:
            return json.loads(payload.data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise self.reject(payload, f"the response is not valid JSON: {exc}", url) from exc


class _Outcome(Enum):
    DONE = "done"
    SPLIT = "split"


def _one_line(body: bytes) -> tuple[bytes, bool]:
    """A JSON body as one NDJSON line. Outside strings JSON allows line breaks only as whitespace, so
    replacing CR and LF by spaces keeps the same value (and length); True when anything was replaced."""
    stripped = body.strip()
    if b"\n" not in stripped and b"\r" not in stripped:
        return stripped, False
    return stripped.replace(b"\r", b" ").replace(b"\n", b" "), True


class RestJsonSource(_HttpSource):
    kind = "rest_json"

    def __init__(self, contract: Contract, ctx: IngestContext, spec: RestJsonSpec) -> None:
        super().__init__(contract, ctx)
        self.spec: RestJsonSpec = spec
        self.paginator: Paginator = paginator_for(spec.pagination)
        self.details: DetailsSpec | None = spec.details
        if self.details is not None:
            self._check_detail_contract(self.details)

    def _check_detail_contract(self, details: DetailsSpec) -> None:
        try:
            target = self.ctx.registry.get(details.source)
        except UnknownSourceError as exc:
            raise IngestConfigError(
                f"source {self.name}: ingest.details.source {details.source!r} has no contract; "
                f"add contracts/{details.source}.yml (format ndjson). {exc}"
            ) from exc
        if target.format.type != "ndjson":
            raise IngestConfigError(
                f"source {self.name}: details land as NDJSON, but the contract of {details.source} reads "
                f"{target.format.type}; set its format type to ndjson"
            )

    # -- the run ------------------------------------------------------------------------------
    def run(self, report: RunReport) -> None:
        endpoint = resolve_endpoint(self.name, self.spec, self.ctx.environ)
        state = self.ctx.states.load(self.name)
        known = KnownIds(state.details)
        if self.details is not None:
            forgotten = known.prune(self.ctx.clock.now().date(), self.details.remember_days)
            if forgotten:
                self.log.info("details.forgotten", ids=forgotten, remember_days=self.details.remember_days)
        client = self._client(endpoint)
        run = _Run(self, endpoint, client, state, known, report)
        try:
            if self.spec.window is None:
                run.query(endpoint.params, None)
            else:
                run.windows(self.spec.window)
        finally:
            client.close()
            self.count_http(report, client)


class _Run:
    """The mutable part of one :class:`RestJsonSource` run."""

    def __init__(
        self,
        source: RestJsonSource,
        endpoint: Endpoint,
        client: HttpClient,
        state: SourceState,
        known: KnownIds,
        report: RunReport,
    ) -> None:
        self.source = source
        self.ctx = source.ctx
        self.log = source.log
        self.spec = source.spec
        self.endpoint = endpoint
        self.client = client
        self.state = state
        self.known = known
        self.report = report
        self.detail_params = (
            tuple(
                resolve_params(source.details.params, self.ctx.environ, f"source {source.name}: ingest.details.params")
            )
            if source.details is not None
            else ()
        )
        self._progress_origin: datetime | None = None
        self._heartbeat_due = self.ctx.clock.monotonic() + HEARTBEAT_S

    # -- windows ------------------------------------------------------------------------------
    def windows(self, window: WindowSpec) -> None:
        start = self.state.cursor or window.initial
        end = self.ctx.clock.now() - window.lag
        if self.ctx.until is not None:
            end = min(end, self.ctx.until)
        end = end.astimezone(window.initial.tzinfo).replace(microsecond=0)  # as the parameters say it
        self.report.cursor_before = self.state.cursor
        self.report.cursor_after = self.state.cursor
        if start >= end:
            self.log.info("window.up_to_date", cursor=start.isoformat(), until=end.isoformat())
            return
        self._progress_origin = start
        self.ctx.progress.start(self.source.name, (end - start).total_seconds() / 86400, "d")
        self.log.info("windows.start", start=start.isoformat(), end=end.isoformat(), step_s=window.step.total_seconds())
        lower = start
        while lower < end:
            upper = min(lower + window.step, end)
            self._window(window, lower, upper)
            lower = upper

    def _format(self, window: WindowSpec, instant: datetime) -> str:
        return instant.astimezone(window.initial.tzinfo).strftime(window.format)

    def _window(self, window: WindowSpec, lower: datetime, upper: datetime) -> None:
        params = (
            *self.endpoint.params,
            (window.param_from, self._format(window, lower)),
            (window.param_to, self._format(window, upper)),
        )
        outcome = self.query(params, (lower, upper))
        if outcome is _Outcome.SPLIT:
            half = timedelta(seconds=math.ceil((upper - lower).total_seconds() / 2))
            middle = lower + half
            if half < window.min_span or middle >= upper:
                raise ResultCapError(
                    f"source {self.source.name}: the window {lower.isoformat()} .. {upper.isoformat()} still holds "
                    f"more results than the API pages through ({self._reachable()}), and halves shorter than "
                    f"window.min_span ({window.min_span}) are not allowed; narrow the query (params) or lower min_span"
                )
            self.report.counters["windows_split"] += 1
            self._window(window, lower, middle)
            self._window(window, middle, upper)
            return
        self.report.counters["windows"] += 1
        self.state.cursor = upper
        self.state.run_id = self.ctx.run_id
        self._save()
        self.report.cursor_after = upper
        self.log.debug("window.done", start=lower.isoformat(), end=upper.isoformat(), cursor=upper.isoformat())
        if self._progress_origin is not None:
            self.ctx.progress.update((upper - self._progress_origin).total_seconds() / 86400)
        if self.ctx.clock.monotonic() >= self._heartbeat_due:
            self._heartbeat_due = self.ctx.clock.monotonic() + HEARTBEAT_S
            self.log.info("run.progress", cursor=upper.isoformat(), **dict(sorted(self.report.counters.items())))

    def _reachable(self) -> int | None:
        return self.source.paginator.reachable if isinstance(self.source.paginator, PageNumbers) else None

    def _save(self) -> None:
        self.state.details = self.known.to_json()
        self.ctx.states.save(self.state, self.ctx.clock.now())

    # -- one query (a window, or the whole unwindowed source) ----------------------------------
    def query(self, params: Sequence[tuple[str, str]], window: tuple[datetime, datetime] | None) -> _Outcome:
        paginator = self.source.paginator
        request: PageRequest | None = paginator.first(self.endpoint.url, tuple(params))
        fetched = 0
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        while request is not None:
            self.ctx.stop.check()
            if fetched >= self.spec.max_pages or (request.url, request.params) in seen:
                raise ResultCapError(
                    f"source {self.source.name}: stopped after {fetched} pages of one query "
                    f"({'a page repeated' if fetched < self.spec.max_pages else 'ingest.max_pages'}); "
                    "check the pagination settings"
                )
            seen.add((request.url, request.params))
            response = self.client.get(request.url, request.params)
            fetched += 1
            self.report.counters["pages_fetched"] += 1
            context: dict[str, Any] = {"page": request.number}
            if window is not None:
                context["window"] = {"from": window[0].isoformat(), "to": window[1].isoformat()}
            payload = Payload(
                self.source.name,
                response.body,
                "json",
                self.ctx.clock.now(),
                (self.source.record(response, self.endpoint),),
                context,
            )
            doc = self.source.parse_json(payload, response.url)
            try:
                items = paginator.items(doc)
                found = paginator.found(doc)
                following = paginator.next(request, doc)
            except PageShapeError as exc:
                raise self.source.reject(payload, f"unexpected page shape: {exc}", response.url) from exc
            reachable = self._reachable()
            if request.number == 0 and found is not None and reachable is not None and found > reachable:
                if window is None:
                    raise ResultCapError(
                        f"source {self.source.name}: the query finds {found} results but the API pages through "
                        f"at most {reachable}; add an ingest.window so the query can be split by time"
                    )
                self.log.info(
                    "window.split", start=window[0].isoformat(), end=window[1].isoformat(), found=found, cap=reachable
                )
                return _Outcome.SPLIT
            if found is not None and request.number == 0:
                context["found"] = found
            if items is not None and not items:
                # An empty page holds nothing to keep; the counters and the cursor say it was asked.
                self.report.counters["pages_empty"] += 1
                request = following
                continue
            if items is not None and window is not None:
                self._check_window(items, window)
            new_ids = self._details(items or [], request.number, window) if self.source.details is not None else []
            self.source.land(self.report, payload, "pages")
            if new_ids:
                self._save()
            self.ctx.progress.update(
                pages=self.report.counters["pages_fetched"], details=self.report.counters["details_fetched"]
            )
            request = following
        return _Outcome.DONE

    def _check_window(self, items: list[Any], window: tuple[datetime, datetime]) -> None:
        assert self.spec.window is not None
        if self.spec.window.field is None:
            return
        outside = 0
        for item in items:
            value = lookup(item, self.spec.window.field)
            try:
                instant = datetime.fromisoformat(str(value))
            except ValueError:
                continue
            if instant.tzinfo is not None and not window[0] <= instant <= window[1]:
                outside += 1
        if outside:
            self.report.counters["items_outside_window"] += outside
            self.log.warning(
                "window.items_outside",
                items=outside,
                field=self.spec.window.field,
                start=window[0].isoformat(),
                end=window[1].isoformat(),
            )

    # -- details fan-out ------------------------------------------------------------------------
    def _details(self, items: list[Any], page: int, window: tuple[datetime, datetime] | None) -> list[str]:
        details = self.source.details
        assert details is not None
        ids: list[str] = []
        for item in items:
            value = lookup(item, details.id_field)
            if value is None or isinstance(value, (dict, list, bool)):
                self.report.counters["items_without_id"] += 1
                continue
            ids.append(str(value))
        new = [item_id for item_id in dict.fromkeys(ids) if item_id not in self.known]
        self.report.counters["details_known"] += len(ids) - len(new)
        if not new:
            return []
        lines: list[bytes] = []
        records: list[RequestRecord] = []
        fetched_ids: list[str] = []
        missing: list[str] = []
        reflowed: list[str] = []
        for item_id in new:
            self.ctx.stop.check()
            url = self.endpoint.detail_url(details.path, item_id)
            try:
                response = self.client.get(url, self.detail_params)
            except HttpStatusError as exc:
                if exc.status in MISSING_STATUSES and details.on_missing == "skip":
                    missing.append(item_id)
                    self.report.counters["details_missing"] += 1
                    self.log.warning("details.missing", id=item_id, status=exc.status, url=exc.url)
                    continue
                raise
            self.report.counters["details_fetched"] += 1
            detail = Payload(
                details.source,
                response.body,
                "json",
                self.ctx.clock.now(),
                (self.source.record(response, self.endpoint),),
                {"parent": self.source.name, "id": item_id},
            )
            doc = self.source.parse_json(detail, response.url)
            if not isinstance(doc, dict):
                raise self.source.reject(
                    detail, f"a detail document must be a JSON object, got {type(doc).__name__}", response.url
                )
            line, changed = _one_line(response.body)
            if changed:
                reflowed.append(item_id)
            lines.append(line)
            records.append(self.source.record(response, self.endpoint))
            fetched_ids.append(item_id)
        if lines:
            context: dict[str, Any] = {"parent": self.source.name, "page": page, "ids": fetched_ids}
            if window is not None:
                context["window"] = {"from": window[0].isoformat(), "to": window[1].isoformat()}
            if missing:
                context["missing_ids"] = missing
            if reflowed:
                context["line_breaks_replaced_by_spaces"] = reflowed
            payload = Payload(
                details.source, b"\n".join(lines) + b"\n", "ndjson", self.ctx.clock.now(), records, context
            )
            self.source.land(self.report, payload, "detail_objects")
        self.known.add(new, self.ctx.clock.now().astimezone(UTC).date())
        return new


class HttpFileSource(_HttpSource):
    kind = "http_file"

    def __init__(self, contract: Contract, ctx: IngestContext, spec: HttpFileSpec) -> None:
        super().__init__(contract, ctx)
        self.spec: HttpFileSpec = spec
        self.format = spec.format or contract.format.type

    def run(self, report: RunReport) -> None:
        endpoint = resolve_endpoint(self.name, self.spec, self.ctx.environ)
        client = self._client(endpoint)
        self.ctx.progress.start(self.name, None, "")
        try:
            response = client.get(endpoint.url, endpoint.params)
        finally:
            client.close()
            self.count_http(report, client)
        report.counters["files_fetched"] += 1
        payload = Payload(
            self.name, response.body, self.format, self.ctx.clock.now(), (self.record(response, endpoint),), {}
        )
        self._validate(payload, response.url)
        self.land(report, payload, "files")

    def _validate(self, payload: Payload, url: str) -> None:
        if not payload.data.strip():
            raise self.reject(payload, "the response body is empty", url)
        if self.format == "json":
            self.parse_json(payload, url)
        elif self.format == "ndjson":
            for number, line in enumerate(payload.data.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except (UnicodeDecodeError, ValueError) as exc:
                    raise self.reject(payload, f"line {number} is not valid JSON: {exc}", url) from exc


def file_ext(path: Path, default: str) -> str:
    """``rates.csv`` -> csv, ``dump.ndjson.gz`` -> ndjson.gz; no usable suffix -> ``default``."""
    suffixes = [s.lstrip(".").lower() for s in path.suffixes if s.lstrip(".").isalnum()]
    if not suffixes:
        return default
    if suffixes[-1] in COMPRESSION_EXTS and len(suffixes) >= 2:
        return f"{suffixes[-2]}.{suffixes[-1]}"
    return suffixes[-1]


class FileImporter:
    """Imports local files into one source's bronze prefix (``local_files`` and ``lakehouse-ingest import``)."""

    def __init__(self, source: str, ctx: IngestContext, default_ext: str) -> None:
        self.source = source
        self.ctx = ctx
        self.default_ext = default_ext
        self.log = ctx.log.bind(source=source)

    def import_path(self, root: Path, pattern: str, recursive: bool, report: RunReport) -> None:
        if not root.exists():
            raise IngestConfigError(f"source {self.source}: {root} does not exist; give an existing file or directory")
        files = list(iter_files(root, pattern, recursive))
        self.ctx.progress.start(self.source, float(len(files)), "files")
        self.log.info("files.found", path=str(root), pattern=pattern, files=len(files))
        for done, path in enumerate(files, start=1):
            self.ctx.stop.check()
            stat = path.stat()
            payload = Payload(
                self.source,
                b"",
                file_ext(path, self.default_ext),
                self.ctx.clock.now(),
                (RequestRecord(method="FILE", url=path.resolve().as_uri()),),
                {
                    "file": {
                        "path": str(path.resolve()),
                        "size": stat.st_size,
                        "modified": datetime.fromtimestamp(stat.st_mtime, tz=UTC).isoformat(),
                    }
                },
            )
            landed = self.ctx.lander.land_file(payload, path)
            report.counters["files_seen"] += 1
            if landed.written and landed.key is not None:
                report.counters["files_written"] += 1
                report.counters["bytes_written"] += landed.size
                report.keys.append(landed.key)
                self.log.debug("file.landed", path=str(path), key=landed.key, size=landed.size)
            else:
                report.counters["files_unchanged"] += 1
                self.log.debug("file.unchanged", path=str(path), sha256=landed.sha256[:16])
            self.ctx.progress.update(float(done), files=done)


class LocalFilesSource(Source):
    kind = "local_files"

    def __init__(self, contract: Contract, ctx: IngestContext, spec: LocalFilesSpec) -> None:
        super().__init__(contract, ctx)
        self.spec = spec

    def run(self, report: RunReport) -> None:
        root = Path(resolve_text(self.spec.path, self.ctx.environ, f"source {self.name}: ingest.path"))
        FileImporter(self.name, self.ctx, self.contract.format.type).import_path(
            root, self.spec.pattern, self.spec.recursive, report
        )


def build_source(contract: Contract, ctx: IngestContext) -> Source:
    spec = contract.ingest
    if isinstance(spec, RestJsonSpec):
        return RestJsonSource(contract, ctx, spec)
    if isinstance(spec, HttpFileSpec):
        return HttpFileSource(contract, ctx, spec)
    if isinstance(spec, LocalFilesSpec):
        return LocalFilesSource(contract, ctx, spec)
    raise IngestConfigError(f"source {contract.name} has no ingest section in its contract")
