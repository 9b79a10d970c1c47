"""Batched task envs against a `SyncVectorEnv` of the single env (issue 15): env steps per
second of N envs, each on its own task, stepped with the same pre-drawn random actions.

Run from the repository root, with nothing else running:

    python benchmarks/batched_envs.py                      # 32 envs, every family with one
    python benchmarks/batched_envs.py --n-envs 8 --steps 5000

Two levels, each side in one process, alternating rounds (median of `--rounds`):
- env: `BatchedTaskEnv.step` (one array step of all envs, autoreset NEXT_STEP) against
  `SyncVectorEnv(single envs).step` (same autoreset), nothing else;
- sampler: `RolloutSampler` (+ replay storage) with backend batched against backend sync, i.e.
  what a training run gains.
Prints steps per second and ratios per family and, last, `ratio_vs_sync=<x>`: the env-level
ratio of point-robot (the issue's target is >= 10 at 32 envs).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from rollout_overhead import CannedActions  # benchmarks/: replays pre-drawn actions

from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import make
from gmtl_rl.envs.registry import families

FAMILIES: dict[str, dict[str, Any]] = {
    "point-robot": {},
    "sparse-point-robot": {},
    "bit-flip": {},
    "four-rooms": {},
}


def env_rate(family: str, options: dict[str, Any], batched: bool, n: int, steps: int,
             actions: np.ndarray) -> float:  # fmt: skip
    dist = make(family, **options)
    tasks = dist.train_tasks()
    mode = AutoresetMode.NEXT_STEP
    if batched:
        vec: Any = dist.make_batched_env(n, tasks[0], mode)
        for i in range(n):
            vec.set_pending(i, (i, tasks[i % len(tasks)]))
    else:
        own = [tasks[i % len(tasks)] for i in range(n)]
        vec = SyncVectorEnv([partial(dist.make_env, t) for t in own], autoreset_mode=mode)
    vec.reset(seed=0)
    start = time.perf_counter()
    for i in range(steps):
        vec.step(actions[i % len(actions)])
    elapsed = time.perf_counter() - start
    vec.close()
    return steps * n / elapsed


def sampler_rate(family: str, options: dict[str, Any], batched: bool, n: int, steps: int,
                 actions: np.ndarray) -> float:  # fmt: skip
    dist = make(family, **options)
    tasks = dist.train_tasks()
    schedule = UniformTaskSchedule(len(tasks), np.random.default_rng(0))
    backend = "batched" if batched else "sync"
    sampler = RolloutSampler(dist, tasks, n, schedule, seed=0, backend=backend)
    replay = ReplayStorage(
        steps * n + 1, sampler.single_observation_space, sampler.single_action_space
    )
    policy = CannedActions(actions)
    start = time.perf_counter()
    for _ in range(steps):
        replay.add(sampler.step(policy))
        sampler.pop_finished()
    elapsed = time.perf_counter() - start
    sampler.close()
    return steps * n / elapsed


def median_pair(
    fn: Callable[..., float], rounds: int, family: str, options: dict[str, Any], *rest: Any
) -> tuple[float, float]:
    """Median rate of the batched and the sync side, alternating which goes first."""
    rates: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for batched in (True, False) if r % 2 == 0 else (False, True):
            rates[batched].append(fn(family, options, batched, *rest))
    return statistics.median(rates[True]), statistics.median(rates[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n-envs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000, help="vector steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
          f"load {os.getloadavg()[0]:.2f}, {args.n_envs} envs")  # fmt: skip
    known = set(families())
    headline = float("nan")
    for family, options in FAMILIES.items():
        if family not in known or make(family, **options).make_batched_env(1) is None:
            continue
        space = make(family, **options).make_env().action_space
        rng = np.random.default_rng(0)
        actions: np.ndarray
        if hasattr(space, "n"):
            actions = rng.integers(space.n, size=(256, args.n_envs))
        else:
            assert isinstance(space, Box)
            actions = rng.uniform(space.low, space.high, (256, args.n_envs, *space.shape))
            actions = actions.astype(np.float32)
        common = (family, options, args.n_envs, args.steps, actions)
        env_b, env_s = median_pair(env_rate, args.rounds, *common)
        smp_b, smp_s = median_pair(sampler_rate, args.rounds, *common)
        print(f"{family}: env {env_b:,.0f} vs {env_s:,.0f} steps/s (x{env_b / env_s:.1f}); "
              f"sampler+replay {smp_b:,.0f} vs {smp_s:,.0f} (x{smp_b / smp_s:.1f})")  # fmt: skip
        if family == "point-robot":
            headline = env_b / env_s
    print(f"ratio_vs_sync={headline:.2f}")


if __name__ == "__main__":
    main()
