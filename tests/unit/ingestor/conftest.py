from __future__ import annotations

import pytest

from lakehouse_common.settings import Settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor.sample import Sample, SampleConfig, generate_sample


@pytest.fixture
def lake(settings: Settings) -> Lake:
    lake = Lake(settings)
    lake.ensure()
    return lake


@pytest.fixture(scope="session")
def default_sample() -> Sample:
    """The sample ``lakehouse-ingest sample`` writes with no settings: ~3000 vacancies over 2025."""
    return generate_sample(SampleConfig())
