"""The dbt model contracts: column names, ``data_type`` and descriptions from the project's YAML files.

Every mart is a contracted model (``dbt/dbt_project.yml`` enforces contracts on ``marts``), so
the declared ``data_type`` of each column is what the mart promises to its readers. The Postgres
serving layer creates its tables from these declarations, not from whatever the Parquet holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lakehouse_gold.exceptions import MartContractError


@dataclass(frozen=True)
class ContractColumn:
    name: str
    data_type: str | None
    description: str


@dataclass(frozen=True)
class ModelContract:
    name: str
    description: str
    columns: tuple[ContractColumn, ...]
    path: Path


def read_model_contracts(project_dir: Path) -> dict[str, ModelContract]:
    """Every model with a ``columns`` list under ``<project_dir>/models``, by model name."""
    models_dir = project_dir / "models"
    if not models_dir.is_dir():
        raise MartContractError(
            f"no dbt models directory at {models_dir.resolve()}: point LAKEHOUSE_DBT_PROJECT_DIR at the dbt project"
        )
    contracts: dict[str, ModelContract] = {}
    paths = sorted([*models_dir.rglob("*.yml"), *models_dir.rglob("*.yaml")])
    for path in paths:
        for model in _models(path):
            contract = _contract(model, path)
            if contract is not None:
                contracts[contract.name] = contract
    return contracts


def _models(path: Path) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MartContractError(f"cannot read the dbt properties file {path}: {exc}") from exc
    if not isinstance(document, dict):
        return []
    models = document.get("models") or []
    if not isinstance(models, list):
        raise MartContractError(f"{path}: 'models' must be a list of models, got {type(models).__name__}")
    return [model for model in models if isinstance(model, dict)]


def _contract(model: dict[str, Any], path: Path) -> ModelContract | None:
    name = model.get("name")
    columns = model.get("columns") or []
    if not isinstance(name, str) or not isinstance(columns, list) or not columns:
        return None
    parsed: list[ContractColumn] = []
    for column in columns:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            raise MartContractError(f"{path}: model {name!r} has a column without a name: {column!r}")
        data_type = column.get("data_type")
        parsed.append(
            ContractColumn(
                name=column["name"],
                data_type=str(data_type) if data_type is not None else None,
                description=_text(column.get("description")),
            )
        )
    return ModelContract(name=name, description=_text(model.get("description")), columns=tuple(parsed), path=path)


def _text(value: object) -> str:
    return " ".join(str(value).split()) if value else ""
