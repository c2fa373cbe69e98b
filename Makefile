# fraudstream developer commands. `make test` and `make demo` work on a fresh machine.
PY := .venv/bin/python
BIN := .venv/bin

.PHONY: setup lint typecheck test test-fast bench demo clean

setup:
	@bash scripts/bootstrap.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) -m bench all

demo: setup
	$(BIN)/fraudstream demo

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
