# The one command surface: README, CI and people use these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell md5sum pyproject.toml | cut -c1-12)
# `make test` and `make demo` each use their own broker instance (own ports and folder).
TEST_BROKER := --instance test --port 19192 --controller-port 19193 --fresh
BENCH_BROKER := --instance bench --port 19392 --controller-port 19393 --fresh
PYTEST_ARGS ?=

.PHONY: help setup demo test unit lint typecheck bench broker-start broker-stop broker-status clean

help:
	@echo "make demo       run the pipeline on synthetic traffic and show what reached ClickHouse"
	@echo "make test       lint, typecheck, unit + property + integration tests on a real local broker"
	@echo "make bench      benchmarks against a local broker (figures, not assertions)"
	@echo "make lint | typecheck | unit | broker-start | broker-stop | broker-status | clean"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/journeys broker fetch

demo: setup
	$(BIN)/journeys demo

test: setup lint typecheck
	$(BIN)/journeys broker run $(TEST_BROKER) -- $(BIN)/python -m pytest $(PYTEST_ARGS)

unit: setup
	$(BIN)/python -m pytest tests/unit tests/property $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: setup
	$(BIN)/journeys broker run $(BENCH_BROKER) -- $(BIN)/python -m tests.bench

broker-start: setup
	$(BIN)/journeys broker start

broker-stop:
	$(BIN)/journeys broker stop

broker-status:
	$(BIN)/journeys broker status

clean:
	-$(BIN)/journeys broker stop
	rm -rf .local $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
