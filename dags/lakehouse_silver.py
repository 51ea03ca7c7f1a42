"""Silver: per source, scheduled on its bronze Asset; one mapped silverizer task per pending object.

What runs is decided by the ledger, not by the event: a duplicate, late or collapsed Asset event
finds nothing (or everything) pending and processes each object once. ``commit`` updates the
source's silver Asset(s) with the objects and rows in its event's extra, and only when
something was processed. ``vacuum`` then deletes the silver files readers no longer see, once
past the retention.
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
        def list_pending() -> list[str]:
            return tasks.pending_keys(source.name)

        @task(execution_timeout=timedelta(seconds=orchestration.silver_timeout_s), multiple_outputs=False)
        def silverize(key: str) -> dict[str, Any]:
            return tasks.silverize_object(source.name, key)

        @task(outlets=outlets, trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
        def commit(results: list[dict[str, Any] | None], **context: Any) -> dict[str, Any]:
            # Index rather than iterate: iterating the lazy XCom sequence probes one past its end.
            extra = tasks.summarize_silver(source.name, [results[i] for i in range(len(results))])
            if not extra["objects"]:
                raise AirflowSkipException(f"{source.name}: nothing new was processed; silver is unchanged")
            for asset in outlets:
                context["outlet_events"][asset].extra = extra
            return extra

        @task(trigger_rule=TriggerRule.NONE_FAILED, multiple_outputs=False)
        def vacuum() -> dict[str, Any]:
            return tasks.vacuum_silver(source.name)

        commit(silverize.expand(key=list_pending())) >> vacuum()  # type: ignore[arg-type]  # TaskFlow passes XComArgs

    return silver()


for _source in registry.sources(lake):
    globals()[f"silver__{_source.name}"] = silver_dag(_source)
