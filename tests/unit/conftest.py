"""Fixtures shared by the unit tests: a local lake under tmp_path with the repository's contracts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse_common.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(
        backend="local", data_dir=tmp_path / "data", contracts_dir=REPO / "contracts", scratch_dir=tmp_path / "scratch"
    )
