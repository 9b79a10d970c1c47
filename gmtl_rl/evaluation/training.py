"""Training curves: the scheduled evaluations logged in a run's metrics.csv, against env steps,
pooled over the seeds of an experiment."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gmtl_rl.evaluation.plots import plot_training
from gmtl_rl.evaluation.stats import CurvePoint, summarize_curve


@dataclass(frozen=True)
class EvalPoint:
    """One scheduled evaluation of one run: the last adaptation episode's mean return."""

    seed: int
    step: int
    episode_return: float
    success: float


def read_eval_points(metrics_csv: Path, seed: int) -> list[EvalPoint]:
    """The evaluation rows of a metrics.csv (rows whose eval columns are filled)."""
    with open(metrics_csv, newline="") as f:
        reader = csv.DictReader(f)
        needed = {"step", "eval_return_last", "eval_success_last"}
        if not needed <= set(reader.fieldnames or []):
            raise ValueError(f"{metrics_csv}: not a gmtl_rl metrics file (needs {sorted(needed)})")
        return [
            EvalPoint(
                seed, int(r["step"]), float(r["eval_return_last"]), float(r["eval_success_last"])
            )
            for r in reader
            if r["eval_return_last"]
        ]


def summarize_points(
    points: Sequence[EvalPoint], resamples: int = 2000
) -> tuple[list[CurvePoint], list[CurvePoint]]:
    """Mean and bootstrap interval over seeds at every evaluated step (return, success)."""
    step = np.array([p.step for p in points])
    pooled = np.zeros(len(points), dtype=np.int64)  # one value per seed and step: resample seeds
    returns = np.array([p.episode_return for p in points])
    success = np.array([p.success for p in points])
    return (
        summarize_curve(step, returns, pooled, n_resamples=resamples),
        summarize_curve(step, success, pooled, n_resamples=resamples),
    )


def write_training_plot(
    groups: dict[str, list[EvalPoint]], out_path: Path, title: str = "", resamples: int = 2000
) -> Path:
    """One curve per group (experiment or run) of evaluation return/success against steps."""
    summaries = {label: summarize_points(points, resamples) for label, points in groups.items()}
    return plot_training(
        {label: s[0] for label, s in summaries.items()},
        {label: s[1] for label, s in summaries.items()},
        out_path,
        title=title,
    )
