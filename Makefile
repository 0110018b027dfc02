# The two commands of the README, `make demo` and `make test`, and the version matrix.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
export ZENML_ANALYTICS_OPT_IN := false

UV := python3 -m uv
TOPOLOGY_ZENML_PORT ?= 8237
VENV := .venv
BIN := $(VENV)/bin
# The demo keeps its ZenML store and active stack inside .zenml-demo, away from your own ZenML
# set-up: no ZenML repository (a `.zen` that any `zenml` command may rewrite), step sources
# resolve against the project root.
DEMO_ENV := ZENML_CONFIG_PATH=$(CURDIR)/.zenml-demo \
	ZENML_REPOSITORY_PATH=$(CURDIR)/.zenml-demo/no-repository \
	ZENML_CUSTOM_SOURCE_ROOT=$(CURDIR)

.PHONY: demo ui test test-compat lint docs bench topology release clean

$(VENV)/.synced: pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --python python3
	@touch $@

demo: $(VENV)/.synced
	$(DEMO_ENV) $(BIN)/zenml-mlflow install --stack quickstart
	$(DEMO_ENV) $(BIN)/python -m examples.quickstart.run

ui: $(VENV)/.synced
	$(DEMO_ENV) $(BIN)/zenml-mlflow ui

test: $(VENV)/.synced
	$(BIN)/python -m pytest

# Unit and core integration tests on Python 3.10, 3.12 and 3.13 with the oldest, a middle and the
# newest ZenML/MLflow releases, each in a throw-away venv resolved from pyproject.toml's ranges
# (docs/versions.md); `make test` covers the locked set. (.synced brings uv.)
test-compat: $(VENV)/.synced
	.ci/compat

lint: $(VENV)/.synced
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The production set-up on 127.0.0.1: a ZenML server (REST, API key), S3 on moto, PostgreSQL +
# MLflow server; runs in the foreground, Ctrl-C stops every part and removes its data.
topology: $(VENV)/.synced
	rm -rf .topology
	TOPOLOGY_DIR=$(CURDIR)/.topology TOPOLOGY_ZENML_PORT=$(TOPOLOGY_ZENML_PORT) \
		$(BIN)/python -m testsupport.topology

bench: $(VENV)/.synced
	$(BIN)/python -m benchmarks.run

docs: $(VENV)/.synced
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d site

# The release build: sdist and wheel in dist/, their metadata checked as an index would. Uploading
# (`uv publish` with the project's PyPI token) is a maintainer's step: see CHANGELOG.md.
release: $(VENV)/.synced
	rm -rf dist
	$(UV) build --out-dir dist
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf dist .zenml-demo .topology .pytest_cache .mypy_cache .ruff_cache site
