"""Session-wide test set-up: Airflow reads its configuration when first imported, so it is
pointed at a private AIRFLOW_HOME (SQLite metadata DB) and the project's DAGs here, before any
test module imports it. The database itself is created only by tests that need one
(``airflow_db`` in tests/integration/orchestration)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_home = tempfile.mkdtemp(prefix="lakehouse-airflow-home-")
atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _home
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
# Each test's buckets have new names, so a DAG's Asset URIs change from test to test and its
# serialized version is rewritten in place; the in-process DAG cache serves a cached version
# without re-checking it for this many seconds (30 by default), which would run the previous
# test's Asset URIs. A deployment's bucket names do not change.
os.environ["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] = "0"
for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]
