"""Run ``lakehouse-silverize run <source>`` in this process and SIGKILL it at a named point.

Used by test_kill_matrix.py as ``python kill_run.py <source> <point>``; the lake comes from the
LAKEHOUSE_* environment (a batch of every pending object: one commit per table). Points:

- ``before-staging``: the first chunk is being parsed, nothing is staged yet;
- ``staged``: every object's files are staged inside the tables, no table committed yet;
- ``between-tables``: the first table (the source's own) is committed, the next (``_quarantine``) not;
- ``history-write``: the load-history commit begins (every data table committed), nothing of it written;
- ``history-written``: the load-history commit is in the log, the run has not returned from it.

(test_kill_matrix.py also SIGKILLs the real ``lakehouse-silverize`` from outside, on S3, while the
load history's log put is in flight.)
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from lakehouse_silverizer import cli, commits, readers
from lakehouse_silverizer.commits import DeltaCommitter

POINTS = ("before-staging", "staged", "between-tables", "history-write", "history-written")


def die(*_args: Any, **_kwargs: Any) -> Any:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(original: Callable[..., Any], nth: int, *, after: bool = False) -> Callable[..., Any]:
    """``original``, but SIGKILL on its ``nth`` call (before it runs, or ``after`` it returned)."""
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == nth and not after:
            die()
        result = original(*args, **kwargs)
        if calls["n"] == nth and after:
            die()
        return result

    return wrapped


def arm(point: str) -> None:
    if point == "before-staging":
        readers.CsvReader.parse = on_call(readers.CsvReader.parse, 1)  # type: ignore[method-assign]
    elif point == "staged":
        DeltaCommitter.commit = on_call(DeltaCommitter.commit, 1)  # type: ignore[method-assign]
    elif point == "between-tables":
        DeltaCommitter.commit = on_call(DeltaCommitter.commit, 2)  # type: ignore[method-assign]
    elif point == "history-write":
        # write_deltalake is the load history's commit (the data tables commit otherwise)
        commits.write_deltalake = on_call(commits.write_deltalake, 1)  # type: ignore[attr-defined]
    elif point == "history-written":
        commits.write_deltalake = on_call(commits.write_deltalake, 1, after=True)  # type: ignore[attr-defined]
    else:
        raise SystemExit(f"unknown kill point {point!r}; valid: {', '.join(POINTS)}")


if __name__ == "__main__":
    arm(sys.argv[2])
    cli.main(["run", sys.argv[1]])
    raise SystemExit(f"the kill point {sys.argv[2]} was never reached")
