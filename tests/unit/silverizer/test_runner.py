from __future__ import annotations

import gzip
import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse_common.exceptions import StorageError
from lakehouse_common.ledger import Ledger, logical_key
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_silverizer import writers
from lakehouse_silverizer.exceptions import ObjectNotPendingError, ObjectSupersededError
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.vacuum import vacuum


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


def silver_files(settings: Settings) -> dict[str, str]:
    """Silver as readers see it: the committed files, by name without the attempt, and their sha256."""
    root = settings.data_dir / "silver"
    return {
        logical_key(key): hashlib.sha256((root / key).read_bytes()).hexdigest()
        for key in Ledger(Lake(settings).silver).committed()
    }


def read_table(settings: Settings, table: str) -> list[dict[str, object]]:
    """A silver table's committed rows (what dbt reads)."""
    root = settings.data_dir / "silver"
    files = sorted(root / key for key in Ledger(Lake(settings).silver).committed() if key.startswith(f"{table}/"))
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: (str(r["_bronze_key"]), int(r["_bronze_row"])))  # type: ignore[call-overload]


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


def test_outputs_are_partitioned_zstd_parquet_named_from_the_bronze_key(silverizer: Silverizer) -> None:
    put(silverizer, "vacancies/p.json", json.dumps(PAGE))
    (entry,) = silverizer.run_source("vacancies").entries
    assert [o.split("/")[1] for o in entry.outputs] == ["published_month=2025-03", "published_month=2025-04"]
    assert len({o.rsplit("/", 1)[1] for o in entry.outputs}) == 1
    path = silverizer.settings.data_dir / "silver" / entry.outputs[0]
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    rows = read_table(silverizer.settings, "vacancies")
    assert [r["vacancy_id"] for r in rows] == ["1", "3"]
    assert rows[0]["requirement"] == "SQL"
    assert rows[0]["professional_role_ids"] == ["96"]
    quarantined = [
        json.loads(line)
        for line in Path(silverizer.settings.data_dir / "silver" / str(entry.quarantine)).read_text().splitlines()
    ]
    assert [(q["row"], q["bronze_key"]) for q in quarantined] == [(2, "vacancies/p.json")]
    assert "salary_range_ordered" in quarantined[0]["reason"]


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
    assert entries[key].status == "unreadable"
    assert reason in str(entries[key].reason)
    assert entries[key].outputs == []
    record = json.loads((silverizer.settings.data_dir / "silver" / str(entries[key].quarantine)).read_text())
    assert record["bronze_key"] == key and record["row"] is None and reason in record["reason"]
    assert all(e.status == "loaded" for k, e in entries.items() if k != key)


def test_gzip_bronze_is_read_transparently(silverizer: Silverizer) -> None:
    put(silverizer, "currency_rates/a.csv.gz", gzip.compress(RATES.encode()))
    (entry,) = silverizer.run_source("currency_rates").entries
    assert entry.status == "loaded" and entry.rows_in == 3000


def test_crash_before_the_ledger_then_rerun_equals_one_clean_run(
    silverizer: Silverizer, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(silverizer, "vacancies/p.json", json.dumps(PAGE))
    put(silverizer, "currency_rates/a.csv", RATES)

    def crash(self: Ledger, entry: object) -> None:
        raise KeyboardInterrupt("killed after the outputs, before the ledger")

    with monkeypatch.context() as patch:
        patch.setattr(Ledger, "record", crash)
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
    assert silver_files(settings) == silver_files(clean_settings)


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
    leftovers = [p for p in (silverizer.settings.data_dir / "silver").rglob("*") if p.is_file()]
    assert leftovers == []
    assert len(silverizer.pending("currency_rates")) == 1


def test_reprocess_replaces_outputs_and_vacuum_removes_stale_ones(silverizer: Silverizer) -> None:
    put(silverizer, "vacancies/p.json", json.dumps(PAGE))
    silverizer.run_source("vacancies")
    before = silver_files(silverizer.settings)
    silverizer.reprocess("vacancies", "vacancies/p.json")
    assert silver_files(silverizer.settings) == before
    # The object changes (a new version): April's vacancy is gone, so its partition file must go too.
    page = dict(PAGE, items=PAGE["items"][:2])  # type: ignore[index]
    put(silverizer, "vacancies/p.json", json.dumps(page))
    (entry,) = silverizer.run_source("vacancies").entries
    files = silver_files(silverizer.settings)
    assert not any("published_month=2025-04" in f for f in files)
    assert [logical_key(o) for o in entry.outputs] == [o for o in files if o.startswith("vacancies/")]
    assert len(list(silverizer.ledger.entries("vacancies"))) == 2  # both versions stay in the history

    # Superseded files stay on disk (a reader may be reading them) until vacuum, which keeps the committed.
    root = silverizer.settings.data_dir / "silver"

    def on_disk() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in (root / "vacancies").rglob("*.parquet"))

    assert any("published_month=2025-04" in k for k in on_disk())
    assert vacuum(silverizer, "vacancies").deleted == []  # younger than the retention
    swept = vacuum(silverizer, "vacancies", timedelta(0))
    # Two attempts at version 1, each with two partition files and a quarantine file.
    assert len(swept.deleted) == 6 and on_disk() == sorted(entry.outputs)
    assert silver_files(silverizer.settings) == files


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
        pytest.param("fail", "unreadable", None, id="fail"),
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

    with pytest.raises(ObjectSupersededError, match="changed while it was processed"):
        silverizer.process("currency_rates", old)  # a run that listed the old version
    assert list(silverizer.ledger.entries("currency_rates")) == []
    assert not list(silverizer.lake.silver.list("currency_rates/"))  # its files taken back
    assert silverizer.run_object("currency_rates", old) is None  # the run's loop skips it
    (entry,) = silverizer.run_source("currency_rates").entries  # the current version loads
    assert entry.etag == current.etag and entry.rows_in == 3001
