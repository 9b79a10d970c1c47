"""Deep option-critic: discrete and continuous options, state round trip, learning."""

from __future__ import annotations

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl import runner
from gmtl_rl.agents.deep_option_critic import DeepOptionCritic, DeepOptionCriticConfig
from gmtl_rl.config import parse_config
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.errors import ConfigError

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)


def _batch(obs: np.ndarray, action: np.ndarray, seed: int) -> StepBatch:
    rng = np.random.default_rng(seed)
    n = len(obs)
    return StepBatch(
        obs=obs, action=action, reward=rng.normal(size=n).astype(np.float32),
        next_obs=rng.uniform(-1, 1, obs.shape).astype(np.float32),
        terminated=np.zeros(n, bool), truncated=np.zeros(n, bool),
        task_id=np.zeros(n, np.int64), task_class=np.zeros(n, np.int64),
        episode_id=np.arange(n), step_index=np.zeros(n, np.int64),
        success=np.zeros(n, np.float32), valid=np.ones(n, bool),
    )  # fmt: skip


@pytest.mark.parametrize(
    "space", [gym.spaces.Discrete(3), gym.spaces.Box(-2.0, 2.0, (2,), np.float32)]
)
def test_actions_fit_the_space_and_options_persist_until_they_terminate(space):
    agent = DeepOptionCritic(DeepOptionCriticConfig(hidden=[16]), EnvSpec(OBS, space, 1), seed=0)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    agent.reset(np.ones(5, bool))
    action = agent.act(obs, np.zeros(5, np.int64))
    assert all(space.contains(np.asarray(a, space.dtype)) for a in action)
    assert (agent.option >= 0).all()
    before = agent.option.copy()
    agent.net.term.bias.data.fill_(-50.0)  # β ≈ 0: no option may end
    agent.observe(_batch(obs, action, 1))
    np.testing.assert_array_equal(agent.option, before)
    agent.net.term.bias.data.fill_(50.0)  # β ≈ 1: every option ends
    agent.act(obs, np.zeros(5, np.int64))
    agent.observe(_batch(obs, action, 2))
    assert (agent.option == -1).all()


def test_state_round_trip_gives_identical_actions_and_updates():
    spec = EnvSpec(OBS, gym.spaces.Box(-1.0, 1.0, (2,), np.float32), 1)
    a = DeepOptionCritic(DeepOptionCriticConfig(hidden=[16]), spec, seed=0)
    b = DeepOptionCritic(DeepOptionCriticConfig(hidden=[16]), spec, seed=5)
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    a.reset(np.ones(4, bool))
    a.observe(_batch(obs, a.act(obs, np.zeros(4, np.int64)), 1))
    b.load_state_dict(a.state_dict())
    b.raw_action = a.raw_action
    act_a, act_b = a.act(obs, np.zeros(4, np.int64)), b.act(obs, np.zeros(4, np.int64))
    np.testing.assert_array_equal(act_a, act_b)
    a.observe(_batch(obs, act_a, 2))
    b.observe(_batch(obs, act_b, 2))
    for (name, pa), pb in zip(a.net.named_parameters(), b.net.parameters(), strict=True):
        assert (pa == pb).all(), name


def test_multi_dimensional_box_actions_are_a_config_error():
    with pytest.raises(ConfigError, match="deep_option_critic needs Discrete or 1-d Box"):
        box = gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32)
        DeepOptionCritic(DeepOptionCriticConfig(), EnvSpec(OBS, box, 1))


def _returns(run: Path) -> np.ndarray:
    with open(run / "episodes.csv", newline="") as f:
        return np.array([float(r["return"]) for r in csv.DictReader(f)])


def test_continuous_options_learn_to_reach_the_point_robot_goal(tmp_path):
    """Gaussian intra-option policies on one point-robot goal (hidden), 8 envs, 3000 steps.
    Measured on the 2-core dev machine (2026-11-27), seed 0: mean return over the first fifth
    of the episodes -22.0, over the last fifth -14.3 (6000 steps: -9.8)."""
    data = {
        "experiment": "doc-test", "seed": 0, "total_steps": 3000,
        "env": {"name": "point-robot", "n_train": 1, "n_test": 1},
        "agent": {"name": "deep_option_critic", "epsilon_decay_steps": 5000},
        "sampler": {"n_envs": 8}, "eval": {"split": "train", "n_envs": 1},
        "checkpoint": {"every_steps": 0}, "logging": {"every_steps": 1000, "tensorboard": False},
    }  # fmt: skip
    returns = _returns(runner.train(parse_config(data), tmp_path / "run"))
    fifth = len(returns) // 5
    assert returns[-fifth:].mean() > returns[:fifth].mean() + 4.0


@pytest.mark.parametrize(
    "env",
    [
        {"name": "cheetah-vel", "n_train": 2, "n_test": 1},  # MuJoCo, Gaussian options
        {"name": "gym", "id": "CartPole-v1"},  # discrete actions through the plug-in family
        {"name": "four-rooms", "observation": "onehot", "goal_switch_episode": 3},
    ],
    ids=["cheetah-vel", "cartpole", "four-rooms"],
)
def test_runs_through_the_cli_loop_on_mujoco_cartpole_and_four_rooms(tmp_path, env):
    data = {
        "experiment": "doc-smoke", "seed": 0, "total_steps": 300, "env": env,
        "agent": {"name": "deep_option_critic", "hidden": [32]}, "sampler": {"n_envs": 2},
        "eval": {"split": "train", "n_envs": 1, "episodes": 1},
        "checkpoint": {"every_steps": 150}, "logging": {"every_steps": 100, "tensorboard": False},
    }  # fmt: skip
    run = runner.train(parse_config(data), tmp_path / "run")
    assert (run / "eval" / "summary.json").is_file()
    assert len(list((run / "checkpoints").glob("step-*"))) >= 1
