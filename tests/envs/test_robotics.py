"""Goal distributions over Gymnasium-Robotics: Fetch goals and maze goal cells."""

from __future__ import annotations

import numpy as np
import pytest

from gmtl_rl.envs import build, is_goal_env, make
from gmtl_rl.envs import robotics as _robotics  # noqa: F401  (registers the families)
from gmtl_rl.errors import ConfigError


def _cell_centre(env, cell):
    return env.unwrapped.maze.cell_rowcol_to_xy(np.array(cell))


@pytest.mark.parametrize("name", ["fetch-reach", "point-maze"])
def test_split_sizes_and_determinism_per_split_seed(name):
    a, b = make(name, n_train=6, n_test=3), make(name, n_train=6, n_test=3)
    assert (len(a.train_tasks()), len(a.test_tasks())) == (6, 3)
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    other = make(name, n_train=6, n_test=3, split_seed=1)
    assert other.train_tasks() + other.test_tasks() != a.train_tasks() + a.test_tasks()


def test_fetch_goals_are_the_envs_own_samples():
    dist = make("fetch-reach", n_train=10, n_test=5)
    env = dist.make_env()
    env.reset(seed=0)
    centre = env.unwrapped.initial_gripper_xpos[:3]
    goals = np.stack([t.array("goal") for t in dist.train_tasks() + dist.test_tasks()])
    assert np.all(np.abs(goals - centre) <= env.unwrapped.target_range + 1e-9)
    assert len(np.unique(goals, axis=0)) == 15


def test_fetch_desired_goal_is_the_task_goal_at_reset_and_later_steps():
    dist = make("fetch-push", n_train=3, n_test=1)
    task = dist.train_tasks()[2]
    env = dist.make_env(task)
    assert is_goal_env(env)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["desired_goal"], task.array("goal"))
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
        np.testing.assert_array_equal(obs["desired_goal"], task.array("goal"))


def test_fetch_env_goals_option_keeps_the_envs_per_reset_goal():
    dist = make("fetch-reach", n_train=2, n_test=1, goals="env")
    env = dist.make_env()
    first = env.reset(seed=0)[0]["desired_goal"]
    second = env.reset()[0]["desired_goal"]
    assert not np.allclose(first, second)


def test_fetch_object_start_stays_random_per_reset():
    env = make("fetch-push", n_train=1, n_test=1).make_env()
    starts = [env.reset(seed=s)[0]["achieved_goal"] for s in (0, 1)]
    assert not np.allclose(*starts)


@pytest.mark.parametrize(
    ("name", "options"), [("fetch-reach", {}), ("fetch-reach", {"reward_type": "dense"})]
)
def test_fetch_batched_compute_reward_matches_step_rewards(name, options):
    dist = make(name, n_train=2, n_test=1, **options)
    env = dist.make_env()
    env.reset(seed=0)
    achieved, desired, rewards = [], [], []
    for _ in range(5):
        obs, reward, *_ = env.step(env.action_space.sample())
        achieved.append(obs["achieved_goal"])
        desired.append(obs["desired_goal"])
        rewards.append(reward)
    # One row at the goal so the sparse batch holds both values.
    achieved.append(desired[0])
    desired.append(desired[0])
    batch = env.compute_reward(np.stack(achieved), np.stack(desired), [{}] * 6)
    assert batch.shape == (6,)
    np.testing.assert_allclose(batch[:5], rewards, rtol=1e-6)
    assert batch[5] == 0.0


def test_fetch_success_passes_through_as_float():
    dist = make("fetch-reach", n_train=1, n_test=1)
    env = dist.make_env()
    obs, _ = env.reset(seed=0)
    # Drive the gripper at the goal: action = Δpos / 0.05 per step (fetch_env.py _set_action).
    info: dict = {}
    for _ in range(20):
        delta = (obs["desired_goal"] - obs["achieved_goal"]) / 0.05
        obs, reward, _, _, info = env.step(np.append(np.clip(delta, -1, 1), 0.0))
    assert info["success"] == 1.0 and isinstance(info["success"], float) and reward == 0.0


def test_maze_desired_goal_is_in_the_task_cell_and_stays():
    dist = make("point-maze", n_train=4, n_test=1)
    for task in dist.train_tasks():
        env = dist.make_env(task)
        obs, info = env.reset(seed=task.index)
        centre = _cell_centre(env, task["goal_cell"])
        # maze_v4.py add_xy_position_noise: ± position_noise_range (0.25) · cell size per axis.
        assert np.all(np.abs(obs["desired_goal"] - centre) <= 0.25 + 1e-9)
        assert isinstance(info["success"], float)
        goal = obs["desired_goal"].copy()
        for _ in range(3):
            obs, *_ = env.step(env.action_space.sample())
            np.testing.assert_array_equal(obs["desired_goal"], goal)


def test_maze_zero_position_noise_puts_the_goal_at_the_cell_centre():
    dist = make("point-maze", n_train=2, n_test=1, position_noise=0.0, reset_cell=(1, 1))
    env = dist.make_env()
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(
        obs["desired_goal"], _cell_centre(env, dist.train_tasks()[0]["goal_cell"])
    )
    np.testing.assert_allclose(obs["achieved_goal"], _cell_centre(env, (1, 1)))


def test_maze_batched_compute_reward_and_success_at_the_goal():
    dist = make("point-maze", n_train=1, n_test=1, reward_type="dense")
    env = dist.make_env()
    obs, _ = env.reset(seed=0)
    achieved, desired, rewards = [], [], []
    for _ in range(4):
        obs, reward, terminated, _, info = env.step(env.action_space.sample())
        achieved.append(obs["achieved_goal"])
        desired.append(obs["desired_goal"])
        rewards.append(reward)
    batch = env.compute_reward(np.stack(achieved), np.stack(desired), [info] * 4)
    np.testing.assert_allclose(batch, rewards)
    sparse = make("point-maze", n_train=1, n_test=1).make_env()
    sparse.reset(seed=0)
    at_goal = sparse.compute_reward(obs["desired_goal"][None], obs["desired_goal"][None], None)
    assert at_goal.tolist() == [1.0] and not terminated


@pytest.mark.parametrize(
    ("name", "options"), [("fetch-reach", {}), ("point-maze", {"position_noise": 0.0})]
)
def test_set_task_switches_the_goal_at_the_next_reset(name, options):
    dist = make(name, n_train=6, n_test=2, **options)
    first = dist.train_tasks()[0]
    new = next(t for t in dist.train_tasks() if t.params != first.params)
    env = dist.make_env(first)
    before, _ = env.reset(seed=0)
    dist.set_task(env, new)
    mid, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(mid["desired_goal"], before["desired_goal"])
    after, _ = env.reset(seed=1)
    goal = new.array("goal") if name == "fetch-reach" else _cell_centre(env, new["goal_cell"])
    np.testing.assert_allclose(after["desired_goal"], goal)
    assert not np.allclose(after["desired_goal"], before["desired_goal"])


@pytest.mark.parametrize(("name", "env_steps"), [("fetch-slide", 50), ("point-maze", 300)])
def test_horizon_defaults_to_the_envs_own_and_truncates(name, env_steps):
    assert make(name, n_train=1, n_test=1).horizon == env_steps
    env = make(name, n_train=1, n_test=1, horizon=3).make_env()
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(3)]
    assert flags == [(False, False)] * 2 + [(False, True)]


def test_maze_keeps_one_goal_per_episode_and_terminates_only_if_asked():
    inner = make("ant-maze", n_train=1, n_test=1).make_env().unwrapped
    assert (inner.continuing_task, inner.reset_target) == (True, False)
    inner = make("ant-maze", n_train=1, n_test=1, terminate_on_success=True).make_env().unwrapped
    assert inner.continuing_task is False


@pytest.mark.parametrize(
    ("name", "options", "key"),
    [
        ("fetch-reach", {"goals": "random"}, "env.goals"),
        ("fetch-slide", {"n_train": 0}, "env.n_train"),
        ("point-maze", {"maze": "huge"}, "env.maze"),
        ("ant-maze", {"reset_cell": (0, 0)}, "env.reset_cell"),
        ("point-maze", {"reward": "dense"}, "env.reward"),
    ],
)
def test_bad_options_name_the_key(name, options, key):
    with pytest.raises(ConfigError, match=key):
        build(name, options)
