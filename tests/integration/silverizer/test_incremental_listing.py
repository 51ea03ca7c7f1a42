"""Finding new bronze objects costs what is new: a run lists only keys after the source's
listing cursor, and still finds everything, exactly once (see lakehouse_silverizer.listing).

On both backends (S3 ``StartAfter`` on the moto server, the pruned walk locally): in-order keys are
found by the incremental listing; a file dropped under an earlier name is found by the next full
listing, or at once when an event names it; a failed run or a lost cursor costs a listing, never
a lost or doubled object."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from lakehouse_common import tables
from lakehouse_common.exceptions import StorageError
from lakehouse_common.settings import Settings
from lakehouse_silverizer import listing as listing_module
from lakehouse_silverizer.runner import LoadRecord, Silverizer

from .conftest import Rows, SilverizerFactory, silver_state

SOURCE = "currency_rates"


def rates(day: int, *codes: str) -> bytes:
    return ("date,currency,rate\n" + "".join(f"2024-03-{day:02d},{c},{1 + day / 10:.2f}\n" for c in codes)).encode()


def put(run: Silverizer, name: str, day: int, *codes: str) -> str:
    key = f"{SOURCE}/ingest_date=2024-03-{day:02d}/{name}.csv"
    run.lake.bronze.put_bytes(key, rates(day, *codes))
    return key


def loaded(entries: Sequence[LoadRecord]) -> list[str]:
    return [e.key for e in entries]


def test_an_incremental_run_lists_only_keys_after_the_cursor(make_silverizer: SilverizerFactory) -> None:
    run = make_silverizer()
    first = [put(run, f"0900{i}0-aa", 1, f"A{i}A") for i in range(3)]
    assert sorted(loaded(run.run_source(SOURCE).entries)) == first  # a full listing; it sets the cursor
    cursor = listing_module.read_cursor(run.lake.silver, SOURCE)
    assert cursor is not None and cursor.start_after == first[-1]

    new = [put(run, "100000-bb", 2, "BBB"), put(run, "100001-cc", 2, "CCC")]
    found = run.listing(SOURCE)
    assert not found.full and found.start_after == first[-1]
    assert [o.key for o in found.objects] == new  # not the three before the cursor
    assert loaded(run.run_source(SOURCE, incremental=True).entries) == new
    assert run.listing(SOURCE).objects == []  # the cursor moved past them
    assert run.run_source(SOURCE, incremental=True).entries == []


def test_a_file_dropped_before_the_cursor_is_found_by_an_event_or_the_next_full_listing(
    make_silverizer: SilverizerFactory,
) -> None:
    run = make_silverizer()
    put(run, "120000-aa", 5, "AAA")
    run.run_source(SOURCE)
    early = put(run, "dropped-by-hand", 1, "EEE")  # day 1 sorts before the cursor, on day 5
    assert run.run_source(SOURCE, incremental=True).entries == []  # the documented trade-off
    named = run.listing(SOURCE, hints=[early])
    assert [o.key for o in named.objects] == [early] and named.hinted == [early]
    # A full listing is due once the last one is older than the interval (0 here: always).
    assert loaded(make_silverizer(full_listing_interval_s=0).run_source(SOURCE, incremental=True).entries) == [early]


def test_the_default_run_lists_in_full_and_finds_what_the_cursor_would_miss(make_silverizer: SilverizerFactory) -> None:
    run = make_silverizer()
    put(run, "120000-aa", 5, "AAA")
    run.run_source(SOURCE, incremental=True)
    early = put(run, "dropped-by-hand", 1, "EEE")
    assert loaded(run.run_source(SOURCE).entries) == [early]  # `lakehouse-silverize run` without --incremental


def test_a_failed_run_leaves_the_cursor_and_the_rerun_finds_the_object(
    make_silverizer: SilverizerFactory, monkeypatch: pytest.MonkeyPatch, reader_rows: Rows
) -> None:
    run = make_silverizer()
    put(run, "120000-aa", 5, "AAA")
    run.run_source(SOURCE)
    before = listing_module.read_cursor(run.lake.silver, SOURCE)
    bad, good = put(run, "130000-bb", 6, "BBB"), put(run, "130001-cc", 6, "CCC")
    real_stage = Silverizer._stage

    def failing_stage(self: Silverizer, source: str, info: object, *args: object, **kwargs: object) -> None:
        if getattr(info, "key", None) == bad:
            raise StorageError(f"injected: {bad} cannot be read")
        real_stage(self, source, info, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Silverizer, "_stage", failing_stage)
    with pytest.raises(StorageError, match="injected"):
        make_silverizer().run_source(SOURCE, incremental=True)
    assert listing_module.read_cursor(run.lake.silver, SOURCE) == before
    monkeypatch.setattr(Silverizer, "_stage", real_stage)
    assert sorted(loaded(make_silverizer().run_source(SOURCE, incremental=True).entries)) == [bad, good]
    assert sorted(r["currency"] for r in reader_rows(SOURCE)) == ["AAA", "BBB", "CCC"]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(b"{not json", id="corrupt"),
        pytest.param(None, id="deleted"),
    ],
)
def test_a_lost_or_corrupt_cursor_costs_a_full_listing_never_a_second_load(
    make_silverizer: SilverizerFactory, lake_env: Settings, damage: bytes | None
) -> None:
    run = make_silverizer()
    keys = [put(run, f"12000{i}-aa", 5, f"A{i}A") for i in range(3)]
    run.run_source(SOURCE)
    state = silver_state(run)
    key = listing_module.cursor_key(SOURCE)
    if damage is None:
        run.lake.silver.delete([key])
    else:
        run.lake.silver.put_bytes(key, damage)
    again = make_silverizer()
    found = again.listing(SOURCE)
    assert found.full and sorted(o.key for o in found.objects) == keys
    assert again.run_source(SOURCE, incremental=True).entries == []  # every transaction is there
    assert silver_state(again) == state
    assert tables.pending(run.lake.silver, SOURCE, found.objects) == []
    assert listing_module.read_cursor(run.lake.silver, SOURCE) is not None  # the full listing rewrote it
