from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lakehouse_common import tables
from lakehouse_common.exceptions import StorageError
from lakehouse_common.settings import Settings
from lakehouse_silverizer import writers
from lakehouse_silverizer.commits import DeltaCommitter
from lakehouse_silverizer.exceptions import ObjectNotPendingError
from lakehouse_silverizer.runner import RunSummary, Silverizer


def put(silverizer: Silverizer, key: str, data: bytes | str) -> str:
    """Drop a file into bronze, as a person or the ingestor would."""
    silverizer.lake.bronze.put_bytes(key, data.encode() if isinstance(data, str) else data)
    return key


RATES = "date,currency,rate\n" + "".join(f"2025-0{1 + i % 3}-1{i % 10},USD,{90 + i % 7}.5\n" for i in range(3000))
PAGE = {
    "found": 3,
    "pages": 1,
    "page": 0,
    "per_page": 100,
    "items": [
        {
            "id": "1",
            "name": "Data engineer",
            "area": {"id": "1", "name": "Москва"},
            "salary": {"from": 100, "to": 200, "currency": "RUR", "gross": False},
            "employer": None,
            "snippet": {"requirement": "<highlighttext>SQL</highlighttext>", "responsibility": None},
            "professional_roles": [{"id": "96", "name": "Программист"}],
            "published_at": "2025-03-01T10:00:00+0300",
        },
        {
            "id": "2",
            "name": "X",
            "area": {"id": "2"},
            "salary": {"from": 5, "to": 1, "currency": "USD"},
            "published_at": "2025-03-02T10:00:00+0300",
        },
        {"id": "3", "name": "Y", "area": {"id": "2"}, "salary": None, "published_at": "2025-04-02T10:00:00+0300"},
    ],
}


def read_table(settings: Settings, table: str) -> list[dict[str, object]]:
    """A silver table's rows as any engine sees them (deltalake reads the Delta log; no project code)."""
    rows = DeltaTable(str(settings.data_dir / "silver" / table)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: (str(r["_bronze_key"]), int(r["_bronze_row"])))  # type: ignore[call-overload]


def silver_state(settings: Settings) -> dict[str, list[dict[str, object]]]:
    """Every silver table's rows (bookkeeping columns that name a run or a time left out)."""
    root = settings.data_dir / "silver"
    state = {}
    for log_dir in sorted(root.glob("*/_delta_log")):
        name = log_dir.parent.name
        rows = DeltaTable(str(log_dir.parent)).to_pyarrow_table().to_pylist()
        volatile = {"run_id", "started_at", "finished_at", "seconds", "quarantined_at", "table_versions"}
        clean = [{k: v for k, v in r.items() if k not in volatile} for r in rows]
        state[name] = sorted(clean, key=repr)
    return state


def test_each_object_is_processed_exactly_once(silverizer: Silverizer) -> None:
    put(silverizer, "currency_rates/a.csv", RATES)
    first = silverizer.run_source("currency_rates").entries
    assert [e.status for e in first] == ["loaded"]
    assert first[0].rows_in == 3000
    assert first[0].rows_out + first[0].rows_deduplicated == 3000
    assert silverizer.run_source("currency_rates").entries == []
    with pytest.raises(ObjectNotPendingError, match="use 'reprocess'"):
        silverizer.run_key("currency_rates", "currency_rates/a.csv")


def test_duplicate_keys_across_chunks_keep_the_first_row(silverizer: Silverizer) -> None:
    body = "".join(f"2025-01-{1 + i % 28:02d},EUR,{i + 1}\n" for i in range(20000))  # spans several 64 KiB chunks
    put(silverizer, "currency_rates/dups.csv", "date,currency,rate\n" + body)
    (entry,) = silverizer.run_source("currency_rates").entries
    assert (entry.rows_out, entry.rows_deduplicated) == (28, 20000 - 28)
    rows = read_table(silverizer.settings, "currency_rates")
    assert sorted(r["rate"] for r in rows) == [float(i + 1) for i in range(28)]


def test_rows_land_in_a_partitioned_zstd_delta_table_and_rejected_rows_in_the_quarantine_table(
    silverizer: Silverizer,
) -> None:
    put(silverizer, "vacancies/p.json", json.dumps(PAGE))
    (entry,) = silverizer.run_source("vacancies").entries
    assert (entry.status, entry.rows_in, entry.rows_out, entry.rows_quarantined) == ("loaded", 3, 2, 1)
    table = DeltaTable(str(silverizer.settings.data_dir / "silver" / "vacancies"))
    assert table.metadata().partition_columns == ["published_month"]
    files = table.file_uris()
    assert sorted(f.split("/")[-2] for f in files) == ["published_month=2025-03", "published_month=2025-04"]
    assert all(tables.key_id("vacancies/p.json") in f for f in files)  # named from the bronze key
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    rows = read_table(silverizer.settings, "vacancies")
    assert [(r["vacancy_id"], r["published_month"]) for r in rows] == [("1", "2025-03"), ("3", "2025-04")]
    assert rows[0]["requirement"] == "SQL"
    assert rows[0]["professional_role_ids"] == ["96"]
    quarantined = read_table_plain(silverizer.settings, tables.QUARANTINE)
    assert [(q["source"], q["row"], q["bronze_key"], q["field"]) for q in quarantined] == [
        ("vacancies", 2, "vacancies/p.json", None)
    ]
    assert "salary_range_ordered" in str(quarantined[0]["reason"])
    (history,) = tables.history_rows(silverizer.lake.silver, "vacancies")
    assert history["status"] == "loaded" and history["table_versions"]["vacancies"] == table.version()


def read_table_plain(settings: Settings, table: str) -> list[dict[str, object]]:
    return DeltaTable(str(settings.data_dir / "silver" / table)).to_pyarrow_table().to_pylist()


def test_every_declared_sources_tables_exist_before_any_data(silverizer: Silverizer) -> None:
    silverizer.ensure_tables()
    root = silverizer.settings.data_dir / "silver"
    names = sorted(p.parent.name for p in root.glob("*/_delta_log"))
    assert names == ["_load_history", "_quarantine", "currency_rates", "vacancies", "vacancy_details", "vacancy_skills"]
    assert read_table_plain(silverizer.settings, "vacancy_skills") == []
    assert "skill" in DeltaTable(str(root / "vacancy_skills")).schema().to_arrow().names  # type: ignore[attr-defined]


def test_a_batch_of_objects_is_one_commit_per_table(silverizer: Silverizer) -> None:
    silverizer.ensure_tables()
    root = silverizer.settings.data_dir / "silver"
    before = DeltaTable(str(root / "currency_rates")).version()
    for n in range(5):
        put(silverizer, f"currency_rates/{n}.csv", f"date,currency,rate\n2025-01-0{n + 1},USD,{90 + n}\n")
    entries = silverizer.run_source("currency_rates").entries
    assert len(entries) == 5
    assert DeltaTable(str(root / "currency_rates")).version() == before + 1
    assert len(read_table(silverizer.settings, "currency_rates")) == 5
    assert silverizer.pending("currency_rates") == []


def test_one_row_per_key_the_newest_page_wins(silverizer: Silverizer) -> None:
    put(silverizer, "vacancies/a.json", json.dumps(PAGE))
    silverizer.run_source("vacancies")
    renamed = dict(PAGE, items=[dict(PAGE["items"][0], name="Senior data engineer")])  # type: ignore[index]
    put(silverizer, "vacancies/b.json", json.dumps(renamed))  # the same vacancy, paged again later
    silverizer.run_source("vacancies")
    rows = read_table(silverizer.settings, "vacancies")
    assert sorted((r["vacancy_id"], r["vacancy_name"]) for r in rows) == [("1", "Senior data engineer"), ("3", "Y")]


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        pytest.param("currency_rates/empty.csv", b"", "empty", id="empty"),
        pytest.param(
            "vacancies/truncated.json", json.dumps(PAGE).encode()[:200], "invalid or truncated JSON", id="truncated"
        ),
        pytest.param(
            "currency_rates/latin.csv",
            "date,currency,rate\n2025-01-01,€,1\n".encode("cp1252"),
            "not valid utf-8",
            id="encoding",
        ),
        pytest.param(
            "currency_rates/bad.csv.gz", gzip.compress(RATES.encode())[:100], "decompress", id="truncated-gzip"
        ),
        pytest.param("vacancies/shape.json", b'{"results": []}', "records_path 'items' not found", id="wrong-shape"),
    ],
)
def test_unreadable_files_are_quarantined_whole_and_the_run_goes_on(
    silverizer: Silverizer, key: str, data: bytes, reason: str
) -> None:
    source = key.split("/", maxsplit=1)[0]
    put(silverizer, key, data)
    put(
        silverizer,
        f"{source}/zz-good" + (".csv" if source == "currency_rates" else ".json"),
        RATES if source == "currency_rates" else json.dumps(PAGE),
    )
    entries = {e.key: e for e in silverizer.run_source(source).entries}
    assert entries[key].status == "quarantined"
    assert reason in str(entries[key].reason)
    assert not [r for r in read_table(silverizer.settings, source) if r["_bronze_key"] == key]
    (record,) = [r for r in read_table_plain(silverizer.settings, tables.QUARANTINE) if r["bronze_key"] == key]
    assert record["row"] is None and reason in str(record["reason"])
    assert all(e.status == "loaded" for k, e in entries.items() if k != key)


def test_gzip_bronze_is_read_transparently(silverizer: Silverizer) -> None:
    put(silverizer, "currency_rates/a.csv.gz", gzip.compress(RATES.encode()))
    (entry,) = silverizer.run_source("currency_rates").entries
    assert entry.status == "loaded" and entry.rows_in == 3000


def test_crash_before_the_load_history_then_rerun_equals_one_clean_run(
    silverizer: Silverizer, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(silverizer, "vacancies/p.json", json.dumps(PAGE))
    put(silverizer, "currency_rates/a.csv", RATES)

    def crash(self: DeltaCommitter, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed after the tables' commits, before the load history's")

    with monkeypatch.context() as patch:
        patch.setattr(DeltaCommitter, "record", crash)
        with pytest.raises(KeyboardInterrupt):
            silverizer.run_source("vacancies")
    assert [o.key for o in silverizer.pending("vacancies")] == ["vacancies/p.json"]
    silverizer.run_source("vacancies")
    silverizer.run_source("currency_rates")

    clean_settings = settings.model_copy(update={"data_dir": tmp_path / "clean"})
    clean = Silverizer(clean_settings, silverizer.registry, silverizer.options)
    for key in ("vacancies/p.json", "currency_rates/a.csv"):
        # Same bytes and the same modification time: the same object version.
        src = settings.data_dir / "bronze" / key
        dst = clean_settings.data_dir / "bronze" / key
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        os.utime(dst, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns))
    clean.run_source("vacancies")
    clean.run_source("currency_rates")
    assert silver_state(settings) == silver_state(clean_settings)
    assert len(tables.history_rows(silverizer.lake.silver, "vacancies")) == 1


def test_crash_in_the_middle_of_writing_leaves_no_partial_output(
    silverizer: Silverizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(silverizer, "currency_rates/a.csv", RATES)
    calls = {"n": 0}
    original = writers.PartitionedParquetWriter._flush

    def flaky(self: writers.PartitionedParquetWriter, value: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        original(self, value)

    monkeypatch.setattr(writers.PartitionedParquetWriter, "_flush", flaky)
    with pytest.raises(StorageError, match="disk full"):
        silverizer.run_source("currency_rates")
    root = silverizer.settings.data_dir / "silver"
    staged = [*(root / "currency_rates").rglob("*.parquet"), *(root / tables.QUARANTINE).rglob("*.parquet")]
    assert [p for p in staged if "_delta_log" not in p.parts] == []
    assert read_table(silverizer.settings, "currency_rates") == []
    (failed,) = tables.history_rows(silverizer.lake.silver, "currency_rates")
    assert failed["status"] == "failed" and "disk full" in str(failed["reason"])
    assert len(silverizer.pending("currency_rates")) == 1


def test_reprocess_replaces_an_objects_rows_and_a_new_version_upserts_its_keys(silverizer: Silverizer) -> None:
    put(silverizer, "vacancies/p.json", json.dumps(PAGE))
    silverizer.run_source("vacancies")
    before = silver_state(silverizer.settings)
    (again,) = silverizer.reprocess("vacancies", "vacancies/p.json").entries
    assert again.status == "loaded"
    after = silver_state(silverizer.settings)
    assert after["vacancies"] == before["vacancies"] and after["_quarantine"] == before["_quarantine"] * 2
    # A new version of the object: vacancy 1 changes, vacancy 3 is no longer on the page but stays
    # in silver (one row per vacancy ever seen; a page is not the whole truth).
    page = dict(PAGE, items=[dict(PAGE["items"][0], name="Renamed")])  # type: ignore[index]
    put(silverizer, "vacancies/p.json", json.dumps(page))
    (entry,) = silverizer.run_source("vacancies").entries
    assert entry.rows_out == 1
    rows = read_table(silverizer.settings, "vacancies")
    assert [(r["vacancy_id"], r["vacancy_name"]) for r in rows] == [("1", "Renamed"), ("3", "Y")]
    assert len(tables.history_rows(silverizer.lake.silver, "vacancies")) == 3  # every version stays in the history


def test_children_are_exploded_and_deduplicated(silverizer: Silverizer) -> None:
    lines = [
        {
            "id": "1",
            "name": "A",
            "description": "<p>x</p>",
            "key_skills": [{"name": "SQL"}, {"name": " SQL"}, {"name": "Python"}],
            "published_at": "2025-01-01T00:00:00+0300",
        },
        {"id": "2", "name": "B", "key_skills": [], "published_at": "2025-01-01T00:00:00+0300"},
    ]
    put(silverizer, "vacancy_details/d.ndjson", "\n".join(json.dumps(x) for x in lines) + "\n")
    silverizer.run_source("vacancy_details")
    skills = read_table(silverizer.settings, "vacancy_skills")
    assert [(s["vacancy_id"], s["skill"]) for s in skills] == [("1", "SQL"), ("1", "Python")]


@pytest.mark.parametrize(
    ("policy", "status", "column"),
    [
        pytest.param("fail", "quarantined", None, id="fail"),
        pytest.param("rescue", "loaded", "_rescued_data", id="rescue"),
        pytest.param("add", "loaded", "colour", id="add"),
    ],
)
def test_sources_without_a_contract_get_an_inferred_one_and_a_new_column_policy(
    silverizer: Silverizer, policy: str, status: str, column: str | None
) -> None:
    put(silverizer, "events/1.csv", "id,amount,day\n1,2.5,2025-01-01\n2,3,2025-01-02\n")
    (first,) = silverizer.run_source("events").entries
    assert first.status == "loaded"
    contract_path = silverizer.settings.data_dir / "silver" / "_contracts" / "events.yml"
    text = contract_path.read_text()
    assert "type: float64" in text and "type: date" in text
    assert "on_new_columns: rescue" in text
    contract_path.write_text(text.replace("on_new_columns: rescue", f"on_new_columns: {policy}"))
    put(silverizer, "events/2.csv", "id,amount,day,colour\n3,1,2025-01-03,red\n")
    (second,) = silverizer.run_source("events").entries
    assert second.status == status
    if policy == "fail":
        assert "colour" in str(second.reason)
        return
    rows = read_table(silverizer.settings, "events")
    last = rows[-1]
    assert column in last
    assert "red" in str(last[column])


def test_sources_are_the_contracts_plus_undeclared_bronze_folders(silverizer: Silverizer) -> None:
    put(silverizer, "events/1.csv", "id\n1\n")
    put(silverizer, "_meta/events/1.csv.json", "{}")  # the ingestor's bookkeeping is not a source
    put(silverizer, "_state/vacancies.json", "{}")
    assert silverizer.sources() == ["currency_rates", "events", "vacancies", "vacancy_details"]


def test_a_version_replaced_with_the_same_modification_time_is_not_committed(silverizer: Silverizer) -> None:
    """S3 keeps whole seconds: a version replaced within its second cannot be ordered by time, so a
    slow run over the old one must not commit it over the new one's entry."""
    put(silverizer, "currency_rates/a.csv", RATES)
    old = silverizer.lake.bronze.stat("currency_rates/a.csv")
    assert old is not None
    path = silverizer.settings.data_dir / "bronze" / "currency_rates/a.csv"
    path.write_text(RATES.replace("USD", "EUR") + "2025-01-01,GBP,100.5\n")
    os.utime(path, ns=(path.stat().st_atime_ns, int(old.modified.timestamp() * 1e9)))  # the same time
    current = silverizer.lake.bronze.stat("currency_rates/a.csv")
    assert current is not None and current.etag != old.etag and current.modified == old.modified

    summary = RunSummary("currency_rates")
    silverizer.ensure_tables()
    silverizer._run_batch("currency_rates", [old], summary)  # a run that listed the old version
    assert summary.skipped == ["currency_rates/a.csv"] and summary.entries == []
    assert tables.history_rows(silverizer.lake.silver, "currency_rates") == []
    assert read_table(silverizer.settings, "currency_rates") == []  # its staged files taken back
    root = silverizer.settings.data_dir / "silver" / "currency_rates"
    assert [p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts] == []
    (entry,) = silverizer.run_source("currency_rates").entries  # the current version loads
    assert entry.etag == current.etag and entry.rows_in == 3001


def test_a_silver_layer_of_the_ledger_based_version_is_refused_with_how_to_rebuild_it(silverizer: Silverizer) -> None:
    silverizer.lake.silver.put_bytes("_ledger/currency_rates/a.json", b"{}")
    put(silverizer, "currency_rates/a.csv", RATES)
    with pytest.raises(
        tables.LegacyLakeError, match=r"Move or delete the old silver layer .* `lakehouse-silverize run`"
    ):
        silverizer.run_source("currency_rates")
    assert not (silverizer.settings.data_dir / "silver" / "currency_rates").exists()  # nothing written


def test_an_unkeyed_sources_changed_file_replaces_its_rows_and_the_same_bytes_again_load_nothing(
    silverizer: Silverizer,
) -> None:
    put(silverizer, "events/a.csv", "id,amount\n1,2.5\n2,3\n")
    silverizer.run_source("events")
    path = silverizer.settings.data_dir / "bronze" / "events" / "a.csv"
    path.write_text("id,amount\n1,2.5\n2,4\n3,5\n")  # corrected and extended: a new version of the file
    (entry,) = silverizer.run_source("events").entries
    assert entry.rows_out == 3
    rows = read_table(silverizer.settings, "events")
    assert [(r["id"], r["amount"]) for r in rows] == [(1, 2.5), (2, 4.0), (3, 5.0)]
    first = path.read_bytes()
    path.write_text("id,amount\n9,9\n")
    silverizer.run_source("events")
    path.write_bytes(first)  # the earlier bytes put back: their rows are the file's rows again
    (restored,) = silverizer.run_source("events").entries
    assert restored.rows_out == 3
    assert len(read_table(silverizer.settings, "events")) == 3
