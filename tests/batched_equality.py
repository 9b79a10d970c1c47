"""Shared test helper: hold a family's batched env equal to a `SyncVectorEnv` of its single envs
(observations, rewards, flags, info columns with their masks, per-env state), step by step,
with tasks switched at resets, in any autoreset mode. tests/envs/test_batched_discrete.py does
the same for bit flipping and Four Rooms."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.records import Obs, StepBatch
from gmtl_rl.core.rollout import RolloutSampler, make_task_env
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import TaskDistribution

# (observations [n, ...], the policy's own generator) -> actions [n]
Act = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class ActPolicy(StatelessPolicy):
    """A sampler policy of an `Act` function and its own seeded generator."""

    def __init__(self, act: Act, seed: int) -> None:
        self.fn, self.rng = act, np.random.default_rng(seed)

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del task_class, deterministic
        return self.fn(np.asarray(obs), self.rng)


def sampler(dist: TaskDistribution, backend: str, mode: str, trial: int = 2) -> RolloutSampler:
    """Five envs of `dist` on uniformly scheduled train and test tasks, trials of `trial`
    episodes, seed 3."""
    tasks = dist.train_tasks()[:20] + dist.test_tasks()[:20]
    schedule = UniformTaskSchedule(len(tasks), np.random.default_rng(11))
    return RolloutSampler(
        dist, tasks, 5, schedule, seed=3, episodes_per_trial=trial, autoreset_mode=mode,
        backend=backend,
    )  # fmt: skip


def run(s: RolloutSampler, policy: ActPolicy, steps: int) -> tuple[list[StepBatch], list]:
    """`steps` sampler steps and the episodes they finished."""
    batches = [s.step(policy) for _ in range(steps)]
    return batches, s.pop_finished()


def assert_same_obs(a: Obs, b: Obs, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_obs(a[k], b[k], f"{where}.{k}")
    else:
        assert np.asarray(a).dtype == np.asarray(b).dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)


def assert_same_info(a: dict[str, Any], b: dict[str, Any], where: str) -> None:
    """Vector infos equal: the same keys and masks, equal values (and dtypes) where set."""
    assert a.keys() == b.keys(), where
    for key in (k for k in a if not k.startswith("_")):
        mask = a[f"_{key}"]
        np.testing.assert_array_equal(mask, b[f"_{key}"], err_msg=f"{where} _{key}")
        if key == "final_obs":
            for i in np.flatnonzero(mask):
                assert_same_obs(a[key][i], b[key][i], f"{where} final_obs[{i}]")
        elif key == "final_info":
            assert_same_info(a[key], b[key], f"{where} final_info")
        else:
            assert a[key].dtype == b[key].dtype, f"{where} {key}"
            np.testing.assert_array_equal(a[key][mask], b[key][mask], err_msg=f"{where} {key}")


def assert_same_batches(a: list[StepBatch], b: list[StepBatch]) -> None:
    """Two samplers' step records equal, field by field (dtypes too)."""
    assert len(a) == len(b)
    for step, (x, y) in enumerate(zip(a, b, strict=True)):
        for f in dataclasses.fields(StepBatch):
            left, right = getattr(x, f.name), getattr(y, f.name)
            assert np.asarray(left).dtype == np.asarray(right).dtype, f"{step} {f.name}"
            np.testing.assert_array_equal(left, right, err_msg=f"step {step}: {f.name}")


def step_both_paths(
    dist: TaskDistribution, act: Act, mode: AutoresetMode, n: int = 4, steps: int = 60
) -> int:
    """Step a SyncVectorEnv of `dist`'s single envs and its batched env side by side from the
    same seeds with the same actions, queueing a random task in every env that ends, and assert
    every output and every env's `get_state` equal after each step. Returns the episode ends."""
    task = dist.train_tasks()[0]
    sync = SyncVectorEnv([lambda: make_task_env(dist, task)] * n, autoreset_mode=mode)
    batched = dist.make_batched_env(n, task, mode)
    assert batched is not None
    tasks = dist.train_tasks() + dist.test_tasks()
    pick = np.random.default_rng(5)

    def queue(rows: np.ndarray) -> None:
        for i in rows:
            pending = (0, tasks[int(pick.integers(len(tasks)))])
            sync.envs[i].pending = pending  # type: ignore[attr-defined]
            batched.set_pending(int(i), pending)

    queue(np.arange(n))
    seeds: list[int | None] = [7 + i for i in range(n)]
    obs_a, _ = sync.reset(seed=seeds)
    obs_b, _ = batched.reset(seed=seeds)
    assert_same_obs(obs_a, obs_b, "reset")
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    ends = 0
    for t in range(steps):
        actions = act(obs_a, rng_a)
        np.testing.assert_array_equal(actions, act(obs_b, rng_b))
        obs_a, rew_a, term_a, trunc_a, info_a = sync.step(actions)
        obs_b, rew_b, term_b, trunc_b, info_b = batched.step(actions)
        assert_same_obs(obs_a, obs_b, f"step {t}")
        for x, y, name in [(rew_a, rew_b, "reward"), (term_a, term_b, "terminated")]:
            assert x.dtype == y.dtype, f"step {t} {name}"
            np.testing.assert_array_equal(x, y, err_msg=f"step {t} {name}")
        np.testing.assert_array_equal(trunc_a, trunc_b, err_msg=f"step {t} truncated")
        assert_same_info(info_a, info_b, f"step {t}")
        ended = np.flatnonzero(term_a | trunc_a)
        ends += len(ended)
        queue(ended)  # applied at each env's next reset, whichever mode makes it
        if mode == AutoresetMode.DISABLED and len(ended):
            mask = np.isin(np.arange(n), ended)
            obs_a, _ = sync.reset(options={"reset_mask": mask})
            obs_b, _ = batched.reset(options={"reset_mask": mask})
            assert_same_obs(obs_a, obs_b, f"reset at {t}")
        for i in range(n):
            assert sync.envs[i].unwrapped.get_state() == batched.get_state(i)  # type: ignore[attr-defined]
    return ends
