"""Incremental-cost bench: does a run's cost grow with the objects a source already holds?

``python -m bench.incremental`` (``make bench-incremental``) fills the ``currency_rates`` source
with M small CSV objects (3 rows each, every row a new (date, currency) key), M = 200, 2,000 and
20,000 (``BENCH_INCREMENTAL_MAX_M`` or ``--max-m`` caps M for a quick run), and at each M times:

- ``new10``: a silverizer run (a fresh :class:`~lakehouse_silverizer.runner.Silverizer`,
  ``run_source(incremental=True)``: the scheduler's way, bronze listed after the source's listing
  cursor) that finds 10 new objects, put into bronze right before it;
- ``none``: such a run that finds nothing pending;
- ``none_full``: a run that finds nothing pending with a full listing of bronze (what every run
  paid before the listing cursor, and what the periodic full listing still pays);
- ``gold``: a gold build (:func:`lakehouse_gold.build.build_gold`: dbt build and publish).

Each is reported relative to its value at M = 200 (target: within 1.5x), on the local lake and on
a moto S3 server (``--backends``). On S3 every request goes through :class:`~bench.s3proxy.CountingProxy`,
which counts them per phase, by method and path class (Delta logs, data files, bronze listing, ...).

Filling a lake the way a deployment gets there: bronze objects are written directly (local files,
or ``put_object`` from a thread pool straight to moto), the silverizer runs once over the new ones
(batches of ``--batch-objects`` objects, one Delta commit per table per batch), then Delta
maintenance (:func:`lakehouse_silverizer.maintenance.maintain`: compaction, vacuum, checkpoint) runs,
as the maintenance DAG would, before anything is measured. The lake grows from one M to the next
(the 10 objects of each ``new10`` run stay in it). Each phase runs ``--repeat`` times (the median
is reported; S3 request counts are those of the first run, and every run's total is kept too).

Rows go into ``bench/results.json`` with ``"bench": "incremental"`` (rows of the other benches,
and incremental rows of backends or M not measured now, are kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.s3proxy import CountingProxy
from bench.sizes import DATA_DIR
from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake, LocalLayerStore
from lakehouse_gold.build import build_gold
from lakehouse_silverizer.maintenance import maintain
from lakehouse_silverizer.runner import LoadRecord, Silverizer
from lakehouse_silverizer.settings import SilverizerSettings

REPO_DIR = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
SOURCE = "currency_rates"
M_VALUES = (200, 2_000, 20_000)
NEW_OBJECTS = 10
TARGET_RATIO = 1.5
ROWS_PER_OBJECT = 3
DAYS = 28  # every object's rows fall in February 2024: one partition (rate_month), so after
# maintenance the table has a constant number of data files and the bench measures the cost
# per object (listing, pending check, Delta log), not the data volume (60,000 rows at most).
PHASES = ("new10", "none", "none_full", "gold")
PHASE_TITLES = {
    "new10": "run finding 10 new",
    "none": "run finding none",
    "none_full": "run finding none, full listing",
    "gold": "gold build",
}
# The measured runs list incrementally: the full listing is its own phase, so the fill's listing
# (minutes before, at M = 20,000 on moto) must not make a full one due in the others.
FULL_LISTING_INTERVAL_S = 7 * 24 * 3600
BACKENDS = ("local", "s3")
REGION = "us-east-1"

log = logging.getLogger("bench.incremental")


class BenchIncrementalError(Exception):
    """The bench found the lake in a state it did not expect (its message says which)."""


# -- the objects ----------------------------------------------------------------------------------


def currency_code(index: int) -> str:
    """The ``index``-th three-letter code: AAA, AAB, ... (well below RUB, which the contract maps)."""
    letters = []
    for _ in range(3):
        index, digit = divmod(index, 26)
        letters.append(chr(ord("A") + digit))
    return "".join(reversed(letters))


def object_key(index: int) -> str:
    return f"{SOURCE}/2024/02/rates-{index:06d}.csv"


def object_body(index: int) -> bytes:
    """Object ``index``: 3 rates of one February 2024 day, each for a currency no other object has that day."""
    day = index % DAYS + 1
    lines = ["date,currency,rate"]
    for j in range(ROWS_PER_OBJECT):
        code = currency_code((index // DAYS) * ROWS_PER_OBJECT + j)
        lines.append(f"2024-02-{day:02d},{code},{1 + (index * ROWS_PER_OBJECT + j) % 997 / 10:.2f}")
    return ("\n".join(lines) + "\n").encode()


# -- the lakes ------------------------------------------------------------------------------------


class BenchLake:
    """One lake under test: its settings, how bronze is filled, and (on S3) the counting proxy."""

    backend: str
    settings: Settings  # what the measured runs use (on S3: through the counting proxy)
    fill_settings: Settings  # what the fill uses (on S3: straight to moto, not counted)
    proxy: CountingProxy | None = None

    def put_objects(self, indexes: Sequence[int]) -> None:
        raise NotImplementedError

    def phase(self, name: str) -> AbstractContextManager[None]:
        return self.proxy.phase(name) if self.proxy is not None else nullcontext()

    def requests(self, name: str) -> dict[str, Any] | None:
        return self.proxy.phase_counts(name) if self.proxy is not None else None


class LocalBenchLake(BenchLake):
    def __init__(self, work: Path) -> None:
        self.backend = "local"
        self.settings = get_settings(
            backend="local",
            data_dir=work / "lake",
            contracts_dir=REPO_DIR / "contracts",
            dbt_project_dir=REPO_DIR / "dbt",
            scratch_dir=work / "scratch",
        )
        self.fill_settings = self.settings
        self.bronze = Lake(self.settings).bronze
        if not isinstance(self.bronze, LocalLayerStore):
            raise BenchIncrementalError("the local lake's bronze is not a local store")

    def put_objects(self, indexes: Sequence[int]) -> None:
        assert isinstance(self.bronze, LocalLayerStore)
        for index in indexes:
            path = self.bronze.path(object_key(index))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(object_body(index))


class S3BenchLake(BenchLake):
    """Fresh buckets on a moto server; the project talks to it through the counting proxy,
    bronze is filled straight to moto (those puts are not counted)."""

    def __init__(self, work: Path, moto_url: str, proxy: CountingProxy) -> None:
        import boto3  # noqa: PLC0415 - only the S3 lake needs it

        self.backend = "s3"
        self.proxy = proxy
        # moto accepts any credentials: these are made up for this run.
        key_id, secret = f"bench-{secrets.token_hex(4)}", secrets.token_hex(16)
        suffix = secrets.token_hex(4)
        self.buckets = {layer: f"{layer}-{suffix}" for layer in ("bronze", "silver", "gold")}
        proxy.buckets.update({bucket: layer for layer, bucket in self.buckets.items()})
        self.client = boto3.client(
            "s3",
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        for bucket in self.buckets.values():
            self.client.create_bucket(Bucket=bucket)
        common: dict[str, Any] = {
            "backend": "s3",
            "s3_region": REGION,
            "s3_path_style": True,
            "s3_access_key_id": key_id,
            "s3_secret_access_key": secret,
            "bronze_bucket": self.buckets["bronze"],
            "silver_bucket": self.buckets["silver"],
            "gold_bucket": self.buckets["gold"],
            "contracts_dir": REPO_DIR / "contracts",
            "dbt_project_dir": REPO_DIR / "dbt",
            "scratch_dir": work / "scratch",
        }
        self.settings = get_settings(s3_endpoint_url=proxy.endpoint_url, **common)
        self.fill_settings = get_settings(s3_endpoint_url=moto_url, **common)

    def put_objects(self, indexes: Sequence[int]) -> None:
        bucket = self.buckets["bronze"]

        def put(index: int) -> None:
            self.client.put_object(Bucket=bucket, Key=object_key(index), Body=object_body(index))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, indexes))


@contextmanager
def open_lake(backend: str, work: Path) -> Iterator[BenchLake]:
    if backend == "local":
        yield LocalBenchLake(work)
        return
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the S3 lake needs it

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        with CountingProxy(f"http://{host}:{port}") as proxy:
            yield S3BenchLake(work, f"http://{host}:{port}", proxy)
    finally:
        server.stop()


# -- the measurements -----------------------------------------------------------------------------


@dataclass
class PhaseResult:
    backend: str
    m: int
    phase: str
    runs: list[float]
    s3_requests: dict[str, Any] | None = None
    s3_requests_per_run: list[int] = field(default_factory=list)
    ratio_to_m200: float | None = None
    requests_ratio_to_m200: float | None = None

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": f"incremental {self.backend} {PHASE_TITLES[self.phase]} M={self.m}",
            "bench": "incremental",
            "backend": self.backend,
            "m": self.m,
            "phase": self.phase,
            "seconds": round(self.seconds, 3),
            "runs_s": [round(r, 3) for r in self.runs],
            "ratio_to_m200": self.ratio_to_m200,
            "within_target": None if self.ratio_to_m200 is None else self.ratio_to_m200 <= TARGET_RATIO,
            "s3_requests": self.s3_requests,
            "s3_requests_per_run": self.s3_requests_per_run or None,
            "s3_requests_ratio_to_m200": self.requests_ratio_to_m200,
        }


class Bench:
    def __init__(self, lake: BenchLake, batch_objects: int, retention_hours: float, repeat: int) -> None:
        self.lake = lake
        self.options = SilverizerSettings(batch_objects=batch_objects, full_listing_interval_s=FULL_LISTING_INTERVAL_S)
        self.registry = ContractRegistry.from_dir(lake.settings.contracts_dir)
        self.retention_hours = retention_hours
        self.repeat = repeat
        self.count = 0  # objects in bronze

    def silverizer(self, *, fill: bool = False) -> Silverizer:
        settings = self.lake.fill_settings if fill else self.lake.settings
        return Silverizer(settings, self.registry, self.options)

    def fill(self, m: int) -> None:
        """Bronze up to ``m`` objects, one silverizer run over the new ones, then maintenance."""
        new = list(range(self.count, m))
        started = time.perf_counter()
        self.lake.put_objects(new)
        put_s = time.perf_counter() - started
        with self.lake.phase(f"fill {m}"):  # counts nothing: the fill does not go through the proxy
            silverizer = self.silverizer(fill=True)
            silverizer.ensure_tables()  # every declared source's tables: gold reads them all
            records = silverizer.run_source(SOURCE).entries
            silver_s = time.perf_counter() - started - put_s
            maintain(silverizer.lake.silver, retention_hours=self.retention_hours)
        self.count = m
        self._check(records, len(new), "the fill")
        total = time.perf_counter() - started
        print(
            f"  {self.lake.backend} M={m}: {len(new)} object(s) put in {put_s:.1f} s, silverized in "
            f"{silver_s:.1f} s, maintained in {total - put_s - silver_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        self._check_rows(silverizer)

    def _check(self, records: Sequence[LoadRecord], expected: int, what: str) -> None:
        bad = [r for r in records if r.status != "loaded"]
        if len(records) != expected or bad:
            detail = f"; first not loaded: {bad[0].key} {bad[0].status}: {bad[0].reason}" if bad else ""
            raise BenchIncrementalError(f"{what} loaded {len(records) - len(bad)} of {expected} object(s){detail}")

    def _check_rows(self, silverizer: Silverizer) -> None:
        table = tables.open_table(silverizer.lake.silver, SOURCE)
        rows = 0 if table is None else table.to_pyarrow_dataset().count_rows()
        if rows != self.count * ROWS_PER_OBJECT:
            raise BenchIncrementalError(
                f"silver {SOURCE} has {rows} rows for {self.count} objects of {ROWS_PER_OBJECT} new keys each"
            )

    def timed(self, name: str, action: Callable[[], None], before: Callable[[], None] | None = None) -> float:
        """Seconds of ``action`` (after ``before``, untimed), its S3 requests counted as phase ``name``."""
        if before is not None:
            before()
        with self.lake.phase(name):
            started = time.perf_counter()
            action()
            return time.perf_counter() - started

    def measure(self, m: int) -> list[PhaseResult]:
        results = {phase: PhaseResult(self.lake.backend, m, phase, []) for phase in PHASES}
        for attempt in range(self.repeat):

            def add_new() -> None:
                self.lake.put_objects(range(self.count, self.count + NEW_OBJECTS))
                self.count += NEW_OBJECTS

            def run_new() -> None:
                records = self.silverizer().run_source(SOURCE, incremental=True).entries
                self._check(records, NEW_OBJECTS, "the run finding 10 new")

            def run_none(*, incremental: bool = True) -> None:
                found = self.silverizer().run_source(SOURCE, incremental=incremental).entries
                if found:
                    raise BenchIncrementalError(f"the run finding none processed {len(found)} object(s)")

            def run_none_full() -> None:
                run_none(incremental=False)

            def gold() -> None:
                build_gold(self.lake.settings)

            steps = (("new10", run_new, add_new), ("none", run_none, None), ("none_full", run_none_full, None))
            for phase, action, before in (*steps, ("gold", gold, None)):
                name = f"{m} {phase} {attempt}"
                seconds = self.timed(name, action, before)
                result = results[phase]
                result.runs.append(seconds)
                counted = self.lake.requests(name)
                if counted is not None:
                    result.s3_requests_per_run.append(counted["total"])
                    if result.s3_requests is None:
                        result.s3_requests = counted
                print(
                    f"  {self.lake.backend} M={m} {PHASE_TITLES[phase]} ({attempt + 1}/{self.repeat}): {seconds:.2f} s"
                    + (f", {counted['total']} S3 requests" if counted is not None else ""),
                    file=sys.stderr,
                    flush=True,
                )
        return list(results.values())


def with_ratios(results: Sequence[PhaseResult]) -> None:
    base = {(r.backend, r.phase): r for r in results if r.m == M_VALUES[0]}
    for result in results:
        first = base.get((result.backend, result.phase))
        if first is None:
            continue
        result.ratio_to_m200 = round(result.seconds / first.seconds, 3) if first.seconds > 0 else None
        if result.s3_requests is not None and first.s3_requests is not None and first.s3_requests["total"]:
            result.requests_ratio_to_m200 = round(result.s3_requests["total"] / first.s3_requests["total"], 3)


def run_backend(backend: str, ms: Sequence[int], work: Path, args: argparse.Namespace) -> list[PhaseResult]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: list[PhaseResult] = []
    try:
        with open_lake(backend, work) as lake:
            bench = Bench(lake, args.batch_objects, args.retention_hours, args.repeat)
            for m in ms:
                bench.fill(m)
                results.extend(bench.measure(m))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


# -- output ---------------------------------------------------------------------------------------


def merge_results(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Replace the incremental rows of these (backend, M, phase); keep every other row."""
    existing: list[dict[str, Any]] = []
    if path.exists():
        loaded = json.loads(path.read_text())
        existing = loaded if isinstance(loaded, list) else []
    replaced = {(r["backend"], r["m"], r["phase"]) for r in rows}
    kept = [
        row
        for row in existing
        if not (row.get("bench") == "incremental" and (row.get("backend"), row.get("m"), row.get("phase")) in replaced)
    ]
    path.write_text(json.dumps([*kept, *rows], indent=2, ensure_ascii=False) + "\n")


def _classes(result: PhaseResult) -> str:
    if result.s3_requests is None:
        return ""
    return ", ".join(f"{name} {n}" for name, n in result.s3_requests["by_class"].items())


def print_table(results: Sequence[PhaseResult]) -> None:
    header = f"{'backend':<8}{'phase':<32}{'M':>7}{'seconds':>9}{'x M=200':>9}{'S3 req':>8}{'x M=200':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = "-" if r.ratio_to_m200 is None else f"{r.ratio_to_m200:.2f}"
        requests = "-" if r.s3_requests is None else str(r.s3_requests["total"])
        req_ratio = "-" if r.requests_ratio_to_m200 is None else f"{r.requests_ratio_to_m200:.2f}"
        flag = "" if r.ratio_to_m200 is None or r.ratio_to_m200 <= TARGET_RATIO else "  OVER 1.5x"
        print(
            f"{r.backend:<8}{PHASE_TITLES[r.phase]:<32}{r.m:>7,}{r.seconds:>9.2f}{ratio:>9}{requests:>8}{req_ratio:>9}{flag}"
        )
    counted = [r for r in results if r.s3_requests is not None]
    if counted:
        print("\nS3 requests by method and path class (first run of each phase):")
        for r in counted:
            print(f"  {PHASE_TITLES[r.phase]:<32} M={r.m:<7,} {_classes(r)}")


def _max_m(text: str | None) -> int:
    if not text:
        return M_VALUES[-1]
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise SystemExit(f"BENCH_INCREMENTAL_MAX_M must be a whole number of objects, got {text!r}") from None
    if value < M_VALUES[0]:
        raise SystemExit(f"BENCH_INCREMENTAL_MAX_M must be at least {M_VALUES[0]}, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.incremental", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-m",
        type=str,
        default=os.environ.get("BENCH_INCREMENTAL_MAX_M"),
        help="largest M measured (default BENCH_INCREMENTAL_MAX_M, else 20000)",
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: local, s3")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each phase at each M; the median is reported")
    parser.add_argument("--batch-objects", type=int, default=500, help="objects per silver commit while filling")
    parser.add_argument(
        "--retention-hours", type=float, default=0.0, help="vacuum retention of the maintenance after each fill"
    )
    parser.add_argument("--work-dir", type=Path, default=DATA_DIR / "incremental", help="scratch lakes (removed)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch lakes")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or any(b not in BACKENDS for b in backends) or args.repeat < 1:
        parser.error("--backends must be a subset of local,s3 and --repeat at least 1")
    max_m = _max_m(args.max_m)
    ms = [m for m in M_VALUES if m <= max_m]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    results: list[PhaseResult] = []
    for backend in backends:
        print(f"incremental bench, {backend} lake, M = {', '.join(f'{m:,}' for m in ms)}", file=sys.stderr)
        mine = run_backend(backend, ms, args.work_dir / backend, args)
        with_ratios(mine)
        merge_results(args.results, [r.as_dict() for r in mine])  # each backend's rows as soon as it is done
        results.extend(mine)
    print_table(results)
    print(f"results: {args.results} ({time.monotonic() - started:.0f} s in all)")
    return 0  # a ratio over the target is a finding (flagged in the table and the rows), not a failure


if __name__ == "__main__":
    sys.exit(main())
