"""Simulator blow-ups end the episode, are counted, and never reach replay (issue 7)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs.numerical_guard import NumericalGuard
from gmtl_rl.envs.task import FamilyOptions, Task, TaskDistribution


class BlowsUpEnv(gym.Env[np.ndarray, np.ndarray]):
    """Observation t; at step `bad_step` the observation (or reward) turns NaN."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, bad_step: int = 3, where: str = "obs") -> None:
        self.bad_step, self.where, self.t = bad_step, where, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: np.ndarray):
        self.t += 1
        obs = np.full(2, self.t, np.float32)
        reward = 1.0
        if self.t == self.bad_step:
            if self.where == "obs":
                obs[1] = np.nan
            else:
                reward = float("inf")
        return obs, reward, False, self.t >= 10, {}


@pytest.mark.parametrize("where", ["obs", "reward"])
def test_non_finite_step_truncates_with_the_last_good_observation(where):
    env = NumericalGuard(BlowsUpEnv(bad_step=3, where=where))
    env.reset(seed=0)
    for _ in (1, 2):
        obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        assert not truncated and "numerical_instability" not in info
    obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert truncated and not terminated and reward == 0.0
    assert obs.tolist() == [2.0, 2.0] and info["numerical_instability"] == 1.0


def test_mujoco_bad_qacc_warning_truncates_the_episode():
    env = NumericalGuard(gym.make("HalfCheetah-v5"))
    obs0, _ = env.reset(seed=0)
    model = env.unwrapped.model  # type: ignore[attr-defined]
    model.opt.timestep = 0.5  # a huge step and gears: MuJoCo reports bad QACC and resets
    model.actuator_gear[:] *= 1e6
    obs, _, _, truncated, info = env.step(np.ones(6, np.float32))
    assert truncated and info["numerical_instability"] == 1.0
    np.testing.assert_array_equal(obs, obs0)
    env.close()


class BlowsUpFamily(TaskDistribution):
    name = "blows-up-test"

    def __init__(self) -> None:
        super().__init__(FamilyOptions())
        self._train = self._test = [Task.create(self.name, 0)]

    def make_env(self, task: Task | None = None) -> gym.Env:
        return BlowsUpEnv(bad_step=3)

    def set_task(self, env: gym.Env, task: Task) -> None:
        del env, task


class Zero(StatelessPolicy):
    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return np.zeros((len(task_class), 1), np.float32)


@pytest.mark.parametrize("mode", ["disabled", "next_step", "same_step"])
def test_sampler_counts_instabilities_and_replay_stays_finite(mode):
    family = BlowsUpFamily()
    sampler = RolloutSampler(
        family, family.train_tasks(), 2, UniformTaskSchedule(1, np.random.default_rng(0)),
        seed=0, autoreset_mode=mode,
    )  # fmt: skip
    replay = ReplayStorage(100, sampler.single_observation_space, sampler.single_action_space)
    for _ in range(12):
        replay.add(sampler.step(Zero()))
    sampler.close()
    n = len(replay)
    assert np.isfinite(replay.columns["obs"][:n]).all()
    assert np.isfinite(replay.columns["next_obs"][:n]).all()
    assert np.isfinite(replay.columns["reward"][:n]).all()
    # Every episode blows up at its 3rd step: 2 envs x 4 episodes in 12 steps (the sampler
    # resets ended envs itself, so no mode spends a step on a dummy reset here).
    assert sampler.instabilities == 8
    assert replay.columns["truncated"][:n].sum() == sampler.instabilities
