from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings, get_settings
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import SilverizerSettings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(
        backend="local", data_dir=tmp_path / "data", contracts_dir=REPO / "contracts", scratch_dir=tmp_path / "scratch"
    )


@pytest.fixture
def silverizer(settings: Settings) -> Silverizer:
    # Small blocks, so that even tiny test files span several chunks and threads.
    return Silverizer(
        settings, ContractRegistry.from_dir(settings.contracts_dir), SilverizerSettings(block_size=1 << 16)
    )
