# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: run test lint pytest bench bench-drain bench-cluster bench-kinds bench-scale chaos \
	chaos-cluster install install-test clean test-container test-cluster test-cluster-long

$(BIN)/watchdesk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml $(BIN)/watchdesk
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/watchdesk

install-test: $(VENV)/.test-installed

run: install
	$(BIN)/watchdesk run -c $(CONFIG)

lint: install-test
	$(BIN)/ruff check monitor checks ticketing tests bench
	$(BIN)/ruff format --check monitor checks ticketing tests bench
	$(BIN)/mypy

pytest: install-test
	$(BIN)/pytest -q -p no:cacheprovider -m "not chaos and not container and not cluster"

test: lint pytest

# The chaos test of the incident path alone (~3 min): WATCHDESK_CHAOS_SEED=N replays a run.
chaos: install-test
	$(BIN)/pytest -q -s -p no:cacheprovider -m "chaos and not cluster" tests/test_chaos.py

# Several agent processes on one PostgreSQL (tests/cluster_harness.py; skips without Debian's
# postgresql, which .ci/run installs).
test-cluster: install-test
	$(BIN)/pytest -q -p no:cacheprovider -m "cluster and not chaos and not slow_cluster"

# The cluster tests in real time (~4 min): the database down for 3 minutes during an outage.
test-cluster-long: install-test
	$(BIN)/pytest -q -s -p no:cacheprovider -m "slow_cluster and not chaos"

# The chaos test on two agents sharing one PostgreSQL, kills spread over both (~3 min).
chaos-cluster: install-test
	$(BIN)/pytest -q -s -p no:cacheprovider -m "chaos and cluster" tests/test_chaos.py

# The container image built and run with podman (~2 min; ~5 min the first time, which
# installs podman, runc and debootstrap and builds the python:3.11-slim stand-in).
test-container: install-test
	deploy/container/test/prepare.sh
	$(BIN)/pytest -q -p no:cacheprovider -m container tests/test_container_image.py \
		tests/test_deploy_cluster.py

bench: install-test
	$(BIN)/python bench/http_targets.py --targets 1000 --duration 30
	$(BIN)/python bench/http_targets.py --targets 10000 --duration 40

# 3 agents x 30,000 HTTP targets on one PostgreSQL (~7 min; see bench/README.md).
bench-cluster: install-test
	$(BIN)/python bench/cluster_scale.py --agents 3 --targets 30000 --interval 60s

bench-drain: install-test
	$(BIN)/python bench/outbox_drain.py

# Probes per CPU-second per kind, side by side with blackbox_exporter when it is installed (~25 min).
bench-kinds: install-test
	$(BIN)/python bench/probe_kinds.py --saturated --repeat 3

# The watchdesk command at scale: start, first round, steady state, reload, stop (~15 min).
bench-scale: install-test
	$(BIN)/python bench/scale_matrix.py --mix http,https,tcp,icmp,dns,mixed --targets 1000,10000
	$(BIN)/python bench/scale_matrix.py --mix mixed --targets 50000 --interval 10s
	$(BIN)/python bench/scale_matrix.py --mix http --targets 100000 --interval 30s --window 60

clean:
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache
