from __future__ import annotations

import pytest

from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import Settings
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import SilverizerSettings


@pytest.fixture
def silverizer(settings: Settings) -> Silverizer:
    # Small blocks, so that even tiny test files span several chunks and threads.
    return Silverizer(
        settings, ContractRegistry.from_dir(settings.contracts_dir), SilverizerSettings(block_size=1 << 16)
    )
