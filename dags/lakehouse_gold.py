"""Gold and its replica, scheduled on Assets.

``gold`` runs when any silver Asset is updated: one ``dbt build`` (models and tests) through
dbt-duckdb, publishing gold only when everything passes, then every gold Asset is updated
(README: why one dbt task rather than one task per model), and the HTML report beside the marts
is rebuilt. When gold is updated,
``replicate_gold`` copies new or changed objects to AWS S3, each verified, and
``serve_postgres`` loads the marts into Postgres for BI tools (atomic swap per mart). They are
separate DAGs so that one failing does not hold the other back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import AssetAny, dag, task

from lakehouse_common.settings import get_settings
from lakehouse_orchestration import registry, tasks
from lakehouse_orchestration.defaults import dag_kwargs
from lakehouse_orchestration.settings import get_settings as orchestration_settings

lake, orchestration = get_settings(), orchestration_settings()
silver_assets = [a for s in registry.sources(lake) for a in registry.silver_assets(lake, s)]
gold_assets = registry.gold_assets(lake)
replica = registry.replica_asset(lake)


@dag(dag_id="gold", schedule=AssetAny(*silver_assets), **dag_kwargs(orchestration, "gold"))
def gold() -> None:
    @task(
        outlets=gold_assets,
        execution_timeout=timedelta(seconds=orchestration.gold_timeout_s),
        multiple_outputs=False,
    )
    def dbt_build(**context: Any) -> dict[str, Any]:
        result = tasks.build_gold()
        for asset in gold_assets:
            mart = asset.name.removeprefix("gold/")
            context["outlet_events"][asset].extra = {"run_id": result["run_id"], **result["marts"].get(mart, {})}
        return result

    @task(execution_timeout=timedelta(seconds=orchestration.gold_timeout_s), multiple_outputs=False)
    def report() -> dict[str, Any]:
        return tasks.build_report()

    dbt_build() >> report()


@dag(dag_id="replicate_gold", schedule=AssetAny(*gold_assets), **dag_kwargs(orchestration, "gold", "replica"))
def replicate_gold() -> None:
    @task(
        outlets=[replica] if replica else [],
        execution_timeout=timedelta(seconds=orchestration.replicate_timeout_s),
        multiple_outputs=False,
    )
    def replicate() -> dict[str, Any]:
        return tasks.replicate_gold()

    replicate()


@dag(dag_id="serve_postgres", schedule=AssetAny(*gold_assets), **dag_kwargs(orchestration, "gold", "serving"))
def serve_postgres() -> None:
    @task(execution_timeout=timedelta(seconds=orchestration.replicate_timeout_s), multiple_outputs=False)
    def load() -> dict[str, Any]:
        return tasks.load_postgres()

    load()


gold()
replicate_gold()
serve_postgres()
