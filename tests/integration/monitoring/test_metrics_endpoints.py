"""The metrics endpoints, scraped over HTTP and parsed: the ingestor's serve mode against the local
sample API, and the pipeline exporter against a small lake (local and on the moto S3 server)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from lakehouse_common import tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor.sample import SampleConfig, generate_sample
from lakehouse_ingestor.sample_api import SampleApiHandle, start_sample_api
from lakehouse_ingestor.writers import BronzeWriter
from lakehouse_monitoring.exporter import PipelineCollector, PipelineExporter, serve
from lakehouse_monitoring.pipeline import LakeReader
from lakehouse_silverizer.runner import Silverizer

REPO = Path(__file__).resolve().parents[3]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def data_objects(lake: Lake) -> list[str]:
    return [
        o.key
        for folder in lake.bronze.folders()
        if not folder.startswith(("_", "."))
        for o in lake.bronze.list(f"{folder}/")
        if tables.is_data_object(o.key)
    ]


# -- the ingestor's serve mode ------------------------------------------------------------------------


@pytest.fixture
def sample_api() -> Iterator[SampleApiHandle]:
    with start_sample_api(SampleConfig(size=300, days=60), fault_rate=0.05) as api:
        yield api


@pytest.mark.slow
def test_ingestor_serve_exposes_what_it_fetched_and_wrote(sample_api: SampleApiHandle, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(
        {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
            "LAKEHOUSE_SCRATCH_DIR": str(tmp_path / "scratch"),
            "LAKEHOUSE_CONTRACTS_DIR": str(REPO / "contracts"),
            "LAKEHOUSE_INGESTOR_HH_BASE_URL": sample_api.url,
            "LAKEHOUSE_INGESTOR_API_URL": sample_api.url,
            "LAKEHOUSE_INGESTOR_RATE_LIMIT_PER_S": "1000",
            "LAKEHOUSE_INGESTOR_LOG_FORMAT": "json",
            "LAKEHOUSE_INGESTOR_METRICS_PORT": str(port),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "lakehouse_ingestor", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            try:
                samples = scrape(url)
            except requests.ConnectionError:
                samples = {}
            if all(total(samples, "lakehouse_ingestor_runs_total", source=s) for s in ("vacancies", "currency_rates")):
                break
            assert time.monotonic() < deadline, "serve never finished a run of each source"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err.decode()[-2000:]
    events = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert events[0]["event"] == "serve.start" and events[0]["metrics"] == url

    lake = Lake(get_settings(backend="local", data_dir=tmp_path / "data", contracts_dir=REPO / "contracts"))
    keys = data_objects(lake)
    assert total(samples, "lakehouse_ingestor_objects_written_total") == len(keys) > 0
    for source in ("vacancies", "vacancy_details", "currency_rates"):
        mine = [k for k in keys if k.startswith(f"{source}/")]
        assert total(samples, "lakehouse_ingestor_objects_written_total", source=source) == len(mine)
    written = sum(lake.bronze.stat(k).size for k in keys)  # type: ignore[union-attr]
    assert total(samples, "lakehouse_ingestor_written_bytes_total") == written
    statuses = sample_api.api.statuses()
    answered = sum(statuses.values())
    faults = sum(n for status, n in statuses.items() if status >= 400)
    assert faults > 0, statuses
    assert total(samples, "lakehouse_ingestor_http_requests_total") == answered
    assert total(samples, "lakehouse_ingestor_http_requests_total", status_class="2xx") == answered - faults
    assert total(samples, "lakehouse_ingestor_http_retries_total") == faults
    assert total(samples, "lakehouse_ingestor_fetched_bytes_total") > written * 0.5
    assert total(samples, "lakehouse_ingestor_runs_total", status="ok") == 2
    assert total(samples, "lakehouse_ingestor_errors_total") == 0
    for source in ("vacancies", "currency_rates"):
        assert total(samples, "lakehouse_ingestor_last_success_timestamp_seconds", source=source) > time.time() - 300
        assert total(samples, "lakehouse_ingestor_run_duration_seconds_count", source=source) == 1


# -- the pipeline exporter ------------------------------------------------------------------------------


@pytest.fixture(params=[pytest.param("local", id="local"), pytest.param("s3", id="s3")])
def small_lake(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A small sample in bronze, silverized (contracts from the repository)."""
    if request.param == "s3":
        settings = request.getfixturevalue("s3_env").model_copy(update={"contracts_dir": REPO / "contracts"})
    else:
        settings = get_settings(
            backend="local", data_dir=tmp_path / "data", contracts_dir=REPO / "contracts", scratch_dir=tmp_path / "s"
        )
    lake = Lake(settings)
    lake.ensure()
    writer = BronzeWriter(lake)
    for obj in generate_sample(SampleConfig(size=150, days=30)).objects:
        writer.write(obj.source, obj.data, ext=obj.ext, fetched_at=obj.fetched_at)
    silverizer = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir))
    for source in silverizer.sources():
        silverizer.run_source(source)
    return settings


def test_pipeline_exporter_matches_the_lake(small_lake: Settings) -> None:
    lake = Lake(small_lake)
    reader = LakeReader(lake, ContractRegistry.from_dir(small_lake.contracts_dir))
    collector = PipelineCollector(reader, cache_s=3600)
    server = serve(PipelineExporter(collector), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        samples = scrape(url)
        history = tables.history_rows(lake.silver)
        keys = data_objects(lake)
        assert total(samples, "lakehouse_pipeline_bronze_objects") == len(keys) == len(history) > 0
        assert total(samples, "lakehouse_pipeline_pending_objects") == 0
        assert total(samples, "lakehouse_pipeline_silver_objects", status="loaded") == len(history)
        for source in ("vacancies", "vacancy_details", "currency_rates"):
            mine = [e for e in history if e["source"] == source]
            for kind in ("in", "out", "quarantined"):
                expected = sum(e[f"rows_{kind}"] for e in mine)
                assert total(samples, f"lakehouse_pipeline_rows_{kind}", source=source) == expected
            count = total(samples, "lakehouse_pipeline_silver_processing_seconds_count", source=source)
            assert count == len(mine)
        assert total(samples, "lakehouse_pipeline_rows_quarantined") > 0  # the sample's bad records
        lags = {dict(ls)["layer"] for (n, ls), _ in samples.items() if n == "lakehouse_pipeline_freshness_lag_seconds"}
        assert lags == {"bronze", "silver"}  # gold not published yet
        assert total(samples, "lakehouse_pipeline_layer_readable") == 3

        # Gold published, one more bronze object: seen once the cache expires, not before.
        manifest = {"run_id": "r1", "published_at": "2025-06-01T00:00:00+00:00", "backend": small_lake.backend,
                    "marts": [{"name": "vacancies_by_region_month", "rows": 42}], "dbt_status_counts": {}}  # fmt: skip
        lake.gold.put_bytes("_manifest.json", json.dumps(manifest).encode())
        lake.bronze.put_bytes("currency_rates/late.csv", b"date,currency,rate\n")
        cached = scrape(url)  # within cache_s: the same reading (only the lags move, measured at scrape time)
        assert total(cached, "lakehouse_pipeline_pending_objects") == 0 and collector.readings == 1
        collector.cache_s = 0
        fresh = scrape(url)
        assert total(fresh, "lakehouse_pipeline_pending_objects", source="currency_rates") == 1
        assert collector.readings == 2 and reader.history_reads == 1  # silver unchanged: its rows not read again
        assert total(fresh, "lakehouse_pipeline_gold_mart_rows", mart="vacancies_by_region_month") == 42
        assert total(fresh, "lakehouse_pipeline_freshness_lag_seconds", layer="gold") > 0
    finally:
        server.close()
