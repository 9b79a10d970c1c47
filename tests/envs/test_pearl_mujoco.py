"""The PEARL MuJoCo families: splits, rewards recomputed by hand from info, physics per task."""

from __future__ import annotations

import math
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.envs.pearl_mujoco import TaskObservationWrapper  # (also registers the families)
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


# -- observe_task: the oracle's input ----------------------------------------------------------
FAMILIES = [
    "cheetah-vel", "cheetah-dir", "ant-dir", "ant-goal", "humanoid-dir", "walker-params",
    "hopper-params",
]  # fmt: skip
SMALL = {"cheetah-dir": {}, "ant-dir": {}}  # fixed task sets; the sampled ones get 3 / 2 tasks


def _small(name: str, **options: Any) -> dict[str, Any]:
    return {**SMALL.get(name, {"n_train": 3, "n_test": 2}), **options}


def _exponents(task: Task) -> np.ndarray:
    """rand_param_envs' exponents u (factor = base^u), by hand: mass, inertia, damping, friction."""
    bases = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}
    return np.concatenate(
        [np.log(task.array(f"model.{k}")).reshape(-1) / math.log(b) for k, b in bases.items()]
    )


def expected_task_part(name: str, task: Task) -> np.ndarray:
    if name == "cheetah-vel":
        return np.array([task["velocity"]])
    if name == "cheetah-dir":
        return np.array([task["direction"]])
    if name in ("ant-dir", "humanoid-dir"):
        return np.array([math.cos(task["angle"]), math.sin(task["angle"])])
    if name == "ant-goal":
        return task.array("goal")
    return _exponents(task)


@pytest.mark.parametrize("name", FAMILIES)
def test_observe_task_appends_exactly_the_task_parameters(name):
    hidden = build(name, _small(name))
    shown = build(name, _small(name, observe_task=True))
    assert shown.observes_task and not hidden.observes_task
    for task in (shown.train_tasks()[-1], shown.test_tasks()[0]):
        env, plain = shown.make_env(task), hidden.make_env(task)
        part = expected_task_part(name, task)
        n = plain.observation_space.shape[0]
        assert env.observation_space.shape == (n + part.size,)
        obs, _ = env.reset(seed=4)
        ref, _ = plain.reset(seed=4)
        np.testing.assert_array_equal(obs[:n], ref)
        np.testing.assert_allclose(obs[n:], part, rtol=0, atol=1e-12)
        assert env.observation_space.contains(obs)
        a = env.action_space.sample()
        obs, *_ = env.step(a)
        ref, *_ = plain.step(a)
        np.testing.assert_array_equal(obs[:n], ref)
        np.testing.assert_allclose(obs[n:], part, rtol=0, atol=1e-12)
        assert env.observation_space.contains(obs)


def test_observed_task_bounds_are_the_task_ranges():
    def bounds(name: str, **options: Any) -> tuple[list[float], list[float]]:
        space = build(name, _small(name, observe_task=True, **options)).make_env().observation_space
        n = build(name, _small(name)).make_env().observation_space.shape[0]
        assert isinstance(space, gym.spaces.Box)
        return space.low[n:].tolist(), space.high[n:].tolist()

    assert bounds("cheetah-vel", vel_high=2.0) == ([0.0], [2.0])
    assert bounds("cheetah-dir") == ([-1.0], [1.0])
    assert bounds("ant-dir", directions="random") == ([-1.0, -1.0], [1.0, 1.0])
    assert bounds("ant-goal", radius=2.5) == ([-2.5, -2.5], [2.5, 2.5])
    low, high = bounds("hopper-params", log_scale_limit=2.0)
    assert len(low) == 5 + 15 + 6 + 15 and set(low) == {-2.0} and set(high) == {2.0}


def test_observed_task_follows_set_task_at_the_switch_of_each_family():
    dist = build("cheetah-vel", _small("cheetah-vel", observe_task=True))
    first, second = dist.train_tasks()[:2]
    env = dist.make_env(first)
    env.reset(seed=0)
    dist.set_task(env, second)  # the reward families switch at the next reset
    assert env.step(env.action_space.sample())[0][-1] == first["velocity"]
    assert env.reset(seed=0)[0][-1] == second["velocity"]

    dist = build("hopper-params", _small("hopper-params", observe_task=True))
    first, second = dist.train_tasks()[:2]
    env = dist.make_env(first)
    env.reset(seed=0)
    dist.set_task(env, second)  # the params families switch at once (physics too)
    obs = env.step(env.action_space.sample())[0]
    np.testing.assert_allclose(obs[-_exponents(second).size :], _exponents(second), atol=1e-12)


@pytest.mark.parametrize("name", FAMILIES)
def test_observe_task_off_is_unchanged(name):
    """The default builds the very same env: no extra layer, the same space and rollout."""
    dist, explicit = build(name, _small(name)), build(name, _small(name, observe_task=False))
    env, other = dist.make_env(), explicit.make_env()
    assert type(env) is type(other) and not isinstance(env, TaskObservationWrapper)
    assert env.observation_space == other.observation_space
    np.testing.assert_array_equal(rollout(env, n=5), rollout(other, n=5))


@pytest.mark.parametrize("name", FAMILIES)
def test_observe_task_passes_gymnasium_and_sb3_env_checkers(name):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    dist = build(name, _small(name, observe_task=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # style warnings (unbounded boxes, ...)
        for split in ("train", "test"):
            task = dist.tasks(split)[0]
            gym_check_env(dist.make_env(task), skip_render_check=True)
            sb3_check_env(dist.make_env(task))
