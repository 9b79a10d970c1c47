# `make run` and `make test` each set up .venv first (idempotent), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run`: RL² on the point robot and its two bounds, into one timestamped directory.
QUICKSTART := runs/quickstart/$(shell date +%Y%m%d-%H%M%S)

.PHONY: venv offscreen run test lint typecheck unit clean

venv: $(STAMP)

# torch==2.13.0 goes into the same resolver run as the project, under the constraints: any other
# torch request would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0 -e '.[dev]'
	touch $(STAMP)

# Offscreen OpenGL for MuJoCo on machines without a display (`gmtl record` and its tests):
# OSMesa, installed where we are root and apt-get exists. Never fails: where it cannot be had
# it says so, and the recording tests that need it skip with that reason.
offscreen:
	@$(PYTHON) -c "import ctypes.util, sys; sys.exit(ctypes.util.find_library('OSMesa') is None)" \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	     && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libosmesa6 >/dev/null 2>&1 \
	          || { apt-get update -qq >/dev/null 2>&1 \
	               && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libosmesa6 >/dev/null 2>&1; }; } \
	     && echo "installed libosmesa6 (offscreen MuJoCo rendering)"; } \
	|| echo "note: no OSMesa and it cannot be installed here (apt-get install libosmesa6 as root); MuJoCo recording tests will skip"

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
	$(BIN)/mypy gmtl_rl benchmarks

# Two pytest workers (pytest-xdist), one per core here, each run in them on one torch thread
# (GMTL_THREADS=1: two threads per worker on 2 busy cores ran a training test 1.3x slower; the
# whole suite showed no clear gain: 18.2 min against 16.5 the run before, on a VM where a test
# whose threads this leaves alone ran 12% slower). Passive OpenMP waits: two workers' torch
# threads spinning on 2 cores slowed a clean clone by half. The 25 slowest tests are printed to
# watch the 15-minute budget, which the suite misses (16.5-19 min on the slower VM, 2026-12-02).
unit: venv offscreen
	GMTL_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -m "not slow" -n 2 --durations=25

test: lint typecheck unit

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
