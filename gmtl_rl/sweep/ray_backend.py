"""The Ray Tune launcher: every trial a Tune trial of one CPU that runs the trial's gmtl process.
Tune's own checkpointing is not used: `--resume` works from our run directories.

Ray workers import this module to run `_ray_trial`: it and what it imports stay free of torch
and the config models."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from gmtl_rl.ray_cluster import connect, import_ray
from gmtl_rl.sweep.spec import SweepDir
from gmtl_rl.sweep.trials import Job, Outcome, Report, describe, die_with_parent, python_command


def ray_available() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def _tune_dirname(trial: Any) -> str:
    return str(trial.config["trial"])


def _ray_trial(config: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> None:
    """A Ray Tune function trainable: the trial's gmtl process, its exit status reported."""
    import ray
    from ray import tune

    spec = jobs[config["trial"]]
    job = Job(**{**spec, "command": tuple(spec["command"])})
    # A trial with sampler.backend: ray joins this cluster instead of starting its own Ray.
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    start = time.monotonic()
    with open(job.log, "ab") as log:
        log.write(f"$ gmtl {' '.join(job.command)}\n".encode())
        log.flush()
        # If this worker dies, the trial gets SIGTERM: it checkpoints and exits (resumable).
        proc = subprocess.Popen(
            python_command(job), cwd=job.cwd, stdout=log, stderr=subprocess.STDOUT,
            env=env, preexec_fn=die_with_parent,
        )  # fmt: skip
        code = proc.wait()
    tune.report({"exit_code": code, "seconds": time.monotonic() - start})


def run_ray(
    jobs: Sequence[Job],
    max_concurrent: int,
    address: str | None,
    sweep_dir: Path,
    report: Report,
) -> list[Outcome]:
    """Every job a Ray Tune trial of one CPU, at most `max_concurrent` at once (0: one per
    free CPU of the cluster); a trial that never reports counts as failed."""
    # Our run directories and the lines below say it all: no console table from Tune.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    records = SweepDir(sweep_dir).ray
    session = connect(address, records, hint=" (or use --backend local)")
    ray = import_ray()
    from ray import tune

    outcomes: dict[str, Outcome] = {}
    by_name = {job.name: job for job in jobs}

    class Progress(tune.Callback):
        """Reports each trial as it ends, as the local backend does."""

        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
        ) -> None:
            job = by_name[trial.config["trial"]]
            code = result.get("exit_code")
            outcome = Outcome(job.name, code, float(result.get("seconds", 0.0)), job.log)
            outcomes[outcome.name] = outcome
            report(describe(outcome, len(outcomes), len(jobs)))

    try:
        report(f"  Ray: {ray.cluster_resources().get('CPU', 0):g} CPUs")
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(_ray_trial, jobs={j.name: asdict(j) for j in jobs}), {"cpu": 1}
            ),
            param_space={"trial": tune.grid_search(list(by_name))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent or None,  # 0: one trial per free CPU
                reuse_actors=False,
                trial_dirname_creator=_tune_dirname,
            ),
            run_config=tune.RunConfig(
                name=f"tune-{datetime.now():%Y%m%d-%H%M%S}",
                storage_path=str(records.resolve()),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
                callbacks=[Progress()],
            ),
        )
        tuner.fit()
    finally:
        session.close()
    # A trial that never reported (its worker died, Tune was interrupted) is not finished.
    lost = [Outcome(j.name, None, 0.0, j.log) for j in jobs if j.name not in outcomes]
    for outcome in lost:
        report(describe(outcome, len(outcomes) + 1, len(jobs)))
    return [*outcomes.values(), *lost]
