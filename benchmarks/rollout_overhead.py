"""Sampler overhead: gmtl_rl's `RolloutSampler` against a raw Gymnasium `SyncVectorEnv` loop.

Run from the repository root:

    python benchmarks/rollout_overhead.py                  # point-robot and HalfCheetah-v5, 4 envs
    python benchmarks/rollout_overhead.py --n-envs 8 --steps 20000

Both sides step the same envs with the same pre-drawn uniform random actions (no policy
network), in one process, alternating rounds; ours also builds the typed `StepBatch` records,
tracks episodes and tasks, and stores every transition in a `ReplayStorage` (the raw loop
stores nothing). Prints env steps per second for each and, last, `overhead_ratio=<ours/raw>`
for the slowest family (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import build


class CannedActions(StatelessPolicy):
    """Replays a fixed table of actions, so neither side pays for action sampling."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions, self.i = actions, 0

    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        self.i = (self.i + 1) % len(self.actions)
        return self.actions[self.i]


def time_ours(
    family: str, options: dict[str, Any], n_envs: int, steps: int, actions: np.ndarray
) -> float:
    dist = build(family, options)
    tasks = dist.train_tasks()
    sampler = RolloutSampler(
        dist, tasks, n_envs, UniformTaskSchedule(len(tasks), np.random.default_rng(0)), 0
    )
    replay = ReplayStorage(
        steps * n_envs + 1, sampler.single_observation_space, sampler.single_action_space
    )
    policy = CannedActions(actions)
    start = time.perf_counter()
    for _ in range(steps):
        replay.add(sampler.step(policy))
        sampler.pop_finished()
    elapsed = time.perf_counter() - start
    sampler.close()
    return steps * n_envs / elapsed


def time_raw(
    family: str, options: dict[str, Any], n_envs: int, steps: int, actions: np.ndarray
) -> float:
    dist = build(family, options)
    tasks = dist.train_tasks()
    vec = gym.vector.SyncVectorEnv([partial(dist.make_env, t) for t in tasks[:n_envs]])
    vec.reset(seed=0)
    start = time.perf_counter()
    for i in range(steps):
        vec.step(actions[(i + 1) % len(actions)])
    elapsed = time.perf_counter() - start
    vec.close()
    return steps * n_envs / elapsed


FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "point-robot": ("point-robot", {"n_train": 8}),
    "HalfCheetah-v5 (gym plug-in)": (
        "gym",
        {"id": "HalfCheetah-v5", "max_episode_steps": 200, "n_train": 8},
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5000, help="sampler steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"cpu: {cpu} ({os.cpu_count()} cores), {platform.platform()}")
    worst = float("inf")
    for label, (family, options) in FAMILIES.items():
        space = build(family, options).make_env().action_space
        assert isinstance(space, gym.spaces.Box)
        rng = np.random.default_rng(0)
        actions = rng.uniform(space.low, space.high, (256, args.n_envs, *space.shape)).astype(
            np.float32
        )
        ours: list[float] = []
        raw: list[float] = []
        for r in range(args.rounds):
            pair = [("ours", time_ours), ("raw", time_raw)]
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                rate = fn(family, options, args.n_envs, args.steps, actions)
                (ours if name == "ours" else raw).append(rate)
        o, w = statistics.median(ours), statistics.median(raw)
        worst = min(worst, o / w)
        print(
            f"{label}: gmtl_rl sampler+replay {o:,.0f} steps/s, "
            f"raw SyncVectorEnv {w:,.0f} steps/s, ratio {o / w:.2f}"
        )
    print(f"overhead_ratio={worst:.2f}")


if __name__ == "__main__":
    main()
