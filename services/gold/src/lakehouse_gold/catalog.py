"""``lakehouse-gold catalog``: a DuckDB file of views over the lake, for analysts.

``duckdb lakehouse.duckdb`` (or ``duckdb.connect("lakehouse.duckdb")``) then queries, with no set-up
on the local lake:

- ``gold.<mart>``: one view per mart of the published gold manifest, over the mart's stable key
  ``marts/<mart>.parquet`` (the latest mart, refreshed right after each gold commit), not over the
  manifest's run file: a catalog lives long, and old run files are collected;
- ``silver.<table>``: one view per silver Delta table (every table of every contract, child tables
  included, plus any other top-level silver table, such as an inferred source's), over
  ``delta_scan('<table>')`` as dbt's sources read it: each query sees the table's newest committed
  version, partition columns included. A declared table that is not a Delta table yet is left out
  and listed in the summary;
- ``load_history``: a live view over ``silver/_load_history``, one row per processed bronze object
  version: status (loaded, quarantined, duplicate or failed), rows in, out, quarantined and
  de-duplicated, start and finish times, seconds, reason, warnings and the Delta version of each
  table's commit (JSON), and ``is_current`` (the key's newest entry that did not fail, the one
  whose rows silver holds). Without a load history yet it is an empty table of the same shape;
  build the catalog again once something is loaded;
- ``quarantine``: a live view over ``silver/_quarantine`` (rejected rows and files, with the
  reason and the raw text), when that table exists;
- ``catalog_objects`` and ``catalog_info``: what the file holds and how it was built.

The views read the lake when queried, so the file stays small and current; on the local lake
they name absolute paths, and DuckDB loads its ``delta`` extension for them by itself (it is
installed from the ``duckdb-extension-delta`` wheel while the catalog is built). On S3 they read
through DuckDB's ``httpfs`` and ``delta`` extensions, and the file holds no credentials: DuckDB
keeps no secret in a database file, and the catalog does not create a persistent one
(``~/.duckdb/stored_secrets``). A session first runs the one statement stored in ``catalog_info``
(key ``s3_setup``), which reads credentials from the environment when it runs::

    CREATE OR REPLACE SECRET lakehouse_s3 (TYPE s3, PROVIDER credential_chain, CHAIN 'env;config',
        REGION 'us-east-1', ENDPOINT 'minio:9000', URL_STYLE 'path', USE_SSL false);

(``credential_chain`` needs DuckDB's ``aws`` extension; ``env`` reads ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``, ``config`` the ``~/.aws`` files. Every
session that reads a silver view on S3 needs that secret: without one, the delta extension asks
the instance-metadata endpoint for credentials and fails.)

The file is built under a temporary name in the output's directory and renamed into place, so a
reader never sees a half-written catalog.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from lakehouse_common import tables as lake_tables
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.progress import NoProgress, Progress
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.dbt_runner import PROFILE_EXTENSIONS, ensure_extensions, resolve_s3_credentials, s3_endpoint
from lakehouse_gold.exceptions import CatalogError, ManifestNotFoundError
from lakehouse_gold.manifest import GoldManifest, mart_key, read_manifest

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path("lakehouse.duckdb")
# The columns of load_history, in order, from silver/_load_history's (lakehouse_common.tables).
LOAD_HISTORY_SELECT = """
    source,
    bronze_key,
    status,
    rows_in,
    rows_out,
    rows_quarantined,
    rows_deduplicated,
    started_at,
    finished_at,
    seconds,
    reason,
    CAST(warnings AS JSON) AS warnings,
    CAST(table_versions AS JSON) AS table_versions,
    contract_version,
    bronze_etag,
    bronze_size,
    bronze_modified,
    version_id,
    run_id,
    -- The key's newest entry that did not fail (the load_history mart's rule): its rows are in silver.
    coalesce(status != 'failed' AND row_number() OVER (
        PARTITION BY source, bronze_key, status = 'failed' ORDER BY bronze_modified DESC, finished_at DESC
    ) = 1, false) AS is_current
"""


@dataclass(frozen=True)
class CatalogObject:
    """One view (or table) in the catalog."""

    schema: str
    name: str
    kind: str
    source: str
    rows: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class CatalogResult:
    path: Path
    backend: str
    objects: tuple[CatalogObject, ...]
    empty_tables: tuple[str, ...]
    gold_run_id: str | None
    setup_sql: str | None
    size_bytes: int
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One screen: what the file holds and how to open it."""
        lines = [f"catalog  {self.path}  ({self.size_bytes / 1024:.0f} KiB, built in {self.seconds:.1f} s)"]
        for schema in ("gold", "silver", "main"):
            mine = [o for o in self.objects if o.schema == schema]
            if mine:
                described = ", ".join(f"{o.name} ({o.rows:,} rows)" for o in mine)
                lines.append(f"  {schema:<7} {described}")
        if self.empty_tables:
            lines.append(f"  no Delta table yet (no view): silver.{', silver.'.join(self.empty_tables)}")
        lines += [f"  note    {note}" for note in self.notes]
        if self.setup_sql:
            lines.append("  S3: run this first in each session (credentials come from the environment, not the file):")
            lines.append(f"    {self.setup_sql};")
            lines.append(f'  e.g.  duckdb -cmd "{self.setup_sql}" {self.path}')
        else:
            lines.append(f"open:    duckdb {self.path}   (or python -c 'import duckdb; duckdb.connect(...)')")
        first = next((o for o in self.objects if o.schema == "gold"), None)
        example = first.qualified if first else "load_history"
        lines.append(f"try:     SELECT * FROM {example} LIMIT 5;")
        lines.append("         SELECT source, status, count(*), sum(rows_quarantined) FROM load_history GROUP BY ALL;")
        return "\n".join(lines)


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def s3_setup_sql(settings: Settings) -> str:
    """The statement a session runs before querying an S3 catalog: a temporary secret, no credentials in it."""
    endpoint, use_ssl = s3_endpoint(settings)
    return (
        "CREATE OR REPLACE SECRET lakehouse_s3 (TYPE s3, PROVIDER credential_chain, CHAIN 'env;config', "
        f"REGION {quote_literal(settings.s3_region)}, ENDPOINT {quote_literal(endpoint)}, "
        f"URL_STYLE '{'path' if settings.s3_path_style else 'vhost'}', USE_SSL {'true' if use_ssl else 'false'})"
    )


def silver_tables(settings: Settings, lake: Lake) -> list[str]:
    """Every silver table: each contract's table and child tables, plus other top-level silver folders
    (bookkeeping such as ``_load_history`` and ``_contracts`` starts with ``_``: not a table of data)."""
    declared = [table for contract in ContractRegistry.from_dir(settings.contracts_dir) for table in contract.tables]
    found = [name for name in lake.silver.folders() if not name.startswith(("_", "."))]
    return sorted(set(declared) | set(found))


def _is_delta_table(lake: Lake, table: str) -> bool:
    return lake_tables.open_table(lake.silver, table) is not None


def delta_scan(uri: str) -> str:
    """SQL reading the Delta table at ``uri``."""
    return f"delta_scan({quote_literal(uri)})"


def connect_lake(settings: Settings, path: Path) -> duckdb.DuckDBPyConnection:
    """A connection to a new DuckDB file that can read the lake: on S3 with httpfs and a *temporary*
    secret (this connection's memory only, never written to the file), so views over it can be bound."""
    extensions = PROFILE_EXTENSIONS[settings.backend]
    ensure_extensions(extensions)  # from their PyPI wheels: DuckDB would download them
    con = duckdb.connect(str(path))
    for name in extensions:
        con.execute(f"LOAD {name}")
    if settings.backend == "s3":
        creds = resolve_s3_credentials(settings)
        endpoint, use_ssl = s3_endpoint(settings)
        options = {
            "KEY_ID": creds.key_id,
            "SECRET": creds.secret,
            "REGION": settings.s3_region,
            "ENDPOINT": endpoint,
            "URL_STYLE": "path" if settings.s3_path_style else "vhost",
        }
        if creds.session_token:
            options["SESSION_TOKEN"] = creds.session_token
        rendered = ", ".join(f"{k} {quote_literal(v)}" for k, v in options.items())
        con.execute(
            f"CREATE OR REPLACE TEMPORARY SECRET lakehouse_catalog_build "
            f"(TYPE s3, {rendered}, USE_SSL {'true' if use_ssl else 'false'})"
        )
    return con


def _count(con: duckdb.DuckDBPyConnection, qualified: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {qualified}").fetchone()
    return int(row[0]) if row else 0


def build_catalog(
    settings: Settings,
    output: Path = DEFAULT_OUTPUT,
    *,
    lake: Lake | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> CatalogResult:
    """Write the catalog file at ``output`` (atomically) and say what it holds."""
    started = time.monotonic()
    progress = progress or NoProgress()
    lake = lake or Lake(settings)
    lake.ensure(["silver", "gold"])
    output = output.expanduser().resolve()
    if output.is_dir():
        raise CatalogError(f"{output} is a directory: name the .duckdb file to write")
    output.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    try:
        manifest: GoldManifest | None = read_manifest(lake)
    except ManifestNotFoundError:
        manifest = None
        notes.append("gold is not published yet: no gold views (run `lakehouse-gold build`, or `make gold`)")
    tables = silver_tables(settings, lake)
    marts = list(manifest.marts) if manifest else []
    progress.start("catalog", len(marts) + len(tables) + 2, "objects")

    run_id = manifest.run_id if manifest else None
    setup = s3_setup_sql(settings) if settings.backend == "s3" else None
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:12]}.tmp")
    objects: list[CatalogObject] = []
    empty: list[str] = []
    try:
        con = connect_lake(settings, tmp)
        try:
            con.execute("CREATE SCHEMA gold")
            con.execute("CREATE SCHEMA silver")
            for mart in marts:
                uri = lake.gold.uri(mart_key(mart.name))  # the stable key: run files are collected
                qualified = f"gold.{quote_ident(mart.name)}"
                con.execute(f"CREATE VIEW {qualified} AS SELECT * FROM read_parquet({quote_literal(uri)})")
                comment = f"gold mart {mart.name} ({uri}), {mart.rows} rows in gold run {run_id}"
                con.execute(f"COMMENT ON VIEW {qualified} IS {quote_literal(comment)}")
                objects.append(CatalogObject("gold", mart.name, "view", uri, _count(con, qualified)))
                progress.update(len(objects) + len(empty), views=len(objects))
            objects.append(_load_history(con, lake, notes))
            if _is_delta_table(lake, lake_tables.QUARANTINE):
                uri = lake.silver.table_uri(lake_tables.QUARANTINE)
                con.execute(f"CREATE VIEW main.quarantine AS SELECT * FROM {delta_scan(uri)}")
                comment = f"one row per quarantined row or file, from the Delta table {uri}"
                con.execute(f"COMMENT ON VIEW main.quarantine IS {quote_literal(comment)}")
                objects.append(CatalogObject("main", "quarantine", "view", uri, _count(con, "main.quarantine")))
            progress.update(len(objects) + len(empty), views=len(objects))
            for table in tables:
                if not _is_delta_table(lake, table):
                    empty.append(table)
                    progress.update(len(objects) + len(empty), views=len(objects))
                    continue
                uri = lake.silver.table_uri(table)
                qualified = f"silver.{quote_ident(table)}"
                con.execute(f"CREATE VIEW {qualified} AS SELECT * FROM {delta_scan(uri)}")
                comment = f"silver Delta table {table} ({uri}), its newest committed version"
                con.execute(f"COMMENT ON VIEW {qualified} IS {quote_literal(comment)}")
                objects.append(CatalogObject("silver", table, "view", uri, _count(con, qualified)))
                progress.update(len(objects) + len(empty), views=len(objects))
            _describe(con, settings, objects, manifest, setup, now or datetime.now(UTC))
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, output)
    except duckdb.Error as exc:
        raise CatalogError(f"cannot build the catalog {output}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        progress.finish()
    result = CatalogResult(
        path=output,
        backend=settings.backend,
        objects=tuple(objects),
        empty_tables=tuple(empty),
        gold_run_id=run_id,
        setup_sql=setup,
        size_bytes=output.stat().st_size,
        seconds=time.monotonic() - started,
        notes=tuple(notes),
    )
    log.info("catalog written to %s: %d objects", output, len(objects))
    return result


def _load_history(con: duckdb.DuckDBPyConnection, lake: Lake, notes: list[str]) -> CatalogObject:
    """A live view over ``silver/_load_history``, or an empty table of the same shape when there is none."""
    uri = lake.silver.table_uri(lake_tables.LOAD_HISTORY)
    if _is_delta_table(lake, lake_tables.LOAD_HISTORY):
        con.execute(f"CREATE VIEW main.load_history AS SELECT {LOAD_HISTORY_SELECT} FROM {delta_scan(uri)}")
        kind = "view"
    else:
        empty = lake_tables.load_history_schema().empty_table()
        con.register("empty_load_history", empty)
        try:
            con.execute(f"CREATE TABLE main.load_history AS SELECT {LOAD_HISTORY_SELECT} FROM empty_load_history")
        finally:
            con.unregister("empty_load_history")
        kind = "table"
        notes.append("no load history yet: load_history is an empty table; build the catalog again after a silver run")
    con.execute(
        f"COMMENT ON {kind.upper()} main.load_history IS "
        f"{quote_literal(f'one row per processed bronze object version, from the Delta table {uri}')}"
    )
    return CatalogObject("main", "load_history", kind, uri, _count(con, "main.load_history"))


def _describe(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    objects: list[CatalogObject],
    manifest: GoldManifest | None,
    setup: str | None,
    built_at: datetime,
) -> None:
    con.execute(
        "CREATE TABLE main.catalog_objects (schema_name VARCHAR, object_name VARCHAR, kind VARCHAR, "
        "source VARCHAR, rows_at_build BIGINT)"
    )
    con.executemany(
        "INSERT INTO main.catalog_objects VALUES (?, ?, ?, ?, ?)",
        [[o.schema, o.name, o.kind, o.source, o.rows] for o in objects],
    )
    info = {
        "built_at": built_at.isoformat(),
        "backend": settings.backend,
        "bronze": settings.layer_uri("bronze"),
        "silver": settings.layer_uri("silver"),
        "gold": settings.layer_uri("gold"),
        "gold_run_id": manifest.run_id if manifest else "",
        "gold_published_at": manifest.published_at.isoformat() if manifest else "",
        "s3_setup": setup or "",
    }
    con.execute("CREATE TABLE main.catalog_info (key VARCHAR, value VARCHAR)")
    con.executemany("INSERT INTO main.catalog_info VALUES (?, ?)", [[k, v] for k, v in info.items()])
