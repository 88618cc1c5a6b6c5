# batchx-operator: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: system-deps venv testbed-build ## everything a fresh machine needs (idempotent)

system-deps: ## Debian packages of the test bed (containerd, runc, CNI plugins, ...)
	@bash .ci/system-deps.sh

venv: $(VENV)/.installed ## the Python 3.11 virtual environment with dev tools
$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

testbed-build: ## build Kubernetes, etcd, MinIO, helm, the registry and the health checker from their Go modules (cached in ~/.cache)
	testbed/build-kube.sh >/dev/null
	testbed/build-minio.sh >/dev/null
	testbed/build-helm.sh >/dev/null
	testbed/build-registry.sh >/dev/null
	testbed/build-health.sh >/dev/null

cluster-up: venv testbed-build ## start the local cluster; prints the kubeconfig path
	$(PY) -m testbed.cluster up

cluster-down: ## stop the local cluster and remove every trace of it
	$(PY) -m testbed.cluster down

demo: setup ## the main job end to end: cluster, S3, operator, Environment, Image, input file, Job
	$(PY) -m testbed.demo

lint: venv ## ruff, formatting, mypy --strict, import layers, CRD drift
	$(VENV)/bin/ruff check operator tests testbed benchmarks
	$(VENV)/bin/ruff format --check operator tests testbed benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m batchx.crdgen --check

crds: venv ## regenerate crds/ and the chart's CRDs from the pydantic models
	$(PY) -m batchx.crdgen

unit: venv ## the fast suite: no servers
	$(VENV)/bin/pytest tests/unit -q $(PYTEST_ARGS)

test: setup lint ## the whole suite on the real test bed (what CI runs)
	$(VENV)/bin/pytest -q --durations=25 $(PYTEST_ARGS)

bench: venv testbed-build ## benchmarks (not tests): print numbers against a peer
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

chaos: venv testbed-build ## the fault campaign's long variant: a mixed batch under each fault, the invariants' table
	$(PY) benchmarks/chaos.py

.PHONY: help demo setup system-deps venv testbed-build cluster-up cluster-down lint crds unit test bench chaos
