"""Wrapper overhead per task family: an env from `make_env(task)` against its raw env.

Run from the repository root:

    python benchmarks/env_overhead.py                        # every registered family
    python benchmarks/env_overhead.py cheetah-vel point-robot --steps 5000

For each family (default options), one env on the first train task is stepped with the same
pre-drawn random actions twice, alternating in rounds: through everything `make_env` returns
(our task and reward wrappers plus Gymnasium's own TimeLimit / order / checker wrappers), and
as `env.unwrapped`, the bare simulator. Both reset on termination and every `horizon` steps;
resets are timed too. Prints steps/s of each and their ratio; the last line is
`worst_ratio=<x>` (1.0 = no overhead; the target is >= 0.9).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np

from gmtl_rl.envs import build, families


def _rate(env: gym.Env, actions: list[Any], horizon: int) -> float:
    env.reset(seed=0)
    t = 0
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        t += 1
        if terminated or truncated or t >= horizon:
            env.reset()
            t = 0
    return len(actions) / (time.perf_counter() - start)


def measure(name: str, steps: int, rounds: int) -> tuple[float, float]:
    """Median steps/s (wrapped, raw) for one family."""
    dist = build(name, {})
    task = dist.train_tasks()[0]
    wrapped = dist.make_env(task)
    raw_env = dist.make_env(task)
    raw_env.reset(seed=0)  # apply the task through the wrappers once, then bypass them
    raw = raw_env.unwrapped
    space = wrapped.action_space
    space.seed(0)
    actions = [space.sample() for _ in range(steps)]
    horizon = dist.horizon or 1000
    ours: list[float] = []
    bare: list[float] = []
    for r in range(rounds):
        pair = [(ours, wrapped), (bare, raw)]
        for out, env in pair if r % 2 == 0 else pair[::-1]:
            out.append(_rate(env, actions, horizon))
    return statistics.median(ours), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", help="family names (default: all but `gym`)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = args.families or [n for n in families() if n != "gym"]
    cpu = platform.processor() or platform.machine()
    print(f"cpu: {cpu} ({os.cpu_count()} cores), {platform.platform()}")
    print(f"{'family':<22} {'wrapped steps/s':>16} {'raw steps/s':>12} {'ratio':>6}")
    worst = float("inf")
    for name in names:
        wrapped, raw = measure(name, args.steps, args.rounds)
        worst = min(worst, wrapped / raw)
        print(f"{name:<22} {wrapped:>16,.0f} {raw:>12,.0f} {wrapped / raw:>6.2f}")
    print(f"worst_ratio={worst:.2f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
