# Mini-Lakehouse: the two first commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PACKAGES := -e services/common -e services/silverizer -e services/ingestor -e services/gold -e services/orchestration -e services/bridge -e services/monitoring -e minio
BENCH_SIZES ?= 200MB,2GB
BENCH_ARGS ?= --max-rss-mb 12000
LATENCY_DROPS ?= 10

.PHONY: help setup up demo airflow silver gold replicate test unit integration check lint typecheck bench bench-latency bench-incremental constraints clean clean-lake

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements/constraints.txt requirements/dev.txt services/*/pyproject.toml minio/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -r requirements/dev.txt $(PACKAGES)
	@# DuckDB's httpfs, aws and delta extensions come from PyPI wheels; copy it where DuckDB loads extensions (no download).
	$(PY) -c 'import duckdb_extensions; [duckdb_extensions.import_extension(e) for e in ("httpfs", "aws", "delta")]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv with pinned dependencies (only when missing or changed)

DEMO_UNTIL ?= 2026-01-01T00:00:00+03:00

demo: setup ## Ingest the sample API over HTTP -> bronze -> silver -> gold on the local lake (data/), print the marts
	@mkdir -p .lakehouse; rm -f .lakehouse/sample-api.url
	@# The local sample API serves hh.ru-shaped pages and details, with a few 429/500s so the retries show.
	@$(BIN)/lakehouse-ingest sample-api --port 0 --fault-rate 0.004 --ready-file .lakehouse/sample-api.url & api=$$!; \
	trap 'kill $$api 2>/dev/null; wait $$api 2>/dev/null' EXIT; \
	for _ in $$(seq 100); do test -s .lakehouse/sample-api.url && break; sleep 0.1; done; \
	url=$$(cat .lakehouse/sample-api.url); echo "sample API at $$url"; \
	LAKEHOUSE_INGESTOR_HH_BASE_URL=$$url LAKEHOUSE_INGESTOR_API_URL=$$url LAKEHOUSE_INGESTOR_RATE_LIMIT_PER_S=1000 \
	  $(BIN)/lakehouse-ingest run --once --until $(DEMO_UNTIL)
	@# bronze -> silver -> gold -> replica through the Airflow DAGs in dags/, in process (dag.test()).
	$(BIN)/lakehouse-pipeline run
	$(BIN)/lakehouse-gold show
	@$(BIN)/lakehouse-gold --log-level WARNING report

AIRFLOW_PORT ?= 8080
AIRFLOW_PARALLELISM ?= 4

airflow: setup ## Local Airflow 3 (standalone) running dags/ on the local lake (unpaused); drop files into data/bronze/<source>/
	@# The configuration lives in services/orchestration (lakehouse_orchestration/standalone.py); the tests run the same command.
	$(BIN)/lakehouse-pipeline airflow --port $(AIRFLOW_PORT) --parallelism $(AIRFLOW_PARALLELISM)

silver: setup ## Process every pending bronze object
	$(BIN)/lakehouse-silverize run

gold: setup ## Build and test the dbt marts, publish gold
	$(BIN)/lakehouse-gold build

replicate: setup ## Copy new or changed gold objects to LAKEHOUSE_REPLICA_URI
	$(BIN)/lakehouse-gold replicate

test: setup ## Unit and integration tests (integration uses a moto S3 server, dbt and DuckDB httpfs)
	$(PY) -m pytest

unit: setup ## Unit tests only (no servers)
	$(PY) -m pytest tests/unit

integration: setup ## Integration tests only
	$(PY) -m pytest tests/integration

check: lint typecheck ## Lint and type-check everything

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt/models
	$(BIN)/yamllint -s -c .yamllint.yml docker-compose.yml contracts bench/contracts dbt/models infra/k8s

up: ## Check .env (no placeholder or default secrets), then start the stack: docker compose up -d
	python3 infra/check_env.py --env-file .env --compose-file docker-compose.yml
	docker compose up -d

typecheck: setup
	$(BIN)/mypy services/common/src services/silverizer/src services/ingestor/src services/gold/src services/bridge/src services/monitoring/src services/orchestration/src minio/src infra/check_env.py dags bench

bench: setup ## Throughput (silverizer vs DuckDB COPY vs pandas, ~200 MB and ~2 GB), then drop->silver/gold latency (bench/results.json)
	$(PY) -m bench.run --sizes $(BENCH_SIZES) $(BENCH_ARGS)
	$(PY) -m bench.latency --drops $(LATENCY_DROPS)

bench-latency: setup ## Latency through a real Airflow + bridge: file drop -> silver, -> gold replicated (p50/p95)
	$(PY) -m bench.latency --drops $(LATENCY_DROPS)

bench-incremental: setup ## Incremental cost at M = 200, 2,000, 20,000 objects, local and moto (BENCH_INCREMENTAL_MAX_M caps M)
	$(PY) -m bench.incremental $(BENCH_INCREMENTAL_ARGS)

constraints: setup ## Re-pin requirements/constraints.txt from the current .venv
	@{ echo "# Pinned versions of every package the project installs (pip install -c requirements/constraints.txt ...)."; \
	   echo "# Regenerate after changing requirements/dev.txt or a service's dependencies: make constraints"; \
	   $(PY) -m pip freeze --exclude-editable | grep -viE '^(pip|setuptools|wheel)=='; } > requirements/constraints.txt

clean-lake: ## Delete the local lake (data/) and scratch files
	rm -rf data .lakehouse

clean: clean-lake ## Also delete the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dbt/target dbt/logs

# -- for analysts: a DuckDB catalog, the HTML report, dbt's docs ------------------------------
CATALOG ?= lakehouse.duckdb
.PHONY: catalog report docs

catalog: setup ## Write lakehouse.duckdb (CATALOG=...): DuckDB views over gold, silver and the load history
	$(BIN)/lakehouse-gold --log-level WARNING catalog --output $(CATALOG)

report: setup ## Render the static HTML report (charts and pipeline health) into gold and .lakehouse/report/
	$(BIN)/lakehouse-gold --log-level WARNING report

docs: setup ## dbt docs generate (models, columns, lineage) against the published gold; prints where to open them
	$(BIN)/lakehouse-gold --log-level WARNING docs
