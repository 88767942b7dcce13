# Two commands matter: `make demo` (set up + run the example DAG against the sandbox)
# and `make test`. Both create .venv and install everything they need on first use.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
UV_VERSION ?= 0.13.9
BIN := $(VENV)/bin

.PHONY: install test lint demo sandbox clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed-$(AIRFLOW_VERSION): pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]' 'apache-airflow==$(AIRFLOW_VERSION)'
	rm -f $(VENV)/.installed-* && touch $@

install: $(VENV)/.installed-$(AIRFLOW_VERSION)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: install
	$(BIN)/python scripts/demo.py

sandbox: install
	$(BIN)/python -m airflow_provider_plugz.testing.sandbox

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
