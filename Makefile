# `make run` and `make test` each set up .venv first (idempotent), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/quickstart.yaml

.PHONY: venv run test lint typecheck unit clean

venv: $(STAMP)

# torch==2.13.0 goes into the same resolver run as the project, under the constraints: any other
# torch request would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0 -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/gmtl train $(CONFIG)

lint: venv
	$(BIN)/ruff check gmtl_rl tests benchmarks
	$(BIN)/ruff format --check gmtl_rl tests benchmarks

typecheck: venv
	$(BIN)/mypy gmtl_rl

unit: venv
	$(BIN)/python -m pytest -q -m "not slow"

test: lint typecheck unit

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
