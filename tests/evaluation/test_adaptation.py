"""The adaptation-curve protocol, checked with a scripted oracle whose curve is known."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

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


def _two_seed_rows(tasks: int = 4, repeats: int = 3):
    """Seed 0 scores 0 on every task, seed 1 scores 10; repeats within a seed nearly equal."""
    from gmtl_rl.evaluation.adaptation import AdaptationRow

    return [
        AdaptationRow(f"run-s{seed}", seed, task, task, repeat, 1, 10.0 * seed + 0.01 * repeat,
                      float(seed), 20)
        for seed in (0, 1)
        for task in range(tasks)
        for repeat in range(repeats)
    ]  # fmt: skip


def test_an_interval_pooled_over_seeds_includes_the_seed_to_seed_spread():
    """Resampling the repeats within (seed, task) strata kept each seed's share fixed, so the
    interval around 5 was about 0.01 wide; the seeds, resampled within tasks, span 0..10."""
    from gmtl_rl.evaluation.adaptation import summarize

    summary = summarize(_two_seed_rows(), resamples=1000)
    (point,) = summary.episode_return
    for low, high in (point.mean_ci, point.iqm_ci):  # formerly (5.0067, 5.0133)
        assert low < 3.0 and high > 7.0
    (success,) = summary.success  # formerly (0.5, 0.5)
    assert success.mean_ci[0] < 0.3 and success.mean_ci[1] > 0.7
    assert point.n == 8  # (seed, task) scores, each a seed's mean over its 3 repeats
    assert point.mean == pytest.approx(5.01)


def test_pooled_intervals_are_the_run_bootstrap_of_per_seed_task_means():
    """The same numbers as `stratified_bootstrap_ci` on one mean per (seed, task), tasks as
    strata, seeds in order: what the sweep aggregate computed before it used `summarize`."""
    from gmtl_rl.evaluation.adaptation import AdaptationRow, summarize
    from gmtl_rl.evaluation.stats import iqm, stratified_bootstrap_ci

    rng = np.random.default_rng(3)
    rows = [
        AdaptationRow(f"s{seed}", seed, task, task, repeat, k, float(rng.normal(task + seed)),
                      0.0, 20)
        for seed in (2, 11, 5)  # sorted by seed, not by name ("s11" < "s2")
        for task in range(4)
        for repeat in range(2)
        for k in (1, 2)
    ]  # fmt: skip
    curve = summarize(rows, resamples=300).episode_return
    for k, point in zip((1, 2), curve, strict=True):
        keys = sorted({(r.seed, r.task) for r in rows})
        values = np.array([
            np.mean([r.episode_return for r in rows if (r.seed, r.task) == key and r.episode == k])
            for key in keys
        ])  # fmt: skip
        strata = np.array([task for _, task in keys])
        assert point.episode == k and point.n == 12
        assert point.mean == pytest.approx(values.mean())
        assert point.iqm == pytest.approx(iqm(values))
        expected = stratified_bootstrap_ci(values, strata, "mean", n_resamples=300)
        np.testing.assert_allclose(point.mean_ci, expected, rtol=1e-12)
        expected = stratified_bootstrap_ci(values, strata, "iqm", n_resamples=300)
        np.testing.assert_allclose(point.iqm_ci, expected, rtol=1e-12)


def test_a_single_run_keeps_the_repeats_within_tasks_rule():
    """One run's rows: the repeats of each task are resampled (the task-to-task spread is
    fixed), exactly `summarize_curve` with the task as stratum."""
    from gmtl_rl.evaluation.adaptation import summarize
    from gmtl_rl.evaluation.stats import summarize_curve

    rows = [r for r in _two_seed_rows() if r.seed == 1]
    values = np.array([r.episode_return for r in rows])
    expected = summarize_curve(
        np.ones(len(rows), dtype=np.int64), values, np.array([r.task for r in rows]),
        n_resamples=300,
    )  # fmt: skip
    assert summarize(rows, resamples=300).episode_return == expected
    assert expected[0].n == 12 and expected[0].mean_ci[1] - expected[0].mean_ci[0] < 0.02
