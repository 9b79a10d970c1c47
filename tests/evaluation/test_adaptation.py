"""The adaptation-curve protocol, checked with a scripted oracle whose curve is known."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from gmtl_rl.core.records import StepBatch
from gmtl_rl.envs import make
from gmtl_rl.evaluation.adaptation import read_csv, run_adaptation, write_report


class WrongThenRightOracle:
    """Knows every goal; heads away from it in the first episode of a trial, straight to it
    afterwards. It counts episodes itself from `observe`, as an adaptive agent would."""

    def __init__(self, goals: np.ndarray, n_envs: int) -> None:
        self.goals = goals
        self.episode_in_trial = np.zeros(n_envs, np.int64)

    def reset(self, env_mask: np.ndarray) -> None:
        self.episode_in_trial[env_mask] = 0

    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        goal = self.goals[task_class]
        target = np.where(self.episode_in_trial[:, None] == 0, -2.0 * np.sign(goal + 1e-9), goal)
        return np.clip(target - obs, -0.1, 0.1).astype(np.float32)

    def observe(self, step: StepBatch) -> None:
        self.episode_in_trial[step.valid & step.done] += 1


def _oracle_rows(repeats: int = 2, episodes: int = 3):
    # Train tasks: there a task's class id (what `act` is told) is its position in the list.
    dist = make("point-robot", n_train=5, n_test=4)
    tasks = dist.train_tasks()
    goals = np.stack([t.array("goal") for t in tasks])
    oracle = WrongThenRightOracle(goals, n_envs=3)
    return run_adaptation(oracle, dist, tasks, episodes=episodes, repeats=repeats, n_envs=3, seed=0)


def test_oracle_curve_fails_episode_one_and_succeeds_from_episode_two():
    rows = _oracle_rows()
    success = {k: [r.success for r in rows if r.episode == k] for k in (1, 2, 3)}
    assert success[1] == [0.0] * 10
    assert success[2] == success[3] == [1.0] * 10


def test_every_task_repeat_and_episode_appears_exactly_once():
    rows = _oracle_rows(repeats=2, episodes=3)
    keys = sorted((r.task, r.repeat, r.episode) for r in rows)
    assert keys == [(t, r, k) for t in range(5) for r in range(2) for k in (1, 2, 3)]
    assert all(r.length == 20 for r in rows)


def test_adapted_episodes_return_more_than_the_first():
    rows = _oracle_rows()
    mean = {k: np.mean([r.episode_return for r in rows if r.episode == k]) for k in (1, 2, 3)}
    assert mean[2] > mean[1] + 5 and mean[3] > mean[1] + 5


def test_report_writes_long_table_summary_and_plot(tmp_path):
    rows = _oracle_rows()
    write_report(rows, tmp_path, {"run": "oracle"}, resamples=200)
    assert read_csv(tmp_path / "adaptation.csv") == rows
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [p["mean"] for p in summary["success"]] == [0.0, 1.0, 1.0]
    k1 = summary["return"][0]
    assert k1["mean_ci"][0] <= k1["mean"] <= k1["mean_ci"][1]
    assert len(summary["per_task"]) == 5 and all(t["success"] == 1.0 for t in summary["per_task"])
    assert (tmp_path / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_leaves_torch_global_rng_untouched():
    import torch

    torch.manual_seed(123)
    before = torch.get_rng_state().clone()
    _oracle_rows(repeats=1, episodes=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_repeats_that_are_exact_copies_still_give_an_interval_over_tasks():
    """A deterministic agent from a fixed start repeats itself exactly: resampling within
    (seed, task) strata would give a zero-width interval; tasks are pooled instead."""
    from gmtl_rl.evaluation.adaptation import AdaptationRow, summarize

    rows = [
        AdaptationRow("r", 0, task, task, repeat, 1, float(task), 0.0, 20)
        for task in range(10)
        for repeat in range(3)
    ]
    low, high = summarize(rows, resamples=500).episode_return[0].mean_ci
    assert low < 4.5 < high  # the mean over tasks 0..9
    # With spread inside the strata, they are kept: the task-to-task spread is fixed by the
    # strata, so the interval only reflects the small within-task noise.
    noisy = [dataclasses.replace(r, episode_return=r.episode_return + 0.1 * r.repeat)
             for r in rows]  # fmt: skip
    low_s, high_s = summarize(noisy, resamples=500).episode_return[0].mean_ci
    assert high_s - low_s < (high - low) / 5
