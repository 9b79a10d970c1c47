"""Bandit baselines of RL² Table 1: choice rules on scripted counts, posterior sampling
statistics, Gittins indices against closed forms and an independent brute force, per-env
state, and an end-to-end `gmtl train` through the baseline loop."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from functools import cache
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.agents.bandit_baselines import POLICIES, BanditPolicy
from gmtl_rl.agents.gittins import gittins_table
from gmtl_rl.agents.registry import agent_spec, parse_agent_config
from gmtl_rl.checkpoint import join_arrays, split_arrays
from gmtl_rl.cli import main
from gmtl_rl.config import parse_config
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.errors import ConfigError


def make(name: str, arms: int = 3, seed: int = 0, **options) -> BanditPolicy:
    spec = agent_spec(name)
    config = spec.config.model_validate({"name": name, **options})
    env = EnvSpec(gym.spaces.Box(0.0, 1.0, (1,)), gym.spaces.Discrete(arms), 1)
    policy: BanditPolicy = spec.build(config, env, seed, "cpu")
    return policy


def step(actions, rewards, valid=None) -> StepBatch:
    """A hand-built step of N one-pull episodes."""
    a = np.asarray(actions, np.int64)
    n = len(a)
    zeros = np.zeros(n, np.int64)
    obs = np.zeros((n, 1), np.float32)
    return StepBatch(
        obs=obs,
        action=a,
        reward=np.asarray(rewards, np.float32),
        next_obs=obs,
        terminated=np.ones(n, bool),
        truncated=np.zeros(n, bool),
        task_id=zeros,
        task_class=zeros,
        episode_id=zeros,
        step_index=zeros,
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool) if valid is None else np.asarray(valid, bool),
    )


def act(policy: BanditPolicy, n: int = 1) -> np.ndarray:
    return policy.act(np.zeros((n, 1), np.float32), np.zeros(n, np.int64))


def with_counts(policy: BanditPolicy, successes, failures) -> BanditPolicy:
    """Set the counts of env 0 by observing the pulls (successes first)."""
    policy.reset(np.ones(1, bool))
    for arm, (s, f) in enumerate(zip(successes, failures, strict=True)):
        for reward in [1.0] * s + [0.0] * f:
            policy.observe(step([arm], [reward]))
    return policy


# -- registry and config --------------------------------------------------------------------------
def test_every_baseline_is_registered_in_the_baseline_family():
    for name in POLICIES:
        assert agent_spec(name).family == "baseline"


def test_trial_length_is_episodes_per_trial_and_the_default_eval_episodes():
    config = parse_config(
        {
            "total_steps": 1,
            "env": {"name": "point-robot"},
            "agent": {"name": "bandit_ucb1", "episodes_per_trial": 7},
        }
    )
    assert config.agent.trial_episodes() == 7
    assert config.eval.episodes == 7


def test_a_continuous_action_space_is_refused():
    spec = agent_spec("bandit_greedy")
    env = EnvSpec(gym.spaces.Box(0.0, 1.0, (1,)), gym.spaces.Box(-1.0, 1.0, (2,)), 1)
    with pytest.raises(ConfigError, match="Discrete"):
        spec.build(spec.config(name="bandit_greedy"), env, 0, "cpu")


# -- UCB1 ---------------------------------------------------------------------------------------
def test_ucb1_without_prior_pulls_each_arm_first_then_follows_the_index():
    # Auer's UCB1, c = 1, two arms; indices worked by hand (t = pulls so far):
    policy = make("bandit_ucb1", arms=2, c=1.0, prior_counts=False)
    policy.reset(np.ones(1, bool))
    policy.observe(step([0], [1.0]))
    assert act(policy)[0] == 1  # arm 1 never pulled: it comes first
    policy.observe(step([1], [0.0]))
    # t = 2: arm 0 1 + sqrt(2 ln 2) = 2.18, arm 1 0 + 1.18.
    assert act(policy)[0] == 0
    policy.observe(step([0], [0.0]))
    # t = 3: arm 0 1/2 + sqrt(2 ln 3 / 2) = 1.548, arm 1 sqrt(2 ln 3) = 1.482.
    assert act(policy)[0] == 0
    policy.observe(step([0], [0.0]))
    # t = 4: arm 0 1/3 + sqrt(2 ln 4 / 3) = 1.295, arm 1 sqrt(2 ln 4) = 1.665.
    assert act(policy)[0] == 1


def test_ucb1_with_prior_counts_uses_the_posterior_mean_and_pseudo_pulls():
    # Arm 0: 3 successes, 1 failure -> n = 6 with the prior, mean 4/6; arm 1 unpulled: n = 2,
    # mean 1/2; t = 8. c = 0.5: 0.667 + 0.5 sqrt(2 ln 8 / 6) = 1.083 < 0.5 + 0.5 sqrt(ln 8) = 1.221.
    assert math.isclose(4 / 6 + 0.5 * math.sqrt(2 * math.log(8) / 6), 1.0830, abs_tol=1e-4)
    assert math.isclose(0.5 + 0.5 * math.sqrt(2 * math.log(8) / 2), 1.2210, abs_tol=1e-4)
    policy = with_counts(make("bandit_ucb1", arms=2, c=0.5), [3, 0], [1, 0])
    assert act(policy)[0] == 1
    # c = 0.2: 0.667 + 0.2 * 0.833 = 0.833 > 0.5 + 0.2 * 1.442 = 0.788.
    policy = with_counts(make("bandit_ucb1", arms=2, c=0.2), [3, 0], [1, 0])
    assert act(policy)[0] == 0


# -- greedy and ε-greedy ------------------------------------------------------------------------
def test_greedy_pulls_the_arm_of_highest_posterior_mean():
    # Posterior means: (1+1)/(1+2) = 0.667, (3+1)/(5+2) = 0.571, 0.5.
    policy = with_counts(make("bandit_greedy"), [1, 3, 0], [0, 2, 0])
    assert all(act(policy)[0] == 0 for _ in range(20))


def test_greedy_breaks_ties_uniformly():
    policy = make("bandit_greedy", arms=4)
    policy.reset(np.ones(8000, bool))
    counts = np.bincount(act(policy, 8000), minlength=4) / 8000
    np.testing.assert_allclose(counts, 0.25, atol=0.02)


def test_epsilon_greedy_explores_with_probability_epsilon():
    n = 20000
    policy = make("bandit_egreedy", arms=4, epsilon=0.4)
    policy.reset(np.ones(n, bool))
    policy.observe(step(np.zeros(n), np.ones(n)))  # arm 0 is greedy in every env
    chosen = act(policy, n)
    # Arm 0 unless exploring towards another arm: P(not 0) = ε (k - 1) / k = 0.3.
    assert abs(np.mean(chosen != 0) - 0.3) < 0.015
    np.testing.assert_allclose(np.bincount(chosen[chosen != 0])[1:] / n, 0.1, atol=0.01)


def test_epsilon_zero_is_greedy():
    policy = with_counts(make("bandit_egreedy", epsilon=0.0), [0, 2, 0], [1, 0, 0])
    assert all(act(policy)[0] == 1 for _ in range(20))


# -- Thompson sampling ----------------------------------------------------------------------------
def test_observe_updates_the_beta_posterior_counts():
    policy = make("bandit_ts", arms=3)
    policy.reset(np.ones(2, bool))
    policy.observe(step([2, 0], [1.0, 0.0]))
    policy.observe(step([2, 2], [0.0, 1.0]))
    np.testing.assert_array_equal(policy.successes_NK, [[0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(policy.failures_NK, [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_allclose(policy.posterior_mean_NK[1], [1 / 3, 1 / 2, 2 / 3])


def test_thompson_sampling_picks_a_strongly_favoured_arm():
    n = 2000
    policy = make("bandit_ts", arms=3)
    policy.reset(np.ones(n, bool))
    for _ in range(30):
        policy.observe(step(np.full(n, 1), np.ones(n)))
        policy.observe(step(np.full(n, 0), np.zeros(n)))
        policy.observe(step(np.full(n, 2), np.zeros(n)))
    assert np.all(act(policy, n) == 1)


def test_thompson_sampling_matches_the_posterior_probability_of_being_best():
    # Beta(2, 1) against Beta(1, 1): P(X > Y) = E[X] = 2/3.
    n = 20000
    policy = make("bandit_ts", arms=2)
    policy.reset(np.ones(n, bool))
    policy.observe(step(np.zeros(n), np.ones(n)))
    assert abs(np.mean(act(policy, n) == 0) - 2 / 3) < 0.015


def test_optimistic_sampling_never_values_an_arm_below_its_mean():
    # Arm 0 is known to be 0.5 (5000 successes and failures); arm 1, Beta(7, 6), has mean
    # 0.538. Thompson sampling picks arm 1 only when its draw beats 0.5 (P ≈ 0.61); OTS
    # values it at least at its mean, so always.
    n = 4000
    results = {}
    for name in ("bandit_ts", "bandit_ots"):
        policy = make(name, arms=2)
        policy.reset(np.ones(n, bool))
        policy.successes_NK[:] = [5000, 6]
        policy.failures_NK[:] = [5000, 5]
        results[name] = np.mean(act(policy, n) == 1)
    assert 0.5 < results["bandit_ts"] < 0.75
    assert results["bandit_ots"] == 1.0


def test_optimistic_sampling_takes_the_largest_of_its_draws():
    # Arm 0 is known to be 0.5 (the largest of its 10 draws is within 0.002 of it); arm 1 is
    # Beta(1, 3): one draw beats 0.5 with P = 0.5^3 = 0.125, the largest of 10 draws with
    # P = 1 - 0.875^10 = 0.737.
    n = 20000
    policy = make("bandit_ots", arms=2, samples=10)
    policy.reset(np.ones(n, bool))
    policy.successes_NK[:] = [10**6, 0]
    policy.failures_NK[:] = [10**6, 2]
    assert abs(np.mean(act(policy, n) == 1) - (1 - 0.875**10)) < 0.015


# -- Gittins indices ------------------------------------------------------------------------------
def brute_force_index(gamma: float, a: int, b: int, depth: int) -> float:
    """ν(a, b) by bisection on λ with a plain recursive value function, truncated at
    a + b = depth where the mean is taken as known (the same truncation as the table)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        lam = (lo + hi) / 2

        @cache
        def value(x: int, y: int, lam: float = lam) -> float:
            p = x / (x + y)
            if x + y == depth:
                return max(lam, p) / (1 - gamma)
            go_on = p + gamma * (p * value(x + 1, y) + (1 - p) * value(x, y + 1))
            return max(lam / (1 - gamma), go_on)

        p = a / (a + b)
        go_on = p + gamma * (p * value(a + 1, b) + (1 - p) * value(a, b + 1))
        lo, hi = (lam, hi) if go_on > lam / (1 - gamma) else (lo, lam)
    return (lo + hi) / 2


def test_gittins_index_of_beta_1_1_matches_the_published_table():
    # Gittins (1979) / Gittins, Glazebrook & Weber (2011), Bernoulli arms with uniform prior:
    # ν(1, 1) = 0.7029 at γ = 0.9.
    assert abs(gittins_table(0.9, 12, 60)[1, 1] - 0.7029) < 5e-5


def test_gittins_table_matches_an_independent_brute_force():
    gamma, size, lookahead = 0.7, 8, 6
    table = gittins_table(gamma, size, lookahead)
    for a in range(1, size):
        for b in range(1, size - a + 1):
            expected = brute_force_index(gamma, a, b, size + lookahead)
            assert abs(table[a, b] - expected) < 1e-6, (a, b)


def test_gittins_index_with_nothing_left_to_learn_is_the_mean():
    # Lookahead 0: the last diagonal is the truncation, where the mean is taken as known; one
    # diagonal before it, one pull is left to learn from: the index then solves
    # λ = p + γ [p p⁺ + (1 - p) λ] / (1 - γ) (continue after a success, retire after a
    # failure): λ = p ((1 - γ) + γ p⁺) / ((1 - γ) + γ p), with p⁺ = (a + 1) / (m + 1).
    gamma, size = 0.9, 10
    table = gittins_table(gamma, size, 0)
    for a in range(1, size):
        assert table[a, size - a] == pytest.approx(a / size, abs=1e-12)
    m = size - 1
    for a in range(1, m):
        p, p_up = a / m, (a + 1) / (m + 1)
        expected = p * ((1 - gamma) + gamma * p_up) / ((1 - gamma) + gamma * p)
        assert table[a, m - a] == pytest.approx(expected, abs=1e-8)


def test_gittins_index_rises_with_successes_and_falls_with_failures():
    size = 62
    table = gittins_table(0.9, size, 44)
    a, b = np.meshgrid(np.arange(size + 1), np.arange(size + 1), indexing="ij")
    inside = (a >= 1) & (b >= 1) & (a + b <= size)
    assert np.all(table[inside] > a[inside] / (a + b)[inside])  # exploration is worth something
    more_wins = inside[:-1] & inside[1:]  # (a, b) and (a + 1, b) in the table
    assert np.all(table[1:][more_wins] > table[:-1][more_wins])
    more_losses = inside[:, :-1] & inside[:, 1:]
    assert np.all(table[:, 1:][more_losses] < table[:, :-1][more_losses])


def test_gittins_tables_are_cached_and_read_only():
    table = gittins_table(0.9, 12, 44)
    assert gittins_table(0.9, 12, 44) is table
    assert not table.flags.writeable


def test_a_gittins_table_that_would_take_minutes_is_refused_with_the_keys_to_change():
    with pytest.raises(ConfigError, match="lookahead"):
        parse_agent_config({"name": "bandit_gittins", "gamma": 0.999})  # lookahead 4603
    parse_agent_config({"name": "bandit_gittins", "gamma": 0.999, "lookahead": 500})


def test_gittins_policy_explores_an_unpulled_arm_over_a_better_mean():
    # Arm 0: 59 successes, 39 failures -> mean 0.6, index just above it; arm 1 unpulled:
    # mean 0.5 but index 0.70 (γ = 0.9). Greedy takes arm 0, Gittins arm 1.
    gittins = with_counts(make("bandit_gittins", arms=2, episodes_per_trial=100), [59, 0], [39, 0])
    greedy = with_counts(make("bandit_greedy", arms=2), [59, 0], [39, 0])
    assert act(gittins)[0] == 1
    assert act(greedy)[0] == 0


def test_gittins_table_grows_when_a_trial_is_longer_than_configured():
    policy = make("bandit_gittins", arms=2, episodes_per_trial=2)
    policy.reset(np.ones(1, bool))
    for _ in range(6):
        policy.observe(step(act(policy), [1.0]))
    assert act(policy)[0] in (0, 1)  # a + b = 8 on the pulled arm: past the first table (4)
    assert len(policy.table) > 8


# -- per-env state ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(POLICIES))
def test_reset_clears_only_the_masked_envs(name):
    policy = make(name)
    policy.reset(np.ones(3, bool))
    policy.observe(step([0, 1, 2], [1.0, 0.0, 1.0]))
    policy.reset(np.array([False, True, False]))
    np.testing.assert_array_equal(policy.successes_NK, [[1, 0, 0], [0, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(policy.failures_NK, np.zeros((3, 3)))


@pytest.mark.parametrize("name", list(POLICIES))
def test_invalid_rows_are_ignored(name):
    policy = make(name)
    policy.reset(np.ones(2, bool))
    policy.observe(step([1, 2], [1.0, 5.0], valid=[True, False]))  # row 1 is not a pull
    np.testing.assert_array_equal(policy.successes_NK, [[0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(policy.failures_NK, np.zeros((2, 3)))


def test_a_reward_other_than_0_or_1_is_an_error():
    policy = make("bandit_greedy")
    policy.reset(np.ones(1, bool))
    with pytest.raises(ValueError, match="Bernoulli"):
        policy.observe(step([0], [0.5]))


@pytest.mark.parametrize("name", list(POLICIES))
def test_state_dict_round_trip_continues_identically(name):
    policy = make(name, seed=1)
    policy.reset(np.ones(4, bool))
    for _ in range(3):
        policy.observe(step(act(policy, 4), [1.0, 0.0, 1.0, 1.0]))
    # Through the checkpoint's JSON + arrays split, as a run saves it.
    arrays: dict[str, np.ndarray] = {}
    saved = json.loads(json.dumps(split_arrays(policy.state_dict(), arrays)))
    expected = [act(policy, 4) for _ in range(5)]
    other = make(name, seed=2)
    other.load_state_dict(join_arrays(saved, arrays))
    np.testing.assert_array_equal([act(other, 4) for _ in range(5)], expected)


@pytest.mark.parametrize("name", list(POLICIES))
def test_evaluating_puts_the_state_back(name):
    policy = make(name)
    policy.reset(np.ones(2, bool))
    policy.observe(step([0, 1], [1.0, 0.0]))
    before = policy.state_dict()
    with policy.evaluating():
        policy.reset(np.ones(2, bool))
        policy.observe(step(act(policy, 2), [1.0, 1.0]))
    after = policy.state_dict()
    np.testing.assert_array_equal(after["successes"], before["successes"])
    assert after["rng"] == before["rng"]


# -- end to end: `gmtl train` through the baseline loop --------------------------------------------
TINY = """# test config
experiment: bandit-test
total_steps: 1
env: {name: bandit, arms: 5, n_train: 1, n_test: 150}
agent: {name: AGENT, episodes_per_trial: 10}
eval: {episodes: 10, n_envs: 50}
logging: {tensorboard: false}
"""


def total_reward(run: Path) -> float:
    """Mean over trials of the trial's total reward, from the final evaluation's table."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    with open(run / "eval" / "adaptation.csv", newline="") as f:
        for row in csv.DictReader(f):
            totals[(row["task"], row["repeat"])] += float(row["return"])
    assert len(totals) == 150
    return float(np.mean(list(totals.values())))


def test_gmtl_train_evaluates_a_baseline_and_ucb1_beats_random(tmp_path, capsys):
    scores = {}
    for name in ("bandit_ucb1", "bandit_random"):
        config = tmp_path / f"{name}.yaml"
        config.write_text(TINY.replace("AGENT", name))
        run = tmp_path / name
        overrides = ["agent.c=0.1"] if name == "bandit_ucb1" else []
        assert main(["train", str(config), *overrides, "--run-dir", str(run)]) == 0
        assert (run / "eval" / "adaptation.csv").is_file()
        assert list((run / "checkpoints").glob("step-*/manifest.json"))
        scores[name] = total_reward(run)
    # RL² Table 1, n = 10, k = 5: UCB1 6.7, random 5.0 (150 trials: standard errors ~0.15).
    assert scores["bandit_ucb1"] > scores["bandit_random"] + 1.0
    assert 4.3 < scores["bandit_random"] < 5.7
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "bandit_ucb1")]) == 0  # the budget counts as spent
    assert "already finished" in capsys.readouterr().out
