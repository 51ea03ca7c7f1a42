"""``lakehouse-silverize``: run pending bronze objects, one key, reprocess, show the load history,
reconcile bronze with silver, vacuum what readers no longer see."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import TextIO

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.ledger import LedgerEntry
from lakehouse_common.progress import TerminalProgress
from lakehouse_common.settings import get_settings
from lakehouse_silverizer.exceptions import ObjectClaimedError, ObjectNotPendingError
from lakehouse_silverizer.reconcile import Reconciliation, reconcile
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import get_settings as get_silverizer_settings
from lakehouse_silverizer.vacuum import vacuum

LEDGER_COLUMNS = (
    ("finished_at", 19),
    ("source", 16),
    ("status", 10),
    ("rows_in", 8),
    ("rows_out", 8),
    ("rows_quarantined", 6),
    ("rows_deduplicated", 6),
    ("seconds", 7),
    ("key", 0),
)
HEADERS = {"rows_quarantined": "quar.", "rows_deduplicated": "dups", "rows_in": "in", "rows_out": "out"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse-silverize", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every object")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="process the pending bronze objects of sources (default: all sources)")
    run.add_argument("sources", nargs="*", help="source names; none means every source")
    run.add_argument("--key", help="process only this bronze key (must be pending)")
    run.add_argument("--strict", action="store_true", help="exit 1 when any object was quarantined whole")
    run.add_argument("--objects", action="store_true", help="print one line per object, not per source")
    again = sub.add_parser("reprocess", help="process objects again, replacing their silver outputs")
    again.add_argument("source")
    again.add_argument("--key", help="only this bronze key (default: every object of the source)")
    ledger = sub.add_parser("ledger", help="show the load history")
    ledger.add_argument("source", nargs="?")
    ledger.add_argument("--limit", type=int, default=50)
    ledger.add_argument("--json", action="store_true", help="one JSON object per line")
    pending = sub.add_parser("pending", help="list bronze objects not yet in the ledger")
    pending.add_argument("source", nargs="?")
    check = sub.add_parser(
        "reconcile",
        help="list bronze objects with no ledger entry and silver files with no bronze origin",
    )
    check.add_argument("source", nargs="?", help="one source (default: every source)")
    check.add_argument("--json", action="store_true", help="one JSON object per source")
    check.add_argument("--strict", action="store_true", help="exit 1 when anything is pending, orphaned or gone")
    check.add_argument(
        "--clean",
        action="store_true",
        help="delete stale claims, and vacuum (orphan and superseded files, unfinished writes) past the retention",
    )
    sweep = sub.add_parser(
        "vacuum", help="delete silver files no newest ledger entry names, once older than the retention"
    )
    sweep.add_argument("source", nargs="?", help="one source (default: every source)")
    sweep.add_argument(
        "--retention-s",
        type=float,
        help="keep unreferenced files younger than this (default LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S)",
    )
    sub.add_parser("sources", help="list sources: declared contracts and bronze prefixes")
    contract = sub.add_parser("contract", help="print a source's contract (declared or inferred)")
    contract.add_argument("source")
    return parser


def _table(entries: Sequence[LedgerEntry]) -> str:
    lines = ["  ".join(HEADERS.get(name, name).ljust(width) for name, width in LEDGER_COLUMNS).rstrip()]
    for entry in entries:
        row = asdict(entry)
        cells = []
        for name, width in LEDGER_COLUMNS:
            value = str(row[name])[:19] if name == "finished_at" else str(row[name])
            cells.append(value.ljust(width))
        if entry.reason:  # why an object was not loaded (or what it duplicates)
            cells.append(f"  {entry.reason}")
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _by_source(entries: Sequence[LedgerEntry]) -> str:
    """One line per source: objects and rows (the ledger holds the per-object detail)."""
    names = ("objects", "rows_in", "rows_out", "rows_quarantined", "rows_deduplicated", "not_loaded")
    lines = ["source            " + "  ".join(HEADERS.get(n, n).rjust(9) for n in names)]
    for source in sorted({e.source for e in entries}):
        mine = [e for e in entries if e.source == source]
        values = [
            len(mine),
            *(sum(getattr(e, n) for e in mine) for n in names[1:5]),
            sum(e.status != "loaded" for e in mine),
        ]
        lines.append(f"{source:<16}  " + "  ".join(str(v).rjust(9) for v in values))
    return "\n".join(lines)


def _summary(entries: Sequence[LedgerEntry]) -> str:
    if not entries:
        return "nothing pending"
    totals = {k: sum(getattr(e, k) for e in entries) for k in ("rows_in", "rows_out", "rows_quarantined")}
    bad = [e for e in entries if e.status != "loaded"]
    text = (
        f"{len(entries)} object(s): {totals['rows_in']} rows in, {totals['rows_out']} out, "
        f"{totals['rows_quarantined']} quarantined"
    )
    for entry in bad:
        text += f"\n  {entry.status}: {entry.key}: {entry.reason}"
    return text


def _reconciliation(report: Reconciliation) -> str:
    lines = [
        f"{report.source}: {report.bronze_objects} bronze object(s), {len(report.pending)} pending, "
        f"{len(report.orphan_outputs)} orphan silver file(s), {len(report.superseded)} superseded (awaiting "
        f"vacuum), {len(report.bronze_gone)} entr(y/ies) whose "
        f"bronze object is gone, {len(report.stale_claims)} stale claim(s), {len(report.leftovers)} leftover(s)"
        + (f", {report.cleaned} cleaned" if report.cleaned else "")
    ]
    for title, keys in (
        ("pending", report.pending),
        ("orphan", report.orphan_outputs),
        ("superseded", report.superseded),
        ("bronze gone", report.bronze_gone),
        ("stale claim", report.stale_claims),
        ("leftover", report.leftovers),
    ):
        lines += [f"  {title}: {key}" for key in keys]
    return "\n".join(lines)


def _run_with_progress(silverizer: Silverizer, sources: Sequence[str], stream: TextIO) -> list[LedgerEntry]:
    """``run`` in a terminal: the pending objects of every source, with a redrawn progress line
    (objects done/total, rows, MB/s) and a closing line on stderr; stdout stays as it is."""
    progress = TerminalProgress(stream)
    work = [(source, info) for source in sources for info in silverizer.pending(source)]
    total_mb = sum(info.size for _, info in work) / 1e6
    started = time.perf_counter()
    entries: list[LedgerEntry] = []
    done_mb = 0.0
    progress.start("silver", len(work), "objects")
    try:
        for source, info in work:
            progress.update(source=source)
            entry = silverizer.run_object(source, info)
            done_mb += info.size / 1e6
            if entry is None:  # another run holds it
                continue
            entries.append(entry)
            rate = done_mb / max(time.perf_counter() - started, 1e-6)
            rows = sum(e.rows_in for e in entries)
            progress.update(len(entries), rows=f"{rows:,}", MB=f"{done_mb:,.1f}/{total_mb:,.1f}", MBps=f"{rate:,.1f}")
    finally:
        progress.finish()
    seconds = time.perf_counter() - started
    stream.write(f"silver: {len(entries)} object(s), {done_mb:,.1f} MB in {seconds:.1f} s")
    stream.write(f" ({done_mb / seconds:,.1f} MB/s)\n" if entries and seconds > 0 else "\n")
    return entries


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = get_settings()
        silverizer = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir), get_silverizer_settings())
        if args.command == "run":
            skipped: list[str] = []
            if args.key:
                if len(args.sources) != 1:
                    print("run --key needs exactly one source", file=sys.stderr)
                    return 2
                entries = [silverizer.run_key(args.sources[0], args.key)]
            elif sys.stderr.isatty():
                entries = _run_with_progress(silverizer, args.sources or silverizer.sources(), sys.stderr)
            else:
                entries = []
                for source in args.sources or silverizer.sources():
                    summary = silverizer.run_source(source)
                    entries += summary.entries
                    skipped += summary.skipped
            if entries:
                print(_table(entries) if args.objects else _by_source(entries))
            print(_summary(entries))
            if skipped:
                print(f"{len(skipped)} object(s) skipped: another run holds their claim")
            return 1 if args.strict and any(e.status in ("rejected", "unreadable") for e in entries) else 0
        if args.command == "reprocess":
            entries = silverizer.reprocess(args.source, args.key).entries
            print(_table(entries))
            print(_summary(entries))
            return 0
        if args.command == "ledger":
            history = sorted(silverizer.ledger.entries(args.source), key=lambda e: e.finished_at)[-args.limit :]
            if args.json:
                for entry in history:
                    print(json.dumps(asdict(entry), ensure_ascii=False))
            else:
                print(_table(history))
            return 0
        if args.command == "pending":
            for source in [args.source] if args.source else silverizer.sources():
                for info in silverizer.pending(source):
                    print(f"{source}\t{info.key}\t{info.size}")
            return 0
        if args.command == "reconcile":
            reports = [
                reconcile(silverizer, source, clean=args.clean)
                for source in ([args.source] if args.source else silverizer.sources())
            ]
            for report in reports:
                print(json.dumps(report.to_dict(), ensure_ascii=False) if args.json else _reconciliation(report))
            return 1 if args.strict and not all(r.ok for r in reports) else 0
        if args.command == "vacuum":
            retention = None if args.retention_s is None else timedelta(seconds=args.retention_s)
            for source in [args.source] if args.source else silverizer.sources():
                swept = vacuum(silverizer, source, retention)
                print(
                    f"{source}: deleted {len(swept.deleted)} unreferenced file(s); kept {swept.waiting} younger "
                    f"than the retention, {swept.claimed} of objects being processed"
                )
            return 0
        if args.command == "sources":
            for source in silverizer.sources():
                kind = "declared" if source in silverizer.registry else "inferred"
                print(f"{source}\t{kind}")
            return 0
        if args.command == "contract":
            print(silverizer.contract(args.source).to_yaml(), end="")
            return 0
    except (ObjectNotPendingError, ObjectClaimedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2
