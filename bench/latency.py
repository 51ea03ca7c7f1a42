"""Latency bench: file drop -> silver committed, and file drop -> gold replicated, through a real Airflow.

``python -m bench.latency --drops 10`` starts a moto S3 server (bronze, silver, gold and an "AWS"
replica bucket), seeds the lake with a small hh.ru-shaped sample (silverized before Airflow
starts, some vacancy pages held back), then a real Airflow (:class:`AirflowStack`: API server,
scheduler, dag-processor, triggerer, LocalExecutor, PostgreSQL) and the real event bridge. Then,
one file at a time (each drop waits until the previous chain has settled):

- **via the bridge**: the landing DAGs are paused through the REST API (so the sensors cannot win),
  each held-back page is put into bronze and announced to the bridge as MinIO's webhook would;
- **via the sensor**: the landing DAGs are unpaused and each page is only put into bronze; the
  deferrable landing sensor (poke interval ``--poke-interval``) finds it.

A drop's clock starts right before its PUT. *Silver committed* is the first poll (every 0.2 s)
at which the object version is no longer pending: silver's ``_load_history`` Delta table holds its
app transaction (``lakehouse_common.tables.pending(silver, source, [object]) == []``, one log read);
*gold replicated* the first that finds a new run id in the replica's ``_manifest.json``. p50 is
the median and p95 is interpolated between the closest ranks
(``statistics.quantiles(method="inclusive")``). The rows are printed and merged into
``bench/results.json`` (rows of other cases, such as the throughput bench's, are kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse_common import tables
from lakehouse_common.storage import ObjectInfo
from lakehouse_orchestration.stack import AirflowStack, AirflowStackError, project_dag_ids
from lakehouse_orchestration.testbed import (
    BridgeProcess,
    BronzeObject,
    S3Lake,
    landing_parked,
    moto_endpoint,
    sample_objects,
    seed_silver,
    settled,
)

REPO_DIR = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
SOURCE = "vacancies"
SOURCES = ("vacancies", "vacancy_details", "currency_rates")
PER_PAGE = 20
SEEDED_PAGES = 10
POLL_S = 0.2
CHAIN_TIMEOUT_S = 300.0
PATHS = ("bridge", "sensor")


@dataclass(frozen=True)
class Drop:
    path: str
    key: str
    to_silver_s: float
    to_gold_s: float


@dataclass(frozen=True)
class LatencyRow:
    case: str
    n: int
    p50_s: float
    p95_s: float
    poke_interval_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"case": self.case, "n": self.n, "p50_s": self.p50_s, "p95_s": self.p95_s}
        if self.poke_interval_s is not None:
            row["poke_interval_s"] = self.poke_interval_s
        return row


def percentile(values: Sequence[float], pct: int) -> float:
    """``pct``-th percentile, interpolated between the closest ranks (the median for 50)."""
    if len(values) == 1:
        return values[0]
    if pct == 50:
        return statistics.median(values)
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def rows_for(drops: Sequence[Drop], poke_interval_s: float) -> list[LatencyRow]:
    rows: list[LatencyRow] = []
    for path in PATHS:
        mine = [d for d in drops if d.path == path]
        if not mine:
            continue
        poke = poke_interval_s if path == "sensor" else None
        for stage, values in (
            ("silver", [d.to_silver_s for d in mine]),
            ("gold replicated", [d.to_gold_s for d in mine]),
        ):
            rows.append(
                LatencyRow(
                    case=f"latency drop->{stage} via {path}",
                    n=len(values),
                    p50_s=round(percentile(values, 50), 2),
                    p95_s=round(percentile(values, 95), 2),
                    poke_interval_s=poke,
                )
            )
    return rows


def merge_results(path: Path, rows: Sequence[LatencyRow]) -> None:
    """Replace the rows of these cases in ``path``; keep every other row (the throughput bench's)."""
    existing: list[dict[str, Any]] = []
    if path.exists():
        loaded = json.loads(path.read_text())
        existing = loaded if isinstance(loaded, list) else []
    cases = {row.case for row in rows}
    kept = [row for row in existing if row.get("case") not in cases]
    path.write_text(json.dumps([*kept, *(r.as_dict() for r in rows)], indent=2, ensure_ascii=False) + "\n")


def print_table(rows: Sequence[LatencyRow]) -> None:
    header = f"{'case':<42}{'n':>4}{'p50 s':>9}{'p95 s':>9}  poke interval"
    print(header)
    print("-" * len(header))
    for row in rows:
        poke = f"{row.poke_interval_s:g} s" if row.poke_interval_s is not None else "-"
        print(f"{row.case:<42}{row.n:>4}{row.p50_s:>9.2f}{row.p95_s:>9.2f}  {poke}")


# -- the run --------------------------------------------------------------------------------------


def bronze_info(lake: S3Lake, key: str, etag: str) -> ObjectInfo:
    """The bronze object version just put, as the silverizer lists it (size, ETag, modification time)."""
    head = lake.client.head_object(Bucket=lake.bronze, Key=key)
    return ObjectInfo(key, int(head["ContentLength"]), etag, head["LastModified"])


def measure(stack: AirflowStack, lake: S3Lake, page: BronzeObject, path: str, announce: Callable[[], None]) -> Drop:
    """Drop one page and time it until its load-history transaction and a new replica manifest exist."""
    run_id_before = lake.replica_run_id()
    started = time.monotonic()
    etag = lake.put(page.key, page.data)
    announce()
    info = bronze_info(lake, page.key, etag)
    to_silver: float | None = None
    while True:
        now = time.monotonic() - started
        if to_silver is None and not tables.pending(lake.silver_store, SOURCE, [info]):
            to_silver = now
        if to_silver is not None and lake.replica_run_id() != run_id_before:
            drop = Drop(path, page.key, round(to_silver, 3), round(now, 3))
            break
        if now > CHAIN_TIMEOUT_S:
            stage = "silver" if to_silver is None else "gold replicated"
            raise AirflowStackError(
                f"{page.key} ({path}) did not reach {stage} in {CHAIN_TIMEOUT_S:.0f} s\n{stack.logs_tail()}"
            )
        time.sleep(POLL_S)
    stack.wait_for(lambda: settled(stack, SOURCES), CHAIN_TIMEOUT_S, "the chain to settle")
    return drop


def run(drops: int, poke_interval_s: float, paths: Sequence[str]) -> list[Drop]:
    needed = drops * len(paths)
    sample = sample_objects(size=PER_PAGE * (needed + SEEDED_PAGES + 2), per_page=PER_PAGE, days=60)
    pages = [o for o in sample if o.source == SOURCE]
    if len(pages) < needed + 1:
        raise SystemExit(f"the sample has {len(pages)} vacancy pages; {needed} drops need more")
    held = pages[-needed:]
    timed: list[Drop] = []
    with moto_endpoint() as endpoint, tempfile.TemporaryDirectory(prefix="lakehouse-latency-") as scratch:
        lake = S3Lake(endpoint, REPO_DIR, Path(scratch))
        env = lake.env(poke_interval_s=f"{poke_interval_s:g}", retry_delay_s="1")
        print(f"seeding silver with {len(sample) - needed} objects ...", file=sys.stderr, flush=True)
        seed_silver(lake, [o for o in sample if o not in held], env)
        print("starting Airflow (PostgreSQL, api-server, scheduler, dag-processor, triggerer) ...", file=sys.stderr)
        stack = AirflowStack(
            dags_folder=REPO_DIR / "dags", env=env, expect_dags=project_dag_ids(REPO_DIR / "contracts"), cwd=REPO_DIR
        )
        with stack, BridgeProcess(stack, env, Path(scratch)) as bridge:
            for path in paths:
                for source in SOURCES:
                    stack.set_paused(f"landing__{source}", path == "bridge")
                if path == "bridge":
                    stack.wait_for(lambda: landing_parked(stack, SOURCES), 120, "the landing sensors to defer")
                else:
                    # A landing run paused meanwhile may act on what its trigger saw then: let it settle.
                    time.sleep(3 * poke_interval_s)
                    stack.wait_for(lambda: settled(stack, SOURCES), CHAIN_TIMEOUT_S, "the chain to settle")
                for i in range(drops):
                    page = held.pop(0)

                    def announce(page: BronzeObject = page, path: str = path) -> None:
                        if path == "bridge":
                            bridge.announce(lake, page.key, page.data)

                    drop = measure(stack, lake, page, path, announce)
                    timed.append(drop)
                    print(
                        f"  {path} {i + 1}/{drops}: silver {drop.to_silver_s:6.2f} s, "
                        f"gold replicated {drop.to_gold_s:6.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    return timed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=10, help="files dropped per path (default 10)")
    parser.add_argument("--poke-interval", type=float, default=2.0, help="landing sensors' poke interval, s")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated: bridge, sensor")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if args.drops < 1 or not paths or any(p not in PATHS for p in paths):
        parser.error("--drops must be at least 1 and --paths a subset of bridge,sensor")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    drops = run(args.drops, args.poke_interval, paths)
    rows = rows_for(drops, args.poke_interval)
    print_table(rows)
    merge_results(args.results, rows)
    print(f"results: {args.results} ({time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
