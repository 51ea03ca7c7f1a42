from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse_common.settings import Settings, get_settings
from lakehouse_common.storage import Lake
from lakehouse_ingestor.sample import Sample, SampleConfig, generate_sample

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(
        backend="local", data_dir=tmp_path / "data", contracts_dir=REPO / "contracts", scratch_dir=tmp_path / "scratch"
    )


@pytest.fixture
def lake(settings: Settings) -> Lake:
    lake = Lake(settings)
    lake.ensure()
    return lake


@pytest.fixture(scope="session")
def default_sample() -> Sample:
    """The sample ``lakehouse-ingest sample`` writes with no settings: ~3000 vacancies over 2025."""
    return generate_sample(SampleConfig())
