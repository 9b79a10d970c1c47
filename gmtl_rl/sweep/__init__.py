"""`gmtl sweep`: every combination of grid axes x seeds as a normal run directory, run by local
processes or as Ray Tune trials, resumable, and aggregated across seeds at the end.

Sweep directory (default `<runs_dir>/<experiment>/sweep-<time>/`; paths in `SweepDir`):

    sweep.json      the spec (axes, plain overrides, seeds, backend) and the trial list
    base.yaml       verbatim copy of CONFIG: `--resume` needs nothing outside the directory
    trials/<name>/  one run directory per trial (`gmtl resume | eval | plot` understand it)
    logs/<name>.log stdout and stderr of the trial's gmtl process (appended on resume)
    aggregate.csv, aggregate.json, adaptation.png, training.png   the cross-seed aggregate
    ray/            Ray Tune's own records and, where the path is short enough, Ray's temp files
    .lock           held by the one process that runs or aggregates the sweep

Each trial is the gmtl CLI in its own process (`gmtl train BASE overrides --run-dir ...`, or
`gmtl resume` for a trial with a checkpoint), so a crashing trial never takes the others
down and checkpoints stay in our own atomic format.

    spec.py         the spec and the directory: plan, create, load
    trials.py       a trial's state on disk and its gmtl process
    launch.py       run: the unfinished trials on one of
    local.py          a local process pool (signals passed on), or
    ray_backend.py    Ray Tune trials
    aggregation.py  the cross-seed aggregate
"""

from gmtl_rl.sweep.aggregation import AGGREGATE_COLUMNS, CombinationResult, Estimate, aggregate
from gmtl_rl.sweep.launch import run
from gmtl_rl.sweep.local import SweepInterrupted
from gmtl_rl.sweep.ray_backend import ray_available
from gmtl_rl.sweep.spec import (
    BASE_CONFIG,
    FORMAT_VERSION,
    SPEC_FILE,
    Axis,
    SweepDir,
    SweepSpec,
    Trial,
    create,
    load,
    parse_seeds,
    plan,
    split_values,
)
from gmtl_rl.sweep.trials import Job, Outcome, TrialState, jobs_to_run, trial_state

__all__ = [
    "AGGREGATE_COLUMNS",
    "BASE_CONFIG",
    "FORMAT_VERSION",
    "SPEC_FILE",
    "Axis",
    "CombinationResult",
    "Estimate",
    "Job",
    "Outcome",
    "SweepDir",
    "SweepInterrupted",
    "SweepSpec",
    "Trial",
    "TrialState",
    "aggregate",
    "create",
    "jobs_to_run",
    "load",
    "parse_seeds",
    "plan",
    "ray_available",
    "run",
    "split_values",
    "trial_state",
]
