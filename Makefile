# sendtime: `make help` lists the targets. Every target creates .venv/ from the project's own files first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
export SENDTIME_HOME ?= $(CURDIR)/.sendtime
export MLFLOW_ENABLE_TELEMETRY := false
export OMP_WAIT_POLICY := PASSIVE
export DO_NOT_TRACK := true
DEMO := $(SENDTIME_HOME)/demo
# bare git copies of the real-data sets' repositories (README, "Real activity logs"); absent ones are skipped
MIRRORS ?= /work/.mirror
# the project's Python: the core (src/), each stage's top-level folder, and the tests
CODE := src features training serving experiments configs tests

.PHONY: help setup demo test test-fast test-all lint format bench bento lock clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "uv==0.13.9"
	$(UV) pip install --python $(PY) --compile-bytecode --quiet -r requirements.lock
	$(UV) pip install --python $(PY) --compile-bytecode --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) ## create .venv/ and install the locked dependencies and sendtime
	@echo "ready: $(VENV)/bin/sendtime"

demo: setup ## simulate a world, train, schedule a demo campaign, print where to look
	$(VENV)/bin/sendtime simulate --out $(DEMO)/data --subscribers 2000 --days 84 --seed 7
	$(VENV)/bin/sendtime train --data $(DEMO)/data
	$(PY) -m sendtime.experiments.demo audience --data $(DEMO)/data --out $(DEMO)/audience.csv
	read START END <<< "$$($(PY) -m sendtime.experiments.demo window --data $(DEMO)/data)" && \
	$(VENV)/bin/sendtime schedule --audience $(DEMO)/audience.csv --start $$START --end $$END \
		--out $(DEMO)/plan.csv --max-sms 300 --max-per-hour email=60
	$(PY) -m sendtime.experiments.demo summary --plan $(DEMO)/plan.csv

test: setup ## the test suite CI runs (unit, integration, Spark parity; not the slow ones)
	$(PY) -m pytest -q -m "not slow"

test-fast: setup ## the fast tier only (what a plain `pytest` runs: no training, no server, no Spark)
	$(PY) -m pytest -q

test-all: setup ## every test, slow ones included
	$(PY) -m pytest -q -m ""

lint: setup ## ruff lint and format check
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)

format: setup ## ruff format and autofix
	$(VENV)/bin/ruff format $(CODE)
	$(VENV)/bin/ruff check --fix $(CODE)

bench: setup ## speed and quality benchmarks (tens of minutes; numbers in the README)
	$(PY) -m sendtime.experiments.bench_profiles --events 1000000 10000000
	$(PY) -m sendtime.experiments.bench_training
	$(PY) -m sendtime.experiments.bench_schedule --rows 100000 1000000
	$(PY) -m sendtime.experiments.bench_schedule --rows 1000000 --end-to-end --big-repeats 3
	$(PY) -m sendtime.experiments.bench_allocation --rows 1000000 --hours 24
	$(PY) -m sendtime.experiments.bench_capture --seeds 0 1 2 3 4 --subscribers 2000
	$(PY) -m sendtime.experiments.bench_capture --seeds 0 1 2 --subscribers 5000 10000
	$(PY) -m sendtime.experiments.bench_capture --seeds 0 1 2 --subscribers 5000 --days 168
	$(PY) -m sendtime.experiments.bench_capture --zoo all --seeds 0 1 2 --subscribers 4000 --weeks 8 --reference
	$(PY) -m sendtime.experiments.bench_export --world events_only messy --seeds 0 1
	$(PY) -m sendtime.experiments.bench_outspot
	$(PY) -m sendtime.experiments.realdata --mirrors $(MIRRORS)
	$(PY) -m sendtime.experiments.bench_realdata
	$(PY) -m sendtime.experiments.realdata_ceiling
	$(PY) -m sendtime.experiments.bench_load --start-server
	$(PY) -m sendtime.experiments.bench_report --seeds 50 --subscribers 4000
	$(PY) -m sendtime.experiments.bench_refresh --events 1000000 10000000
	$(PY) -m sendtime.experiments.bench_refresh --quality --subscribers 4000 --seeds 0 1 2

bento: setup ## build sendtime's wheel into dist/, then the Bento (bentofile.yaml) into the local Bento store
	$(UV) build --wheel --out-dir dist --quiet
	$(VENV)/bin/bentoml build

lock: setup ## re-resolve both locks from pyproject.toml: dev + spark (setup, CI) and the runtime subset (the Bento)
	$(UV) pip compile pyproject.toml --extra dev --extra spark -o requirements.lock --python $(PY) --quiet
	$(UV) pip compile pyproject.toml -c requirements.lock -o requirements-runtime.lock --python $(PY) --quiet

clean: ## remove local state (.sendtime) and caches, keep .venv
	rm -rf .sendtime .pytest_cache .ruff_cache dist build
