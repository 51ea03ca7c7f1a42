"""A small lake for the analyst tools (catalog, report, docs): silver, its load history, and what the CLI needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gold_silver_factory import Row, Silver, history_row, record_history, record_quarantine, write_silver

from lakehouse_common.settings import Settings
from lakehouse_common.storage import LayerStore

BROKEN_KEY = "vacancies/2024-03-10/broken.json"
BROKEN_REASON = "not valid JSON: Expecting value: line 1 column 1 (char 0)"


@dataclass(frozen=True)
class AnalystLake:
    """A local lake with silver Delta tables, a load history, a bronze object and a real dbt-built, published gold."""

    settings: Settings
    history: tuple[Row, ...]
    bronze_key: str

    def env(self) -> dict[str, str]:
        return {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_DATA_DIR": str(self.settings.data_dir),
            "LAKEHOUSE_SCRATCH_DIR": str(self.settings.scratch_dir),
            "LAKEHOUSE_DBT_PROJECT_DIR": str(self.settings.dbt_project_dir),
            "LAKEHOUSE_CONTRACTS_DIR": str(self.settings.contracts_dir),
        }


def load_analyst_silver(store: LayerStore, silver: Silver) -> list[Row]:
    """Silver's tables from ``silver``, and a load history as the silverizer records it: one row per
    bronze file of each source (child tables have none of their own), seven seconds apart, the
    first vacancies file with one row quarantined, and last a file quarantined whole (it is not
    JSON), with its row in ``silver/_quarantine``. Returns the history rows, oldest first."""
    loaded = write_silver(store, silver, record=False)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    history: list[Row] = []
    for row in loaded:  # by source, then key
        started = start + timedelta(seconds=len(history) * 7)
        quarantined = 1 if row["source"] == "vacancies" and not any(h["source"] == "vacancies" for h in history) else 0
        extra: dict[str, Any] = {"warnings": '{"salary_range": 1}'} if quarantined else {}
        history.append(
            history_row(
                row["source"],
                row["bronze_key"],
                bronze_etag=f"etag-{len(history)}",
                bronze_size=1000 + row["rows_out"],
                bronze_modified=row["bronze_modified"],
                rows_in=row["rows_out"] + quarantined,
                rows_out=row["rows_out"],
                rows_quarantined=quarantined,
                started_at=started,
                finished_at=started + timedelta(seconds=2),
                **extra,
            )
        )
    broken = start + timedelta(hours=1)
    history.append(
        history_row(
            "vacancies",
            BROKEN_KEY,
            "quarantined",
            bronze_etag="etag-broken",
            bronze_size=12,
            bronze_modified=broken - timedelta(minutes=5),
            reason=BROKEN_REASON,
            started_at=broken,
            finished_at=broken + timedelta(seconds=1),
            seconds=1.0,
        )
    )
    record_history(store, history)
    record_quarantine(
        store,
        [
            {
                "source": "vacancies",
                "bronze_key": BROKEN_KEY,
                "bronze_etag": "etag-broken",
                "row": None,
                "field": None,
                "reason": BROKEN_REASON,
                "raw": "{not json",
                "run_id": "gold-tests",
                "quarantined_at": broken + timedelta(seconds=1),
            }
        ],
    )
    return history
