"""Adaptation curves: how fast an agent gets good on tasks it has not trained on.

Protocol (DESIGN.md, after PEARL §6 and Meta-World's `metalearning_evaluation`): for each
evaluation task and each of R repeats, reset the agent's belief once (a trial starts), run K
consecutive episodes on that task while the agent adapts, and record return and success of
episode k = 1..K. A non-adaptive agent gives a flat curve.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EpisodeRecord
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import FixedTaskSchedule
from gmtl_rl.envs.task import Task, TaskDistribution
from gmtl_rl.evaluation.plots import plot_adaptation
from gmtl_rl.evaluation.stats import CurvePoint, pooled_units, summarize_curve
from gmtl_rl.progress import progress_bar
from gmtl_rl.run_dir import ADAPTATION_CSV, ADAPTATION_PNG, SUMMARY_JSON

CSV_COLUMNS = [
    "run",
    "seed",
    "task",
    "task_index",
    "repeat",
    "episode",
    "return",
    "success",
    "length",
]


@dataclass(frozen=True)
class AdaptationRow:
    """One episode of one trial: the long-form table's row (episode k is 1-based)."""

    run: str
    seed: int
    task: int  # position in the evaluated task list
    task_index: int  # Task.index within its split
    repeat: int
    episode: int
    episode_return: float
    success: float
    length: int


def run_adaptation(
    policy: Policy,
    distribution: TaskDistribution,
    tasks: Sequence[Task],
    episodes: int,
    repeats: int = 1,
    n_envs: int = 4,
    seed: int = 0,
    deterministic: bool = True,
    run: str = "run",
    run_seed: int = 0,
) -> list[AdaptationRow]:
    """Run R trials of K episodes on every task; torch's global RNG is left untouched."""
    queue = [t for _ in range(repeats) for t in range(len(tasks))]
    n_envs = max(1, min(n_envs, len(queue)))
    sampler = RolloutSampler(
        distribution,
        tasks,
        n_envs,
        FixedTaskSchedule(queue),
        seed=seed,
        episodes_per_trial=episodes,
    )
    records: list[EpisodeRecord] = []
    total = len(queue) * episodes
    # Stochastic policies draw from torch's RNG: fork it so evaluating never shifts training.
    # The envs are closed however the loop ends (an interrupt; `gmtl record`, which stops the
    # evaluation once the trial it films is over).
    try:
        with (
            torch.random.fork_rng(devices=[]),
            progress_bar(total, 0, "eval", "episodes") as advance,
        ):
            torch.manual_seed(seed)
            while not sampler.all_idle:
                sampler.step(policy, deterministic=deterministic)
                records.extend(sampler.pop_finished())
                advance(len(records))
    finally:
        sampler.close()
    # The queue is consumed in order, so the r-th trial of a task (by trial id) is repeat r.
    trials_of_task: dict[int, list[int]] = defaultdict(list)
    for trial, task in sorted({(r.trial_id, r.task_id) for r in records}):
        trials_of_task[task].append(trial)
    rows = []
    for r in sorted(records, key=lambda r: (r.task_id, r.trial_id, r.episode_in_trial)):
        rows.append(
            AdaptationRow(
                run=run,
                seed=run_seed,
                task=r.task_id,
                task_index=tasks[r.task_id].index,
                repeat=trials_of_task[r.task_id].index(r.trial_id),
                episode=r.episode_in_trial + 1,
                episode_return=r.episode_return,
                success=float(r.success),
                length=r.length,
            )
        )
    expected = len(tasks) * repeats * episodes
    if len(rows) != expected:
        raise RuntimeError(f"adaptation run recorded {len(rows)} episodes, expected {expected}")
    return rows


@dataclass(frozen=True)
class CurveSummary:
    """Aggregates per episode index k, over tasks, repeats and seeds."""

    episode_return: list[CurvePoint]
    success: list[CurvePoint]
    length: list[CurvePoint] | None = None  # steps per episode (e.g. Four Rooms' measure)


def summarize(
    rows: Sequence[AdaptationRow], confidence: float = 0.95, resamples: int = 2000
) -> CurveSummary:
    """Mean, IQM and bootstrap intervals per k, by the rule of `stats.pooled_units`.

    Rows of several runs (seeds): a run's score on a task at k is its mean over repeats, and
    the runs are resampled within each task stratum (rliable's stratified bootstrap), so the
    seed-to-seed spread is in the interval. Rows of one run: its repeats are resampled within
    each task. Where that would give a zero-width interval for want of spread (a task with a
    single value at some k, or values that differ within no task: repeats that are exact
    copies, a deterministic agent from a fixed start), the tasks are resampled as one pool
    instead; the return decides that for every metric. A run is a (run name, seed) pair.
    """
    episode = np.array([r.episode for r in rows], dtype=np.int64)
    task = np.array([r.task for r in rows], dtype=np.int64)
    # One integer id per (seed, run name), in that order: a sweep's runs in seed order.
    run_ids = {key: i for i, key in enumerate(sorted({(r.seed, r.run) for r in rows}))}
    run = np.array([run_ids[(r.seed, r.run)] for r in rows], dtype=np.int64)
    returns = np.array([r.episode_return for r in rows], dtype=np.float64)
    units = pooled_units(episode, run, task, reference=returns)
    kw: dict[str, Any] = {"confidence": confidence, "n_resamples": resamples}

    def curve(values: np.ndarray) -> list[CurvePoint]:
        return summarize_curve(units.episode, units.values(values), units.strata, **kw)

    return CurveSummary(
        episode_return=curve(returns),
        success=curve(np.array([r.success for r in rows], dtype=np.float64)),
        length=curve(np.array([r.length for r in rows], dtype=np.float64)),
    )


def per_task_table(rows: Sequence[AdaptationRow]) -> list[dict[str, Any]]:
    """Success rate and mean return per task over the last episode of each trial."""
    last = max(r.episode for r in rows)
    by_task: dict[int, list[AdaptationRow]] = defaultdict(list)
    for r in rows:
        if r.episode == last:
            by_task[r.task].append(r)
    return [
        {
            "task": task,
            "task_index": group[0].task_index,
            "return": float(np.mean([r.episode_return for r in group])),
            "success": float(np.mean([r.success for r in group])),
            "trials": len(group),
        }
        for task, group in sorted(by_task.items())
    ]


def write_csv(rows: Iterable[AdaptationRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            d = asdict(r)
            writer.writerow([d["episode_return"] if c == "return" else d[c] for c in CSV_COLUMNS])


def read_csv(path: Path) -> list[AdaptationRow]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not an adaptation table (missing columns {sorted(missing)})")
        return [
            AdaptationRow(
                run=d["run"],
                seed=int(d["seed"]),
                task=int(d["task"]),
                task_index=int(d["task_index"]),
                repeat=int(d["repeat"]),
                episode=int(d["episode"]),
                episode_return=float(d["return"]),
                success=float(d["success"]),
                length=int(d["length"]),
            )
            for d in reader
        ]


def write_report(
    rows: Sequence[AdaptationRow],
    out_dir: Path,
    meta: dict[str, Any],
    confidence: float = 0.95,
    resamples: int = 2000,
) -> CurveSummary:
    """`adaptation.csv`, `summary.json` and `adaptation.png` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / ADAPTATION_CSV)
    summary = summarize(rows, confidence, resamples)
    doc = {
        **meta,
        "confidence": confidence,
        "episodes": max(r.episode for r in rows),
        "num_tasks": len({r.task for r in rows}),
        "repeats": max(r.repeat for r in rows) + 1,
        "return": [p.to_json() for p in summary.episode_return],
        "success": [p.to_json() for p in summary.success],
        "length": [p.to_json() for p in summary.length or []],
        "per_task": per_task_table(rows),
    }
    (out_dir / SUMMARY_JSON).write_text(json.dumps(doc, indent=2))
    label = str(meta.get("label", meta.get("run", "run")))
    # Episode length gets its own panel where it carries the result: episodes that end at
    # the goal (Four Rooms: the return is always 1, the steps show the learning).
    lengths_vary = len({r.length for r in rows}) > 1
    plot_adaptation(
        {label: summary.episode_return},
        {label: summary.success},
        out_dir / ADAPTATION_PNG,
        title=str(meta.get("title", "")),
        curves_length={label: summary.length} if summary.length and lengths_vary else None,
    )
    return summary
