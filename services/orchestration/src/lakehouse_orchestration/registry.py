"""The source registry as the DAGs see it: one entry per contract file, and the Assets of each layer.

Asset names are stable and backend-independent (``bronze/<source>``, ``silver/<table>``,
``gold/<mart>``, ``replica/gold``); their URIs say where the data lives on the configured
backend. Everything here is computed from the settings and the contract files only: no
network call, so the DAG files can use it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow.sdk import Asset

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings

REPLICA_ASSET = "replica/gold"


@dataclass(frozen=True)
class SourceSpec:
    """A declared source: its bronze prefix and the silver tables it feeds."""

    name: str
    prefix: str
    tables: tuple[str, ...]


def sources(settings: Settings) -> list[SourceSpec]:
    registry = ContractRegistry.from_dir(settings.contracts_dir)
    return [SourceSpec(name=c.name, prefix=c.prefix, tables=tuple(c.tables)) for c in registry]


def marts(settings: Settings) -> list[str]:
    """The dbt marts, one per model file in ``models/marts`` (each is one gold object)."""
    return sorted(p.stem for p in (settings.dbt_project_dir / "models" / "marts").glob("*.sql"))


def layer_uri(settings: Settings, layer: str, path: str) -> str:
    if settings.backend == "s3":
        return f"s3://{settings.bucket(layer)}/{path}"
    return (Path(settings.data_dir).resolve() / layer / path).as_uri()


def bronze_asset(settings: Settings, source: SourceSpec) -> Asset:
    uri = layer_uri(settings, "bronze", source.prefix.rstrip("/"))
    return Asset(name=f"bronze/{source.name}", uri=uri, group="bronze")


def silver_assets(settings: Settings, source: SourceSpec) -> list[Asset]:
    return [
        Asset(name=f"silver/{table}", uri=layer_uri(settings, "silver", table), group="silver")
        for table in source.tables
    ]


def gold_assets(settings: Settings) -> list[Asset]:
    return [
        Asset(name=f"gold/{m}", uri=layer_uri(settings, "gold", f"marts/{m}.parquet"), group="gold")
        for m in marts(settings)
    ]


def replica_asset(settings: Settings) -> Asset | None:
    """The AWS copy of gold, or None when no replica is configured."""
    if not settings.replica_uri:
        return None
    return Asset(name=REPLICA_ASSET, uri=settings.replica_uri.rstrip("/"), group="replica")
