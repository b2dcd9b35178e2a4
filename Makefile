# Two commands for a newcomer:  make demo   (run the pipeline locally)   make test   (all tests)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
ROWS   ?= 100000

.PHONY: demo test lint compile validate images bench clean services-stop cluster-build cluster-up cluster-demo cluster-down

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed  ## run the whole pipeline locally on synthetic data and show the result
	$(PY) -m workflows demo --rows $(ROWS)

test: $(VENV)/.installed  ## run every test tier (starts PostgreSQL, S3 and MLflow itself; images need dockerd)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check stages workflows tests benchmarks
	$(VENV)/bin/ruff format --check stages workflows tests benchmarks
	$(VENV)/bin/mypy

compile: $(VENV)/.installed  ## regenerate workflows/compiled/ from the Hera code
	$(PY) -m workflows compile

validate: $(VENV)/.installed
	$(PY) -m workflows validate workflows/compiled/*.yaml k8s/*.yaml k8s/argo-controller/*.yaml

images: $(VENV)/.installed  ## build every image of docker-bake.hcl (plain docker build where buildx is missing)
	@if docker buildx version >/dev/null 2>&1; then docker buildx bake --load; \
	else $(PY) -m tests.images.bake $(if $(BASE_IMAGE),--set BASE_IMAGE=$(BASE_IMAGE)); fi

bench: $(VENV)/.installed  ## performance and detection benchmarks → BENCHMARKS.md
	$(PY) -m benchmarks all

cluster-build:  ## build Kubernetes, etcd, CoreDNS, MinIO and Argo from their Go modules (cached outside the repo)
	scripts/cluster/build.sh

cluster-up: $(VENV)/.installed  ## start a single-node Kubernetes + Argo + MinIO on this machine (root)
	scripts/cluster/up.sh

cluster-demo: $(VENV)/.installed  ## install the pipeline with kubectl apply -k k8s/ and run it through the Job
	scripts/cluster/demo.sh

cluster-down:  ## stop the cluster (cluster-down ARGS=--purge also removes its state)
	scripts/cluster/down.sh $(ARGS)

services-stop:
	$(PY) -m workflows services stop

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
