"""The DAGs run with ``dag.test()`` on the s3 backend (a moto server standing in for MinIO and
AWS): the landing S3KeySensor, deferred, against the bronze bucket; silver's mapped tasks and
its Asset event; gold's dbt build over httpfs; replication to the "AWS" bucket."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
from sqlalchemy import select

from lakehouse_common import tables
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_orchestration import tasks

from .conftest import REPO, write_sample

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def events(asset_name: str, since: float) -> list[dict[str, Any]]:
    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra, AssetEvent.timestamp)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == asset_name)
        ).all()
    return [dict(extra) for extra, stamp in rows if stamp.timestamp() >= since]


def run(bag: DagBag, dag_id: str, **kwargs: Any) -> Any:
    dag = bag.dags[dag_id]
    if kwargs.get("task_ids"):
        dag = dag.partial_subset(task_ids=kwargs["task_ids"], include_downstream=False, include_upstream=False)
    result = dag.test()
    return result


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_landing_sensor_silver_gold_and_replica_through_the_dags(
    dagbag: DagBag, dag_env: dict[str, str], s3_env: Settings, moto_server: Any
) -> None:
    write_sample()
    lake = Lake(get_settings())
    started = time.time()

    # Landing: the deferrable S3KeySensor sees bronze objects the load history lacks and marks bronze updated.
    landing = run(dagbag, "landing__vacancies", task_ids=["wait_for_new_objects"])
    assert states(landing) == {"wait_for_new_objects": "success"}
    (bronze_event,) = events("bronze/vacancies", started)
    pending = [o.key for o in lake.bronze.list("vacancies/")]
    assert bronze_event["pending"] == len(pending) > 1
    assert bronze_event["via"] == "sensor"

    # Silver: one mapped task per batch of pending objects (one Delta commit per table per batch);
    # the silver event carries the objects and rows.
    for source in ("currency_rates", "vacancies", "vacancy_details"):
        silver = run(dagbag, f"silver__{source}")
        assert str(silver.state) == "success", states(silver)
    mapped = [ti for ti in silver.get_task_instances() if ti.task_id == "silverize"]
    details = [o.key for o in lake.bronze.list("vacancy_details/")]
    assert len(details) > 1 and len(mapped) == 1  # all of them fit one batch (BATCH_OBJECTS)
    (skills_event,) = events("silver/vacancy_skills", started)
    entries = tables.history_rows(lake.silver, "vacancy_details")
    assert skills_event["objects"] == len(entries) == len(details)
    assert skills_event["rows_out"] == sum(e["rows_out"] for e in entries) > 0
    assert skills_event["rows_quarantined"] == sum(e["rows_quarantined"] for e in entries)

    # Gold and its replica.
    gold = run(dagbag, "gold")
    assert str(gold.state) == "success", states(gold)
    mart_event = events("gold/vacancies_by_region_month", started)[0]
    assert mart_event["rows"] > 0
    replicate = run(dagbag, "replicate_gold")
    assert str(replicate.state) == "success", states(replicate)
    client = moto_server.client()
    replica = client.list_objects_v2(Bucket=dag_env["REPLICA_BUCKET"])["Contents"]
    manifest = json.loads(
        client.get_object(Bucket=dag_env["REPLICA_BUCKET"], Key="lakehouse/gold/_manifest.json")["Body"].read()
    )
    assert manifest["run_id"] == mart_event["run_id"]
    # The manifest, and per mart the run file it names and the latest copy.
    assert sorted(o["Key"].removeprefix("lakehouse/gold/") for o in replica) == sorted(
        [
            "_manifest.json",
            *(m["key"] for m in manifest["marts"]),
            *(f"marts/{m['name']}.parquet" for m in manifest["marts"]),
        ]
    )
    marts = {p.stem for p in (REPO / "dbt" / "models" / "marts").glob("*.sql")}
    assert {m["name"] for m in manifest["marts"]} == marts and len(replica) == 2 * len(marts) + 1

    # A duplicate wake-up: the silver DAG finds nothing pending, processes nothing, emits nothing.
    silver_objects = {o.key: o.etag for o in lake.silver.list()}
    again = run(dagbag, "silver__vacancies")
    assert states(again)["commit"] == "skipped"
    assert {o.key: o.etag for o in lake.silver.list()} == silver_objects
    assert len(events("silver/vacancies", started)) == 1


def test_landing_run_waits_until_silver_has_taken_what_it_announced(dagbag: DagBag, dag_env: dict[str, str]) -> None:
    """The whole landing DAG: announce, then wait (deferred) until silver processed those objects."""
    write_sample(size=100)
    taken = threading.Event()

    def silver_later() -> None:
        time.sleep(3)
        for key in tasks.pending_keys("currency_rates"):
            tasks.silverize_object("currency_rates", key)
        taken.set()

    worker = threading.Thread(target=silver_later)
    worker.start()
    try:
        landing = run(dagbag, "landing__currency_rates")
    finally:
        worker.join()
    assert taken.is_set()
    assert states(landing) == {"wait_for_new_objects": "success", "wait_until_loaded": "success"}
    assert tasks.pending_keys("currency_rates") == []
