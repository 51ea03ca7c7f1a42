"""``lakehouse-pipeline``: run the DAG chain in process (``run``), list the DAGs' Assets (``assets``),
unpause the project's DAGs (``unpause``), or run Airflow standalone on the local lake (``airflow``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lakehouse_common.exceptions import LakehouseError
from lakehouse_orchestration.standalone import DEFAULT_PARALLELISM, DEFAULT_PORT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse-pipeline", description=__doc__)
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"), help="the project's DAGs (default: dags)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="silver DAGs with pending objects, then gold and its replica, via dag.test()")
    sub.add_parser("assets", help="every Asset the DAGs produce or consume, with its URI")
    sub.add_parser("unpause", help="unpause the DAGs of --dags-folder in the metadata DB (no other DAG)")
    airflow = sub.add_parser(
        "airflow",
        help="make airflow: unpause the project's DAGs, run airflow standalone on the lake, print where things are",
    )
    airflow.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"API and UI port (default {DEFAULT_PORT})")
    airflow.add_argument(
        "--parallelism", type=int, default=DEFAULT_PARALLELISM, help=f"task slots (default {DEFAULT_PARALLELISM})"
    )
    return parser


def _airflow_env(dags_folder: Path) -> None:
    """Point Airflow at the project's DAGs and a metadata DB under the scratch dir, unless already set."""
    from lakehouse_common.settings import get_settings
    from lakehouse_orchestration.standalone import airflow_home

    os.environ.setdefault("AIRFLOW_HOME", str(airflow_home(get_settings())))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(dags_folder.resolve()))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    # In process there is nobody to wait for: fail at once rather than sleep through the backoff.
    os.environ.setdefault("LAKEHOUSE_AIRFLOW_RETRIES", "0")


def _run(dags_folder: Path) -> int:
    from lakehouse_orchestration.local_run import ensure_metadata_db, run_chain

    ensure_metadata_db(Path(os.environ["AIRFLOW_HOME"]))
    report = run_chain(dags_folder)
    if not report.runs:
        print("nothing pending in bronze and gold is published: no DAG had work")
    for dag_id, state, seconds in report.runs:
        print(f"DAG {dag_id:<28} {state:<8} {seconds:6.1f}s")
    return 0


def _unpause(dags_folder: Path) -> int:
    from lakehouse_orchestration.standalone import unpause_project_dags

    dag_ids, unpaused = unpause_project_dags(dags_folder)
    print(f"{len(dag_ids)} project DAGs; unpaused now: {', '.join(unpaused) or 'none (none was paused)'}")
    return 0


def _assets() -> int:
    from lakehouse_common.settings import get_settings
    from lakehouse_orchestration import registry

    settings = get_settings()
    assets = [registry.bronze_asset(settings, s) for s in registry.sources(settings)]
    assets += [a for s in registry.sources(settings) for a in registry.silver_assets(settings, s)]
    assets += registry.gold_assets(settings)
    replica = registry.replica_asset(settings)
    assets += [replica] if replica else []
    for asset in assets:
        print(f"{asset.name:<36} {asset.uri}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "airflow":
            from lakehouse_common.settings import get_settings
            from lakehouse_orchestration import standalone

            return standalone.run(get_settings(), args.dags_folder, port=args.port, parallelism=args.parallelism)
        _airflow_env(args.dags_folder)
        if args.command == "run":
            return _run(args.dags_folder)
        if args.command == "unpause":
            return _unpause(args.dags_folder)
        return _assets()
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
