# The two commands of the README: `make serve` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# npm is optional: without it the API still serves, and the Node and browser tests skip (they fail under CI=true).
NPM := $(shell command -v npm 2>/dev/null)
NODE_TESTS := tests/node/node_modules/.package-lock.json
JS_CLIENT := clients/js/dist/index.js
WEB_BUILD := web/dist/index.html
WEB_SOURCES := web/index.html web/graphiql.html web/vite.config.ts web/tsconfig.json $(wildcard web/src/* web/public/*) \
	$(wildcard clients/js/src/*.ts) graphql/operations/CreateNotification.graphql

.PHONY: serve test lint schema bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

## Run the server on the embedded default (SQLite in .tidings/, in-process fan-out) at http://127.0.0.1:8000
serve: $(VENV)/.installed
ifneq ($(NPM),)
	-$(MAKE) --no-print-directory $(WEB_BUILD)
else
	@echo "make: npm not found: serving the API without the dashboard (/ says how to build it)"
endif
	$(BIN)/tidings serve

## Lint, type-check and run the whole test suite
test: $(VENV)/.installed-test lint $(if $(NPM),$(NODE_TESTS) $(JS_CLIENT) $(WEB_BUILD))
	$(BIN)/python -m pytest

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.installed

## Measure tidings against the floor on this machine (bench/README.md); `make bench ARGS=--quick` for a smoke run
bench: $(VENV)/.installed-bench bench/loadgen/node_modules/.package-lock.json
	$(BIN)/python -m bench.run $(ARGS)

# npm ci installs exactly the committed lockfile; its own node_modules/.package-lock.json marks it done.
%/node_modules/.package-lock.json: %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error

# @tidings/client (clients/js): its operations and their types generated from graphql/ into src/generated/, then
# TypeScript to ESM and declarations in dist/.
$(JS_CLIENT): clients/js/node_modules/.package-lock.json clients/js/package.json clients/js/tsconfig.json \
		clients/js/scripts/codegen.mjs $(wildcard clients/js/src/*.ts) graphql/schema.graphql $(wildcard graphql/operations/*)
	cd clients/js && npm run --silent build

# The dashboard (/) and GraphiQL (/graphql) with Vite into web/dist; rebuilt only when a source changed.
$(WEB_BUILD): web/node_modules/.package-lock.json $(WEB_SOURCES) $(JS_CLIENT)  # the client's src/generated/ too
	cd web && npm run --silent build
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check tidings tests
	$(BIN)/ruff format --check tidings tests
	$(BIN)/mypy

## Re-export graphql/schema.graphql from the code
schema: $(VENV)/.installed
	$(BIN)/tidings export-schema -o graphql/schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
