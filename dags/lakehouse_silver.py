"""Silver: per source, scheduled on its bronze Asset; one mapped silverizer task per batch of pending objects.

What runs is decided by silver's load history, not by the event: an object version is pending
until ``silver/_load_history`` holds its Delta app transaction, so a duplicate, late or collapsed
Asset event finds nothing (or everything) pending and processes each object once. Bronze is
listed after the source's listing cursor (in full every ``FULL_LISTING_INTERVAL_S``), and the
keys the triggering events name are added to that listing. ``commit``
updates the source's silver Asset(s) with the objects and rows in its event's extra, and only
when something was processed. Compaction, vacuum and checkpoints of the Delta tables are the
``silver_maintenance`` DAG's (dags/lakehouse_maintenance.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from lakehouse_common.settings import get_settings
from lakehouse_orchestration import registry, tasks
from lakehouse_orchestration.defaults import dag_kwargs
from lakehouse_orchestration.settings import get_settings as orchestration_settings

lake, orchestration = get_settings(), orchestration_settings()


def silver_dag(source: registry.SourceSpec) -> DAG:
    outlets = registry.silver_assets(lake, source)

    @dag(
        dag_id=f"silver__{source.name}",
        schedule=registry.bronze_asset(lake, source),
        **dag_kwargs(orchestration, "silver", source.name),
    )
    def silver() -> None:
        @task
        def list_pending(**context: Any) -> list[list[str]]:
            work = tasks.pending_batches(source.name, tasks.event_keys(context.get("triggering_asset_events")))
            context["ti"].xcom_push(key="listing", value=work["listing"])
            return work["batches"]

        @task(execution_timeout=timedelta(seconds=orchestration.silver_timeout_s), multiple_outputs=False)
        def silverize(keys: list[str]) -> list[dict[str, Any]]:
            return tasks.silverize_batch(source.name, keys)

        @task(outlets=outlets, trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
        def commit(batches: list[list[dict[str, Any]] | None], **context: Any) -> dict[str, Any]:
            # Index rather than iterate: iterating the lazy XCom sequence probes one past its end.
            done = [batches[i] for i in range(len(batches))]
            tasks.advance_listing(source.name, context["ti"].xcom_pull(task_ids="list_pending", key="listing"), done)
            extra = tasks.summarize_silver(source.name, [r for batch in done for r in batch or []])
            if not extra["objects"]:
                raise AirflowSkipException(f"{source.name}: nothing new was processed; silver is unchanged")
            for asset in outlets:
                context["outlet_events"][asset].extra = extra
            return extra

        commit(silverize.expand(keys=list_pending()))  # type: ignore[arg-type]  # TaskFlow passes XComArgs

    return silver()


for _source in registry.sources(lake):
    globals()[f"silver__{_source.name}"] = silver_dag(_source)
