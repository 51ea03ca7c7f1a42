"""Typed errors shared by every Mini-Lakehouse service."""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class for every error raised by Mini-Lakehouse code."""


class SettingsError(LakehouseError):
    """The environment does not describe a usable configuration."""


class StorageError(LakehouseError):
    """A lake object could not be read, listed or written."""


class ObjectNotFoundError(StorageError):
    """The named object does not exist in the layer."""

    def __init__(self, layer: str, key: str) -> None:
        super().__init__(f"object {key!r} does not exist in the {layer} layer")
        self.layer = layer
        self.key = key


class ContractError(LakehouseError):
    """A source contract file is invalid or names an unknown source."""


class UnknownSourceError(ContractError):
    def __init__(self, name: str, known: list[str]) -> None:
        valid = ", ".join(sorted(known)) or "(none: add a contract file)"
        super().__init__(f"no contract for source {name!r}; valid sources are: {valid}")
        self.name = name
