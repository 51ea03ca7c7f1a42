"""``lakehouse-gold docs``: dbt's documentation site (models, columns, tests, the lineage graph).

Runs ``dbt docs generate --static`` with the project's profile, through the same runner and
environment as ``lakehouse-gold build``, against a scratch DuckDB file in which each mart is a view
over the published gold Parquet (what dbt-duckdb's external materialisation leaves behind after a
build), so ``catalog.json`` carries the marts' columns and types as published. Nothing in the lake
is written.

Output (``<scratch>/dbt/docs/target/``): ``index.html`` with ``manifest.json`` and
``catalog.json`` (served by ``dbt docs serve``), and ``static_index.html``, the same site in one
file that opens straight from disk.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.catalog import connect_lake, quote_ident, quote_literal
from lakehouse_gold.dbt_runner import run_dbt
from lakehouse_gold.exceptions import DocsError
from lakehouse_gold.manifest import read_manifest

log = logging.getLogger(__name__)

DOCS_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")


@dataclass(frozen=True)
class DocsResult:
    target: Path
    gold_run_id: str
    models: int
    cataloged: int

    @property
    def static_index(self) -> Path:
        return self.target / "static_index.html"

    def summary(self) -> str:
        return "\n".join(
            [
                f"dbt docs  {self.static_index.as_uri()}",
                f"  files   {self.target}/{{{', '.join(DOCS_FILES)}}}",
                f"  models  {self.models} documented, {self.cataloged} with columns from the database "
                f"(marts as published by gold run {self.gold_run_id})",
                f"  serve   python -m http.server 8080 -d {self.target}   (index.html itself needs HTTP)",
            ]
        )


def docs_dir(settings: Settings) -> Path:
    return settings.scratch_dir.resolve() / "dbt" / "docs"


def generate_docs(settings: Settings, *, lake: Lake | None = None) -> DocsResult:
    """``dbt docs generate --static``; needs a published gold (its manifest names the marts)."""
    lake = lake or Lake(settings)
    manifest = read_manifest(lake)  # ManifestNotFoundError says to run `lakehouse-gold build` first
    run_dir = docs_dir(settings)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    database = run_dir / "lakehouse.duckdb"
    con = connect_lake(settings, database)
    try:
        for mart in manifest.marts:
            uri = lake.gold.uri(mart.key)
            view = f"main.{quote_ident(mart.name)}"
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({quote_literal(uri)})")
    finally:
        con.close()
    # dbt-duckdb's external materialisation would write here; docs generate writes nothing there.
    result = run_dbt(
        settings, external_root=str(run_dir / "external"), run_dir=run_dir, args=("docs", "generate", "--static")
    )
    target = run_dir / "target"
    missing = [name for name in DOCS_FILES if not (target / name).is_file()]
    if result.returncode != 0 or missing:
        raise DocsError(
            f"dbt docs generate exited with code {result.returncode}"
            + (f" and did not write {', '.join(missing)}" if missing else "")
            + f"; its logs are in {run_dir / 'logs'}"
        )
    catalog = json.loads((target / "catalog.json").read_text(encoding="utf-8"))
    docs_manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    models = sum(1 for key in docs_manifest.get("nodes", {}) if key.startswith("model."))
    cataloged = sum(1 for key in catalog.get("nodes", {}) if key.startswith("model."))
    return DocsResult(target=target, gold_run_id=manifest.run_id, models=models, cataloged=cataloged)
