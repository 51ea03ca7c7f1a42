"""Landing payloads in bronze (metadata, content index, rejects) and the stored state, on the
local lake; crashes between the writes are simulated by a store that fails on a chosen key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lakehouse_common.exceptions import StorageError
from lakehouse_common.storage import Lake
from lakehouse_ingestor.exceptions import BronzeWriteError, StateError
from lakehouse_ingestor.landing import INDEX_PREFIX, META_PREFIX, REJECTED_PREFIX, Lander, Payload, RequestRecord
from lakehouse_ingestor.state import SourceState, StateStore

AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
BODY = b'{"items":[{"id":"1"}],"found":1}'


def payload(data: bytes = BODY, at: datetime = AT) -> Payload:
    request = RequestRecord(
        "GET", "https://api.x/v?page=0", 200, headers={"User-Agent": "ua", "X-Api-Token": "never-stored"}
    )
    return Payload("vacancies", data, "json", at, (request,), {"page": 0})


def data_keys(lake: Lake) -> list[str]:
    return [info.key for info in lake.bronze.list("vacancies/")]


def test_a_payload_lands_with_its_metadata_then_its_marker(lake: Lake) -> None:
    landed = Lander(lake, "run-1").land(payload())
    assert landed.written and landed.key is not None
    assert lake.bronze.read_bytes(landed.key) == BODY
    meta = json.loads(lake.bronze.read_bytes(f"{META_PREFIX}/{landed.key}.json"))
    assert meta["sha256"] == landed.sha256
    assert meta["ingestor"]["run_id"] == "run-1"
    assert meta["requests"][0]["headers"] == {"User-Agent": "ua"}  # anything credential-like is dropped
    assert lake.bronze.read_bytes(f"{INDEX_PREFIX}/vacancies/{landed.sha256}") == landed.key.encode()


def test_the_same_content_later_is_not_written_again(lake: Lake) -> None:
    Lander(lake, "run-1").land(payload())
    again = Lander(lake, "run-2").land(payload(at=AT + timedelta(hours=1)))  # a new run lists the index
    assert not again.written and again.key is None
    assert len(data_keys(lake)) == 1


@pytest.mark.parametrize(
    ("crash_on", "objects_after_rerun"),
    [
        pytest.param(f"{META_PREFIX}/", 1, id="before-the-payload"),
        pytest.param("vacancies/ingest_date=", 1, id="writing-the-payload"),
        pytest.param(f"{INDEX_PREFIX}/", 2, id="before-the-marker-a-duplicate-never-a-loss"),
    ],
)
def test_a_crash_between_the_writes_never_loses_the_payload(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, crash_on: str, objects_after_rerun: int
) -> None:
    store = lake.bronze
    put = store.put_bytes

    def crashing_put(key: str, data: bytes, *, if_absent: bool = False) -> bool:
        if crash_on in key:
            raise StorageError(f"simulated crash writing {key}")
        return put(key, data, if_absent=if_absent)

    monkeypatch.setattr(store, "put_bytes", crashing_put)
    with pytest.raises(BronzeWriteError, match="simulated crash"):
        Lander(lake, "run-1").land(payload())
    monkeypatch.undo()

    rerun = Lander(lake, "run-2").land(payload(at=AT + timedelta(minutes=5)))
    assert rerun.written
    keys = data_keys(lake)
    assert len(keys) == objects_after_rerun
    assert {lake.bronze.read_bytes(k) for k in keys} == {BODY}


def test_a_rejected_body_is_kept_with_its_reason(lake: Lake) -> None:
    key = Lander(lake, "run-1").reject(payload(b"<html>oops"), "the response is not valid JSON")
    assert key.startswith(f"{REJECTED_PREFIX}/vacancies/ingest_date=2025-03-01/")
    assert lake.bronze.read_bytes(key) == b"<html>oops"
    reason = json.loads(lake.bronze.read_bytes(f"{key}.reason.json"))
    assert reason["reason"] == "the response is not valid JSON"
    assert data_keys(lake) == []


def test_state_round_trip(lake: Lake) -> None:
    states = StateStore(lake.bronze)
    assert states.load("vacancies") == SourceState(source="vacancies")
    state = SourceState(source="vacancies", cursor=AT, details={"2025-03-01": ["2", "10"]})
    states.save(state, AT)
    loaded = states.load("vacancies")
    assert loaded.cursor == AT and loaded.details == {"2025-03-01": ["2", "10"]} and loaded.updated_at == AT


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"{not json", "is not valid", id="not-json"),
        pytest.param(b'{"source": "vacancies", "cursor": "yesterday"}', "is not valid", id="bad-cursor"),
        pytest.param(b'{"source": "other"}', "holds the state of 'other'", id="wrong-source"),
    ],
)
def test_a_damaged_state_fails_clearly(lake: Lake, content: bytes, message: str) -> None:
    lake.bronze.put_bytes(StateStore.key("vacancies"), content)
    with pytest.raises(StateError, match=message):
        StateStore(lake.bronze).load("vacancies")
