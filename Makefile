# The two set-up commands a newcomer runs are `make dev` and `make test`; both do all their own set-up.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MLCYCLE := $(BIN)/mlcycle
PYTEST_ARGS ?=

.PHONY: install system-deps tools cluster-up cluster-down minio-up minio-down stack-up stack-down \
        crds crds-check chart-schema chart-check image test test-unit lint dev kind-up bench clean

# The venv is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[local,test]'
	touch $@

install: $(VENV)/.installed system-deps

# libnss-wrapper lets the local pod runtime answer cluster DNS names (see operator/mlcycle/localdev/).
system-deps:
	@dpkg -s libnss-wrapper >/dev/null 2>&1 || { \
	  echo "installing libnss-wrapper (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libnss-wrapper; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq libnss-wrapper; fi; }

# Build (first time, minutes) or find the cached etcd, Kubernetes, kwok and MinIO binaries.
tools: install
	$(MLCYCLE) stack tools

cluster-up: install
	$(MLCYCLE) stack up cluster
cluster-down: install
	$(MLCYCLE) stack down cluster
minio-up: install
	$(MLCYCLE) stack up minio
minio-down: install
	$(MLCYCLE) stack down minio
stack-up: install
	$(MLCYCLE) stack up
stack-down: install
	$(MLCYCLE) stack down

crds: install
	$(MLCYCLE) crds
	$(MLCYCLE) crds --out charts/mlcycle/files/crds
crds-check: install
	$(MLCYCLE) crds --check

# charts/mlcycle/values.schema.json from operator/mlcycle/chartvalues.py.
chart-schema: install
	$(MLCYCLE) chart-schema

# helm lint --strict + helm template, default values and every toggle (also run by `make test`).
chart-check: install
	$(BIN)/python -m mlcycle.localdev.chart

lint: install
	$(BIN)/ruff check operator tests

test: install tools
	$(BIN)/pytest --durations=10 $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

# The local stack, the operator and the sample pipeline, all on this machine.
dev: install tools
	$(MLCYCLE) dev

# The mlcycle image (Dockerfile), with docker or buildah: VARIANT=cpu (needs TORCH_INDEX_URL, PyTorch's CPU
# wheel index) or VARIANT=cuda. The tag is the package version, -cuda for the CUDA variant.
IMAGE ?= ghcr.io/mlcycle/mlcycle
VARIANT ?= cpu
TORCH_INDEX_URL ?=
image:
	@builder=$$(command -v docker || command -v buildah) || { echo "make image needs docker or buildah"; exit 1; }; \
	version=$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml); \
	tag=$(IMAGE):$$version$$([ "$(VARIANT)" = cuda ] && echo -cuda); \
	echo "$$builder build $$tag"; \
	$$builder build --build-arg VARIANT=$(VARIANT) --build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL) -t $$tag .

# The other way in, for people with Docker: a kind cluster from kind-config.yaml; then `make image`,
# `kind load docker-image` and `helm install` (README, "Install on a cluster"), which installs the CRDs.
kind-up:
	kind create cluster --name mlcycle --config kind-config.yaml

bench: install tools
	$(BIN)/python -m mlcycle.bench.trainingjobs
	$(BIN)/python -m mlcycle.bench.modelversions
	$(BIN)/python -m mlcycle.bench.footprint
	$(BIN)/python -m mlcycle.bench.idle

clean: stack-down
	rm -rf .local
