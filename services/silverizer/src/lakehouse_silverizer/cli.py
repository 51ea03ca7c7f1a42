"""``lakehouse-silverize``: run pending bronze objects, one key, reprocess, show the load history,
reconcile bronze with silver, and maintain silver's Delta tables (checkpoint, compact, vacuum)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.exceptions import LakehouseError
from lakehouse_common.progress import TerminalProgress
from lakehouse_common.settings import get_settings
from lakehouse_silverizer.exceptions import ObjectNotPendingError
from lakehouse_silverizer.maintenance import maintain
from lakehouse_silverizer.reconcile import Reconciliation, reconcile
from lakehouse_silverizer.runner import LoadRecord, RunSummary, Silverizer
from lakehouse_silverizer.settings import get_settings as get_silverizer_settings

HISTORY_COLUMNS = (
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
    run.add_argument(
        "--incremental",
        action="store_true",
        help="list bronze after each source's listing cursor, as the scheduler does (default: list in full)",
    )
    again = sub.add_parser("reprocess", help="process objects again, replacing their rows in silver")
    again.add_argument("source")
    again.add_argument("--key", help="only this bronze key (default: every object of the source)")
    history = sub.add_parser("history", aliases=["ledger"], help="show the load history (silver/_load_history)")
    history.add_argument("source", nargs="?")
    history.add_argument("--limit", type=int, default=50, help="the newest N rows (default 50; 0 for all)")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    pending = sub.add_parser("pending", help="list bronze objects not yet in the load history")
    pending.add_argument("source", nargs="?")
    check = sub.add_parser(
        "reconcile",
        help="list bronze objects not loaded, loaded keys whose bronze object is gone, and unreferenced files",
    )
    check.add_argument("source", nargs="?", help="one source (default: every source)")
    check.add_argument("--json", action="store_true", help="one JSON object per source")
    check.add_argument("--strict", action="store_true", help="exit 1 when anything is pending or gone")
    check.add_argument("--clean", action="store_true", help="delete unfinished writes older than the retention")
    keep = sub.add_parser(
        "maintain",
        aliases=["vacuum"],
        help="Delta maintenance of every silver table: checkpoint, compact small files, vacuum past the retention",
    )
    keep.add_argument("tables", nargs="*", help="table names (default: every silver table)")
    keep.add_argument(
        "--retention-s",
        type=float,
        help="keep files no snapshot names for this long (default LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S)",
    )
    keep.add_argument("--no-compact", action="store_true", help="skip the compaction")
    keep.add_argument("--no-vacuum", action="store_true", help="skip the vacuum")
    sub.add_parser("sources", help="list sources: declared contracts and bronze prefixes")
    contract = sub.add_parser("contract", help="print a source's contract (declared or inferred)")
    contract.add_argument("source")
    return parser


def _table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per load-history row (``LoadRecord`` as a dict, or a ``_load_history`` row)."""
    lines = ["  ".join(HEADERS.get(name, name).ljust(width) for name, width in HISTORY_COLUMNS).rstrip()]
    for row in rows:
        cells = []
        for name, width in HISTORY_COLUMNS:
            value = row.get(name, row.get("bronze_key")) if name == "key" else row[name]
            text = str(value)[:19] if name == "finished_at" else str(value)
            cells.append(text.ljust(width))
        if row.get("reason"):  # why an object was not loaded (or what it duplicates)
            cells.append(f"  {row['reason']}")
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _records(entries: Sequence[LoadRecord]) -> list[dict[str, Any]]:
    return [asdict(e) for e in entries]


def _by_source(entries: Sequence[LoadRecord]) -> str:
    """One line per source: objects and rows (the load history holds the per-object detail)."""
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


def _summary(entries: Sequence[LoadRecord]) -> str:
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
        f"{len(report.bronze_gone)} loaded key(s) whose bronze object is gone, {len(report.unreferenced)} "
        f"file(s) no snapshot names (maintain vacuums them), {len(report.leftovers)} unfinished write(s)"
        + (f", {report.cleaned} cleaned" if report.cleaned else "")
    ]
    for title, keys in (
        ("pending", report.pending),
        ("bronze gone", report.bronze_gone),
        ("unreferenced", report.unreferenced),
        ("leftover", report.leftovers),
    ):
        lines += [f"  {title}: {key}" for key in keys]
    return "\n".join(lines)


def _run_with_progress(
    silverizer: Silverizer, sources: Sequence[str], stream: TextIO, *, incremental: bool
) -> list[LoadRecord]:
    """``run`` in a terminal: the pending objects of every source, with a redrawn progress line
    (objects done/total, rows, MB/s) after each batch and a closing line on stderr; stdout stays as it is."""
    progress = TerminalProgress(stream)
    listings = {source: silverizer.listing(source, incremental=incremental) for source in sources}
    work = {source: silverizer.pending(source, listing) for source, listing in listings.items()}
    total = sum(len(infos) for infos in work.values())
    total_mb = sum(info.size for infos in work.values() for info in infos) / 1e6
    started = time.perf_counter()
    entries: list[LoadRecord] = []
    done_mb = 0.0
    progress.start("silver", total, "objects")

    def batch_done(records: Sequence[LoadRecord]) -> None:
        nonlocal done_mb
        entries.extend(records)
        done_mb += sum(r.size for r in records) / 1e6
        rate = done_mb / max(time.perf_counter() - started, 1e-6)
        rows = sum(e.rows_in for e in entries)
        progress.update(len(entries), rows=f"{rows:,}", MB=f"{done_mb:,.1f}/{total_mb:,.1f}", MBps=f"{rate:,.1f}")

    try:
        for source, infos in work.items():
            if infos:
                progress.update(source=source)
                summary = silverizer.run_source(source, infos, on_batch=batch_done)
            else:
                summary = RunSummary(source)
            silverizer.advance_listing(listings[source], summary)
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
                sources = args.sources or silverizer.sources()
                entries = _run_with_progress(silverizer, sources, sys.stderr, incremental=args.incremental)
            else:
                entries = []
                for source in args.sources or silverizer.sources():
                    summary = silverizer.run_source(source, incremental=args.incremental)
                    entries += summary.entries
                    skipped += summary.skipped
            if entries:
                print(_table(_records(entries)) if args.objects else _by_source(entries))
            print(_summary(entries))
            if skipped:
                print(f"{len(skipped)} object(s) skipped: another run committed them first, or they changed")
            return 1 if args.strict and any(e.status == "quarantined" for e in entries) else 0
        if args.command == "reprocess":
            entries = silverizer.reprocess(args.source, args.key).entries
            print(_table(_records(entries)))
            print(_summary(entries))
            return 0
        if args.command in ("history", "ledger"):
            rows = tables.history_rows(silverizer.lake.silver, args.source)
            total = len(rows)
            if args.limit > 0:
                rows = rows[-args.limit :]
            if args.json:
                for row in rows:
                    print(json.dumps(row, ensure_ascii=False, default=str))
            else:
                print(_table(rows))
                if len(rows) < total:
                    print(f"(the newest {len(rows)} of {total} rows; --limit 0 shows all)")
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
        if args.command in ("maintain", "vacuum"):
            retention_s = silverizer.options.vacuum_retention_s if args.retention_s is None else args.retention_s
            for done in maintain(
                silverizer.lake.silver,
                args.tables or None,
                retention_hours=retention_s / 3600,
                compact=not args.no_compact,
                vacuum=not args.no_vacuum,
            ):
                print(
                    f"{done.table}: version {done.version_before} -> {done.version_after}, data files "
                    f"{done.files_before} -> {done.files_after} ({done.files_compacted} compacted into "
                    f"{done.files_written}), {done.files_removed} removed by vacuum"
                    + (f", checkpoint at {done.checkpoint}" if done.checkpoint is not None else "")
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
    except ObjectNotPendingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2
