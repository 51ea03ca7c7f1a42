"""Typed errors shared by every Mini-Lakehouse service."""

from __future__ import annotations

MAX_KEY_BYTES = 1024  # S3's limit on a key
MAX_SEGMENT_BYTES = 255  # a file name on the local lake (NAME_MAX)


class LakehouseError(Exception):
    """Base class for every error raised by Mini-Lakehouse code."""


class SettingsError(LakehouseError):
    """The environment does not describe a usable configuration."""


class StorageError(LakehouseError):
    """A lake object could not be read, listed or written."""


class InvalidKeyError(StorageError):
    """An object key that the layer cannot store (it would leave the lake's directory, for example)."""

    def __init__(self, layer: str, key: str, why: str) -> None:
        super().__init__(
            f"invalid object key {key!r} for the {layer} layer: {why}; valid keys are relative paths of "
            f"at most {MAX_KEY_BYTES} UTF-8 bytes, with no empty, '.' or '..' segment, no NUL byte and "
            f"segments of at most {MAX_SEGMENT_BYTES} bytes"
        )
        self.layer = layer
        self.key = key


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
