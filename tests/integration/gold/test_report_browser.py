"""``lakehouse-gold report`` rendered in a real headless Chromium (Debian's), from a real small gold.

The page must load from a file with no console error and no request but its own, and each chart
must be an SVG of non-zero size with data marks that the browser actually lays out. A screenshot
is saved; with ``UPDATE_REPORT_SCREENSHOT=1`` it also replaces ``docs/report.png`` (the README's
picture), which otherwise stays untouched so that ``make test`` leaves the tree clean.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest
from analyst_lake import AnalystLake
from headless_chromium import chromium_binary, open_page

from lakehouse_common.storage import Lake
from lakehouse_gold.cli import main
from lakehouse_gold.report import REPORT_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
README_SCREENSHOT = REPO / "docs" / "report.png"
CHARTS = {"vacancies-by-region", "top-skills", "skills-trend", "salary-bands", "rows-by-source"}
MAX_SCREENSHOT_BYTES = 300 * 1024

CHART_PROBE = """
[...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('.mark')];
  const drawn = marks.filter(m => { const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
  return {id: svg.dataset.chart, width: box.width, height: box.height, marks: marks.length, drawn: drawn.length,
          kinds: [...new Set(marks.map(m => m.tagName))].sort()};
})
"""
PAGE_PROBE = """
({title: document.title, sections: [...document.querySelectorAll('section')].map(s => s.id),
  loads: document.querySelectorAll('#last-loads tbody tr').length,
  quarantined: document.querySelectorAll('#last-loads .badge.quarantined').length,
  freshness: [...document.querySelectorAll('#freshness tbody tr')].map(r => r.cells[0].textContent),
  scripts: document.scripts.length})
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs the Debian package chromium")
        pytest.skip("no /usr/bin/chromium: apt-get install -y --no-install-recommends chromium")
    return binary


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_report_renders_in_headless_chromium(
    chromium: str, analyst_env: AnalystLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "report" / "index.html"

    assert main(["report", "--output", str(output)]) == 0

    out = capsys.readouterr().out
    assert f"report   {output.as_uri()}" in out
    lake = Lake(analyst_env.settings)
    assert lake.gold.read_bytes(REPORT_KEY) == output.read_bytes()  # the copy in gold, beside the marts

    with open_page(output.as_uri(), tmp_path / "chromium-profile") as page:
        charts: list[dict[str, Any]] = page.evaluate(CHART_PROBE)
        facts: dict[str, Any] = page.evaluate(PAGE_PROBE)
        shot = tmp_path / "report.png"
        width, height = page.screenshot(shot, width=1280, max_height=1560)
        errors = page.console_errors()
        requests = page.requested_urls()

    assert errors == []
    assert requests == [output.as_uri()]  # offline: nothing but the page itself is fetched
    assert {c["id"] for c in charts} == CHARTS
    for chart in charts:
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["marks"] > 0, chart
        assert chart["drawn"] == chart["marks"], chart  # every mark has a laid-out box
    by_id = {c["id"]: c for c in charts}
    assert by_id["vacancies-by-region"]["kinds"] == ["circle", "path"]
    assert by_id["top-skills"]["kinds"] == ["rect"] and by_id["salary-bands"]["kinds"] == ["g"]
    assert facts["scripts"] == 0
    assert facts["loads"] == 15 and facts["quarantined"] == 1  # the newest load is the file quarantined whole
    assert facts["freshness"] == ["bronze", "silver", "gold"]
    assert analyst_env.bronze_key in output.read_text(encoding="utf-8")  # the newest data object, not a sidecar

    data = shot.read_bytes()
    assert png_size(data) == (width, height) and width == 1280 and height > 800
    assert len(data) < MAX_SCREENSHOT_BYTES
    if os.environ.get("UPDATE_REPORT_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        README_SCREENSHOT.write_bytes(data)
