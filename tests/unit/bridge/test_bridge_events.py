"""Parsing MinIO's documented notification JSON, key decoding, source mapping and the ignore rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse_bridge.events import (
    IgnoreReason,
    ObjectEvent,
    asset_name,
    decode_key,
    ignore_reason,
    iter_documents,
    parse_document,
    parse_notification,
    source_of,
)
from lakehouse_bridge.exceptions import EventFormatError

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def created(key: str, *, bucket: str = "bronze", event_name: str = "s3:ObjectCreated:Put") -> ObjectEvent:
    return ObjectEvent(event_name, "2026-01-01T00:00:00.000Z", bucket, key, "etag", "SEQ")


def test_a_put_notification_parses_into_one_decoded_record() -> None:
    (event,) = parse_notification(fixture_bytes("put_vacancies.json"))

    assert event == ObjectEvent(
        event_name="s3:ObjectCreated:Put",
        event_time="2026-01-01T10:00:00.123Z",
        bucket="bronze",
        key="vacancies/ingest_date=2026-01-01/20260101T100000Z-3f2a9c1d.json",
        etag="9b2cf535f27731c974343645a3985328",
        sequencer="1881B4E2F5A3C2D1",
        size=48213,
    )
    assert event.source == "vacancies"
    assert event.delivery_key == ("bronze", event.key, event.etag, event.sequencer)
    assert ignore_reason(event, "bronze") is None


def test_the_top_level_key_is_the_bucket_and_the_decoded_record_key() -> None:
    for name in ("put_vacancies.json", "multipart_key_with_spaces.json"):
        doc = json.loads(fixture_bytes(name))
        (event,) = parse_document(doc)
        assert doc["Key"] == f"{event.bucket}/{event.key}"


def test_a_multipart_upload_with_spaces_and_plus_in_the_key() -> None:
    (event,) = parse_notification(fixture_bytes("multipart_key_with_spaces.json"))

    assert event.key == "currency_rates/manual upload/rates 2026+Q1.csv"
    assert event.etag == "d41d8cd98f00b204e9800998ecf8427e-2", "quotes around the ETag are dropped"
    assert event.source == "currency_rates"
    assert asset_name(event.source) == "bronze/currency_rates"
    assert ignore_reason(event, "bronze") is None


def test_a_delete_notification_parses_without_etag_and_is_ignored() -> None:
    (event,) = parse_notification(fixture_bytes("delete_vacancies.json"))

    assert event.etag == ""
    assert event.size is None
    assert ignore_reason(event, "bronze") is IgnoreReason.NOT_CREATED


def test_a_bare_record_of_the_queue_store_is_accepted() -> None:
    (event,) = parse_document(json.loads(fixture_bytes("queue_store_record.json")))

    assert event.key == "vacancy_details/ingest_date=2026-01-01/20260101T100500Z-77aa01.json"
    assert asset_name(event.source or "") == "bronze/vacancy_details"


def test_the_asset_event_extra_names_the_object() -> None:
    (event,) = parse_notification(fixture_bytes("put_vacancies.json"))

    assert event.extra() == {
        "bucket": "bronze",
        "key": "vacancies/ingest_date=2026-01-01/20260101T100000Z-3f2a9c1d.json",
        "etag": "9b2cf535f27731c974343645a3985328",
        "sequencer": "1881B4E2F5A3C2D1",
        "event_name": "s3:ObjectCreated:Put",
        "event_time": "2026-01-01T10:00:00.123Z",
        "via": "minio-bridge",
    }


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        pytest.param("vacancies%2Fa.json", "vacancies/a.json", id="slash-escaped"),
        pytest.param("vacancies/a.json", "vacancies/a.json", id="slash-plain"),
        pytest.param("rates%2Fmy+file.csv", "rates/my file.csv", id="plus-is-space"),
        pytest.param("rates%2Fmy%20file.csv", "rates/my file.csv", id="percent-20-is-space"),
        pytest.param("rates%2Fa%2Bb.csv", "rates/a+b.csv", id="escaped-plus-is-plus"),
        pytest.param(
            "vacancies%2Fingest_date%3D2026-01-01%2Fx.json", "vacancies/ingest_date=2026-01-01/x.json", id="eq"
        ),
        pytest.param("%D0%B2%D0%B0%D0%BA%2F%D1%84.json", "вак/ф.json", id="utf-8"),
    ],
)
def test_decode_key(raw: str, decoded: str) -> None:
    assert decode_key(raw) == decoded


@pytest.mark.parametrize(
    ("key", "source"),
    [
        pytest.param("vacancies/ingest_date=2026-01-01/x.json", "vacancies", id="hive-partition"),
        pytest.param("currency_rates/rates.csv", "currency_rates", id="flat"),
        pytest.param("x.json", None, id="bucket-root"),
        pytest.param("/x.json", None, id="empty-first-segment"),
        pytest.param("_meta/vacancies/x.json", "_meta", id="bookkeeping-is-still-a-segment"),
    ],
)
def test_source_of(key: str, source: str | None) -> None:
    assert source_of(key) == source


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(created("vacancies/d=1/x.json"), None, id="put"),
        pytest.param(created("vacancies/x.json", event_name="s3:ObjectCreated:Copy"), None, id="copy"),
        pytest.param(created("vacancies/x.json", event_name="s3:ObjectCreated:PutRetention"), None, id="any-created"),
        pytest.param(
            created("vacancies/x.json", event_name="s3:ObjectRemoved:Delete"), IgnoreReason.NOT_CREATED, id="removed"
        ),
        pytest.param(
            created("vacancies/x.json", event_name="s3:ObjectAccessed:Get"), IgnoreReason.NOT_CREATED, id="accessed"
        ),
        pytest.param(created("vacancies/x.json", bucket="silver"), IgnoreReason.OTHER_BUCKET, id="other-bucket"),
        pytest.param(created("x.json"), IgnoreReason.NO_SOURCE, id="bucket-root"),
        pytest.param(created("_meta/vacancies/x.json"), IgnoreReason.BOOKKEEPING, id="_meta"),
        pytest.param(created("_index/vacancies/ab/cd"), IgnoreReason.BOOKKEEPING, id="_index"),
        pytest.param(created("_state/vacancies.json"), IgnoreReason.BOOKKEEPING, id="_state"),
        pytest.param(created("_rejected/vacancies/x.json"), IgnoreReason.BOOKKEEPING, id="_rejected"),
        pytest.param(created(".minio.sys/x"), IgnoreReason.BOOKKEEPING, id="dot-prefix"),
        pytest.param(created("vacancies/d=1/_SUCCESS"), IgnoreReason.HIDDEN, id="underscore-basename"),
        pytest.param(created("vacancies/.x.json.tmp"), IgnoreReason.HIDDEN, id="dot-basename"),
        pytest.param(created("vacancies/d=1/"), IgnoreReason.HIDDEN, id="folder-marker"),
        pytest.param(created("vacancies/_tmp/x.json"), None, id="underscore-inner-folder-counts"),
    ],
)
def test_ignore_reason(event: ObjectEvent, reason: IgnoreReason | None) -> None:
    assert ignore_reason(event, "bronze") is reason


def test_the_bronze_bucket_is_whatever_is_configured() -> None:
    event = created("vacancies/x.json", bucket="lake-bronze")
    assert ignore_reason(event, "lake-bronze") is None
    assert ignore_reason(event, "bronze") is IgnoreReason.OTHER_BUCKET


def test_an_empty_records_list_is_a_valid_notification() -> None:
    assert parse_notification(b'{"EventName": "", "Key": "", "Records": []}') == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"{not json", "not JSON", id="broken-json"),
        pytest.param(b"\xff\xfe", "not JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "not a MinIO bucket notification (got list)", id="list"),
        pytest.param(b'{"hello": "world"}', "got an object with keys ['hello']", id="other-object"),
        pytest.param(b'{"Records": {}}', "Records must be a list", id="records-not-list"),
        pytest.param(b'{"Records": ["x"]}', "Records[0] must be a JSON object", id="record-not-object"),
        pytest.param(b'{"Records": [{"s3": {}}]}', "Records[0].eventName is missing", id="no-event-name"),
        pytest.param(
            b'{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"object": {"key": "a/b"}}}]}',
            "Records[0].s3.bucket.name is missing",
            id="no-bucket",
        ),
        pytest.param(
            b'{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]}',
            "Records[0].s3.object.key is missing",
            id="no-key",
        ),
        pytest.param(
            b'{"Records": [{"eventName": "e", "s3": {"bucket": {"name": "b"}, "object": {"key": 7}}}]}',
            "Records[0].s3.object.key must be a non-empty string, got 7",
            id="key-not-string",
        ),
    ],
)
def test_a_body_that_is_not_a_notification_says_what_is_valid(body: bytes, message: str) -> None:
    with pytest.raises(EventFormatError, match="a MinIO bucket notification is a JSON object") as info:
        parse_notification(body)
    assert message in str(info.value)


def test_iter_documents_reads_one_document_or_json_lines() -> None:
    one = fixture_bytes("put_vacancies.json").decode()
    record = json.dumps(json.loads(fixture_bytes("queue_store_record.json")))
    assert [d["Key"] for d in iter_documents(one)] == [json.loads(one)["Key"]]
    lines = json.dumps(json.loads(one)) + "\n\n" + record + "\n"
    docs = list(iter_documents(lines))
    assert len(docs) == 2
    assert [e.source for d in docs for e in parse_document(d)] == ["vacancies", "vacancy_details"]
    with pytest.raises(EventFormatError, match="line 2 is not JSON"):
        list(iter_documents('{"Records": []}\n{oops\n'))
