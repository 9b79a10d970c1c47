"""RL² Bernoulli bandits (Duan et al. 2016, §4.1) as a task family, single and batched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from batched_equality import ActPolicy, assert_same_batches, run, sampler, step_both_paths
from gymnasium.vector import AutoresetMode
from scipy import stats

from gmtl_rl.core.rollout import AUTORESET_MODES
from gmtl_rl.envs import Task, build, families, make
from gmtl_rl.envs.bandit import BanditEnv, BatchedBandit
from gmtl_rl.errors import ConfigError

MODES = ["disabled", "next_step", "same_step"]
SMALL = {"arms": 4, "n_train": 30, "n_test": 30}


def random_arm(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(4, size=len(obs))


def test_split_is_seeded_reproducible_and_disjoint():
    a, b = make("bandit"), make("bandit")
    assert (len(a.train_tasks()), len(a.test_tasks())) == (1000, 1000)
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    train, test = {t["p"] for t in a.train_tasks()}, {t["p"] for t in a.test_tasks()}
    assert len(train) == len(test) == 1000 and not train & test
    assert all(len(p) == 5 for p in train | test)
    other = make("bandit", split_seed=1)
    assert other.train_tasks() != a.train_tasks() and other.test_tasks() != a.test_tasks()
    # Independent streams: the test instances do not move when n_train does.
    assert make("bandit", n_train=7).test_tasks() == a.test_tasks()


def test_arm_probabilities_are_independent_uniforms_on_the_unit_interval():
    dist = make("bandit")
    p = np.array([t["p"] for t in dist.train_tasks() + dist.test_tasks()])  # [2000, 5]
    assert p.min() >= 0.0 and p.max() <= 1.0
    # 10 000 draws: standard errors 0.003 (mean) and 0.0008 (variance); tolerances ~5 SE.
    assert abs(p.mean() - 0.5) < 0.015
    assert abs(p.var() - 1 / 12) < 0.004
    assert stats.kstest(p.ravel(), "uniform").pvalue > 1e-3
    corr = np.corrcoef(p.T)[np.triu_indices(5, 1)]  # SE 0.022 over 2000 instances
    assert np.abs(corr).max() < 0.1


@pytest.mark.parametrize("arm", [0, 3])
def test_the_reward_rate_of_an_arm_matches_its_probability(arm):
    p = (0.1, 0.35, 0.6, 0.85)
    env = BanditEnv(p)
    env.reset(seed=0)
    rewards, means = [], set()
    for _ in range(10_000):
        env.reset()
        _, reward, *_, info = env.step(arm)
        rewards.append(reward)
        means.add(info["arm_mean"])
    assert set(rewards) == {0.0, 1.0} and means == {p[arm]}
    assert abs(np.mean(rewards) - p[arm]) < 0.02  # SE <= 0.0045


def test_every_pull_ends_its_episode_with_a_constant_observation():
    dist = make("bandit", **SMALL)
    env = dist.make_env(dist.test_tasks()[2])
    assert dist.horizon == 1 and env.unwrapped.horizon == 1
    assert env.action_space.n == 4 and env.observation_space.shape == (1,)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.tolist() == [0.0] and info == {}
    for arm in range(4):
        obs, reward, terminated, truncated, info = env.step(arm)
        assert (terminated, truncated) == (True, False) and obs.tolist() == [0.0]
        assert reward in (0.0, 1.0) and "success" not in info  # the benchmark has no success
        assert info["arm_mean"] == dist.test_tasks()[2]["p"][arm]
        env.reset()


def test_an_action_out_of_range_is_an_error():
    env = make("bandit", **SMALL).make_env()
    env.reset(seed=0)
    for bad in (-1, 4):
        with pytest.raises(IndexError, match="out of range for 4 arms"):
            env.step(bad)


@pytest.mark.parametrize(
    ("options", "key"),
    [({"arms": 1}, "arms"), ({"arms": 1001}, "arms"), ({"n_test": 0}, "n_test"),
     ({"split_seed": -1}, "split_seed"), ({"arm": 3}, "arm")],
)  # fmt: skip
def test_bad_options_are_config_errors_naming_the_key(options, key):
    with pytest.raises(ConfigError, match=rf"env\.{key}:"):
        build("bandit", options)


def test_set_task_switches_the_arms():
    dist = make("bandit", **SMALL)
    env = dist.make_env(dist.train_tasks()[0])
    dist.set_task(env, dist.test_tasks()[5])
    np.testing.assert_array_equal(env.unwrapped.p, dist.test_tasks()[5].array("p"))
    with pytest.raises(ValueError, match="has 3 arms, the env 4"):
        dist.set_task(env, Task.create("bandit", 0, p=(0.1, 0.2, 0.3)))


def test_the_family_is_registered_and_listed():
    from gmtl_rl.cli import _space

    assert "bandit" in families() and "RL²" in families()["bandit"].description
    dist = build("bandit", {})
    env = dist.make_env()
    assert (_space(env.observation_space), _space(env.action_space)) == ("Box(1,)", "Discrete(5)")


@pytest.mark.parametrize("mode", MODES)
def test_the_batched_env_gives_the_single_envs_rewards(mode):
    dist = make("bandit", **SMALL)
    ends = step_both_paths(dist, random_arm, AUTORESET_MODES[mode], n=4, steps=60)
    if mode == "next_step":  # every other step resets every env
        assert ends == 4 * 30
    else:
        assert ends == 4 * 60


def test_the_comparison_sees_one_draw_out_of_turn():
    dist = make("bandit", **SMALL)
    original = BatchedBandit._reset_rows

    def one_extra_draw(self, rows):
        original(self, rows)
        self.rng(1).random()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BatchedBandit, "_reset_rows", one_extra_draw)
        with pytest.raises(AssertionError):
            step_both_paths(dist, random_arm, AutoresetMode.DISABLED, n=4, steps=20)


@pytest.mark.parametrize("mode", MODES)
def test_the_sampler_records_the_same_trials_on_either_backend(mode):
    dist = make("bandit", **SMALL)
    a, b = (sampler(dist, backend, mode, trial=10) for backend in ("sync", "batched"))
    assert isinstance(b.vec, BatchedBandit)
    (steps_a, ep_a), (steps_b, ep_b) = (run(s, ActPolicy(random_arm, 0), 80) for s in (a, b))
    assert_same_batches(steps_a, steps_b)
    assert ep_a == ep_b and len(ep_a) >= 150 and len({e.task_id for e in ep_a}) > 10
    assert all(e.length == 1 for e in ep_a)


def test_a_checkpoint_of_either_path_resumes_on_the_other():
    dist = make("bandit", **SMALL)
    batched = sampler(dist, "batched", "disabled")
    run(batched, ActPolicy(random_arm, 1), 13)
    state = copy.deepcopy(batched.state_dict())
    rest = run(batched, ActPolicy(random_arm, 2), 30)[0]
    for backend in ("sync", "batched"):
        other = sampler(dist, backend, "disabled")
        other.load_state_dict(copy.deepcopy(state))
        assert_same_batches(run(other, ActPolicy(random_arm, 2), 30)[0], rest)


def test_batched_state_round_trip_continues_identically():
    dist = make("bandit", **SMALL)
    env = dist.make_batched_env(3, dist.test_tasks()[1], AutoresetMode.SAME_STEP)
    env.reset(seed=0)
    actions = np.array([0, 1, 3])
    env.step(actions)
    saved = [copy.deepcopy(env.get_state(i)) for i in range(3)]
    first = [env.step(actions)[1] for _ in range(20)]
    for i, state in enumerate(saved):
        env.set_state(i, state)
    np.testing.assert_array_equal([env.step(actions)[1] for _ in range(20)], first)
    single = BanditEnv([0.5] * 4)  # any arms: set_state brings the task's
    single.reset(seed=99)
    single.set_state(copy.deepcopy(saved[2]))
    assert [single.step(3)[1] for _ in range(20)] == [r[2] for r in first]
