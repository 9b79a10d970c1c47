"""Running a sweep: its unfinished trials on the local process pool or on Ray Tune, with the
sweep directory's lock held throughout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from gmtl_rl.sweep.local import run_local
from gmtl_rl.sweep.ray_backend import run_ray
from gmtl_rl.sweep.spec import SweepDir, SweepSpec
from gmtl_rl.sweep.trials import Outcome, Report, jobs_to_run


def run(
    sweep_dir: Path,
    spec: SweepSpec,
    report: Report = print,
    backend: Literal["local", "ray"] | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
) -> list[Outcome]:
    """Run the unfinished trials; backend, address and concurrency default to the spec's.
    A second process running the same sweep is refused (`RunInUse`)."""
    with SweepDir(sweep_dir).writer_lock():
        jobs, finished = jobs_to_run(sweep_dir, spec)
        backend = backend or spec.backend
        limit = max_concurrent or spec.max_concurrent
        if backend == "local" and limit < 1:  # a Ray sweep's "as many as Ray has CPUs for"
            limit = os.cpu_count() or 1
        at_once = f"up to {limit} at once" if limit else "as many at once as Ray has CPUs"
        report(
            f"sweep {sweep_dir}: {len(spec.trials)} trials ({spec.num_combinations} combinations"
            f" x {len(spec.seeds)} seeds); {len(finished)} finished, {len(jobs)} to run "
            f"({backend}, {at_once})"
        )
        if not jobs:
            return []
        if backend == "ray":
            return run_ray(jobs, limit, address or spec.address, sweep_dir, report)
        return run_local(jobs, limit, report)
