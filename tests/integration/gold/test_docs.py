"""``lakehouse-gold docs``: the real ``dbt docs generate`` writes the site, with the marts as published."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from analyst_lake import AnalystLake

from lakehouse_common.storage import Lake
from lakehouse_gold.cli import main
from lakehouse_gold.docs import DOCS_FILES, docs_dir
from lakehouse_gold.manifest import read_manifest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_cli_docs_generates_the_site_and_catalog(analyst_env: AnalystLake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs"]) == 0

    target = docs_dir(analyst_env.settings) / "target"
    out = capsys.readouterr().out
    assert f"dbt docs  {(target / 'static_index.html').as_uri()}" in out
    for name in DOCS_FILES:
        assert (target / name).stat().st_size > 0, name
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    models = {node["name"] for key, node in manifest["nodes"].items() if key.startswith("model.")}
    gold = read_manifest(Lake(analyst_env.settings))
    assert {m.name for m in gold.marts} <= models and "stg_vacancies" in models
    assert any(key.startswith("test.") for key in manifest["nodes"])  # the data tests are documented too
    # The lineage graph: a mart depends on the intermediate models, down to the silver sources.
    parents = manifest["parent_map"]["model.lakehouse.salary_by_role_month"]
    assert parents == ["model.lakehouse.int_vacancy_salaries"]
    catalog = json.loads((target / "catalog.json").read_text(encoding="utf-8"))
    for mart in gold.marts:
        columns = catalog["nodes"][f"model.lakehouse.{mart.name}"]["columns"]
        assert {name.lower() for name in columns} == {c.name for c in mart.columns}
    # The static page carries the manifest and the catalog inline: it opens from disk.
    static = (target / "static_index.html").read_text(encoding="utf-8")
    assert "salary_by_role_month" in static and len(static) > len((target / "index.html").read_text()) // 2


def test_cli_docs_without_gold_says_what_to_run_first(
    analyst_env: AnalystLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(tmp_path / "empty"))
    with caplog.at_level(logging.ERROR, logger="lakehouse_gold"):
        assert main(["docs"]) == 1
    assert "run `lakehouse-gold build` first" in caplog.text
