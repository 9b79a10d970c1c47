"""The benchmarks' one way to run the CLI: each run is a run directory that a benchmark reuses
when finished, resumes when stopped (a session ended, a checkpoint was left) and starts
otherwise, so rerunning a benchmark's command continues it.

Imported by the scripts next to it (`python benchmarks/x.py` puts this folder on sys.path).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).parents[1]


def add_run_arguments(parser: argparse.ArgumentParser, runs: Path, config_names: str) -> None:
    """The options every benchmark that keeps records shares: where configs, runs, records and
    the report live, and --report-only."""
    parser.add_argument("--configs", type=Path, default=ROOT / "configs",
                        help=f"holds {config_names} (configs/smoke: a check)")  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    parser.add_argument("--runs", type=Path, default=runs)
    parser.add_argument("--records", type=Path, default=ROOT / "docs" / "records",
                        help="each finished run's results are copied under RECORDS (run "
                        "directories do not outlive a session); the report reads a run from "
                        "there when its directory is gone")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the report goes")


def gmtl(args: Sequence[str]) -> None:
    """`gmtl ARGS` in a child process, echoed with the time; a failure stops the benchmark."""
    print(f"[{time.strftime('%H:%M:%S')}] gmtl {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "gmtl_rl.cli", *args])
    if done.returncode != 0:
        raise SystemExit(f"gmtl {' '.join(args)} failed (exit {done.returncode})")


RESUMABLE = ("eval.", "checkpoint.", "logging.")  # what `gmtl resume` lets an override change


def train_or_resume(
    run: Path, config: Path, overrides: Sequence[str], total_steps: int | None = None
) -> float:
    """Bring one run to its budget: reuse it, resume it or start it from `config` with
    `overrides`. `total_steps`, when given, is the budget (it may differ from the one the run
    was started with: a resume extends the run to it). A resume gets those of `overrides` a
    resume may change (the evaluation, checkpoint and logging schedules); the rest of a run's
    config is fixed when it starts. Returns the seconds this call spent (0 for a reused run)."""
    from gmtl_rl.run_dir import RunDir

    start = time.perf_counter()
    budget = [] if total_steps is None else [f"total_steps={total_steps}"]
    path = RunDir(run)
    if path.path.is_dir():
        saved = path.read_config_mapping()
        if total_steps is not None:
            saved = {**saved, "total_steps": total_steps}
        if path.is_finished(saved):
            return 0.0
        schedules = [o for o in overrides if o.split("=", 1)[0].startswith(RESUMABLE)]
        gmtl(["resume", str(run), *schedules, *budget])
    else:
        gmtl(["train", str(config), *overrides, *budget, "--run-dir", str(run)])
    return time.perf_counter() - start


# What a finished run's results are, without its checkpoints, TensorBoard logs and images:
# small enough to keep in the repository, which outlives the sessions' run directories.
RECORD_FILES = (
    "config.yaml",
    "tasks.json",
    "versions.json",
    "metrics.csv",
    "init_from.json",
    "eval/adaptation.csv",
    "eval/summary.json",
)


def keep_record(run: Path, record: Path, files: Sequence[str] = RECORD_FILES) -> Path:
    """Copy `run`'s result files (`files`, where present) to `record`, a directory that reads
    as the run for the report (`RunDir(record)`: config, final evaluation, metrics). A
    benchmark whose evaluations are too large to keep row by row passes its own `files`."""
    for name in files:
        source = run / name
        if source.is_file():
            (record / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, record / name)
    return record


def finished_or_record(run: Path, record: Path, files: Sequence[str] = RECORD_FILES) -> Path | None:
    """The directory a report reads for one run: the run's record, refreshed from the run when
    the run has finished its budget (`RunDir.is_finished`: a run extended by a resume is not
    finished until its new final evaluation is written, whatever an older one left in eval/);
    else its record from an earlier session, when that holds every eval/ file of `files`;
    else None (said on stdout: the run is left out of the report)."""
    from gmtl_rl.run_dir import RunDir

    if RunDir(run).is_finished():
        return keep_record(run, record, files)
    kept = [record / name for name in files if name.startswith("eval/")]
    if kept and all(path.is_file() for path in kept):
        where = "not finished here" if run.is_dir() else "not here"
        print(f"{run}: {where}; its record {record} stands for it")
        return record
    print(f"{run}: no final evaluation yet; left out of the report")
    return None


def training_time(run: Path) -> tuple[int, float] | None:
    """Env steps and training wall-clock seconds of a run (or its record), from metrics.csv;
    None without rows. `time_s` restarts at 0 on each resume, so the attempts' last times are
    summed (a restart shows as a time below the row before it). The periodic and final
    evaluations' episodes are counted; process start-up and writing the report files are not."""
    path = run / "metrics.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        rows = [(int(r["step"]), float(r["time_s"])) for r in csv.DictReader(f)]
    if not rows:
        return None
    earlier = sum(t for (_, t), (_, later) in itertools.pairwise(rows) if later < t)
    return rows[-1][0], earlier + rows[-1][1]
