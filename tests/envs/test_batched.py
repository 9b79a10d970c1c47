"""Batched task envs (issue 15): the same transitions as the per-env path for the same seeds,
in every autoreset mode, across task switches, checkpoints and numerical faults."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.records import Obs, StepBatch
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import make
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.errors import ConfigError

# family, options: the point robots, with a hidden and a visible goal, dense and sparse reward.
CASES = [
    ("point-robot", {"n_train": 6, "n_test": 3, "horizon": 7}),
    ("point-robot", {"n_train": 6, "n_test": 3, "horizon": 5, "observe_goal": True}),
    ("sparse-point-robot", {"n_train": 6, "n_test": 3, "horizon": 9, "reward": "sparse"}),
]


class SeekingPolicy(StatelessPolicy):
    """Actions that depend on the observation (so a wrong observation changes what follows),
    plus noise from its own seeded generator; `nan_at` makes env 0 act NaN once."""

    def __init__(self, seed: int, nan_at: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        self.nan_at = nan_at

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        pos = obs["observation"] if isinstance(obs, dict) else obs
        action = -0.05 * np.asarray(pos) + self.rng.normal(0.0, 0.08, size=(len(pos), 2))
        if self.calls == self.nan_at:
            action[0] = np.nan
        self.calls += 1
        return action.astype(np.float32)


def sampler(family: str, options: dict[str, Any], backend: str, mode: str) -> RolloutSampler:
    dist = make(family, **options)
    tasks = dist.train_tasks() + dist.test_tasks()  # train and test rewards mixed (sparse)
    schedule = UniformTaskSchedule(len(tasks), np.random.default_rng(11))
    return RolloutSampler(
        dist, tasks, 5, schedule, seed=3, episodes_per_trial=2, autoreset_mode=mode,
        backend=backend,
    )  # fmt: skip


def run(s: RolloutSampler, policy: SeekingPolicy, steps: int) -> tuple[list[StepBatch], list]:
    batches = [s.step(policy) for _ in range(steps)]
    return batches, s.pop_finished()


def assert_same(a: list[StepBatch], b: list[StepBatch]) -> None:
    assert len(a) == len(b)
    for step, (x, y) in enumerate(zip(a, b, strict=True)):
        for f in dataclasses.fields(StepBatch):
            left, right = getattr(x, f.name), getattr(y, f.name)
            if isinstance(left, dict):
                for k in left:
                    np.testing.assert_array_equal(left[k], right[k], err_msg=f"{step} {f.name}.{k}")
            else:
                np.testing.assert_array_equal(left, right, err_msg=f"step {step}: {f.name}")


@pytest.mark.parametrize("mode", ["disabled", "next_step", "same_step"])
@pytest.mark.parametrize(("family", "options"), CASES)
def test_batched_env_gives_the_per_env_transitions(
    family: str, options: dict[str, Any], mode: str
) -> None:
    sync, batched = (sampler(family, options, b, mode) for b in ("sync", "batched"))
    assert isinstance(batched.vec, BatchedTaskEnv) and isinstance(sync.vec, SyncVectorEnv)
    (a, ep_a), (b, ep_b) = run(sync, SeekingPolicy(0), 60), run(batched, SeekingPolicy(0), 60)
    assert_same(a, b)
    assert ep_a == ep_b and len(ep_a) >= 20  # whole episodes, trials and task switches
    assert len({e.task_id for e in ep_a}) > 3


@pytest.mark.parametrize(("family", "options"), CASES)
def test_a_checkpoint_of_either_path_resumes_on_the_other(
    family: str, options: dict[str, Any]
) -> None:
    batched = sampler(family, options, "batched", "disabled")
    run(batched, SeekingPolicy(1), 13)  # mid-episode: step 13 of horizon 5-9
    state = copy.deepcopy(batched.state_dict())  # a checkpoint: not the live arrays
    rest = run(batched, SeekingPolicy(2), 30)
    for backend in ("sync", "batched"):
        other = sampler(family, options, backend, "disabled")
        other.load_state_dict(state)
        assert_same(run(other, SeekingPolicy(2), 30)[0], rest[0])
    sync = sampler(family, options, "sync", "disabled")
    run(sync, SeekingPolicy(1), 13)
    resumed = sampler(family, options, "batched", "disabled")
    resumed.load_state_dict(copy.deepcopy(sync.state_dict()))
    assert_same(run(resumed, SeekingPolicy(2), 30)[0], run(sync, SeekingPolicy(2), 30)[0])


@pytest.mark.parametrize("mode", ["disabled", "same_step"])
def test_a_nan_action_is_truncated_as_numerical_guard_does(mode: str) -> None:
    family, options = CASES[0]
    sync, batched = (sampler(family, options, b, mode) for b in ("sync", "batched"))
    a = run(sync, SeekingPolicy(0, nan_at=3), 20)
    b = run(batched, SeekingPolicy(0, nan_at=3), 20)
    assert_same(a[0], b[0])
    assert a[0][3].truncated[0] and sync.instabilities == batched.instabilities == 1
    assert np.isfinite(b[0][3].next_obs).all()


def test_vector_env_conventions() -> None:
    dist = make("point-robot", n_train=4, n_test=2, horizon=2)
    env = dist.make_batched_env(3)
    assert env is not None and env.num_envs == 3
    obs, _ = env.reset(seed=5)
    assert obs.shape == (3, 2) and env.observation_space.contains(obs)
    single = dist.make_env()
    for i in range(3):  # reset(seed=int) seeds env i with seed + i, as SyncVectorEnv
        np.testing.assert_array_equal(obs[i], single.reset(seed=5 + i)[0])
    env.step(np.zeros((3, 2)))
    _, _, _, truncated, info = env.step(np.zeros((3, 2)))
    assert truncated.all() and info["_success"].all() and info["success"].shape == (3,)
    with pytest.raises(RuntimeError, match="not reset"):
        env.step(np.zeros((3, 2)))
    mask = np.array([True, False, True])
    before = env.get_state(1)
    env.reset(options={"reset_mask": mask})
    assert env.get_state(1) == before and env.get_state(0)["t"] == 0
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.zeros(3, bool)})


def test_next_step_autoreset_returns_the_reset_observation_with_reward_zero() -> None:
    env = make("point-robot", horizon=1).make_batched_env(2, autoreset_mode=AutoresetMode.NEXT_STEP)
    assert env is not None
    env.reset(seed=0)
    _, _, _, truncated, _ = env.step(np.zeros((2, 2)))
    _, reward, terminated, truncated, info = env.step(np.full((2, 2), 0.1))
    assert not truncated.any() and not terminated.any() and (reward == 0).all()
    assert not info.get("_success", np.zeros(2, bool)).any()
    assert env.get_state(0)["t"] == 0


def test_batched_backend_needs_a_family_with_a_batched_env() -> None:
    dist = make("minigrid-four-rooms", n_train=2, n_test=1)
    schedule = UniformTaskSchedule(1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"minigrid-four-rooms.*no batched env") as err:
        RolloutSampler(dist, dist.train_tasks(), 2, schedule, seed=0, backend="batched")
    # The list of families that have one is read from the registry, not written by hand.
    listed = str(err.value).split("families with one: ")[1].split(")")[0].split(", ")
    assert {"point-robot", "sparse-point-robot", "bit-flip", "four-rooms"} <= set(listed)
    assert "minigrid-four-rooms" not in listed


def test_cli_refuses_the_batched_backend_for_a_family_without_one_in_one_line(
    tmp_path: Any, capsys: Any
) -> None:
    from gmtl_rl.cli import main

    config = str(Path(__file__).parents[2] / "configs" / "smoke" / "nonadaptive_cheetah_vel.yaml")
    code = main(["train", config, "sampler.backend=batched", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "'cheetah-vel' has no batched env" in err
    assert not (tmp_path / "r").exists()  # nothing half-made is left behind
