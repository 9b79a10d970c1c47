"""HER bit flipping as a goal-env family."""

from __future__ import annotations

import numpy as np
import pytest

from gmtl_rl.envs import bit_flip, is_goal_env, make
from gmtl_rl.errors import ConfigError


def test_bit_flip_is_a_goal_env_with_float32_bit_vectors():
    env = make("bit-flip", n_bits=6, n_train=4, n_test=2).make_env()
    obs, _ = env.reset(seed=0)
    assert is_goal_env(env) and isinstance(env.unwrapped, bit_flip.BitFlipEnv)
    for key in ("observation", "achieved_goal", "desired_goal"):
        assert obs[key].dtype == np.float32 and obs[key].shape == (6,)
        assert set(np.unique(obs[key])) <= {0.0, 1.0}


def test_compute_reward_on_a_batch_equals_the_step_rewards():
    env = make("bit-flip", n_bits=4, n_train=4, n_test=2).make_env()
    env.reset(seed=0)
    achieved, desired, rewards = [], [], []
    for a in [0, 1, 2, 3, 0, 1, 2, 3]:
        obs, reward, *_ = env.step(a)
        achieved.append(obs["achieved_goal"])
        desired.append(obs["desired_goal"])
        rewards.append(reward)
    batch = env.unwrapped.compute_reward(np.stack(achieved), np.stack(desired), None)
    assert batch.shape == (8,) and batch.tolist() == rewards
    grid = env.unwrapped.compute_reward(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), None)
    assert grid.shape == (2, 3) and np.all(grid == 0.0)


def test_flipping_the_differing_bits_in_order_reaches_the_goal():
    env = make("bit-flip").make_env()
    obs, _ = env.reset(seed=1)
    differ = np.flatnonzero(obs["achieved_goal"] != obs["desired_goal"])
    assert len(differ) > 0
    for i, bit in enumerate(differ):
        obs, reward, terminated, _, info = env.step(bit)
        last = i == len(differ) - 1
        assert reward == (0.0 if last else -1.0) and info["success"] == float(last)
        assert not terminated  # HER convention: the episode runs on
    np.testing.assert_array_equal(obs["achieved_goal"], obs["desired_goal"])


def test_terminate_on_success_ends_the_episode_at_the_goal():
    env = make("bit-flip", n_bits=3, n_train=4, n_test=2, terminate_on_success=True).make_env()
    obs, _ = env.reset(seed=2)
    differ = np.flatnonzero(obs["achieved_goal"] != obs["desired_goal"])
    results = [env.step(bit)[1:3] for bit in differ]
    assert results[-1] == (0.0, True) and all(not t for _, t in results[:-1])


def test_episode_is_truncated_after_n_steps():
    env = make("bit-flip", n_bits=5, n_train=4, n_test=2).make_env()
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    assert make("bit-flip", n_bits=5, n_train=4, n_test=2, horizon=9).horizon == 9


def test_split_is_seeded_disjoint_and_the_right_size():
    a, b = make("bit-flip"), make("bit-flip")
    assert (len(a.train_tasks()), len(a.test_tasks())) == (80, 20)
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    goals = {t["goal"] for t in a.train_tasks() + a.test_tasks()}
    assert len(goals) == 100 and all(len(g) == 10 for g in goals)
    assert make("bit-flip", split_seed=1).train_tasks() != a.train_tasks()


def test_too_many_goals_for_the_bits_is_a_config_error():
    with pytest.raises(ConfigError, match="distinct goals"):
        make("bit-flip", n_bits=3, n_train=8, n_test=1)


def test_set_task_changes_the_desired_goal():
    dist = make("bit-flip")
    env = dist.make_env(dist.train_tasks()[0])
    dist.set_task(env, dist.test_tasks()[3])
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["desired_goal"], dist.test_tasks()[3].array("goal"))


def test_state_round_trip_continues_identically():
    env = make("bit-flip").make_env()
    env.reset(seed=0)
    env.step(3)
    state = env.get_state()
    first = [
        (env.step(a)[0]["observation"].tolist(), env.reset()[0]["observation"].tolist())
        for a in range(4)
    ]
    env.set_state(state)
    again = [
        (env.step(a)[0]["observation"].tolist(), env.reset()[0]["observation"].tolist())
        for a in range(4)
    ]
    assert again == first


# -- goal_sampling: uniform (HER's task: start and goal uniform per episode) --------------------
def _uniform(**options):
    return make("bit-flip", goal_sampling="uniform", **options)


def test_uniform_goals_are_drawn_at_every_reset_after_the_start_from_the_env_generator():
    env = _uniform(n_bits=8).make_env()
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(5)  # what Gymnasium seeds np_random with
    start, goal = (rng.integers(0, 2, size=8, dtype=np.int8) for _ in range(2))
    np.testing.assert_array_equal(obs["observation"], start)
    np.testing.assert_array_equal(obs["desired_goal"], goal)
    goals = {tuple(env.reset()[0]["desired_goal"]) for _ in range(50)}
    assert len(goals) > 40  # a new goal each episode


def test_uniform_goals_cover_all_vectors_evenly():
    env = _uniform(n_bits=3).make_env()
    env.reset(seed=0)
    counts: dict[tuple, int] = {}
    for _ in range(4000):
        goal = tuple(env.reset()[0]["desired_goal"])
        counts[goal] = counts.get(goal, 0) + 1
    assert len(counts) == 8 and all(abs(c / 4000 - 1 / 8) < 0.025 for c in counts.values())


def test_uniform_tasks_carry_no_goal_and_set_task_keeps_the_drawn_one():
    dist = _uniform(n_bits=3, n_train=8, n_test=5)  # more tasks than 2^3 goals: allowed
    assert (len(dist.train_tasks()), len(dist.test_tasks())) == (8, 5)
    task = dist.test_tasks()[2]
    assert task["goal_sampling"] == "uniform" and task["split"] == "test"
    with pytest.raises(KeyError, match="no parameter 'goal'"):
        task["goal"]
    env = dist.make_env(dist.train_tasks()[0])
    env.reset(seed=1)
    goal = env.unwrapped.goal.copy()
    dist.set_task(env, task)
    np.testing.assert_array_equal(env.unwrapped.goal, goal)
    assert make("bit-flip").train_tasks()[0]["goal"]  # the default is the split


def test_uniform_bit_flip_passes_the_env_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(_uniform(n_bits=5).make_env(), skip_render_check=True)


def test_episode_success_means_the_goal_was_reached_at_any_step():
    """HER: "successful if the goal was achieved at an arbitrary timestep". Flipping bit 0
    after reaching the goal leaves it again at the last step; the sampler's episode record
    still counts the episode as solved (success is ORed over its steps)."""
    from gmtl_rl.core.policy import StatelessPolicy
    from gmtl_rl.core.rollout import RolloutSampler
    from gmtl_rl.core.schedules import UniformTaskSchedule

    class FlipWrongThenBitZero(StatelessPolicy):
        def act(self, obs, task_class, deterministic=False):
            wrong = obs["observation"] != obs["desired_goal"]
            return np.where(wrong.any(axis=1), wrong.argmax(axis=1), 0).astype(np.int64)

    dist = _uniform(n_bits=4, n_train=1, n_test=1)
    schedule = UniformTaskSchedule(1, np.random.default_rng(0))
    sampler = RolloutSampler(dist, dist.train_tasks(), 4, schedule, seed=0)
    last_success: dict[int, float] = {}
    for _ in range(40):
        batch = sampler.step(FlipWrongThenBitZero())
        for i in np.flatnonzero(batch.done):
            last_success[int(batch.episode_id[i])] = float(batch.success[i])
    records = sampler.pop_finished()
    assert len(records) == 40 and all(r.success for r in records)  # reached within n steps
    assert sum(last_success[r.episode_id] == 0.0 for r in records) >= 5  # left at the end
