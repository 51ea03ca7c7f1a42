"""``lakehouse-gold catalog``: a DuckDB file of views over the lake, for analysts.

``duckdb lakehouse.duckdb`` (or ``duckdb.connect("lakehouse.duckdb")``) then queries, with no set-up
on the local lake:

- ``gold.<mart>``: one view per mart of the published gold manifest, over the mart's stable key
  ``marts/<mart>.parquet`` (the latest mart, refreshed right after each gold commit), not over the
  manifest's run file: a catalog lives long, and old run files are collected;
- ``silver.<table>``: one view per silver table (every table of every contract, child tables
  included, plus any other top-level silver folder, such as an inferred source), hive-partitioned
  like dbt's sources, over the committed files only (``main.silver_files``), as dbt reads them;
  a table with no Parquet file yet is left out and listed in the summary;
- ``load_history``: a live view over the ledger (``silver/_ledger/<source>/*.json``), one row per
  processed bronze object version: status, rows in, out, quarantined and de-duplicated, start and
  finish times, seconds, reason, outputs, and ``is_current`` (the key's newest entry, the one
  readers see). On an empty ledger it is an empty table instead (a view over no files cannot be
  created); build the catalog again once something is loaded;
- ``silver_files``: the silver files that each bronze key's newest entry commits, the same rule
  as dbt's ``main.silver_files`` (``dbt/macros/silver_ledger.sql``);
- ``catalog_objects`` and ``catalog_info``: what the file holds and how it was built.

The views read the lake when queried, so the file stays small and current; on the local lake
they name absolute paths. On S3 they read through DuckDB's ``httpfs``, and the file holds no
credentials: DuckDB keeps no secret in a database file, and the catalog does not create a
persistent one (``~/.duckdb/stored_secrets``). A session first runs the one statement stored in
``catalog_info`` (key ``s3_setup``), which reads credentials from the environment when it runs::

    CREATE OR REPLACE SECRET lakehouse_s3 (TYPE s3, PROVIDER credential_chain, CHAIN 'env;config',
        REGION 'us-east-1', ENDPOINT 'minio:9000', URL_STYLE 'path', USE_SSL false);

(``credential_chain`` needs DuckDB's ``aws`` extension; ``env`` reads ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``, ``config`` the ``~/.aws`` files.)

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

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.ledger import LEDGER_PREFIX
from lakehouse_common.progress import NoProgress, Progress
from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_gold.dbt_runner import ensure_httpfs, resolve_s3_credentials, s3_endpoint
from lakehouse_gold.exceptions import CatalogError, ManifestNotFoundError
from lakehouse_gold.manifest import GoldManifest, mart_key, read_manifest

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path("lakehouse.duckdb")
LOAD_HISTORY_COLUMNS: dict[str, str] = {
    "source": "VARCHAR",
    "key": "VARCHAR",
    "etag": "VARCHAR",
    "size": "BIGINT",
    "status": "VARCHAR",
    "contract_version": "VARCHAR",
    "rows_in": "BIGINT",
    "rows_out": "BIGINT",
    "rows_quarantined": "BIGINT",
    "rows_deduplicated": "BIGINT",
    "warnings": "JSON",
    "outputs": "VARCHAR[]",
    "quarantine": "VARCHAR",
    "reason": "VARCHAR",
    "started_at": "VARCHAR",
    "finished_at": "VARCHAR",
    "seconds": "DOUBLE",
    "bronze_modified": "VARCHAR",
}
# The columns of load_history, in order, from the ledger entry's fields.
LOAD_HISTORY_SELECT = """
    source,
    key AS bronze_key,
    status,
    rows_in,
    rows_out,
    rows_quarantined,
    rows_deduplicated,
    CAST(started_at AS TIMESTAMPTZ) AS started_at,
    CAST(finished_at AS TIMESTAMPTZ) AS finished_at,
    seconds,
    reason,
    quarantine,
    warnings,
    outputs,
    contract_version,
    etag AS bronze_etag,
    size AS bronze_size,
    CAST(nullif(bronze_modified, '') AS TIMESTAMPTZ) AS bronze_modified,
    -- lakehouse_common.ledger.version_rank: entries with no version time rank lowest.
    row_number() OVER (
        PARTITION BY source, key ORDER BY nullif(bronze_modified, '') DESC NULLS LAST, finished_at DESC
    ) = 1 AS is_current
"""
# The files readers see: the newest entry's (is_current) outputs and quarantine file, by full address.
SILVER_FILES_SQL = """
CREATE VIEW main.silver_files AS
SELECT source, bronze_key, {root} || '/' || file AS path
FROM (
    SELECT source, bronze_key,
        unnest(list_concat(coalesce(outputs, []), CASE WHEN quarantine IS NULL THEN [] ELSE [quarantine] END)) AS file
    FROM main.load_history
    WHERE is_current
)
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
            lines.append(f"  no files yet (no view): silver.{', silver.'.join(self.empty_tables)}")
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
    """Every silver table: each contract's table and child tables, plus other top-level silver folders."""
    declared = [table for contract in ContractRegistry.from_dir(settings.contracts_dir) for table in contract.tables]
    found = [name for name in lake.silver.folders() if not name.startswith(("_", "."))]
    return sorted(set(declared) | set(found))


def _has_parquet(lake: Lake, table: str) -> bool:
    return any(info.key.endswith(".parquet") for info in lake.silver.list(f"{table}/"))


def connect_lake(settings: Settings, path: Path) -> duckdb.DuckDBPyConnection:
    """A connection to a new DuckDB file that can read the lake: on S3 with httpfs and a *temporary*
    secret (this connection's memory only, never written to the file), so views over it can be bound."""
    con = duckdb.connect(str(path))
    if settings.backend == "s3":
        ensure_httpfs()
        con.execute("LOAD httpfs")
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
    ledger_keys = sum(1 for info in lake.silver.list(f"{LEDGER_PREFIX}/") if info.key.endswith(".json"))
    marts = list(manifest.marts) if manifest else []
    progress.start("catalog", len(marts) + len(tables) + 1, "objects")

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
            objects.append(_load_history(con, lake, ledger_keys, notes))
            con.execute(SILVER_FILES_SQL.format(root=quote_literal(lake.silver.uri())))
            progress.update(len(objects) + len(empty), views=len(objects))
            for table in tables:
                if not _has_parquet(lake, table):
                    empty.append(table)
                    progress.update(len(objects) + len(empty), views=len(objects))
                    continue
                glob = f"{lake.silver.uri(table)}/**/*.parquet"
                qualified = f"silver.{quote_ident(table)}"
                con.execute(
                    f"CREATE VIEW {qualified} AS SELECT * EXCLUDE (_silver_file) FROM read_parquet("
                    f"{quote_literal(glob)}, hive_partitioning = true, union_by_name = true, "
                    "filename = '_silver_file') WHERE _silver_file IN (SELECT path FROM main.silver_files)"
                )
                comment = f"silver table {table} ({glob}), committed files only (main.silver_files)"
                con.execute(f"COMMENT ON VIEW {qualified} IS {quote_literal(comment)}")
                objects.append(CatalogObject("silver", table, "view", glob, _count(con, qualified)))
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


def _load_history(con: duckdb.DuckDBPyConnection, lake: Lake, entries: int, notes: list[str]) -> CatalogObject:
    """A live view over the ledger's JSON entries, or an empty table of the same shape when there are none."""
    columns = "{" + ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in LOAD_HISTORY_COLUMNS.items()) + "}"
    glob = f"{lake.silver.uri(LEDGER_PREFIX)}/*/*.json"
    source = f"read_json({quote_literal(glob)}, format = 'auto', columns = {columns})"
    if entries:
        con.execute(f"CREATE VIEW main.load_history AS SELECT {LOAD_HISTORY_SELECT} FROM {source}")
        kind = "view"
    else:
        empty = ", ".join(f"CAST(NULL AS {t}) AS {quote_ident(k)}" for k, t in LOAD_HISTORY_COLUMNS.items())
        con.execute(f"CREATE TABLE main.load_history AS SELECT {LOAD_HISTORY_SELECT} FROM (SELECT {empty}) WHERE false")
        kind = "table"
        notes.append("the ledger is empty: load_history is an empty table; build the catalog again after a silver run")
    con.execute(
        f"COMMENT ON {kind.upper()} main.load_history IS "
        f"{quote_literal(f'one row per processed bronze object version, from the ledger ({glob})')}"
    )
    return CatalogObject("main", "load_history", kind, glob, _count(con, "main.load_history"))


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
