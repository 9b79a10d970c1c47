# `make run` and `make test` each set up .venv first (idempotent), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run`: RL² on the point robot and its two bounds, into one timestamped directory.
QUICKSTART := runs/quickstart/$(shell date +%Y%m%d-%H%M%S)

.PHONY: venv run test lint typecheck unit clean

venv: $(STAMP)

# torch==2.13.0 goes into the same resolver run as the project, under the constraints: any other
# torch request would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0 -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/gmtl train configs/quickstart.yaml --run-dir $(QUICKSTART)/rl2
	$(BIN)/gmtl train configs/quickstart_oracle.yaml --run-dir $(QUICKSTART)/oracle
	$(BIN)/gmtl train configs/quickstart_nonadaptive.yaml --run-dir $(QUICKSTART)/non-adaptive
	$(BIN)/gmtl plot $(QUICKSTART)/rl2 --oracle $(QUICKSTART)/oracle \
	    --non-adaptive $(QUICKSTART)/non-adaptive --out $(QUICKSTART)/adaptation.png

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
