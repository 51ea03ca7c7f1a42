"""Silver maintenance: Delta Lake's own compaction, vacuum and checkpoints, on a schedule.

One task, ``maintain``, over every Delta table of the silver layer (the sources' tables, their
child tables, ``_load_history`` and ``_quarantine``): small files compacted, files older than
``LAKEHOUSE_SILVERIZER_VACUUM_RETENTION_S`` that no retained version names vacuumed (killed runs'
staged files included), and a checkpoint written so that opening a table (the sensors, the
exporter, dbt) costs the same however many commits it has. It runs beside the silver DAGs: their
appends never conflict with it, and a compaction that loses to a MERGE retries. The same runs
from the command line as ``lakehouse-silverize maintain``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task

from lakehouse_orchestration import tasks
from lakehouse_orchestration.defaults import dag_kwargs
from lakehouse_orchestration.settings import get_settings as orchestration_settings

orchestration = orchestration_settings()
SCHEDULE = "@hourly"


@dag(dag_id="silver_maintenance", schedule=SCHEDULE, **dag_kwargs(orchestration, "silver", "maintenance"))
def silver_maintenance() -> None:
    @task(execution_timeout=timedelta(seconds=orchestration.silver_timeout_s), multiple_outputs=False)
    def maintain() -> dict[str, Any]:
        return tasks.maintain_silver()

    maintain()


silver_maintenance()
