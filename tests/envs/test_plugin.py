"""The `gym` plug-in family on real MuJoCo (Swimmer-v5, fast) and on a plain Python env."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

import gmtl_rl.envs.plugin  # noqa: F401  (registers the family)
from gmtl_rl.envs.plugin import TaskParameterWrapper
from gmtl_rl.envs.registry import build
from gmtl_rl.envs.task import Task, TaskDistribution
from gmtl_rl.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "configs" / "examples" / "plugin_swimmer.yaml"


def swimmer(*parameters: dict[str, Any], **options: Any) -> TaskDistribution:
    return build("gym", {"id": "Swimmer-v5", "parameters": list(parameters), **options})


def rollout(env: gym.Env, steps: int = 30) -> tuple[np.ndarray, np.ndarray]:
    actions = np.random.default_rng(1).uniform(-1, 1, size=(steps, 2))
    obs = [env.reset(seed=3)[0]]
    rewards = []
    for a in actions:
        o, r, *_ = env.step(a)
        obs.append(o)
        rewards.append(r)
    return np.array(obs), np.array(rewards)


def model(env: gym.Env) -> Any:
    return env.unwrapped.model  # type: ignore[attr-defined]


def test_readme_example_builds_and_runs() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    options = {k: v for k, v in data["env"].items() if k != "name"}
    dist = build(data["env"]["name"], options, where="env")
    assert (len(dist.train_tasks()), len(dist.test_tasks())) == (40, 10)
    assert dist.horizon == 200
    env = dist.make_env(dist.test_tasks()[0])
    _, rewards = rollout(env, steps=5)
    assert np.isfinite(rewards).all()


def test_tasks_are_deterministic_for_a_split_seed_and_differ_across_tasks() -> None:
    spec = {"path": "model.body_mass", "distribution": {"type": "uniform", "low": 1, "high": 2}}
    a, b = swimmer(spec, split_seed=7), swimmer(spec, split_seed=7)
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    tasks = a.train_tasks() + a.test_tasks()
    assert len({t.params for t in tasks}) == len(tasks)
    assert swimmer(spec, split_seed=8).train_tasks() != a.train_tasks()


def test_set_task_scales_defaults_sets_values_and_respects_index() -> None:
    dist = swimmer(
        {"path": "model.body_mass", "index": [1, 2], "op": "scale",
         "distribution": {"type": "exp_uniform", "base": 1.5, "low": -3, "high": 3}},
        {"path": "model.dof_damping", "op": "set",
         "distribution": {"type": "log_uniform", "low": 0.1, "high": 1}},
        {"path": "model.opt.gravity", "index": 0, "op": "set",
         "distribution": {"type": "choice", "values": [-1.0, 1.0]}},
        {"path": "model.opt.density", "distribution": {"type": "uniform", "low": 0.5, "high": 2}},
    )  # fmt: skip
    plain = gym.make("Swimmer-v5")
    mass0, gravity0 = model(plain).body_mass.copy(), model(plain).opt.gravity.copy()
    density0 = model(plain).opt.density
    env = dist.make_env()
    task = dist.train_tasks()[3]
    dist.set_task(env, task)
    m = model(env)
    scales = task.array("model.body_mass[1,2]")
    assert scales.shape == (2,)
    np.testing.assert_array_equal(m.body_mass[[1, 2]], mass0[[1, 2]] * scales)
    np.testing.assert_array_equal(m.body_mass[[0, 3]], mass0[[0, 3]])
    np.testing.assert_array_equal(m.dof_damping, task.array("model.dof_damping"))
    assert m.opt.gravity[0] == task["model.opt.gravity[0]"] and m.opt.gravity[0] in (-1.0, 1.0)
    np.testing.assert_array_equal(m.opt.gravity[1:], gravity0[1:])
    assert m.opt.density == density0 * task["model.opt.density"]


def test_per_element_false_draws_one_shared_factor() -> None:
    dist = swimmer(
        {"path": "model.body_mass", "index": [1, 2, 3], "per_element": False,
         "distribution": {"type": "uniform", "low": 2, "high": 3}},
    )  # fmt: skip
    task = dist.train_tasks()[0]
    factor = task["model.body_mass[1,2,3]"]
    assert isinstance(factor, float)
    env = dist.make_env(task)
    mass0 = model(gym.make("Swimmer-v5")).body_mass
    np.testing.assert_array_equal(model(env).body_mass[1:], mass0[1:] * factor)


def test_revisiting_a_task_restores_physics_exactly() -> None:
    dist = swimmer(
        {"path": "model.body_mass",
         "distribution": {"type": "exp_uniform", "base": 1.5, "low": -3, "high": 3}},
        {"path": "model.opt.gravity", "index": 0, "op": "set",
         "distribution": {"type": "uniform", "low": -1, "high": 1}},
    )  # fmt: skip
    first, other = dist.train_tasks()[:2]
    env = dist.make_env(first)
    before = rollout(env)
    dist.set_task(env, other)
    changed = rollout(env)
    dist.set_task(env, first)
    after = rollout(env)
    assert not np.array_equal(before[0], changed[0])
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_pure_parameter_reaches_reward_override_and_original_reward_is_kept() -> None:
    dist = swimmer(
        {"name": "target_velocity", "distribution": {"type": "uniform", "low": 0, "high": 0.5}},
        reward="gmtl_rl.envs.rewards:target_velocity",
    )
    task = dist.train_tasks()[2]
    env = dist.make_env(task)
    env.reset(seed=0)
    action = np.array([0.5, -0.25])
    _, reward, _, _, info = env.step(action)
    expected = -abs(info["x_velocity"] - task["target_velocity"]) - 0.05 * 0.3125
    assert reward == pytest.approx(expected)
    original = info["reward_forward"] + info["reward_ctrl"]
    assert info["original_reward"] == pytest.approx(original)


def test_entry_point_class_builds_with_make_kwargs() -> None:
    dist = build(
        "gym",
        {
            "id": "gmtl_rl.envs.point_robot:PointRobotEnv",
            "make_kwargs": {"goal": [0.0, 0.0]},
            "parameters": [
                {"path": "goal", "op": "set",
                 "distribution": {"type": "uniform", "low": -1, "high": 1}},
            ],
        },
    )  # fmt: skip
    task = dist.test_tasks()[1]
    env = dist.make_env(task)
    np.testing.assert_array_equal(env.unwrapped.goal, task.array("goal"))  # type: ignore[attr-defined]


def test_wrapped_env_passes_gymnasium_env_checker() -> None:
    env_section = yaml.safe_load(EXAMPLE.read_text())["env"]
    dist = build("gym", {k: v for k, v in env_section.items() if k != "name"})
    env = dist.make_env()
    assert isinstance(env, TaskParameterWrapper)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_env warns that the env is wrapped
        check_env(env, skip_render_check=True)


def test_set_task_rejects_an_env_without_the_wrapper() -> None:
    dist = swimmer()
    with pytest.raises(TypeError, match="TaskParameterWrapper"):
        dist.set_task(gym.make("Swimmer-v5"), Task.create("gym", 0))


def test_unknown_id_names_the_id_and_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"env\.id: 'Swimer-v5'.*Swimmer-v5"):
        build("gym", {"id": "Swimer-v5"})


def test_missing_attribute_names_the_path_and_available_names() -> None:
    bad = {"path": "model.bodymass", "distribution": {"type": "uniform", "low": 1, "high": 2}}
    with pytest.raises(ConfigError, match=r"env\.parameters\[0\]\.path: .*'bodymass'.*body_mass"):
        swimmer(bad)


def test_index_out_of_range_names_the_index_key() -> None:
    bad = {"path": "model.body_mass", "index": 9,
           "distribution": {"type": "uniform", "low": 1, "high": 2}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"env\.parameters\[0\]\.index: 9 is out of range"):
        swimmer(bad)


def test_scaling_an_all_zero_default_is_rejected() -> None:
    bad = {"path": "model.dof_damping", "distribution": {"type": "uniform", "low": 1, "high": 2}}
    with pytest.raises(ConfigError, match=r"env\.parameters\[0\]\.op: .*use op: set"):
        swimmer(bad)


def test_inverted_range_names_the_distribution_key() -> None:
    bad = {"path": "model.body_mass", "distribution": {"type": "uniform", "low": 2, "high": 1}}
    with pytest.raises(ConfigError) as err:
        swimmer(bad)
    assert re.search(r"env\.parameters(\.0|\[0\])\.distribution", str(err.value))
    assert "low (2.0) must be <= high (1.0)" in str(err.value)


@pytest.mark.parametrize(
    ("reward", "why"),
    [
        ("no_such_module:fn", "cannot import module 'no_such_module'"),
        ("gmtl_rl.envs.rewards:target_velocty", "no attribute.*did you mean target_velocity"),
        ("gmtl_rl.envs.plugin:__doc__", "not callable"),
        ("gmtl_rl.envs.rewards", "not of the form module:function"),
    ],
)
def test_unresolvable_reward_says_why(reward: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"env\.reward: .*{why}"):
        swimmer(reward=reward)


def test_readme_example_config_trains_and_evaluates_through_the_cli(tmp_path: Path) -> None:
    from gmtl_rl.cli import main

    run = tmp_path / "run"
    tiny = [
        "total_steps=240", "agent.learning_starts=120", "agent.hidden=[16,16]",
        "agent.batch_size=16", "agent.buffer_size=1000", "eval.max_tasks=2",
        "eval.every_steps=0", "checkpoint.every_steps=0", "logging.tensorboard=false",
    ]  # fmt: skip
    assert main(["train", str(EXAMPLE), *tiny, "--run-dir", str(run)]) == 0
    assert (run / "eval" / "summary.json").is_file()
