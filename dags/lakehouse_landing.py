"""Landing: per source, wait for bronze objects silver has not taken yet, then mark bronze updated.

Runs continuously (one run at a time). ``wait_for_new_objects`` is a deferrable S3KeySensor on
the source's bronze prefix (a file sensor on the local lake); its outlet is the source's bronze
Asset. ``wait_until_loaded`` then waits, deferred, until silver has taken what was announced,
so each object is announced once. This is the reconciliation path: MinIO's notifications reach
the same Asset sooner through the event bridge (services/bridge).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, dag

from lakehouse_common.settings import get_settings
from lakehouse_orchestration import registry
from lakehouse_orchestration.defaults import dag_kwargs
from lakehouse_orchestration.sensors import landing_sensor
from lakehouse_orchestration.settings import get_settings as orchestration_settings

lake, orchestration = get_settings(), orchestration_settings()


def landing_dag(source: registry.SourceSpec) -> DAG:
    @dag(dag_id=f"landing__{source.name}", schedule="@continuous", **dag_kwargs(orchestration, "landing", source.name))
    def landing() -> None:
        new = landing_sensor(
            lake,
            orchestration,
            source,
            task_id="wait_for_new_objects",
            outlets=[registry.bronze_asset(lake, source)],
            timeout=timedelta(days=1),
            soft_fail=True,
        )
        loaded = landing_sensor(
            lake,
            orchestration,
            source,
            task_id="wait_until_loaded",
            announced_from="wait_for_new_objects",
            timeout=timedelta(seconds=orchestration.handoff_timeout_s),
            soft_fail=True,
        )
        new >> loaded

    return landing()


for _source in registry.sources(lake):
    globals()[f"landing__{_source.name}"] = landing_dag(_source)
