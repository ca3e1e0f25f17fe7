# Two entry points a new user needs (see README): `make demo` and `make test`.
# Each sets up .venv from pyproject.toml on first use and is safe to re-run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-full lint bench venv clean-runs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

## Main job: a sweep against the embedded emulator, ending in an HTML write-up.
demo: $(STAMP)
	$(BIN)/nbp-kit demo

## The test suite (what CI runs): lint and types, then pytest.
test: $(STAMP) lint
	@bash scripts/ensure-browser
	@bash scripts/ensure-postgres
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15

## Everything, including the 5-minute load test and the browser test.
test-full: $(STAMP)
	NBP_KIT_FULL=1 $(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check nbp_kit tests benchmarks notebooks/_build.py
	$(BIN)/ruff format --check nbp_kit tests benchmarks notebooks/_build.py
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean-runs:
	rm -rf data/runs/*
