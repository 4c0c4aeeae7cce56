# The two commands of the project: `make up` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE_DIR ?= $(CURDIR)/state/cluster
NODES ?= 2
# Debian packages the tests and benchmarks use; installed only when root.
DEBS := python3-venv gcc libc6-dev iproute2 iptables ipset conntrack nftables sqlite3 procps iputils-ping curl nginx-light wrk bind9-dnsutils dnsmasq-base etcd-server user-mode-linux kmod ipvsadm
# What the benchmarks compare against and load with (installed by their targets only).
BENCH_DEBS := haproxy dnsperf dnsmasq-base

.PHONY: up apiserver test deps bench-deps venv lint unit bench-apiserver bench-scheduler bench-cluster bench-proxy-userspace bench-proxy-iptables bench-proxy-ipvs bench-compare bench-dns bench-store bench-ingress clean

# The relay's C copy loop is built by the install, so a change to it reinstalls.
$(BIN)/netplane: pyproject.toml netplane/proxy_userspace/_pump.c
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

bench-deps: deps
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "not root: skipping Debian packages ($(BENCH_DEBS))"; fi

# A whole cluster on this machine (root: it creates network namespaces); Ctrl-C removes it.
up: deps venv
	$(BIN)/netplane up --nodes $(NODES) --state-dir $(STATE_DIR)

# Only the apiserver (no root needed).
apiserver: deps venv
	$(BIN)/netplane apiserver --data-dir $(CURDIR)/state/apiserver

test: deps venv lint
	$(BIN)/pytest -q -p no:cacheprovider tests

lint: venv
	$(BIN)/ruff check netplane control tests bench

bench-apiserver: venv
	$(BIN)/python -m bench.apiserver --out bench/results/apiserver.json

bench-scheduler: venv
	$(BIN)/python -m bench.scheduler --out bench/results/scheduler.json

bench-cluster: deps venv
	$(BIN)/python -m bench.cluster --out bench/results/cluster.json

bench-proxy-userspace: bench-deps venv
	$(BIN)/python -m bench.proxy_userspace --out bench/results/proxy_userspace.json

# The proxy modes side by side (IPVS in user-mode Linux where this kernel has none).
bench-compare: deps venv
	$(BIN)/netplane bench compare --services 100,1000 --endpoints 5 --out docs/proxy-modes

bench-proxy-iptables: deps venv
	$(BIN)/python -m bench.proxy_iptables --out bench/results/proxy_iptables.json

# IPVS mode inside user-mode Linux (this kernel has no IPVS); no root needed.
bench-proxy-ipvs: deps venv
	$(BIN)/python -m bench.proxy_ipvs --out bench/results/proxy_ipvs.json

bench-dns: bench-deps venv
	$(BIN)/python -m bench.dns --out bench/results/dns.json

bench-store: deps venv
	$(BIN)/python -m bench.store --out bench/results/store.json

bench-ingress: bench-deps venv
	$(BIN)/python -m bench.ingress --out bench/results/ingress.json

clean:
	rm -rf $(VENV) state
