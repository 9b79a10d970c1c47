"""The subprocess sampler: same transitions as in-process, and envs that raise, die or hang are
reported, restarted up to a limit, and counted (issue 7)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import make
from gmtl_rl.envs.task import FamilyOptions, Task, TaskDistribution
from gmtl_rl.errors import EnvWorkerFailure


class Towards(StatelessPolicy):
    """Deterministic: a fixed function of the observation."""

    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return np.clip(0.3 - 0.5 * np.asarray(obs), -0.1, 0.1).astype(np.float32)


def _transitions(backend: str, steps: int = 70) -> list:
    dist = make("point-robot", n_train=6, n_test=2)
    sampler = RolloutSampler(
        dist, dist.train_tasks(), 3, UniformTaskSchedule(6, np.random.default_rng(0)),
        seed=0, backend=backend,
    )  # fmt: skip
    out = []
    try:
        for _ in range(steps):
            b = sampler.step(Towards())
            out.append((b.obs.copy(), b.action, b.reward, b.next_obs, b.truncated, b.task_id))
    finally:
        sampler.close()
    return out


def test_subprocess_backend_gives_the_same_transitions_as_in_process():
    for a, b in zip(_transitions("sync"), _transitions("subprocess"), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


class FlakyEnv(gym.Env[np.ndarray, np.ndarray]):
    """Fails at step 3 in the way asked; with a marker file, only the first env to get there
    fails (so a restart recovers)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, how: str, marker: Path | None) -> None:
        self.how, self.marker, self.t = how, marker, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: np.ndarray):
        self.t += 1
        if self.t == 3 and self._first_to_fail():
            if self.how == "raise":
                raise RuntimeError("simulator exploded")
            if self.how == "die":
                os._exit(7)
            if self.how == "hang":
                time.sleep(30)
        return np.full(1, self.t, np.float32), 1.0, False, self.t >= 5, {}

    def _first_to_fail(self) -> bool:
        if self.marker is None:
            return True
        try:  # atomic across the worker processes: exactly one env fails
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True


class FlakyFamily(TaskDistribution):
    name = "flaky-test"

    def __init__(self, how: str, marker: Path | None) -> None:
        super().__init__(FamilyOptions())
        self.how, self.marker = how, marker
        self._train = self._test = [Task.create(self.name, 0)]

    def make_env(self, task: Task | None = None) -> gym.Env:
        return FlakyEnv(self.how, self.marker)

    def set_task(self, env: gym.Env, task: Task) -> None:
        del env, task


def _run_flaky(how: str, marker: Path | None, steps: int = 12, max_restarts: int = 3):
    family = FlakyFamily(how, marker)
    sampler = RolloutSampler(
        family, family.train_tasks(), 2, UniformTaskSchedule(1, np.random.default_rng(0)),
        seed=0, backend="subprocess", worker_timeout_s=1.0, max_restarts=max_restarts,
    )  # fmt: skip
    replay = ReplayStorage(100, sampler.single_observation_space, sampler.single_action_space)
    try:
        batches = []
        for _ in range(steps):
            batch = sampler.step(Towards())
            replay.add(batch)
            batches.append(batch)
        return sampler.worker_restarts, batches, replay
    finally:
        sampler.close()


@pytest.mark.parametrize("how", ["raise", "die", "hang"])
def test_a_failing_worker_is_restarted_and_its_episode_cut(tmp_path, how):
    start = time.monotonic()
    restarts, batches, replay = _run_flaky(how, tmp_path / "failed-once")
    assert restarts == 1
    assert time.monotonic() - start < 15  # a hang is cut by the 1 s timeout, not waited out
    third = batches[2]  # both envs are at step 3; the one whose worker failed is truncated
    assert third.truncated.sum() >= 1
    n = len(replay)
    assert n == 24 and np.isfinite(replay.columns["next_obs"][:n]).all()
    # After the restart every env runs whole 5-step episodes again.
    assert all(b.valid.all() for b in batches[3:])


def test_a_worker_that_keeps_failing_stops_training_past_the_limit():
    with pytest.raises(EnvWorkerFailure, match=r"simulator exploded.*max_restarts=2"):
        _run_flaky("raise", marker=None, steps=30, max_restarts=2)
