# The one command surface: README, CI and people use these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell md5sum pyproject.toml | cut -c1-12)
# `make test` and `make demo` each use their own broker instance (own ports and folder).
TEST_BROKER := --instance test --port 19192 --controller-port 19193 --fresh
BENCH_BROKER := --instance bench --port 19392 --controller-port 19393 --fresh
# The chaos suite's broker; its broker-restart scenario runs one more (chaos-restart, 19532).
CHAOS_BROKER := --instance chaos --port 19530 --controller-port 19531 --fresh
PYTEST_ARGS ?=
# The official ClickHouse JDBC driver and the small client the integration tests drive it with.
JDBC_DIR := tests/integration/jdbc
JDBC_JARS := .local/jdbc-jars
JDBC_CLASSES := .local/jdbc
GO_CLIENT_DIR := tests/integration/clickhouse_go
GO_CLIENT := .local/clickhouse-go/clickhouse-go
# The Segment and RudderStack Node SDKs the collector's tests send with, from the npm registry.
NODE_SDK_DIR := tests/integration/node_sdks
NODE_SDKS := .local/node-sdks

.PHONY: help setup jdbc-client go-client node-sdks demo test test-long unit lint typecheck bench bench-e2e bench-scale bench-latency bench-detection profile chaos broker-start broker-stop broker-status clean

help:
	@echo "make demo       run the pipeline on synthetic traffic and show what reached ClickHouse"
	@echo "make test       lint, typecheck, unit + property + integration tests on a real local broker"
	@echo "make test-long  the acceptance runs of minutes each that make test leaves out"
	@echo "make bench      benchmarks against a local broker (figures, not assertions)"
	@echo "make bench-e2e  the end-to-end figure alone: every stage and the sink on ~1M events"
	@echo "make bench-scale  a million customers: outcomes against the truth, memory per open journey"
	@echo "make bench-latency  event -> queryable p50/p99 at a fixed load, per commit interval"
	@echo "make profile STAGE=journeys  one process alone under py-spy: where its time goes"
	@echo "make bench-detection  incidents found, their delay and false alerts (no broker)"
	@echo "make chaos      every fault scenario 3 times on >= 100,000 events (long; table in .local/chaos)"
	@echo "make lint | typecheck | unit | broker-start | broker-stop | broker-status | clean"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/journeys broker fetch
	@# The page's browser tests drive Debian's chromium (its own browser downloads fail here).
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
	@$(MAKE) --no-print-directory jdbc-client go-client node-sdks

# Fetched once (again only when the pom changes); compiled again only when the source changes.
jdbc-client: $(JDBC_CLASSES)/QueryClient.class
	@:

$(JDBC_JARS)/.complete: $(JDBC_DIR)/pom.xml
	@command -v mvn >/dev/null || { echo "Maven (mvn) fetches the ClickHouse JDBC driver"; exit 1; }
	@echo "fetching the ClickHouse JDBC driver into $(JDBC_JARS)/"
	@rm -rf $(JDBC_JARS) && mkdir -p $(JDBC_JARS)
	@mvn -q -B -f $(JDBC_DIR)/pom.xml dependency:copy-dependencies \
		-DoutputDirectory=$(CURDIR)/$(JDBC_JARS) -DincludeScope=runtime \
		>$(JDBC_JARS)/fetch.log 2>&1 || { cat $(JDBC_JARS)/fetch.log; exit 1; }
	@touch $@

$(JDBC_CLASSES)/QueryClient.class: $(JDBC_DIR)/QueryClient.java $(JDBC_JARS)/.complete
	@echo "compiling $< into $(JDBC_CLASSES)/"
	@mkdir -p $(JDBC_CLASSES)
	@javac --release 17 -d $(JDBC_CLASSES) -cp '$(JDBC_JARS)/*' $<

# clickhouse-go, the client of Grafana's ClickHouse data source, built from the Go module proxy.
go-client: $(GO_CLIENT)
	@:

$(GO_CLIENT): $(GO_CLIENT_DIR)/main.go $(GO_CLIENT_DIR)/go.mod $(GO_CLIENT_DIR)/go.sum
	@command -v go >/dev/null || { echo "Go builds clickhouse-go (Grafana's client) for the tests"; exit 1; }
	@echo "building clickhouse-go into $(dir $(GO_CLIENT))"
	@cd $(GO_CLIENT_DIR) && go build -o $(CURDIR)/$(GO_CLIENT) .

# Installed again only when the lock file changes.
node-sdks: $(NODE_SDKS)/.complete
	@:

$(NODE_SDKS)/.complete: $(NODE_SDK_DIR)/package.json $(NODE_SDK_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm installs the Node SDKs the collector is tested with"; exit 1; }
	@echo "installing the Segment and RudderStack Node SDKs into $(NODE_SDKS)/"
	@rm -rf $(NODE_SDKS) && mkdir -p $(NODE_SDKS)
	@cp $^ $(NODE_SDKS)/
	@cd $(NODE_SDKS) && npm ci --no-audit --no-fund --loglevel=error >install.log 2>&1 || \
		{ cat install.log; exit 1; }
	@touch $@

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

# The end-to-end figure alone (tests/bench/end_to_end.py; also part of make bench).
bench-e2e: setup
	$(BIN)/journeys broker run $(BENCH_BROKER) -- $(BIN)/python -m tests.bench.end_to_end

# A million customers through every stage and the sink: outcomes against the simulator's
# truth, peak memory, memory per open journey (tests/bench/scale.py; SCALE_CUSTOMERS).
bench-scale: setup
	$(BIN)/journeys broker run $(BENCH_BROKER) -- $(BIN)/python -m tests.bench.scale

# Event -> queryable latency at a fixed load, per commit interval (tests/bench/latency.py).
bench-latency: setup
	$(BIN)/journeys broker run $(BENCH_BROKER) -- $(BIN)/python -m tests.bench.latency

# Acceptance runs of minutes each (marked `long`; `make test` leaves them out).
test-long: setup
	$(BIN)/journeys broker run $(TEST_BROKER) -- $(BIN)/python -m pytest -m long $(PYTEST_ARGS)

# One process of the pipeline alone under py-spy (tests/bench/profile_stage.py).
STAGE ?= journeys
profile: setup
	$(BIN)/journeys broker run $(BENCH_BROKER) -- $(BIN)/python -m tests.bench.profile_stage $(STAGE)

# The pipeline's cores on simulated incidents, scored from the alerts (tests/bench/detection.py).
bench-detection: $(STAMP)
	$(BIN)/python -m tests.bench.detection

# The full chaos suite (tests/chaos): CHAOS_RUNS runs of every scenario on CHAOS_EVENTS events;
# `make test` runs its short version.
# Its own temp folder: pytest keeps only its three newest runs in the shared one, so any other
# pytest run would delete the chDB folders of a finished chaos run (read to trace a difference).
chaos: setup
	mkdir -p .local/chaos
	CHAOS_FULL=1 $(BIN)/journeys broker run $(CHAOS_BROKER) -- \
		$(BIN)/python -m pytest tests/chaos --timeout 7200 --basetemp=$(CURDIR)/.local/chaos/runs \
		$(PYTEST_ARGS)

broker-start: setup
	$(BIN)/journeys broker start

broker-stop:
	$(BIN)/journeys broker stop

broker-status:
	$(BIN)/journeys broker status

clean:
	-$(BIN)/journeys broker stop
	rm -rf .local $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
