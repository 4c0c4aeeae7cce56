# The two commands of the project: `make up` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/state/apiserver
# Debian packages the tests and benchmarks use; installed only when root.
DEBS := python3-venv iproute2 iptables ipset conntrack nftables sqlite3 procps

.PHONY: up test deps venv lint unit bench-apiserver clean

$(BIN)/netplane: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/netplane

deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "not root: skipping Debian packages ($(DEBS)); root-only tests will skip"; fi

up: deps venv
	$(BIN)/netplane apiserver --data-dir $(DATA_DIR)

test: deps venv lint
	$(BIN)/pytest -q -p no:cacheprovider tests

lint: venv
	$(BIN)/ruff check netplane control tests bench

bench-apiserver: venv
	$(BIN)/python -m bench.apiserver --out bench/results/apiserver.json

clean:
	rm -rf $(VENV) state bench/results
