# The two commands of the README: `make serve` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

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
test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check tidings tests
	$(BIN)/ruff format --check tidings tests
	$(BIN)/mypy

## Re-export graphql/schema.graphql from the code
schema: $(VENV)/.installed
	$(BIN)/tidings export-schema -o graphql/schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
