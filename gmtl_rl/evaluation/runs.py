"""Reading the evaluation tables of finished runs, pooled into one group per experiment (or
per run), for `gmtl plot` and anything else that overlays runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from gmtl_rl.config import read_yaml
from gmtl_rl.errors import UsageError
from gmtl_rl.evaluation.adaptation import AdaptationRow, read_csv
from gmtl_rl.evaluation.training import EvalPoint, read_eval_points
from gmtl_rl.run_dir import RunDir

GroupBy = Literal["experiment", "run"]
Row = TypeVar("Row")


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
