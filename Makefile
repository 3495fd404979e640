# The two commands of the README: `make serve` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# npm is optional: without it the API still serves, and the Node and browser tests skip (they fail under CI=true).
NPM := $(shell command -v npm 2>/dev/null)
NODE_TESTS := tests/node/node_modules/.package-lock.json
JS_CLIENT := clients/js/dist/index.js

.PHONY: serve test lint schema clean

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
	$(BIN)/tidings serve

## Lint, type-check and run the whole test suite
test: $(VENV)/.installed-test lint $(if $(NPM),$(NODE_TESTS) $(JS_CLIENT))
	$(BIN)/python -m pytest

# npm ci installs exactly the committed lockfile; its own node_modules/.package-lock.json marks it done.
%/node_modules/.package-lock.json: %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error

# @tidings/client (clients/js): TypeScript to ESM and declarations in dist/.
$(JS_CLIENT): clients/js/node_modules/.package-lock.json clients/js/tsconfig.json $(wildcard clients/js/src/*.ts)
	cd clients/js && npm run --silent build

lint: $(VENV)/.installed-test
	$(BIN)/ruff check tidings tests
	$(BIN)/ruff format --check tidings tests
	$(BIN)/mypy

## Re-export graphql/schema.graphql from the code
schema: $(VENV)/.installed
	$(BIN)/tidings export-schema -o graphql/schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
