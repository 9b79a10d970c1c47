"""The Ray sampler backend (issue 8): the same transitions as in-process, exact resume through
the actors, and envs that raise, die or hang restarted up to a limit and counted."""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl import cli
from gmtl_rl.config import load_config
from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import make
from gmtl_rl.envs.task import FamilyOptions, Task, TaskDistribution
from gmtl_rl.errors import ConfigError, EnvWorkerFailure

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from ray import cloudpickle  # Ray's own copy, which its serialiser uses

    # The flaky env below lives in this test module, which Ray workers cannot import.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class Towards(StatelessPolicy):
    """Deterministic: a fixed function of the observation."""

    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return np.clip(0.3 - 0.5 * np.asarray(obs), -0.1, 0.1).astype(np.float32)


def _sampler(backend: str) -> RolloutSampler:
    dist = make("point-robot", n_train=6, n_test=2)
    schedule = UniformTaskSchedule(6, np.random.default_rng(0))
    return RolloutSampler(dist, dist.train_tasks(), 3, schedule, seed=0, backend=backend)


def _steps(sampler: RolloutSampler, n: int) -> list[tuple[np.ndarray, ...]]:
    out = []
    for _ in range(n):
        b = sampler.step(Towards())
        out.append((b.obs.copy(), b.action, b.reward, b.next_obs, b.truncated, b.task_id))
    return out


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


def test_ray_backend_gives_the_same_transitions_as_in_process_and_resumes_exactly():
    sync, remote = _sampler("sync"), _sampler("ray")
    try:
        expected = _steps(sync, 70)  # episodes of 20 steps: resets and task switches included
        first = _steps(remote, 30)
        # Copied: the live bookkeeping arrays are in it (a checkpoint writes them at once).
        state = copy.deepcopy(remote.state_dict())  # env states fetched from the actors
        _assert_same(first + _steps(remote, 40), expected)
        assert remote.worker_restarts == 0
    finally:
        sync.close()
        remote.close()
    assert ray.is_initialized()  # the sampler leaves a Ray it did not start running
    resumed = _sampler("ray")
    try:
        resumed.load_state_dict(state)  # env states sent back into fresh actors
        _assert_same(_steps(resumed, 40), expected[30:])
    finally:
        resumed.close()


class FlakyEnv(gym.Env[np.ndarray, np.ndarray]):
    """Fails at step 3 in the way asked; with a marker file only the first env to get there
    fails, so a restart recovers."""

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
        try:  # atomic across the actors: exactly one env fails
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True


class FlakyFamily(TaskDistribution):
    name = "flaky-ray-test"

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
        seed=0, backend="ray", worker_timeout_s=1.0, max_restarts=max_restarts,
    )  # fmt: skip
    try:
        batches = [sampler.step(Towards()) for _ in range(steps)]
        return sampler.worker_restarts, batches
    finally:
        sampler.close()


@pytest.mark.parametrize(
    "how",
    ["raise", "die", pytest.param("hang", marks=pytest.mark.slow)],  # hang: the timeout
)
def test_a_failing_ray_worker_is_restarted_and_its_episode_cut(tmp_path, how):
    start = time.monotonic()
    restarts, batches = _run_flaky(how, tmp_path / "failed-once")
    assert restarts == 1
    assert time.monotonic() - start < 15  # a hang is cut by the 1 s timeout, not waited out
    assert batches[2].truncated.sum() == 1  # the env whose worker failed, at step 3
    assert all(np.isfinite(b.next_obs).all() for b in batches)
    assert all(b.valid.all() for b in batches[3:])  # whole 5-step episodes again


def test_a_ray_worker_that_keeps_failing_stops_training_past_the_limit():
    with pytest.raises(EnvWorkerFailure, match=r"simulator exploded.*max_restarts=1"):
        _run_flaky("raise", marker=None, steps=30, max_restarts=1)


@pytest.mark.slow  # ~7 s: a whole smoke run, checkpoints through the actors included
def test_training_with_the_ray_sampler_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(
        ["train", "configs/smoke/sac_point_robot.yaml", "--run-dir", str(run),
         "sampler.backend=ray", "total_steps=200", "eval.episodes=1"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    restarts = header.split(",").index("env_worker_restarts")
    counted = [r.split(",")[restarts] for r in rows if r.split(",")[restarts]]
    assert counted and set(counted) == {"0"}  # (the final evaluation row leaves it empty)


def test_ray_backend_without_ray_is_a_config_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"sampler.*pip install 'gmtl-rl\[ray\]'"):
        load_config("configs/smoke/sac_point_robot.yaml", ["sampler.backend=ray"])
    code = cli.main(["train", "configs/smoke/sac_point_robot.yaml", "sampler.backend=ray"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "gmtl-rl[ray]" in err
