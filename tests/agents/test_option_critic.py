"""Option-critic: the update rules on hand-built transitions, learning Four Rooms, recovery."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl import checkpoint, runner
from gmtl_rl.agents.option_critic import ActorCriticConfig, OptionCritic, OptionCriticConfig
from gmtl_rl.config import parse_config
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.errors import ConfigError

SPEC = EnvSpec(gym.spaces.Discrete(3), gym.spaces.Discrete(2), 1)


def _step(s: int, a: int, r: float, s_next: int, terminated: bool = False) -> StepBatch:
    one = np.ones(1, bool)
    return StepBatch(
        obs=np.array([s]), action=np.array([a]), reward=np.array([r], np.float32),
        next_obs=np.array([s_next]), terminated=np.array([terminated]),
        truncated=np.zeros(1, bool), task_id=np.zeros(1, np.int64),
        task_class=np.zeros(1, np.int64), episode_id=np.zeros(1, np.int64),
        step_index=np.zeros(1, np.int64), success=np.zeros(1, np.float32), valid=one,
    )  # fmt: skip


def _agent(**kwargs) -> OptionCritic:
    agent = OptionCritic(OptionCriticConfig(num_options=2, **kwargs), SPEC, seed=0)
    agent.reset(np.ones(1, bool))
    return agent


def test_critic_moves_q_u_towards_the_reward_on_a_terminal_step():
    agent = _agent(lr_critic=0.5)
    agent.act(np.array([0]), np.zeros(1, np.int64))
    w = int(agent.option[0])
    agent.observe(_step(0, 1, 1.0, 2, terminated=True))
    assert agent.q_u[0, w, 1] == pytest.approx(0.5)  # 0 + 0.5 (1 - 0)
    assert agent.q_u.sum() == pytest.approx(0.5)  # nothing else moved


def test_positive_advantage_makes_the_action_more_likely_in_its_option_only():
    agent = _agent(lr_intra=0.25, temperature=1.0)
    agent.act(np.array([0]), np.zeros(1, np.int64))
    w = int(agent.option[0])
    before = agent.policy(np.array([w]), np.array([0]))[0, 1]
    agent.observe(_step(0, 1, 1.0, 2, terminated=True))  # Q_U(0,w,1) > Q_Ω(0,w): advantage > 0
    assert agent.policy(np.array([w]), np.array([0]))[0, 1] > before
    other = 1 - w
    np.testing.assert_array_equal(agent.theta[other], 0.0)


def test_termination_grows_where_the_option_is_worse_than_the_best():
    agent = _agent(lr_term=1.0, lr_critic=1e-9, lr_intra=1e-9)
    agent.act(np.array([0]), np.zeros(1, np.int64))
    w = int(agent.option[0])
    agent.q_u[2, 1 - w, :] = 1.0  # at s' = 2 the other option is better: A_Ω(2, w) = -1
    agent.observe(_step(0, 0, 0.0, 2))
    assert agent.vartheta[w, 2] > 0.0  # β_w(2) rose above 0.5
    agent.q_u[1, w, :] = 5.0  # at s' = 1 the active option is the best: A_Ω = 0, ξ = 0
    agent.option[0] = w
    agent.observe(_step(2, 0, 0.0, 1))
    assert agent.vartheta[w, 1] == 0.0


def test_the_flat_baseline_has_exactly_one_option():
    assert ActorCriticConfig().num_options == 1
    with pytest.raises(ValueError):
        ActorCriticConfig(num_options=2)


def test_continuous_spaces_are_a_config_error():
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(ConfigError, match="discrete action space"):
        OptionCritic(OptionCriticConfig(), EnvSpec(gym.spaces.Discrete(3), box, 1))


def _four_rooms(tmp_path: Path, name: str, episodes: int, switch: int, seed: int = 0, **extra):
    data = {
        "experiment": "oc-test", "seed": seed, "total_steps": 10**7,
        "total_episodes": episodes,
        "env": {"name": "four-rooms", "goal_switch_episode": switch},
        "agent": {"name": name}, "checkpoint": {"every_steps": 0},
        "logging": {"every_steps": 10**6, "tensorboard": False}, **extra,
    }  # fmt: skip
    return runner.train(parse_config(data), tmp_path / f"{name}-s{seed}")


def _lengths(run: Path) -> np.ndarray:
    with open(run / "episodes.csv", newline="") as f:
        return np.array([int(r["length"]) for r in csv.DictReader(f)])


def test_option_critic_learns_the_first_goal_then_recovers_after_the_switch(tmp_path):
    """Measured on the 2-core dev machine (2026-11-27), goal switch after episode 400, mean
    steps per episode over episodes 1-50 / 101-200 / 301-400 / 401-410 / 501-600:
    seed 0 (this test) 142 / 55 / 50 / 288 / 53; seed 1 139 / 63 / 61 / 239 / 96;
    seed 2 122 / 60 / 61 / 448 / 149. Bounds sit between learnt and unlearnt levels."""
    run = _four_rooms(tmp_path, "option_critic", episodes=600, switch=400)
    steps = _lengths(run)
    assert len(steps) == 600
    assert steps[300:400].mean() < 80, steps[300:400].mean()
    assert steps[:50].mean() > 2 * steps[300:400].mean()
    assert steps[400:410].mean() > 2 * steps[300:400].mean()  # the goal moved
    assert steps[500:600].mean() < 100, steps[500:600].mean()  # ... and it found the new one
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["return"][-1]["episode"] == 200  # k = 1..200 after the switch


def test_online_run_split_by_a_checkpoint_matches_the_straight_run(tmp_path):
    straight = _four_rooms(tmp_path / "a", "option_critic", episodes=60, switch=30)
    split = _four_rooms(tmp_path / "b", "option_critic", episodes=25, switch=30)
    from gmtl_rl.cli import main

    assert main(["resume", str(split), "total_episodes=60"]) == 0
    a = checkpoint.load_latest(straight / "checkpoints").state["loop"]["agent"]
    b = checkpoint.load_latest(split / "checkpoints").state["loop"]["agent"]
    for key in ("theta", "vartheta", "q_u"):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(_lengths(straight), _lengths(split))


def test_the_online_loop_honours_sampler_backend(tmp_path):
    """Envs in worker processes give the same episodes as envs in this process."""
    sync = _four_rooms(tmp_path / "a", "option_critic", episodes=20, switch=10)
    workers = _four_rooms(
        tmp_path / "b", "option_critic", episodes=20, switch=10,
        sampler={"backend": "subprocess"},
    )  # fmt: skip
    np.testing.assert_array_equal(_lengths(sync), _lengths(workers))
    from gmtl_rl.config import load_config
    from gmtl_rl.core.workers import SubprocessVectorEnv
    from gmtl_rl.training.online import OnlineRun

    config = load_config(workers / "config.yaml")
    run = OnlineRun(config, tmp_path / "c", config.env.build())
    try:  # the workers were really used (the loop once ignored the key)
        assert isinstance(run.sampler.vec, SubprocessVectorEnv)
    finally:
        run.close()
