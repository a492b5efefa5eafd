# Glyphoxa Web. `make run` = the app on embedded defaults; `make test` = the whole suite; `make lint` = ruff + mypy.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test lint install install-test protos bench migrate clean

$(VENV)/.run-deps: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@ $(VENV)/.run-deps

install: $(VENV)/.run-deps
install-test: $(VENV)/.test-deps

## Run on embedded defaults: embedded PostgreSQL in instance/, gateway simulator, demo data, dev sign-in.
run: install
	$(VENV)/bin/glyphoxa-web run

## Run the whole test suite against a real PostgreSQL (system server if reachable, else embedded).
test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

## Quality gates (CI runs these before the tests): lint, formatting, type check; any finding fails.
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Regenerate the gRPC stubs from glyphoxa_htmx/adapters/gateway/proto.
protos: install-test
	$(PY) glyphoxa_htmx/adapters/gateway/gen_protos.py

## Apply web-schema migrations to DATABASE_URL (production deploy step).
migrate: install
	$(VENV)/bin/glyphoxa-web migrate

## Benchmarks: print figures (never run by the tests). Installs Debian's wrk if it is missing.
bench: install-test
	command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } || \
	  { sudo apt-get update -qq && sudo apt-get install -y -qq wrk; } || echo "wrk unavailable: the page table is skipped"
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) instance/test instance/pgtest .pytest_cache
