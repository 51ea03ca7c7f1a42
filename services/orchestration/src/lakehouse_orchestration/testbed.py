"""What the end-to-end test and the latency bench share around :class:`~lakehouse_orchestration.stack.AirflowStack`.

- :class:`S3Lake`: bronze, silver and gold buckets on an S3 endpoint (a moto server here) plus a
  separate "AWS" replica bucket written with other credentials; :meth:`S3Lake.env` is every
  ``LAKEHOUSE_*`` variable and the ``AIRFLOW_CONN_LAKEHOUSE_S3`` connection the DAGs need; helpers
  read silver's load history (the Delta table ``_load_history``, through
  :mod:`lakehouse_common.tables`), what is pending, and the replica's manifest.
- :class:`BridgeProcess`: the real event bridge (``lakehouse-bridge serve``) as a subprocess in
  its own process group, and :func:`minio_event`, a notification in MinIO's webhook shape.
- :func:`sample_objects`: a small, deterministic hh.ru-shaped bronze sample under the keys the
  ingestor would write (:mod:`lakehouse_ingestor.sample`), so dbt runs in seconds.

boto3, moto, deltalake and the ingestor are imported when used (they are test and bench tools).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from lakehouse_orchestration.stack import AirflowStack, AirflowStackError, die_with_parent_prefix, free_port

REGION = "us-east-1"
LAKE_KEY, LAKE_SECRET = "lake-key", "lake-secret"
REPLICA_KEY, REPLICA_SECRET = "aws-replica-writer", "aws-replica-secret"
REPLICA_PREFIX = "lakehouse/gold"

if TYPE_CHECKING:
    from lakehouse_common.settings import Settings
    from lakehouse_common.storage import LayerStore


@dataclass(frozen=True)
class LoadHistoryRow:
    """One row of ``silver/_load_history``: what became of one bronze object version."""

    source: str
    key: str
    etag: str
    status: str  # loaded | quarantined | duplicate | failed
    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_deduplicated: int
    reason: str | None
    finished_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LoadHistoryRow:
        return cls(
            source=row["source"],
            key=row["bronze_key"],
            etag=row["bronze_etag"],
            status=row["status"],
            rows_in=row["rows_in"],
            rows_out=row["rows_out"],
            rows_quarantined=row["rows_quarantined"],
            rows_deduplicated=row["rows_deduplicated"],
            reason=row["reason"],
            finished_at=row["finished_at"],
        )


@dataclass(frozen=True)
class BronzeObject:
    source: str
    key: str
    data: bytes


def sample_objects(size: int = 600, per_page: int = 20, days: int = 60) -> list[BronzeObject]:
    """The deterministic sample (:func:`lakehouse_ingestor.sample.generate_sample`) as bronze objects.

    With the defaults: 30-odd search pages of 20 vacancies, as many detail files and one rates file,
    each 8-60 KB.
    """
    from lakehouse_ingestor.keys import bronze_key
    from lakehouse_ingestor.sample import SampleConfig, generate_sample

    sample = generate_sample(SampleConfig(size=size, per_page=per_page, days=days))
    return [BronzeObject(o.source, bronze_key(o.source, o.data, o.ext, o.fetched_at), o.data) for o in sample.objects]


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free local port, for as long as the block runs."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class S3Lake:
    """Fresh buckets of one lake (and its replica) on an S3 endpoint."""

    endpoint_url: str
    repo: Path
    scratch_dir: Path
    bronze: str = ""
    silver: str = ""
    gold: str = ""
    replica: str = ""
    _client: Any = field(default=None, repr=False)
    _silver: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.bronze, self.silver, self.gold = (f"{layer}-{suffix}" for layer in ("bronze", "silver", "gold"))
        self.replica = f"aws-replica-{suffix}"
        for bucket in (self.bronze, self.silver, self.gold):
            self.client.create_bucket(Bucket=bucket)
        self.replica_client.create_bucket(Bucket=self.replica)

    def _boto(self, key_id: str, secret: str) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._boto(LAKE_KEY, LAKE_SECRET)
        return self._client

    @property
    def replica_client(self) -> Any:
        return self._boto(REPLICA_KEY, REPLICA_SECRET)

    def env(self, **orchestration: str) -> dict[str, str]:
        """``LAKEHOUSE_*`` for the lake and its replica, the S3 connection of the sensors, and
        ``LAKEHOUSE_AIRFLOW_<NAME>`` for each keyword (``poke_interval_s="2"``)."""
        connection = {
            "conn_type": "aws",
            "login": LAKE_KEY,
            "password": LAKE_SECRET,
            "extra": {"endpoint_url": self.endpoint_url, "region_name": REGION},
        }
        env = {
            "LAKEHOUSE_BACKEND": "s3",
            "LAKEHOUSE_S3_ENDPOINT_URL": self.endpoint_url,
            "LAKEHOUSE_S3_REGION": REGION,
            "LAKEHOUSE_S3_PATH_STYLE": "true",
            "LAKEHOUSE_S3_ACCESS_KEY_ID": LAKE_KEY,
            "LAKEHOUSE_S3_SECRET_ACCESS_KEY": LAKE_SECRET,
            "LAKEHOUSE_BRONZE_BUCKET": self.bronze,
            "LAKEHOUSE_SILVER_BUCKET": self.silver,
            "LAKEHOUSE_GOLD_BUCKET": self.gold,
            "LAKEHOUSE_REPLICA_URI": f"s3://{self.replica}/{REPLICA_PREFIX}",
            "LAKEHOUSE_REPLICA_REGION": REGION,
            "LAKEHOUSE_REPLICA_ENDPOINT_URL": self.endpoint_url,
            "LAKEHOUSE_REPLICA_ACCESS_KEY_ID": REPLICA_KEY,
            "LAKEHOUSE_REPLICA_SECRET_ACCESS_KEY": REPLICA_SECRET,
            "LAKEHOUSE_CONTRACTS_DIR": str(self.repo / "contracts"),
            "LAKEHOUSE_DBT_PROJECT_DIR": str(self.repo / "dbt"),
            "LAKEHOUSE_SCRATCH_DIR": str(self.scratch_dir),
            "AIRFLOW_CONN_LAKEHOUSE_S3": json.dumps(connection),
        }
        env.update({f"LAKEHOUSE_AIRFLOW_{name.upper()}": value for name, value in orchestration.items()})
        return env

    # -- bronze --------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> str:
        """Put a bronze object; returns its ETag (without quotes)."""
        return str(self.client.put_object(Bucket=self.bronze, Key=key, Body=data)["ETag"]).strip('"')

    def etag(self, key: str) -> str:
        return str(self.client.head_object(Bucket=self.bronze, Key=key)["ETag"]).strip('"')

    # -- silver --------------------------------------------------------------------------------
    def settings(self) -> Settings:
        """The lake's settings, as :meth:`env` gives them to the DAGs (for the project's readers)."""
        from lakehouse_common.settings import get_settings

        return get_settings(
            backend="s3",
            s3_endpoint_url=self.endpoint_url,
            s3_region=REGION,
            s3_path_style=True,
            s3_access_key_id=LAKE_KEY,
            s3_secret_access_key=LAKE_SECRET,
            bronze_bucket=self.bronze,
            silver_bucket=self.silver,
            gold_bucket=self.gold,
            contracts_dir=self.repo / "contracts",
            scratch_dir=self.scratch_dir,
        )

    @property
    def silver_store(self) -> LayerStore:
        if self._silver is None:
            from lakehouse_common.storage import Lake

            self._silver = Lake(self.settings()).silver
        store: LayerStore = self._silver
        return store

    def history(self, source: str | None = None) -> list[LoadHistoryRow]:
        """Every load-history row (of one source, or all), oldest first; none before the first run."""
        from lakehouse_common import tables

        columns = [
            "source", "bronze_key", "bronze_etag", "status", "rows_in", "rows_out",
            "rows_quarantined", "rows_deduplicated", "reason", "finished_at",
        ]  # fmt: skip
        rows = tables.read_history(self.silver_store, source, columns=columns).to_pylist()
        return [LoadHistoryRow.from_row(row) for row in rows]

    def history_entry(self, source: str, key: str, etag: str) -> LoadHistoryRow | None:
        """The newest load-history row of one bronze object version, or None while it is pending."""
        rows = [r for r in self.history(source) if r.key == key and r.etag == etag]
        return rows[-1] if rows else None

    def pending(self, source: str) -> list[str]:
        """Bronze keys of ``source`` whose current version ``_load_history`` has no transaction for."""
        from lakehouse_common import tables
        from lakehouse_common.storage import ObjectInfo

        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bronze, Prefix=f"{source}/")
        objects = [
            ObjectInfo(o["Key"], int(o["Size"]), str(o["ETag"]).strip('"'), o["LastModified"])
            for page in pages
            for o in page.get("Contents", [])
            if tables.is_data_object(o["Key"])
        ]
        return sorted(info.key for info in tables.pending(self.silver_store, source, objects))

    def silver_rows(self) -> int:
        """Rows written to silver so far, by every load-history row of every source."""
        return sum(row.rows_out for row in self.history())

    def silver_objects(self) -> dict[str, str]:
        """Every silver object (data files, Delta logs and checkpoints, the bookkeeping tables) and its ETag."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.silver)
        return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}

    # -- replica -------------------------------------------------------------------------------
    def replica_manifest(self) -> dict[str, Any] | None:
        """The replica's ``_manifest.json``, or None before the first replication."""
        client = self.replica_client
        try:
            body = client.get_object(Bucket=self.replica, Key=f"{REPLICA_PREFIX}/_manifest.json")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        manifest: dict[str, Any] = json.loads(body)
        return manifest

    def replica_run_id(self) -> str | None:
        manifest = self.replica_manifest()
        return None if manifest is None else str(manifest["run_id"])

    def replica_keys(self) -> list[str]:
        pages = self.replica_client.get_paginator("list_objects_v2").paginate(Bucket=self.replica)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def seed_silver(lake: S3Lake, objects: list[BronzeObject], env: Mapping[str, str]) -> None:
    """Put ``objects`` into bronze and silverize them with the CLI: the lake's history, before Airflow."""
    for obj in objects:
        lake.put(obj.key, obj.data)
    command = [str(Path(sys.executable).with_name("lakehouse-silverize")), "run"]
    done = subprocess.run(
        command, env={**os.environ, **env}, cwd=lake.repo, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise AirflowStackError(f"seeding silver failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def minio_event(
    bucket: str, key: str, etag: str, size: int, event_name: str = "s3:ObjectCreated:Put"
) -> dict[str, Any]:
    """A bucket notification as MinIO's webhook target POSTs it (one record)."""
    now = datetime.now(UTC)
    return {
        "EventName": event_name,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": event_name,
                "userIdentity": {"principalId": LAKE_KEY},
                "requestParameters": {"principalId": LAKE_KEY, "region": "", "sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-id-2": "", "x-amz-request-id": uuid.uuid4().hex.upper()[:16]},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": LAKE_KEY},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote(key, safe=""),
                        "size": size,
                        "eTag": etag,
                        "contentType": "application/octet-stream",
                        "userMetadata": {"content-type": "application/octet-stream"},
                        "sequencer": f"{time.time_ns():X}",
                    },
                },
                "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7"},
            }
        ],
    }


class BridgeProcess:
    """``lakehouse-bridge serve`` on a free port, in its own process group, in front of ``stack``."""

    def __init__(self, stack: AirflowStack, env: Mapping[str, str], state_dir: Path, token: str = "bridge-token"):
        self.port = free_port()
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = state_dir / "bridge.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_BRIDGE_")}
        self.env.update(env)
        self.env.update(
            {
                "LAKEHOUSE_BRIDGE_AIRFLOW_URL": stack.base_url,
                "LAKEHOUSE_BRIDGE_AIRFLOW_USERNAME": stack.username,
                "LAKEHOUSE_BRIDGE_AIRFLOW_PASSWORD": stack.password,
                "LAKEHOUSE_BRIDGE_WEBHOOK_TOKEN": token,
                "LAKEHOUSE_BRIDGE_STATE_PATH": str(state_dir / "bridge.sqlite"),
                "LAKEHOUSE_BRIDGE_PORT": str(self.port),
                "LAKEHOUSE_BRIDGE_RETRIES": "3",
                "LAKEHOUSE_BRIDGE_BACKOFF_S": "0.2",
            }
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._session = requests.Session()

    def __enter__(self) -> BridgeProcess:
        command = [*die_with_parent_prefix(), str(Path(sys.executable).with_name("lakehouse-bridge"))]
        command += ["serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(30.0)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise AirflowStackError(f"the bridge exited {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if self._session.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AirflowStackError(f"the bridge was not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no bridge log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        self._session.close()
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def post(self, notification: Mapping[str, Any]) -> dict[str, Any]:
        """POST a notification to ``/minio/events`` as MinIO would; returns the bridge's answer (200 only)."""
        response = self._session.post(
            f"{self.url}/minio/events",
            data=json.dumps(notification),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=60,
        )
        if response.status_code != 200:
            raise AirflowStackError(
                f"the bridge answered {response.status_code}: {response.text[:500]}\n{self.log_tail()}"
            )
        body: dict[str, Any] = response.json()
        return body

    def announce(self, lake: S3Lake, key: str, data: bytes) -> dict[str, Any]:
        """Announce an object already put into bronze, as MinIO's notification of that PUT."""
        return self.post(minio_event(lake.bronze, key, lake.etag(key), len(data)))


def settled(stack: AirflowStack, sources: Sequence[str]) -> bool:
    """No silver, gold or replication run queued or running (landing runs never end)."""
    dag_ids = [f"silver__{s}" for s in sources] + ["gold", "replicate_gold"]
    return all(r["state"] in {"success", "failed"} for d in dag_ids for r in stack.dag_runs(d))


def landing_parked(stack: AirflowStack, sources: Sequence[str]) -> bool:
    """No landing task queued or running in a worker (pausing does not stop a sensor already poking;
    a paused DAG's deferred sensor stays parked)."""
    for source in sources:
        for run in stack.dag_runs(f"landing__{source}"):
            if run["state"] in {"queued", "running"}:
                states = {t["state"] for t in stack.task_instances(f"landing__{source}", run["dag_run_id"])}
                if states & {"queued", "running", "restarting"}:
                    return False
    return True


@contextlib.contextmanager
def refused_endpoint() -> Iterator[str]:
    """An endpoint where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def hanging_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()
