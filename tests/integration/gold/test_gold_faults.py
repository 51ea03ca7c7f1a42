"""Issue 6's fault matrix, gold rows, on a moto S3 server (gold and an "AWS" replica bucket).

- row 4: SIGKILL (a subprocess) at each step of a publish and of a replication. Gold is never
  half-replaced: a reader that follows the manifest reads the complete old run or the complete new
  one, never an error (run files are immutable, and the manifest write is the commit); a reader
  still holding the old manifest can open its files; replication works right after the kill; the
  replica's manifest never names a missing or wrong file; a rerun completes (and a replication
  resumes: it copies what is missing or changed, and verifies it); leftover ``_staging/<run>/``
  prefixes are ignored by readers and removed by a later build.
- row 10: a failing dbt data test (a temp copy of the project with one more test): nothing is
  published, the previous gold stays, and the replica is unchanged.
- row 11: replication twice is idempotent; a changed gold mart is re-copied and verified; a replica
  object altered behind our back (same size, even with our sha256 metadata) is detected and re-copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gold_silver_factory import make_silver, write_silver

from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_gold.build import build_gold, clean_stale_staging, new_run_id
from lakehouse_gold.exceptions import DbtBuildError
from lakehouse_gold.manifest import MANIFEST_KEY, GoldManifest, mart_key, read_manifest, run_started
from lakehouse_gold.publish import publish_staged
from lakehouse_gold.replicate import gold_objects, replicate_gold
from lakehouse_gold.show import read_mart

pytestmark = [pytest.mark.integration]

DBT_PROJECT = Path(__file__).resolve().parents[3] / "dbt"

# Runs one step in a child process and SIGKILLs it at the nth call of the patched function.
KILLER = r"""
import os, signal, sys

from lakehouse_common.settings import get_settings
from lakehouse_common.storage import Lake
import lakehouse_gold.manifest as manifest
import lakehouse_gold.publish as publish
import lakehouse_gold.replicate as replicate

step, target, nth, run_id, staging = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
settings = get_settings()
lake = Lake(settings)
calls = 0


def killing(real, half=False):
    def wrapper(*args, **kwargs):
        global calls
        calls += 1
        if calls == nth:
            if half:  # copy_stream(source, target): half of the mart is written, then the process dies
                data = args[0].read()
                args[1].write(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapper


if target == "copy":
    publish.copy_stream = killing(publish.copy_stream)
elif target == "copy-half":
    publish.copy_stream = killing(publish.copy_stream, half=True)
elif target == "manifest":
    manifest.GoldManifest.to_json = killing(manifest.GoldManifest.to_json)
elif target == "delete":
    type(lake.gold).delete = killing(type(lake.gold).delete)
elif target in ("upload", "verify", "prune_replica"):
    setattr(replicate, f"_{target}", killing(getattr(replicate, f"_{target}")))
if step == "publish":
    publish.publish_staged(
        lake, run_id=run_id, staging_prefix=staging, spool_dir=settings.scratch_dir / "spool",
        dbt_status_counts={"success": 1}, dbt_warnings=[],
    )
else:
    replicate.replicate_gold(settings)
sys.exit(3)  # not killed: the kill point was never reached
"""


def table(name: str, version: int) -> pa.Table:
    return pa.table({"key": [f"{name}-{i}" for i in range(version + 2)], "value": list(range(version + 2))})


OLD = {"regions": 1, "skills": 1, "rates": 1, "legacy": 1}
# Published in key order: fresh (added), rates (unchanged: the new manifest names the old run's file),
# regions, skills; legacy is dropped. So a publish writes 3 run files, the manifest, 4 latest copies.
NEW = {"regions": 2, "skills": 2, "rates": 1, "fresh": 2}


def stage(lake: Lake, run_id: str, marts: dict[str, int]) -> str:
    staging = f"_staging/{run_id}"
    for name, version in marts.items():
        with lake.gold.open_output(f"{staging}/{name}.parquet") as out:
            pq.write_table(table(name, version), out, compression="zstd")
    return staging


def publish(lake: Lake, settings: Settings, run_id: str, staging: str) -> GoldManifest:
    return publish_staged(
        lake,
        run_id=run_id,
        staging_prefix=staging,
        spool_dir=settings.scratch_dir / "spool",
        dbt_status_counts={"success": 1},
        dbt_warnings=[],
    )


def kill_in_child(step: str, target: str, nth: int, run_id: str = "", staging: str = "") -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLER, step, target, str(nth), run_id, staging],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"


_CLIENTS: dict[tuple[str | None, str], Any] = {}


def replica_client(settings: Settings) -> Any:
    """One boto3 client per replica endpoint and credentials (making one costs a tenth of a second)."""
    assert settings.replica_access_key_id is not None and settings.replica_secret_access_key is not None
    cache_key = (settings.replica_endpoint_url, settings.replica_access_key_id.get_secret_value())
    if cache_key not in _CLIENTS:
        _CLIENTS[cache_key] = _new_replica_client(settings)
    return _CLIENTS[cache_key]


def _new_replica_client(settings: Settings) -> Any:
    assert settings.replica_access_key_id is not None and settings.replica_secret_access_key is not None
    return boto3.client(
        "s3",
        endpoint_url=settings.replica_endpoint_url,
        region_name=settings.replica_region,
        aws_access_key_id=settings.replica_access_key_id.get_secret_value(),
        aws_secret_access_key=settings.replica_secret_access_key.get_secret_value(),
    )


def replica_objects(settings: Settings) -> dict[str, bytes]:
    """Every replica object under the prefix, by gold key."""
    bucket, prefix = settings.replica_bucket_and_prefix or ("", "")
    client = replica_client(settings)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    return {
        o["Key"].removeprefix(f"{prefix}/"): client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed
    }


def replicate(settings: Settings) -> Any:
    """``replicate_gold`` with the cached replica client."""
    return replicate_gold(settings, client=replica_client(settings))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def contents(manifest: GoldManifest) -> dict[str, tuple[str, int]]:
    """What a run holds: each mart's sha256 and rows."""
    return {entry.name: (entry.sha256, entry.rows) for entry in manifest.marts}


def read_following_the_manifest(lake: Lake, manifest: GoldManifest | None = None) -> GoldManifest:
    """Read every mart the way readers do (sha256 checked): an inconsistent gold raises."""
    manifest = manifest or read_manifest(lake)
    for entry in manifest.marts:
        assert read_mart(lake, entry).num_rows == entry.rows
    return manifest


def assert_replica_consistent(settings: Settings) -> dict[str, Any]:
    """The replica's manifest names only files that are there with the bytes it describes."""
    objects = replica_objects(settings)
    manifest: dict[str, Any] = json.loads(objects[MANIFEST_KEY])
    for mart in manifest["marts"]:
        assert mart["key"] in objects, f"the replica manifest names a missing file {mart['key']}"
        assert sha(objects[mart["key"]]) == mart["sha256"], f"the replica's {mart['key']} is not the manifest's"
    return manifest


@pytest.fixture
def replicated_old(gold_s3_settings: Settings) -> tuple[Lake, GoldManifest]:
    """Gold published from OLD (run "old") and replicated."""
    lake = Lake(gold_s3_settings)
    old = publish(lake, gold_s3_settings, "old", stage(lake, "old", OLD))
    lake.gold.delete([info.key for info in lake.gold.list("_staging/")])
    report = replicate(gold_s3_settings)
    assert report.copied == gold_objects(lake)  # run files, the manifest, the latest copies
    assert report.copied.index(MANIFEST_KEY) == len(old.marts)
    return lake, old


# -- row 4: publish ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "nth", "committed"),
    [
        pytest.param("copy", 1, False, id="before-the-first-run-file"),
        pytest.param("copy-half", 2, False, id="in-the-middle-of-the-second-run-file"),
        pytest.param("copy", 3, False, id="after-two-run-files"),
        pytest.param("manifest", 1, False, id="every-run-file-but-not-the-manifest"),
        pytest.param("copy", 4, True, id="after-the-commit-before-the-latest-copies"),
        pytest.param("copy-half", 6, True, id="in-the-middle-of-a-latest-copy"),
        pytest.param("delete", 1, True, id="after-the-latest-copies-before-collecting-old-files"),
    ],
)
def test_publish_killed_leaves_the_old_or_the_new_run_whole_and_a_rerun_completes_it(
    gold_s3_settings: Settings, replicated_old: tuple[Lake, GoldManifest], target: str, nth: int, committed: bool
) -> None:
    settings = gold_s3_settings
    lake, old = replicated_old
    run_id = new_run_id()
    staging = stage(lake, run_id, NEW)

    kill_in_child("publish", target, nth, run_id, staging)

    # A reader following the manifest reads one whole run: the old one, or the new one once committed.
    after_kill = read_following_the_manifest(lake)
    assert after_kill.run_id == (run_id if committed else old.run_id)
    if not committed:
        assert after_kill == old
    read_following_the_manifest(lake, old)  # a reader still holding the old manifest is not affected
    # Replication needs no repair first: it copies the committed run whole.
    replicate(settings)
    assert assert_replica_consistent(settings)["run_id"] == after_kill.run_id
    assert list(lake.gold.list(staging + "/")), "the killed run's staging is left behind"

    # The rerun (the DAG's retry) completes the same run; replication then catches up.
    new = publish(lake, settings, run_id, staging)
    read_following_the_manifest(lake)
    assert {name: rows for name, (_, rows) in contents(new).items()} == {n: v + 2 for n, v in NEW.items()}
    if committed:
        assert contents(after_kill) == contents(new)
    assert new.mart("rates").key == old.mart("rates").key  # unchanged: the old run's file, not rewritten
    for entry in new.marts:  # the latest copies are refreshed
        assert lake.gold.read_bytes(mart_key(entry.name)) == lake.gold.read_bytes(entry.key)
    kept = {e.key for e in new.marts} | {mart_key(e.name) for e in new.marts}
    if not committed:  # the rerun's previous manifest is the old one: its files stay for its readers
        kept |= {e.key for e in old.marts}
    assert {info.key for info in lake.gold.list("marts/")} == kept
    report = replicate(settings)
    assert report.verified == report.copied
    replica = replica_objects(settings)
    for key in [*(e.key for e in new.marts), *(mart_key(e.name) for e in new.marts)]:
        assert replica[key] == lake.gold.read_bytes(key), key
    assert assert_replica_consistent(settings)["run_id"] == run_id

    # Leftover staging: readers never look there; the next build removes it once it is stale.
    started = run_started(run_id)
    assert started is not None
    assert clean_stale_staging(lake, now=started + timedelta(minutes=5)) == []
    assert clean_stale_staging(lake, now=started + timedelta(hours=7)) == [run_id]
    assert list(lake.gold.list("_staging/")) == []


# -- row 4: replication ------------------------------------------------------------------------
# Uploads, in order: 3 run files (fresh, regions, skills), the manifest, 3 latest copies.
@pytest.mark.parametrize(
    ("target", "nth", "committed"),
    [
        pytest.param("upload", 1, False, id="before-the-first-upload"),
        pytest.param("verify", 1, False, id="after-one-upload-before-its-check"),
        pytest.param("upload", 3, False, id="after-two-uploads"),
        pytest.param("upload", 4, False, id="every-run-file-but-not-the-manifest"),
        pytest.param("verify", 4, True, id="after-the-manifest-before-its-check"),
        pytest.param("upload", 6, True, id="among-the-latest-copies"),
        pytest.param("prune_replica", 1, True, id="before-deleting-old-replica-files"),
    ],
)
def test_replication_killed_never_names_a_missing_file_and_resumes(
    gold_s3_settings: Settings, replicated_old: tuple[Lake, GoldManifest], target: str, nth: int, committed: bool
) -> None:
    settings = gold_s3_settings
    lake, old = replicated_old
    run_id = new_run_id()
    new = publish(lake, settings, run_id, stage(lake, run_id, NEW))
    changed = [e.key for e in new.marts if e.key not in {o.key for o in old.marts}]
    assert len(changed) == 3  # fresh, regions and skills

    kill_in_child("replicate", target, nth)

    assert assert_replica_consistent(settings)["run_id"] == (run_id if committed else old.run_id)
    report = replicate(settings)  # resumes: copies what is missing or changed, and verifies it
    assert report.verified == report.copied
    assert set(report.copied) <= {*changed, MANIFEST_KEY, *(mart_key(e.name) for e in new.marts)}
    replica = replica_objects(settings)
    for key in gold_objects(lake):
        assert replica[key] == lake.gold.read_bytes(key), key
    assert assert_replica_consistent(settings)["run_id"] == run_id
    again = replicate(settings)
    assert again.copied == [] and len(again.unchanged) == 2 * len(new.marts) + 1


# -- row 11 ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param("deleted", id="a-replica-mart-deleted"),
        pytest.param("other-bytes", id="other-bytes-without-metadata"),
        pytest.param("same-size-and-metadata", id="same-size-bytes-with-our-sha256-metadata"),
    ],
)
def test_replication_is_idempotent_and_recopies_what_changed(
    gold_s3_settings: Settings, replicated_old: tuple[Lake, GoldManifest], tamper: str
) -> None:
    settings = gold_s3_settings
    lake, old = replicated_old
    again = replicate(settings)
    assert (again.copied, len(again.unchanged)) == ([], 2 * len(old.marts) + 1)

    # Someone alters the replica's file of a mart (the one its manifest names).
    bucket, prefix = settings.replica_bucket_and_prefix or ("", "")
    client = replica_client(settings)
    regions = old.mart("regions").key
    key = f"{prefix}/{regions}"
    original = client.get_object(Bucket=bucket, Key=key)
    body = original["Body"].read()
    if tamper == "deleted":
        client.delete_object(Bucket=bucket, Key=key)
    elif tamper == "other-bytes":
        client.put_object(Bucket=bucket, Key=key, Body=b"junk")
    else:
        flipped = body[:-1] + bytes([body[-1] ^ 1])
        client.put_object(Bucket=bucket, Key=key, Body=flipped, Metadata=original["Metadata"])
    repaired = replicate(settings)
    assert repaired.copied == repaired.verified == [regions]
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body

    # A mart changed in gold is re-copied and verified; the others are not touched.
    run_id = new_run_id()
    new = publish(lake, settings, run_id, stage(lake, run_id, {**OLD, "skills": 5}))
    changed = replicate(settings)
    assert changed.copied == changed.verified == [new.mart("skills").key, MANIFEST_KEY, "marts/skills.parquet"]
    assert replicate(settings).copied == []


# -- row 10 ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_failing_dbt_test_publishes_nothing_and_leaves_the_replica_alone(
    gold_s3_settings: Settings,
    replicated_old: tuple[Lake, GoldManifest],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake, old = replicated_old
    project = tmp_path / "dbt"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs"))
    (project / "tests" / "fault_matrix_always_fails.sql").write_text(
        "-- a data test that returns a row fails\nselect 1 as failing_row\n"
    )
    monkeypatch.setenv("LAKEHOUSE_DBT_PROJECT_DIR", str(project))
    settings = get_settings()
    assert settings.dbt_project_dir == project
    write_silver(lake.silver, make_silver())  # valid silver: every model builds, only the added test fails
    gold_before = {info.key: info.etag for info in lake.gold.list()}
    replica_before = replica_objects(settings)

    with pytest.raises(DbtBuildError, match="fault_matrix_always_fails") as failure:
        build_gold(settings)

    assert any("fault_matrix_always_fails" in node for node in failure.value.failed_ids)
    assert {info.key: info.etag for info in lake.gold.list()} == gold_before  # no staging left either
    assert read_manifest(lake).run_id == old.run_id
    report = replicate(settings)
    assert report.copied == [] and len(report.unchanged) == 2 * len(old.marts) + 1
    assert replica_objects(settings) == replica_before
