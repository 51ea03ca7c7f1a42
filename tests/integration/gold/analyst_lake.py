"""A small lake for the analyst tools (catalog, report, docs): silver, its ledger, and what the CLI needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gold_silver_factory import Silver, Written

from lakehouse_common.ledger import LedgerEntry
from lakehouse_common.settings import Settings


@dataclass(frozen=True)
class AnalystLake:
    """A local lake with silver, ledger entries, a bronze object and a real dbt-built, published gold."""

    settings: Settings
    ledger: tuple[LedgerEntry, ...]
    bronze_key: str

    def env(self) -> dict[str, str]:
        return {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_DATA_DIR": str(self.settings.data_dir),
            "LAKEHOUSE_SCRATCH_DIR": str(self.settings.scratch_dir),
            "LAKEHOUSE_DBT_PROJECT_DIR": str(self.settings.dbt_project_dir),
            "LAKEHOUSE_CONTRACTS_DIR": str(self.settings.contracts_dir),
        }


def ledger_for(silver: Silver, written: Written) -> list[LedgerEntry]:
    """One ledger entry per bronze file of each source table (child tables have no entries of their own),
    naming the files ``write_silver`` wrote, plus a file that could not be read, as the silverizer
    records them."""
    entries = []
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    for table in ("currency_rates", "vacancies", "vacancy_details"):
        by_key: dict[str, int] = {}
        for row in silver.tables[table]:
            by_key[row["_bronze_key"]] = by_key.get(row["_bronze_key"], 0) + 1
        for key, rows in sorted(by_key.items()):
            started = start + timedelta(seconds=len(entries) * 7)
            # The first vacancies file had one bad row, set aside in the quarantine.
            quarantined = 1 if table == "vacancies" and not any(e.source == table for e in entries) else 0
            entries.append(
                LedgerEntry(
                    source=table,
                    key=key,
                    etag=f"etag-{len(entries)}",
                    size=1000 + rows,
                    status="loaded",
                    contract_version="v1-test",
                    rows_in=rows + quarantined,
                    rows_out=rows,
                    rows_quarantined=quarantined,
                    warnings={"salary_range": 1} if quarantined else {},
                    outputs=sorted(written[(table, key)]),
                    started_at=started.isoformat(),
                    finished_at=(started + timedelta(seconds=2)).isoformat(),
                    seconds=2.0,
                )
            )
    broken = start + timedelta(hours=1)
    entries.append(
        LedgerEntry(
            source="vacancies",
            key="vacancies/2024-03-10/broken.json",
            etag="etag-broken",
            size=12,
            status="unreadable",
            contract_version="v1-test",
            quarantine="_quarantine/vacancies/broken.jsonl",
            reason="not valid JSON: Expecting value: line 1 column 1 (char 0)",
            started_at=broken.isoformat(),
            finished_at=(broken + timedelta(seconds=1)).isoformat(),
            seconds=1.0,
        )
    )
    return entries
