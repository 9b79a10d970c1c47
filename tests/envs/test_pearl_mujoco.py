"""The PEARL MuJoCo families: splits, rewards recomputed by hand from info, physics per task."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import gmtl_rl.envs.pearl_mujoco  # noqa: F401  (registers the families)
from gmtl_rl.envs.registry import build
from gmtl_rl.envs.task import Task
from gmtl_rl.errors import ConfigError

SAMPLED = {
    "cheetah-vel": (100, 30),
    "ant-goal": (150, 30),
    "humanoid-dir": (100, 30),
    "walker-params": (40, 10),
    "hopper-params": (40, 10),
}
PHYSICS = ("model.body_mass", "model.body_inertia", "model.dof_damping", "model.geom_friction")


def steps(env: gym.Env, n: int = 4, seed: int = 0) -> list[tuple[np.ndarray, float, dict]]:
    """(action, reward, info) for `n` random actions after a seeded reset."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    out = []
    for _ in range(n):
        a = env.action_space.sample()
        _, r, terminated, _, info = env.step(a)
        out.append((a.astype(np.float64), r, info))
        if terminated:
            break
    return out


@pytest.mark.parametrize(("name", "sizes"), SAMPLED.items())
def test_split_sizes_match_reference(name, sizes):
    dist = build(name)
    assert (len(dist.train_tasks()), len(dist.test_tasks())) == sizes
    assert dist.horizon == 200


@pytest.mark.parametrize("name", ["cheetah-vel", "ant-goal", "humanoid-dir", "hopper-params"])
def test_split_is_determined_by_split_seed(name):
    small = {"n_train": 3, "n_test": 2}
    assert build(name, small).train_tasks() == build(name, small).train_tasks()
    assert build(name, small).test_tasks() == build(name, small).test_tasks()
    other = build(name, {**small, "split_seed": 1})
    assert other.train_tasks() != build(name, small).train_tasks()


def test_horizon_truncates_episodes():
    env = build("cheetah-vel", {"horizon": 3}).make_env()
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_cheetah_vel_reward_from_info():
    dist = build("cheetah-vel")
    task = dist.train_tasks()[5]
    for a, r, info in steps(dist.make_env(task)):
        expected = -abs(info["x_velocity"] - task["velocity"]) - 0.05 * a @ a
        assert r == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_vel_high_sets_the_goal_velocity_range():
    default = [t["velocity"] for t in build("cheetah-vel").train_tasks()]
    garage = [t["velocity"] for t in build("cheetah-vel", {"vel_high": 2.0}).train_tasks()]
    assert min(default) >= 0 and 2.0 < max(default) <= 3.0
    assert min(garage) >= 0 and max(garage) <= 2.0


def test_cheetah_dir_train_equals_test_and_rewards_direction():
    dist = build("cheetah-dir")
    assert dist.train_tasks() == dist.test_tasks()
    assert sorted(t["direction"] for t in dist.train_tasks()) == [-1.0, 1.0]
    task = dist.train_tasks()[1]
    for a, r, info in steps(dist.make_env(task)):
        assert r == pytest.approx(task["direction"] * info["x_velocity"] - 0.05 * a @ a)


def test_ant_dir_forward_back_has_angles_zero_and_pi():
    dist = build("ant-dir")
    assert [t["angle"] for t in dist.train_tasks()] == [0.0, math.pi]
    assert dist.train_tasks() == dist.test_tasks()


def test_ant_dir_reward_from_info():
    dist = build("ant-dir", {"directions": "random", "n_train": 3})
    task = dist.train_tasks()[2]
    theta = task["angle"]
    assert 0 <= theta < 2 * math.pi
    for a, r, info in steps(dist.make_env(task)):
        along = math.cos(theta) * info["x_velocity"] + math.sin(theta) * info["y_velocity"]
        expected = along - 0.5 * a @ a + info["reward_contact"] + 1.0
        assert r == pytest.approx(expected)
        assert info["reward_contact"] <= 0


def test_ant_goal_goals_lie_in_the_disk_of_radius_3():
    goals = np.array([t["goal"] for t in build("ant-goal").train_tasks()])
    radii = np.linalg.norm(goals, axis=1)
    assert radii.max() <= 3.0 and radii.max() > 2.5


def test_ant_goal_reward_from_position():
    dist = build("ant-goal")
    task = dist.train_tasks()[0]
    env = dist.make_env(task)
    env.reset(seed=0)
    for a in np.random.default_rng(0).uniform(-1, 1, size=(4, 8)):
        _, r, terminated, _, info = env.step(a)
        xy = env.unwrapped.data.qpos[:2]  # type: ignore[attr-defined]
        expected = -np.abs(xy - task.array("goal")).sum() - 0.1 * a @ a + info["reward_contact"]
        assert r == pytest.approx(expected)
        assert not terminated


def test_humanoid_dir_reward_from_info():
    dist = build("humanoid-dir")
    task = dist.train_tasks()[0]
    theta = task["angle"]
    for a, r, info in steps(dist.make_env(task)):
        along = math.cos(theta) * info["x_velocity"] + math.sin(theta) * info["y_velocity"]
        ctrl = 0.1 * a @ a
        assert info["reward_ctrl"] == pytest.approx(-ctrl)
        assert r == pytest.approx(1.25 * along - ctrl + info["reward_contact"] + 5.0)


def test_set_task_takes_effect_at_next_reset():
    dist = build("cheetah-vel")
    env = dist.make_env(dist.train_tasks()[0])
    env.reset(seed=0)
    dist.set_task(env, dist.train_tasks()[1])
    a = env.action_space.sample()
    _, r, *_, info = env.step(a)
    assert r == pytest.approx(
        -abs(info["x_velocity"] - dist.train_tasks()[0]["velocity"]) - 0.05 * a @ a
    )
    env.reset(seed=0)
    _, r, *_, info = env.step(a)
    assert r == pytest.approx(
        -abs(info["x_velocity"] - dist.train_tasks()[1]["velocity"]) - 0.05 * a @ a
    )


def rollout(env: gym.Env, seed: int = 3, n: int = 20) -> np.ndarray:
    actions = np.random.default_rng(1).uniform(-1, 1, size=(n, *env.action_space.shape))
    obs = [env.reset(seed=seed)[0]]
    obs += [env.step(a)[0] for a in actions]
    return np.array(obs)


@pytest.mark.parametrize("name", ["walker-params", "hopper-params"])
def test_params_task_replays_exactly_after_visiting_another(name):
    dist = build(name, {"n_train": 2, "n_test": 1})
    first, second = dist.train_tasks()
    env = dist.make_env(first)
    before = rollout(env)
    dist.set_task(env, second)
    other = rollout(env)
    dist.set_task(env, first)
    np.testing.assert_array_equal(rollout(env), before)
    assert not np.array_equal(other, before)


@pytest.mark.parametrize("name", ["walker-params", "hopper-params"])
def test_params_tasks_write_different_model_arrays(name):
    dist = build(name, {"n_train": 2, "n_test": 1})
    env = dist.make_env()
    model: Any = env.unwrapped.model  # type: ignore[attr-defined]
    arrays = []
    for task in dist.train_tasks():
        dist.set_task(env, task)
        arrays.append([getattr(model, p.split(".")[1]).copy() for p in PHYSICS])
    for a, b in zip(*arrays, strict=True):
        assert not np.array_equal(a, b)


def test_params_reward_is_the_env_reward_with_ctrl_weight_1e_3():
    env = build("hopper-params", {"n_train": 1, "n_test": 1}).make_env()
    for a, r, info in steps(env):
        assert info["reward_ctrl"] == pytest.approx(-1e-3 * a @ a)
        assert r == pytest.approx(
            info["reward_forward"] + info["reward_survive"] + info["reward_ctrl"]
        )


def test_tasks_round_trip_through_json():
    task = build("ant-goal", {"n_train": 1, "n_test": 1}).train_tasks()[0]
    assert Task.from_json(task.to_json()) == task


@pytest.mark.parametrize(
    ("name", "options", "key"),
    [
        ("cheetah-vel", {"vel_high": -1.0}, "env.vel_high"),
        ("cheetah-dir", {"n_train": 5}, "env.n_train"),
        ("ant-dir", {"directions": "sideways"}, "env.directions"),
        ("ant-dir", {"n_train": 4}, "env.n_train"),
        ("walker-params", {"horizon": 0}, "env.horizon"),
    ],
)
def test_bad_options_name_the_key(name, options, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build(name, options)
