"""Names and sizes of the bench inputs, without heavy imports.

:mod:`bench.run` imports only this (not numpy or pyarrow) and generates inputs in a child
process: a child's peak RSS starts from its parent's RSS at fork time, so the parent stays small.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
FORMATS = ("csv", "ndjson")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB)?\s*$", re.IGNORECASE)
_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9}


class GenerateError(Exception):
    """The generator was asked for something it cannot produce."""


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    fmt: str
    size_label: str
    bytes: int
    rows: int
    seconds: float
    cached: bool

    @property
    def mb(self) -> float:
        return self.bytes / 1e6


def _match(text: str) -> re.Match[str]:
    match = _SIZE.match(text)
    if match is None:
        raise GenerateError(f"size {text!r} must look like 500KB, 200MB, 2GB or 200 (MB)")
    return match


def parse_size(text: str) -> int:
    """``"200MB"`` → 200_000_000 bytes (decimal units: KB, MB, GB; a bare number is MB)."""
    match = _match(text)
    return int(float(match[1]) * _UNITS[(match[2] or "MB").upper()])


def size_label(text: str) -> str:
    """Canonical file-name form of a size: ``"2 GB"`` → ``"2gb"``, ``"200"`` → ``"200mb"``."""
    match = _match(text)
    return f"{match[1]}{(match[2] or 'MB').lower()}"


def data_path(size: str, fmt: str, data_dir: Path = DATA_DIR) -> Path:
    if fmt not in FORMATS:
        raise GenerateError(f"format {fmt!r} is not one of: {', '.join(FORMATS)}")
    return data_dir / f"vacancies_{size_label(size)}.{fmt}"


def meta_path(path: Path) -> Path:
    """The sidecar recording how a bench file was generated (rows, bytes, seed, generator version)."""
    return path.with_name(path.name + ".meta.json")


def load_generated(size: str, fmt: str, data_dir: Path = DATA_DIR) -> GeneratedFile:
    """A bench file already generated, from its sidecar."""
    path = data_path(size, fmt, data_dir)
    try:
        meta = json.loads(meta_path(path).read_text())
    except FileNotFoundError:
        raise GenerateError(f"{path} has not been generated (python -m bench.generate --sizes {size})") from None
    return GeneratedFile(path, fmt, size_label(size), int(meta["bytes"]), int(meta["rows"]), 0.0, cached=True)
