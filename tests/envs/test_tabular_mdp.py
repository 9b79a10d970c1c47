"""RL² random tabular MDPs (Duan et al. 2016, §4.2) as a task family, single and batched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from batched_equality import ActPolicy, assert_same_batches, run, sampler, step_both_paths
from gymnasium.vector import AutoresetMode
from scipy import stats

from gmtl_rl.core.rollout import AUTORESET_MODES
from gmtl_rl.envs import build, families, make
from gmtl_rl.envs.tabular_mdp import BatchedTabularMDP, TabularMDPEnv, draw_mdp
from gmtl_rl.errors import ConfigError

MODES = ["disabled", "next_step", "same_step"]
SMALL = {"n_train": 30, "n_test": 30, "horizon": 6}


def state_seeking(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An action that depends on the observed state (so a wrong observation changes what
    follows), replaced by a random one half the time."""
    n = len(obs)
    return np.where(rng.random(n) < 0.5, rng.integers(5, size=n), obs.argmax(axis=1) % 5)


def seeds(tasks) -> list[int]:
    return [t["instance_seed"] for t in tasks]


def test_split_is_seeded_reproducible_and_disjoint():
    a, b = make("tabular-mdp"), make("tabular-mdp")
    assert (len(a.train_tasks()), len(a.test_tasks())) == (1000, 1000)
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    train, test = seeds(a.train_tasks()), seeds(a.test_tasks())
    assert len(set(train)) == len(set(test)) == 1000 and not set(train) & set(test)
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in train + test)
    other = make("tabular-mdp", split_seed=1)
    assert not set(seeds(other.train_tasks())) & set(train)
    # Independent streams: the test instances do not move when n_train does.
    assert make("tabular-mdp", n_train=7).test_tasks() == a.test_tasks()


def test_draw_mdp_is_deterministic_in_its_seed():
    mean, trans = draw_mdp(123, 10, 5)
    assert mean.shape == (10, 5) and trans.shape == (10, 5, 10)
    assert mean.dtype == trans.dtype == np.float64
    again = draw_mdp(123, 10, 5)
    np.testing.assert_array_equal(again[0], mean)
    np.testing.assert_array_equal(again[1], trans)
    assert not np.array_equal(draw_mdp(124, 10, 5)[0], mean)


@pytest.fixture(scope="module")
def mdps() -> tuple[np.ndarray, np.ndarray]:
    """The MDPs of the 1000 default train tasks: μ [1000, 10, 5], P [1000, 10, 5, 10]."""
    drawn = [draw_mdp(s, 10, 5) for s in seeds(make("tabular-mdp").train_tasks())]
    return np.stack([m for m, _ in drawn]), np.stack([p for _, p in drawn])


def test_mean_rewards_are_normal_with_mean_one_and_unit_variance(mdps):
    mean = mdps[0].ravel()  # 50 000 draws: standard errors 0.0045 (mean), 0.0032 (std)
    assert abs(mean.mean() - 1.0) < 0.025 and abs(mean.std() - 1.0) < 0.02
    assert stats.kstest(mean, "norm", args=(1.0, 1.0)).pvalue > 1e-3


def test_transition_rows_are_flat_dirichlet(mdps):
    rows = mdps[1].reshape(-1, 10)  # 50 000 rows
    assert rows.min() >= 0.0
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # Each entry of a flat Dirichlet(1, ..., 1) row over S = 10 is Beta(1, 9): mean 1/10 (SE
    # 0.0004 here), variance 9/1100; a Dirichlet with another concentration fails both checks.
    assert np.abs(rows.mean(axis=0) - 0.1).max() < 0.003
    assert abs(rows.var() - 9 / 1100) < 0.0004
    assert stats.kstest(rows[:, 0], "beta", args=(1, 9)).pvalue > 1e-3


def test_rewards_and_next_states_follow_the_mdp_from_the_start_state():
    dist = make("tabular-mdp")
    task = dist.test_tasks()[3]
    mean, trans = draw_mdp(task["instance_seed"], 10, 5)
    env = dist.make_env(task)
    env.reset(seed=0)
    rewards, after = [], []
    for _ in range(20_000):
        env.reset()
        obs, reward, *_ = env.step(2)
        rewards.append(reward)
        after.append(int(obs.argmax()))
    # 20 000 samples: SE 0.007 (reward mean), 0.005 (its std), <= 0.0035 (a frequency).
    assert abs(np.mean(rewards) - mean[0, 2]) < 0.03 and abs(np.std(rewards) - 1.0) < 0.025
    freq = np.bincount(after, minlength=10) / len(after)
    assert np.abs(freq - trans[0, 2]).max() < 0.015


def test_next_states_follow_the_mdp_from_any_state():
    """Every row of a batched env in state 7, one step with action 4 (the batched env gives the
    single env's transitions: the tests below hold that)."""
    dist = make("tabular-mdp")
    task = dist.train_tasks()[8]
    env = dist.make_batched_env(20_000, task)
    env.reset(seed=0)
    env.state[:] = 7
    obs, reward, *_ = env.step(np.full(20_000, 4))
    freq = np.bincount(obs.argmax(axis=1), minlength=10) / 20_000
    mean, trans = draw_mdp(task["instance_seed"], 10, 5)
    assert np.abs(freq - trans[7, 4]).max() < 0.015
    assert abs(reward.mean() - mean[7, 4]) < 0.03


def test_episodes_start_in_state_zero_and_are_truncated_at_the_horizon():
    dist = make("tabular-mdp")
    env = dist.make_env()
    assert dist.horizon == 10 and make("tabular-mdp", horizon=3).horizon == 3
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        assert int(obs.argmax()) == 0
        flags = []
        for t in range(10):
            obs, _, terminated, truncated, info = env.step(t % 5)
            flags.append((terminated, truncated))
            assert info == {}  # no success: the benchmark defines none
        assert flags == [(False, False)] * 9 + [(False, True)]


def test_the_observation_is_the_one_hot_of_the_state():
    env = make("tabular-mdp", states=7, actions=3).make_env()
    assert env.observation_space.shape == (7,) and env.action_space.n == 3
    obs, _ = env.reset(seed=0)
    for t in range(30):
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)
        assert obs.sum() == 1.0 and int(obs.argmax()) == env.unwrapped.get_state()["state"]
        obs, *_ = env.step(t % 3)


def test_an_action_out_of_range_is_an_error():
    env = make("tabular-mdp").make_env()
    env.reset(seed=0)
    for bad in (-1, 5):
        with pytest.raises(IndexError, match="out of range for 5 actions"):
            env.step(bad)


@pytest.mark.parametrize(
    ("options", "key"),
    [({"states": 1}, "states"), ({"actions": 0}, "actions"), ({"horizon": 0}, "horizon"),
     ({"n_train": 0}, "n_train"), ({"state": 10}, "state")],
)  # fmt: skip
def test_bad_options_are_config_errors_naming_the_key(options, key):
    with pytest.raises(ConfigError, match=rf"env\.{key}:"):
        build("tabular-mdp", options)


def test_set_task_switches_the_mdp():
    dist = make("tabular-mdp", **SMALL)
    env = dist.make_env(dist.train_tasks()[0])
    task = dist.test_tasks()[4]
    dist.set_task(env, task)
    mean, trans = draw_mdp(task["instance_seed"], 10, 5)
    np.testing.assert_array_equal(env.unwrapped.mean_reward, mean)
    np.testing.assert_array_equal(env.unwrapped.transitions, trans)


def test_the_family_is_registered_and_listed():
    from gmtl_rl.cli import _space

    assert "tabular-mdp" in families() and "RL²" in families()["tabular-mdp"].description
    dist = build("tabular-mdp", {})
    env = dist.make_env()
    assert (_space(env.observation_space), _space(env.action_space)) == ("Box(10,)", "Discrete(5)")


@pytest.mark.parametrize("mode", MODES)
def test_the_batched_env_gives_the_single_envs_transitions(mode):
    dist = make("tabular-mdp", **SMALL)
    assert step_both_paths(dist, state_seeking, AUTORESET_MODES[mode], n=4, steps=60) >= 30


def test_the_comparison_sees_one_draw_out_of_turn():
    dist = make("tabular-mdp", **SMALL)
    original = BatchedTabularMDP._reset_rows

    def one_extra_draw(self, rows):
        original(self, rows)
        self.rng(1).random()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BatchedTabularMDP, "_reset_rows", one_extra_draw)
        with pytest.raises(AssertionError):
            step_both_paths(dist, state_seeking, AutoresetMode.DISABLED, n=4, steps=20)


@pytest.mark.parametrize("mode", MODES)
def test_the_sampler_records_the_same_trials_on_either_backend(mode):
    dist = make("tabular-mdp", **SMALL)
    a, b = (sampler(dist, backend, mode, trial=3) for backend in ("sync", "batched"))
    assert isinstance(b.vec, BatchedTabularMDP)
    (steps_a, ep_a), (steps_b, ep_b) = (run(s, ActPolicy(state_seeking, 0), 100) for s in (a, b))
    assert_same_batches(steps_a, steps_b)
    assert ep_a == ep_b and len(ep_a) >= 60 and len({e.task_id for e in ep_a}) > 5
    assert all(e.length == 6 and not e.terminated for e in ep_a)


def test_a_checkpoint_of_either_path_resumes_on_the_other():
    dist = make("tabular-mdp", **SMALL)
    batched = sampler(dist, "batched", "disabled")
    run(batched, ActPolicy(state_seeking, 1), 13)  # mid-episode: t = 13 % 6
    state = copy.deepcopy(batched.state_dict())
    rest = run(batched, ActPolicy(state_seeking, 2), 30)[0]
    for backend in ("sync", "batched"):
        other = sampler(dist, backend, "disabled")
        other.load_state_dict(copy.deepcopy(state))
        assert_same_batches(run(other, ActPolicy(state_seeking, 2), 30)[0], rest)


def test_batched_state_round_trip_continues_identically_on_either_path():
    dist = make("tabular-mdp", **SMALL)
    env = dist.make_batched_env(3, dist.test_tasks()[1], AutoresetMode.SAME_STEP)
    env.set_pending(2, (0, dist.test_tasks()[9]))
    env.reset(seed=0)
    actions = np.array([0, 1, 3])
    env.step(actions)
    saved = [copy.deepcopy(env.get_state(i)) for i in range(3)]
    first = [env.step(actions)[:2] for _ in range(20)]
    for i, state in enumerate(saved):
        env.set_state(i, state)
    again = [env.step(actions)[:2] for _ in range(20)]
    for (obs_a, rew_a), (obs_b, rew_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)
    single = dist.make_env(dist.train_tasks()[0])  # another MDP: set_state brings the task's
    single.reset(seed=99)
    assert isinstance(single, TabularMDPEnv)
    single.set_state(copy.deepcopy(saved[2]))
    assert single.instance_seed == dist.test_tasks()[9]["instance_seed"]
    for t in range(4):  # the rest of the episode (the batched env resets at the horizon)
        obs, reward, *_ = single.step(3)
        np.testing.assert_array_equal(obs, first[t][0][2])
        assert reward == first[t][1][2]
