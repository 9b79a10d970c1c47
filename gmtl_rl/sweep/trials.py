"""A trial on disk (fresh, resumable or finished, by the run directory's own rule) and the gmtl
process that runs it, shared by the local and the Ray Tune launchers."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gmtl_rl.run_dir import RunDir
from gmtl_rl.sweep.spec import SweepDir, SweepSpec

TrialState = Literal["finished", "resumable", "fresh"]
Report = Callable[[str], None]


def trial_state(run_dir: str | os.PathLike[str]) -> TrialState:
    """fresh: no checkpoint; finished: the run is finished as `gmtl resume` decides
    (`RunDir.is_finished`); resumable: anything else with a checkpoint (`gmtl resume` gives
    the precise error, in the trial's log, if it cannot)."""
    run = RunDir(run_dir)
    if not run.checkpoint_dirs():
        return "fresh"
    return "finished" if run.is_finished() else "resumable"


@dataclass(frozen=True)
class Job:
    """A trial's gmtl process: what to run and where its output goes (JSON-friendly)."""

    name: str
    command: tuple[str, ...]  # gmtl CLI arguments, after `python -m gmtl_rl.cli`
    log: str
    cwd: str


@dataclass(frozen=True)
class Outcome:
    name: str
    exit_code: int | None  # None: the trial never reported (Ray lost it)
    seconds: float
    log: str


def jobs_to_run(sweep_dir: Path, spec: SweepSpec) -> tuple[list[Job], list[str]]:
    """The unfinished trials as jobs (resume where a checkpoint exists, else start over),
    and the names of finished ones."""
    jobs, finished = [], []
    root = SweepDir(sweep_dir.resolve())
    for trial in spec.trials:
        run = root.trial(trial.name)
        state = trial_state(run.path)
        if state == "finished":
            finished.append(trial.name)
            continue
        if state == "resumable":
            command: tuple[str, ...] = ("resume", str(run))
        else:
            shutil.rmtree(run.path, ignore_errors=True)  # a start cut before its first checkpoint
            base = str(root.base_config)
            command = ("train", base, *trial.overrides, "--run-dir", str(run))
        jobs.append(Job(trial.name, command, str(root.log(trial.name)), os.getcwd()))
    return jobs, finished


def python_command(job: Job) -> list[str]:
    return [sys.executable, "-m", "gmtl_rl.cli", *job.command]


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, even by SIGKILL, so a trial of
    a killed sweep checkpoints and stops instead of running on unseen (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def describe(outcome: Outcome, done: int, total: int) -> str:
    head = f"  [{done}/{total}] {outcome.name}"
    if outcome.exit_code == 0:
        return f"{head} finished in {outcome.seconds:.1f} s"
    code = "no exit status" if outcome.exit_code is None else f"exit {outcome.exit_code}"
    return f"{head} FAILED ({code}) after {outcome.seconds:.1f} s; log: {outcome.log}"
