# churnwatch — two commands set up a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
BIN     := $(VENV)/bin
SECRETS := .secrets/churnwatch.env
DEMO_RAW ?= data/demo-shop
DEMO_WAREHOUSE ?= warehouse
DEMO_CUSTOMERS ?= 10000
DEMO_END_DATE ?= 2025-12-31
AIRFLOW_PORT ?= 8080
MLFLOW_PORT ?= 5000
DOCS_PORT ?= 8081
WORKER_LOG_PORT ?= 8793
TRIGGER_LOG_PORT ?= 8794
UP_WAREHOUSE ?= $(DEMO_WAREHOUSE)
SERVICES = $(PY) -m ml.faces.services --warehouse $(UP_WAREHOUSE) --raw-dir $(DEMO_RAW) --airflow-port $(AIRFLOW_PORT) \
	--mlflow-port $(MLFLOW_PORT) --docs-port $(DOCS_PORT) --worker-log-port $(WORKER_LOG_PORT) --trigger-log-port $(TRIGGER_LOG_PORT)
WITH_SECRETS = set -a && . ./$(SECRETS) && set +a

.PHONY: help setup demo test test-fast bench up down docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(SECRETS) ## install the pinned stack into .venv (uv + requirements.lock)

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	uv venv --quiet --allow-existing --python 3.11 $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip sync --quiet --compile-bytecode requirements.lock
	VIRTUAL_ENV=$(VENV) uv pip install --quiet --no-deps -e .
	@touch $@

$(SECRETS):
	@mkdir -p .secrets && chmod 700 .secrets
	@umask 077 && { \
	  echo "# generated on first setup; never committed"; \
	  echo "CHURNWATCH_PII_SALT=$$(python3 -c 'import secrets; print(secrets.token_hex(16))')"; \
	  echo "CHURNWATCH_ADMIN_PASSWORD=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"; \
	} > $@
	@echo "generated $(SECRETS) (PII salt, UI login)"

demo: setup ## generate a shop and run the whole pipeline through Airflow, then summarise
	@$(WITH_SECRETS) && $(BIN)/churnwatch generate --customers $(DEMO_CUSTOMERS) --seed 7 \
	    --end-date $(DEMO_END_DATE) --out $(DEMO_RAW) > /dev/null
	@$(WITH_SECRETS) && $(BIN)/churnwatch run --raw-dir $(DEMO_RAW) --warehouse $(DEMO_WAREHOUSE) --retrain
	@$(WITH_SECRETS) && $(BIN)/churnwatch summary --warehouse $(DEMO_WAREHOUSE)

test: setup ## run the whole test suite (real Airflow, dbt, GX, LightGBM, MLflow)
	@$(WITH_SECRETS) && $(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: setup ## unit tests only (tests/unit: pure functions, no dbt build, no pipeline run; under a minute)
	@$(WITH_SECRETS) && $(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

bench: setup ## tier-M benchmarks → benchmarks/results/*.json
	@$(WITH_SECRETS) && $(PY) benchmarks/run_all.py $(BENCH_ARGS)

up: setup ## start Airflow (UI, scheduler, DAG processor, triggerer, log server) and the MLflow UI on 127.0.0.1, behind a login; prints URLs + login
	@$(WITH_SECRETS) && $(SERVICES) up

down: ## stop what `make up` started (pid files under $(UP_WAREHOUSE)/run)
	@$(SERVICES) down

docs: setup ## build the dbt docs against the warehouse and serve them on 127.0.0.1:$(DOCS_PORT), behind the login
	@$(WITH_SECRETS) && $(SERVICES) docs

clean: ## remove generated data and warehouses (keeps .venv and secrets)
	rm -rf data warehouse dbt_project/target dbt_project/logs
