"""A huge single line (matrix row 15): memory stays bounded (peak RSS of a subprocess), and a
line over LAKEHOUSE_SILVERIZER_MAX_LINE_MB is quarantined with its reason without being read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LINE_MB = 64
SCRIPT = """
import json, resource, sys
from pathlib import Path
from lakehouse_common.contracts import ContractRegistry
from lakehouse_common.settings import get_settings
from lakehouse_silverizer.runner import Silverizer
from lakehouse_silverizer.settings import get_settings as options
settings = get_settings()
run = Silverizer(settings, ContractRegistry.from_dir(settings.contracts_dir), options())
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(entry,) = run.run_source("blobs").entries
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "status": entry.status, "reason": entry.reason,
                  "rows_in": entry.rows_in, "rows_out": entry.rows_out}))
"""


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("huge")
    (root / "contracts").mkdir()
    (root / "contracts" / "blobs.yml").write_text(
        "name: blobs\nformat: {type: ndjson}\ncolumns:\n  - {name: blob_id, source: id}\n  - {name: body}\n"
    )
    bronze = root / "data" / "bronze" / "blobs"
    bronze.mkdir(parents=True)
    with (bronze / "big.ndjson").open("w") as out:
        out.write(json.dumps({"id": "a", "body": "small"}) + "\n")
        out.write('{"id": "b", "body": "' + "x" * (LINE_MB << 20) + '"}\n')
        out.write(json.dumps({"id": "c", "body": "small"}) + "\n")
    return root


def run(lake: Path, tmp_path: Path, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    environ.update(
        LAKEHOUSE_BACKEND="local",
        LAKEHOUSE_DATA_DIR=str(tmp_path / "data"),
        LAKEHOUSE_CONTRACTS_DIR=str(lake / "contracts"),
        LAKEHOUSE_SCRATCH_DIR=str(tmp_path / "scratch"),
        **env,
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bronze").symlink_to(lake / "data" / "bronze")
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=environ, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_a_huge_line_loads_with_bounded_memory(lake: Path, tmp_path: Path) -> None:
    result = run(lake, tmp_path)
    assert (result["status"], result["rows_in"], result["rows_out"]) == ("loaded", 3, 3)
    grown_mb = (int(result["peak_kb"]) - int(result["baseline_kb"])) / 1024  # type: ignore[call-overload]
    assert grown_mb < 4 * LINE_MB, f"peak RSS grew by {grown_mb:.0f} MiB for a {LINE_MB} MiB line"


def test_a_line_over_the_maximum_is_quarantined_without_being_read(lake: Path, tmp_path: Path) -> None:
    result = run(lake, tmp_path, LAKEHOUSE_SILVERIZER_MAX_LINE_MB="16")
    assert result["status"] == "quarantined"
    assert "longer than the maximum of 16 MiB (LAKEHOUSE_SILVERIZER_MAX_LINE_MB)" in str(result["reason"])
    grown_mb = (int(result["peak_kb"]) - int(result["baseline_kb"])) / 1024  # type: ignore[call-overload]
    assert grown_mb < LINE_MB / 2, f"peak RSS grew by {grown_mb:.0f} MiB: the long line was read"
