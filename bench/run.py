"""Benchmark: silverizer vs DuckDB vs pandas, converting vacancy-like bronze (CSV, NDJSON) to Parquet.

``python -m bench.run --sizes 200MB,2GB`` generates (or reuses) the inputs with :mod:`bench.generate`,
then runs every method on every case, one at a time, each in its own process (:mod:`bench.methods`)
so that the peak RSS measured (``os.wait4``'s ``ru_maxrss``, which includes the method's own
children) belongs to that method alone. It prints a table and writes ``bench/results.json``.

``ratio_to_duckdb`` is ``duckdb_seconds / method_seconds``: 1.0 for DuckDB, 0.25 for a method
four times slower. MB are decimal (10**6 bytes). This process imports
neither numpy nor pyarrow and generates inputs in a child, because a child's peak RSS starts from
its parent's RSS at fork time. Each input is read once right before each method, so it sits in
the page cache for every method alike: the numbers measure conversion, not disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.methods import METHODS, REPO_DIR
from bench.sizes import DATA_DIR, FORMATS, GeneratedFile, GenerateError, load_generated, size_label
from lakehouse_common.progress import TerminalProgress

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"


@dataclass
class Result:
    case: str
    method: str
    input_mb: float
    rows: int
    seconds: float | None
    mb_per_s: float | None
    rows_per_s: float | None
    peak_rss_mb: float
    ratio_to_duckdb: float | None
    wall_seconds: float
    timing: str
    rows_out: int | None
    rows_quarantined: int | None
    error: str | None = None
    over_limit: bool = False


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class MethodRun:
    """What one child process reported and what it cost."""

    seconds: float | None
    rows_in: int | None
    rows_out: int | None
    rows_quarantined: int | None
    timing: str
    peak_rss_mb: float
    wall_seconds: float
    error: str | None
    over_limit: bool = False


@dataclass(frozen=True)
class Limits:
    """Guards for one method run: wall-clock seconds and resident memory of its process tree."""

    timeout_s: float | None = None
    max_rss_mb: float | None = None


def _tree_rss_mb(pid: int) -> float:
    """Current RSS of ``pid`` plus its descendants, from /proc (0 when it is gone)."""
    total_kib = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
                        break
            with open(f"/proc/{current}/task/{current}/children", encoding="ascii") as children:
                stack.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return total_kib * 1024 / 1e6


def run_method(method: str, made: GeneratedFile, out_dir: Path, silverizer_mode: str, limits: Limits) -> MethodRun:
    """Run one method in a child process; ``os.wait4`` gives that child's own peak RSS."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    target = out_dir / "lake" if method == "silverizer" else out_dir / f"{method}.parquet"
    command = [
        sys.executable, "-m", "bench.methods", method, "--fmt", made.fmt, "--input", str(made.path),
        "--output", str(target), "--silverizer-mode", silverizer_mode,
    ]  # fmt: skip
    killed: str | None = None
    with tempfile.TemporaryFile(mode="w+") as report_file:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO_DIR, stdout=report_file)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if killed is None:
                if limits.timeout_s is not None and time.perf_counter() - started > limits.timeout_s:
                    killed = f"killed after {limits.timeout_s:.0f} s"
                elif limits.max_rss_mb is not None and _tree_rss_mb(proc.pid) > limits.max_rss_mb:
                    killed = f"killed above {limits.max_rss_mb:,.0f} MB RSS"
                if killed is not None:
                    proc.kill()
            time.sleep(0.05)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        report_file.seek(0)
        stdout = report_file.read()
    peak_mb = usage.ru_maxrss * 1024 / 1e6  # Linux reports KiB
    if proc.returncode != 0:
        if killed is not None:
            return MethodRun(None, None, None, None, "", peak_mb, wall, killed, over_limit=True)
        return MethodRun(None, None, None, None, "", peak_mb, wall, f"exit status {proc.returncode} (see stderr)")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return MethodRun(None, None, None, None, "", peak_mb, wall, "no report on stdout")
    report = json.loads(lines[-1])

    def count(name: str) -> int | None:
        value = report.get(name)
        return value if isinstance(value, int) else None

    return MethodRun(
        seconds=float(report["seconds"]),
        rows_in=count("rows_in"),
        rows_out=count("rows_out"),
        rows_quarantined=count("rows_quarantined"),
        timing=str(report.get("timing", "")),
        peak_rss_mb=peak_mb,
        wall_seconds=wall,
        error=None,
    )


def _best(runs: Sequence[MethodRun]) -> MethodRun:
    """The run with the median time (the first failure, if any run failed); peak RSS is the largest."""
    failed = [r for r in runs if r.error or r.seconds is None]
    if failed:
        return failed[0]
    ordered = sorted(runs, key=lambda r: r.seconds or 0.0)
    middle = ordered[(len(ordered) - 1) // 2]
    return dataclasses.replace(middle, peak_rss_mb=max(r.peak_rss_mb for r in runs))


def warm_page_cache(path: Path, block: int = 8 << 20) -> None:
    """Read the input once right before each method, so none pays for a cold read that another
    method's memory use caused (this process stays small: one block at a time)."""
    with open(path, "rb", buffering=0) as handle:
        while handle.read(block):
            pass


class RunCounter:
    """Which method run of how many, for the terminal's progress line."""

    def __init__(self, progress: TerminalProgress, total: int) -> None:
        self.progress = progress
        self.done = 0
        progress.start("bench", total, "runs")

    def running(self, case: str, method: str, attempt: str) -> None:
        self.progress.update(self.done, case=case, method=f"{method} {attempt}")

    def ran(self) -> None:
        self.done += 1
        self.progress.update(self.done)


def run_case(
    made: GeneratedFile,
    methods: Sequence[str],
    work_dir: Path,
    silverizer_mode: str,
    limits: Limits,
    repeat: int,
    counter: RunCounter | None = None,
) -> list[Result]:
    case = f"{made.size_label.upper()} {made.fmt}"
    results: list[Result] = []
    for method in methods:
        runs: list[MethodRun] = []
        for attempt in range(repeat):
            if counter is None:
                print(f"  {case}: {method} ({attempt + 1}/{repeat}) ...", file=sys.stderr, flush=True)
            else:
                counter.running(case, method, f"({attempt + 1}/{repeat})")
            warm_page_cache(made.path)
            runs.append(run_method(method, made, work_dir / method, silverizer_mode, limits))
            shutil.rmtree(work_dir / method, ignore_errors=True)
            if counter is not None:
                counter.ran()
            if runs[-1].error:
                break
        run = _best(runs)
        error = run.error
        if run.rows_in is not None and run.rows_in != made.rows:
            error = f"read {run.rows_in} rows, the input has {made.rows}"
        seconds = run.seconds
        results.append(
            Result(
                case=case,
                method=method,
                input_mb=round(made.mb, 1),
                rows=made.rows,
                seconds=round(seconds, 3) if seconds else None,
                mb_per_s=round(made.mb / seconds, 1) if seconds else None,
                rows_per_s=round(made.rows / seconds) if seconds else None,
                peak_rss_mb=round(run.peak_rss_mb, 1),
                ratio_to_duckdb=None,
                wall_seconds=round(run.wall_seconds, 3),
                timing=run.timing,
                rows_out=run.rows_out,
                rows_quarantined=run.rows_quarantined,
                error=error,
                over_limit=run.over_limit,
            )
        )
    shutil.rmtree(work_dir, ignore_errors=True)
    duckdb_seconds = next((r.seconds for r in results if r.method == "duckdb" and r.seconds), None)
    for result in results:
        if duckdb_seconds and result.seconds:
            result.ratio_to_duckdb = round(duckdb_seconds / result.seconds, 3)
    return results


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: Sequence[Result]) -> None:
    header = (
        f"{'case':<14}{'method':<12}{'input MB':>10}{'rows':>12}{'seconds':>10}{'MB/s':>9}"
        f"{'rows/s':>12}{'peak RSS MB':>13}{'x DuckDB':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.case:<14}{r.method:<12}{r.input_mb:>10,.1f}{r.rows:>12,}{_fmt(r.seconds, '.2f'):>10}"
            f"{_fmt(r.mb_per_s, ',.1f'):>9}{_fmt(r.rows_per_s, ',.0f'):>12}{r.peak_rss_mb:>13,.0f}"
            f"{_fmt(r.ratio_to_duckdb, '.2f'):>10}"
            + (f"  {'OVER LIMIT' if r.over_limit else 'FAILED'}: {r.error}" if r.error else "")
        )
    print("x DuckDB = DuckDB seconds / method seconds (throughput relative to DuckDB COPY).")
    if any(r.timing == "process" for r in results):
        print("silverizer (CLI) seconds include interpreter start-up; DuckDB and pandas count the conversion only.")


def ensure_input(size: str, fmt: str, data_dir: Path) -> GeneratedFile:
    """Generate (or reuse) one input in a child process, keeping this process small (see bench.sizes)."""
    command = [sys.executable, "-m", "bench.generate", "--sizes", size, "--formats", fmt, "--data-dir", str(data_dir)]
    done = subprocess.run(command, cwd=REPO_DIR, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise GenerateError(f"{' '.join(command)} exited {done.returncode}")
    return load_generated(size, fmt, data_dir)


def _other_rows(path: Path) -> list[dict[str, object]]:
    """Rows of ``path`` that are not throughput results (``python -m bench.latency`` writes them): kept."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [row for row in loaded if isinstance(row, dict) and "method" not in row] if isinstance(loaded, list) else []


def _default_rss_cap() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return 0.75 * pages * page_size / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200MB,2GB", help="comma-separated input sizes (default: 200MB,2GB)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: csv, ndjson")
    parser.add_argument(
        "--methods", default="duckdb,silverizer,pyarrow,pandas", help="comma-separated, run in this order"
    )
    parser.add_argument(
        "--silverizer-mode", choices=("cli", "api"), default="api", help="in-process Silverizer API or its CLI"
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where inputs are generated and cached")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method and case; the median is reported")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per method run")
    parser.add_argument(
        "--max-rss-mb",
        type=float,
        default=_default_rss_cap(),
        help="kill a method whose processes hold more resident memory (default: 75%% of RAM)",
    )
    args = parser.parse_args(argv)

    methods = _split(args.methods)
    unknown = [m for m in methods if m not in METHODS] + [f for f in _split(args.formats) if f not in FORMATS]
    if unknown:
        parser.error(f"unknown method or format: {', '.join(unknown)}")
    results: list[Result] = []
    repeat = max(1, args.repeat)
    cases = [(size, fmt) for size in _split(args.sizes) for fmt in _split(args.formats)]
    # In a terminal: one redrawn line saying which case and method runs (else the plain lines).
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    counter = RunCounter(progress, len(cases) * len(methods) * repeat) if progress is not None else None
    started = time.perf_counter()
    try:
        for size, fmt in cases:
            if progress is not None:
                progress.update(case=f"{size_label(size).upper()} {fmt}", method="generating input")
                progress.clear()  # the generator's own lines go to stderr
            made = ensure_input(size, fmt, args.data_dir)
            work = args.data_dir / "work" / f"{size_label(size)}-{fmt}"
            limits = Limits(timeout_s=args.timeout, max_rss_mb=args.max_rss_mb)
            results.extend(run_case(made, methods, work, args.silverizer_mode, limits, repeat, counter))
    except GenerateError as exc:
        print(f"bench.run: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            progress.finish()
    if progress is not None:
        failed = sum(1 for r in results if r.error)
        print(
            f"bench: {len(results)} result(s) over {len(cases)} case(s) in {time.perf_counter() - started:.0f} s"
            + (f", {failed} failed or over a limit" if failed else ""),
            file=sys.stderr,
        )
    print_table(results)
    args.results.write_text(
        json.dumps([*(asdict(r) for r in results), *_other_rows(args.results)], indent=2, ensure_ascii=False) + "\n"
    )
    print(f"results: {args.results}")
    # A method killed by --timeout or --max-rss-mb is a result (it cannot do the job here), not a failure.
    return 1 if any(r.error and not r.over_limit for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
