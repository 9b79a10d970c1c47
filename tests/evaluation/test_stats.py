import itertools
import json
import warnings

import numpy as np
import pytest
import scipy.stats

from gmtl_rl.evaluation.stats import (
    CurvePoint,
    curve_from_json,
    iqm,
    pooled_units,
    stratified_bootstrap_ci,
    summarize_curve,
)


def test_iqm_of_eight_values_is_mean_of_middle_four():
    # trim_mean(x, 0.25) cuts int(0.25 * 8) = 2 values from each end: mean(3, 4, 5, 6).
    assert iqm(np.array([8.0, 1, 7, 2, 6, 3, 5, 4])) == 4.5


def test_iqm_of_four_values_is_mean_of_middle_two():
    assert iqm(np.array([100.0, 0, 2, 4])) == 3.0


def test_iqm_ignores_an_outlier_that_moves_the_mean():
    values = np.array([1.0, 2, 3, 4, 5, 6, 7, 1000])
    assert iqm(values) == 4.5
    assert np.mean(values) > 100


def test_iqm_of_fewer_than_four_values_is_the_mean():
    assert iqm(np.array([1.0, 2, 6])) == 3.0


def test_iqm_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        iqm(np.array([1.0, np.nan]))


def test_ci_contains_the_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(size=60)
    strata = np.repeat(np.arange(6), 10)
    lo, hi = stratified_bootstrap_ci(values, strata, "mean")
    assert lo < np.mean(values) < hi


def test_ci_contains_the_iqm():
    rng = np.random.default_rng(1)
    values = rng.normal(size=60)
    strata = np.repeat(np.arange(6), 10)
    lo, hi = stratified_bootstrap_ci(values, strata, "iqm")
    assert lo < iqm(values) < hi


def test_ci_narrows_with_more_data():
    rng = np.random.default_rng(2)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    lo_s, hi_s = stratified_bootstrap_ci(small, np.arange(20) % 4, "mean")
    lo_l, hi_l = stratified_bootstrap_ci(large, np.arange(2000) % 4, "mean")
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_ci_narrows_with_lower_confidence():
    values = np.random.default_rng(3).normal(size=50)
    strata = np.zeros(50, dtype=int)
    lo_95, hi_95 = stratified_bootstrap_ci(values, strata, "mean", confidence=0.95)
    lo_50, hi_50 = stratified_bootstrap_ci(values, strata, "mean", confidence=0.5)
    assert lo_95 < lo_50 < hi_50 < hi_95


def test_stratified_ci_collapses_when_each_stratum_is_constant():
    # Resampling within strata keeps 5 zeros and 5 ones in every resample, so every
    # bootstrap mean is exactly 0.5; an unstratified bootstrap would give a wide interval.
    values = np.array([0.0] * 5 + [1.0] * 5)
    strata = np.array([0] * 5 + [1] * 5)
    assert stratified_bootstrap_ci(values, strata, "mean") == (0.5, 0.5)


def test_unstratified_ci_of_the_same_values_is_wide():
    values = np.array([0.0] * 5 + [1.0] * 5)
    lo, hi = stratified_bootstrap_ci(values, np.zeros(10, dtype=int), "mean")
    assert lo <= 0.3 and hi >= 0.7


def test_ci_is_deterministic_given_seed():
    values = np.random.default_rng(4).normal(size=40)
    strata = np.arange(40) % 5
    first = stratified_bootstrap_ci(values, strata, "iqm", seed=7)
    assert stratified_bootstrap_ci(values, strata, "iqm", seed=7) == first


def test_ci_depends_on_seed():
    values = np.random.default_rng(4).normal(size=40)
    strata = np.arange(40) % 5
    a = stratified_bootstrap_ci(values, strata, "mean", seed=0)
    b = stratified_bootstrap_ci(values, strata, "mean", seed=1)
    assert a != b


def test_ci_of_equal_values_is_that_value_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stratified_bootstrap_ci(np.full(6, 3.0), np.arange(6) % 2, "mean") == (3.0, 3.0)
        assert stratified_bootstrap_ci(np.full(6, 3.0), np.arange(6) % 2, "iqm") == (3.0, 3.0)


def test_ci_of_a_single_value_is_that_value():
    assert stratified_bootstrap_ci(np.array([2.5]), np.array([0]), "mean") == (2.5, 2.5)


def test_ci_with_only_single_element_strata_is_the_point_estimate():
    # Each stratum resamples to itself, so there is no sampling variation to show.
    values = np.array([1.0, 2.0, 6.0])
    assert stratified_bootstrap_ci(values, np.arange(3), "mean") == (3.0, 3.0)


def test_single_element_strata_stay_in_every_resample():
    # Stratum 1 is the lone value 10; stratum 0 resamples {0, 1} three times. The mean of
    # (three draws from {0, 1}) + 10 over 4 values ranges over [2.5, 3.25].
    values = np.array([0.0, 1.0, 0.0, 10.0])
    strata = np.array([0, 0, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = stratified_bootstrap_ci(values, strata, "mean", confidence=0.99)
    assert lo == 2.5 and hi == 3.25


def test_ci_rejects_mismatched_strata():
    with pytest.raises(ValueError, match="strata has shape"):
        stratified_bootstrap_ci(np.arange(4.0), np.arange(3), "mean")


def test_ci_rejects_unknown_statistic():
    with pytest.raises(ValueError, match="'mean' or 'iqm'"):
        stratified_bootstrap_ci(np.arange(4.0), np.arange(4), "median")  # type: ignore[arg-type]


def test_ci_rejects_empty_values():
    with pytest.raises(ValueError, match="non-empty"):
        stratified_bootstrap_ci(np.array([]), np.array([]), "mean")


def test_summarize_curve_gives_one_point_per_episode_in_order():
    episode = np.array([3, 1, 2, 1, 2, 3])
    values = np.array([5.0, 0.0, 2.0, 1.0, 4.0, 7.0])
    curve = summarize_curve(episode, values, strata=np.array([0, 0, 0, 1, 1, 1]))
    assert [p.episode for p in curve] == [1, 2, 3]
    assert [p.n for p in curve] == [2, 2, 2]


def test_summarize_curve_means_per_episode():
    episode = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    values = np.array([0.0, 1.0, 2.0, 9.0, 4.0, 4.0, 5.0, 7.0])
    strata = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    curve = summarize_curve(episode, values, strata)
    assert [p.mean for p in curve] == [3.0, 5.0]
    assert [p.iqm for p in curve] == [1.5, 4.5]


def test_summarize_curve_intervals_contain_the_estimates():
    rng = np.random.default_rng(5)
    episode = np.repeat([1, 2, 3], 30)
    values = rng.normal(loc=episode, size=90)
    strata = np.tile(np.arange(30) % 6, 3)
    for p in summarize_curve(episode, values, strata):
        assert p.mean_ci[0] <= p.mean <= p.mean_ci[1]
        assert p.iqm_ci[0] <= p.iqm <= p.iqm_ci[1]


def test_summarize_curve_rejects_float_episodes():
    with pytest.raises(ValueError, match="integer"):
        summarize_curve(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([0, 0]))


def test_curve_point_round_trips_through_json():
    rng = np.random.default_rng(6)
    curve = summarize_curve(np.repeat([1, 2], 10), rng.random(20), np.arange(20) % 3)
    text = json.dumps([p.to_json() for p in curve])
    assert curve_from_json(json.loads(text)) == curve


def test_curve_point_json_has_interval_lists():
    point = CurvePoint(episode=1, n=3, mean=0.5, iqm=0.4, mean_ci=(0.1, 0.9), iqm_ci=(0.0, 1.0))
    assert point.to_json() == {
        "episode": 1,
        "n": 3,
        "mean": 0.5,
        "iqm": 0.4,
        "mean_ci": [0.1, 0.9],
        "iqm_ci": [0.0, 1.0],
    }


def test_curve_from_json_names_the_malformed_point():
    with pytest.raises(ValueError, match="curve point 0"):
        curve_from_json([{"episode": 1}])


# -- the rule for curves pooled over runs (rliable's StratifiedBootstrap) ------------------------
def _run_task_rows(scores: np.ndarray, repeats: int, noise: float = 0.0):
    """Long-form rows (episode 1) of a (run x task) score matrix, each score the mean of
    `repeats` values spread by +-noise; order: task, run, repeat (not the units' order)."""
    offsets = noise * (np.arange(repeats) - (repeats - 1) / 2)
    cells = [(t, r, o) for t in range(scores.shape[1]) for r in range(scores.shape[0])
             for o in offsets]  # fmt: skip
    run = np.array([r for _, r, _ in cells])
    task = np.array([t for t, _, _ in cells])
    values = np.array([scores[r, t] + o for t, r, o in cells])
    return np.ones(len(cells), dtype=np.int64), run, task, values


def _rliable_ci(scores, statistic, confidence, n_resamples, rng):
    """rliable's StratifiedBootstrap in numpy: for every task, draw N runs with replacement
    (index array of the score matrix's shape), then the statistic of the whole resample."""
    n_runs, n_tasks = scores.shape
    runs = rng.integers(0, n_runs, size=(n_resamples, n_runs, n_tasks))
    resampled = scores[runs, np.arange(n_tasks)].reshape(n_resamples, -1)
    fn = np.mean if statistic == "mean" else (lambda x, axis: scipy.stats.trim_mean(x, 0.25, axis))
    stats = fn(resampled, axis=1)
    alpha = (1 - confidence) / 2
    return tuple(np.percentile(stats, [100 * alpha, 100 * (1 - alpha)]))


def test_pooled_runs_are_resampled_within_tasks_as_enumerated_by_hand():
    # Two runs on two tasks, their scores (mean over 3 repeats) 0 and 4 on task 0, 0 and 8 on
    # task 1. Each task draws two of its two runs: 16 equally likely resamples. The lowest
    # mean and IQM, 0, comes from drawing the worse run twice on both tasks (probability
    # 1/16 > 2.5%), the highest, (4 + 4 + 8 + 8) / 4 = 6 (IQM: mean of 4 and 8), from the
    # better one (1/16): the 95% interval spans the runs' full spread, [0, 6].
    scores = np.array([[0.0, 0.0], [4.0, 8.0]])
    episode, run, task, values = _run_task_rows(scores, repeats=3, noise=0.5)
    units = pooled_units(episode, run, task, reference=values)
    np.testing.assert_allclose(units.values(values), [0.0, 0.0, 4.0, 8.0])  # (run, task) order
    assert units.strata.tolist() == [0, 1, 0, 1]
    # The enumeration of all 16 resamples agrees on both ends.
    draws = itertools.product(*[itertools.product(range(2), repeat=2) for _ in range(2)])
    means = [np.mean([scores[r, t] for t, pick in enumerate(d) for r in pick]) for d in draws]
    assert (min(means), max(means)) == (0.0, 6.0) and means.count(0.0) == means.count(6.0) == 1
    (point,) = summarize_curve(units.episode, units.values(values), units.strata)
    assert point.n == 4 and point.mean == 3.0
    assert point.mean_ci == (0.0, 6.0) and point.iqm_ci == (0.0, 6.0)


@pytest.mark.parametrize("statistic", ["mean", "iqm"])
def test_pooled_runs_interval_matches_a_numpy_stratified_bootstrap(statistic):
    # Strong task effects and seed-to-seed spread: pooling tasks would be much wider, and
    # resampling the repeats of each (run, task) much narrower, than rliable's rule.
    rng = np.random.default_rng(0)
    scores = 100.0 * np.arange(6) + rng.normal(scale=3.0, size=(5, 6))  # 5 runs x 6 tasks
    episode, run, task, values = _run_task_rows(scores, repeats=4, noise=0.2)
    units = pooled_units(episode, run, task, reference=values)
    (point,) = summarize_curve(units.episode, units.values(values), units.strata, n_resamples=4000)
    low, high = point.mean_ci if statistic == "mean" else point.iqm_ci
    ref_low, ref_high = _rliable_ci(scores, statistic, 0.95, 100_000, rng)
    width = ref_high - ref_low
    assert 0.5 < width < 5.0  # the seed noise of a mean over 30 scores, not the task spread
    assert abs(low - ref_low) < 0.1 * width and abs(high - ref_high) < 0.1 * width


def test_a_single_run_is_resampled_by_repeats_within_tasks():
    episode, run, task, values = _run_task_rows(np.array([[0.0, 10.0]]), repeats=3, noise=1.0)
    units = pooled_units(episode, run, task, reference=values)
    # Every row is a unit, in the rows' order, and the task is its stratum.
    assert units.unit_of is None and units.strata.tolist() == task.tolist()
    assert units.values(values).tolist() == values.tolist()


def test_runs_that_never_differ_within_a_task_pool_the_tasks():
    # Two runs with equal scores on every task: resampling runs within tasks would give a
    # zero-width interval, so all (run, task) scores are resampled as one pool.
    episode, run, task, values = _run_task_rows(np.array([[0.0, 10.0], [0.0, 10.0]]), 2, 0.5)
    units = pooled_units(episode, run, task, reference=values)
    assert units.strata.tolist() == [0, 0, 0, 0]


def test_pooled_units_reject_float_ids():
    with pytest.raises(ValueError, match="run must hold integer ids"):
        pooled_units(np.array([1, 1]), np.array([0.0, 1.0]), np.array([0, 0]), np.ones(2))
