# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what they need first (virtualenv, the package, Debian tools).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup tools test test-fast lint unit demo crd dashboards clean control-plane cluster-up cluster-down e2e image image-test

help:
	@echo "make demo   - run the local autoscaling demo (installs what it needs)"
	@echo "make test   - lint + type-check + every test (installs what it needs)"
	@echo "make test-fast - lint + the unit tests (no slow suites), about a minute"
	@echo "make e2e    - build the real control plane (cached) and run the end-to-end suite"
	@echo "make cluster-up / cluster-down - a real control plane by hand (prints a kubeconfig)"
	@echo "make crd    - regenerate crds/queueworker.yaml from the API models"
	@echo "make dashboards - regenerate the chart's Grafana dashboards from code"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,peers,api,plot]'
	@touch $@

tools:
	@bash scripts/ensure-tools.sh

setup: $(STAMP) tools

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy -p queueworker

unit: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: setup lint unit

# The inner loop: every test not marked slow (real Redis still, no multi-process suites).
test-fast: setup lint
	$(BIN)/python -m pytest -m 'not slow' -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/queueworker demo

crd: $(STAMP)
	$(BIN)/queueworker crd > crds/queueworker.yaml
	$(BIN)/queueworker crd --reference > crds/REFERENCE.md
	@mkdir -p charts/queueworker-operator/crds
	@cp crds/queueworker.yaml charts/queueworker-operator/crds/queueworker.yaml

dashboards: $(STAMP)
	$(BIN)/python -m queueworker.operator.dashboards --write charts/queueworker-operator/dashboards

# The real control plane (kube-apiserver, controller-manager, scheduler, etcd built from their
# Go modules into ~/.cache/queueworker; the first build takes about 7 minutes on 2 cores).
CLUSTER_NODES ?= --node cpu-0 --node gpu-0:4

control-plane:
	@bash scripts/build-control-plane.sh

cluster-up: setup control-plane
	@PYTHONPATH=tests $(BIN)/python -m cluster.controlplane up $(CLUSTER_NODES)

cluster-down:
	@PYTHONPATH=tests $(BIN)/python -m cluster.controlplane down

e2e: setup control-plane
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/cluster/e2e_*.py tests/image/e2e_image.py $(PYTEST_ARGS)

# The container image from the repository's Dockerfile on a Debian base (no registry here).
image:
	@bash scripts/build-image.sh

image-test: setup control-plane
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/image/e2e_image.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
