"""Reading the evaluation tables of finished runs, pooled into one group per experiment (or
per run), for `gmtl plot` and anything else that overlays runs; and the bounds of a meta-RL
curve (an oracle's and a non-adaptive baseline's level), each pooled into one reference level."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from gmtl_rl.config import read_yaml
from gmtl_rl.errors import UsageError
from gmtl_rl.evaluation.adaptation import AdaptationRow, read_csv, summarize
from gmtl_rl.evaluation.plots import Reference
from gmtl_rl.evaluation.training import EvalPoint, read_eval_points
from gmtl_rl.run_dir import RunDir

GroupBy = Literal["experiment", "run"]
Row = TypeVar("Row")

# Legend labels of the two bounds of a meta-learner's adaptation curve (issue 14).
ORACLE = "oracle (task visible)"
NON_ADAPTIVE = "non-adaptive (task hidden)"


def adaptation_groups(
    run_dirs: Sequence[str | Path], group_by: GroupBy = "experiment"
) -> dict[str, list[AdaptationRow]]:
    """The rows of each run's final adaptation curve (eval/adaptation.csv), pooled by label."""
    return _groups(
        run_dirs,
        group_by,
        table=lambda run: run.adaptation_csv,
        hint=lambda run: f"run `gmtl eval {run}` first",
        read=lambda table, config: read_csv(table),
    )


def reference_level(
    run_dirs: Sequence[str | Path], confidence: float = 0.95, resamples: int = 2000
) -> Reference:
    """One level of return and success: the rows of the runs' eval/adaptation.csv (seeds,
    tasks, repeats and every episode k) pooled as one episode index, with the interval of
    `summarize` (its rule for runs, tasks and repeats). A bound's curve is flat (the task is
    visible from the start, or never), so its level is its mean over k."""
    rows = [
        dataclasses.replace(row, episode=1)
        for group in adaptation_groups(run_dirs, "run").values()
        for row in group
    ]
    if not rows:
        raise UsageError(f"{', '.join(map(str, run_dirs))}: no rows in eval/adaptation.csv")
    summary = summarize(rows, confidence, resamples)
    return Reference(summary.episode_return[0], summary.success[0])


def bound_references(
    oracle: Sequence[str | Path] = (),
    non_adaptive: Sequence[str | Path] = (),
    confidence: float = 0.95,
    resamples: int = 2000,
) -> dict[str, Reference]:
    """The levels of the bounds given (label -> level): the oracle runs (the same agent with the
    task visible) and the non-adaptive runs (the task hidden, no adaptation), each pooled over
    its seeds. A run without eval/adaptation.csv is a UsageError naming the bound."""
    references: dict[str, Reference] = {}
    for name, label, runs in (
        ("oracle", ORACLE, oracle),
        ("non-adaptive", NON_ADAPTIVE, non_adaptive),
    ):
        if not runs:
            continue
        try:
            references[label] = reference_level(runs, confidence, resamples)
        except UsageError as err:
            raise UsageError(f"{name} bound: {err}") from None
    return references


def training_groups(
    run_dirs: Sequence[str | Path], group_by: GroupBy = "experiment"
) -> dict[str, list[EvalPoint]]:
    """The scheduled evaluations each run logged in its metrics, pooled by label; every group
    must have some."""
    groups = _groups(
        run_dirs,
        group_by,
        table=lambda run: run.metrics,
        hint=lambda run: "not a run",
        read=lambda table, config: read_eval_points(table, int(config.get("seed", 0))),
    )
    if not all(groups.values()):
        name = RunDir(".").metrics.name
        raise UsageError(f"a run has no evaluation rows in {name} (set eval.every_steps)")
    return groups


def _groups(
    run_dirs: Sequence[str | Path],
    group_by: GroupBy,
    table: Callable[[RunDir], Path],
    hint: Callable[[RunDir], str],
    read: Callable[[Path, dict[str, Any]], list[Row]],
) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for path in run_dirs:
        run = RunDir(path)
        config = read_yaml(run.config) if run.is_run() else {}
        label = run.name
        if group_by == "experiment":
            label = str(config.get("experiment", label))
        file = table(run)
        if not file.is_file():
            raise UsageError(f"{run}: no {file.relative_to(run.path)} ({hint(run)})")
        try:
            groups.setdefault(label, []).extend(read(file, config))
        except (ValueError, KeyError) as err:
            raise UsageError(f"{file}: unreadable ({err})") from None
    return groups
