# The two commands a fresh clone needs: `make demo` (the main job end to end, embedded default) and
# `make test`. Both build the virtual environment at .venv from the project's own files first, once.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

# Local servers (the sandbox, moto, dagster) live on 127.0.0.1 and must never go through a proxy.
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost
# dagster-dbt looks for the `dbt` executable on PATH (dagster-notes P6).
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: demo test ui lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cdp demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

ui: $(STAMP)
	mkdir -p data/dagster && cp -n cdp_assets/defs/dagster.yaml data/dagster/dagster.yaml 2>/dev/null || true
	DAGSTER_HOME=$(CURDIR)/data/dagster $(VENV)/bin/dagster dev

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/cdp bench ingest --events 1000000

clean:
	rm -rf data dbt_project/target dbt_project/logs
