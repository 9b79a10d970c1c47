"""Our sampler on Meta-World MT10 against Meta-World's own vector env (issue 15): env steps
per second of 10 envs stepped with the same pre-drawn uniform random actions.

Run from the repository root, with nothing else running:

    python benchmarks/metaworld_sampling.py
    python benchmarks/metaworld_sampling.py --steps 3000 --rounds 3

- Meta-World: `gym.make_vec("Meta-World/MT10", vector_strategy="sync")`, one env per class,
  each resampling a goal of its class at every reset (the benchmark's training setup), Gymnasium
  autoreset (NEXT_STEP), episodes of 500 steps. Nothing is stored.
- ours: `RolloutSampler` on `metaworld/MT10` with 10 envs and the uniform task schedule over the
  500 tasks (any class on any env, as our MT agents train), every transition stored in a
  `ReplayStorage`, typed step records, episode bookkeeping.
Both in one process, alternating which goes first; medians over rounds. Each side is timed
from construction to its last step (ours builds the Meta-World env of a class when an env first
needs it; Meta-World builds its ten up front), so building counts on both sides. Prints
seconds and steps/s of each, the ratio of the whole times from scratch (our builds included),
and last `ratio_vs_metaworld=<ours / theirs>`: steps per second once both sides have built
their envs (a training run builds ours once: ~30 for MT10 with 10 envs, ~4 s). Issue 15's
target is >= 1.0.
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
from rollout_overhead import CannedActions  # benchmarks/: replays pre-drawn actions

from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import make
from gmtl_rl.evaluation.metaworld_protocol import make_benchmark_envs

N_ENVS = 10


def ours(steps: int, actions: np.ndarray, family: Any = None) -> tuple[float, float]:
    """(seconds to build and reset, seconds to step). A `family` already used keeps the
    Meta-World envs it built (its pool): the steady state of a long run."""
    start = time.perf_counter()
    family = family or make("metaworld/MT10")  # metaworld.MT10 is cached; its envs are not
    tasks = family.train_tasks()
    schedule = UniformTaskSchedule(len(tasks), np.random.default_rng(0))
    sampler = RolloutSampler(family, tasks, N_ENVS, schedule, seed=0, backend="sync")
    replay = ReplayStorage(
        steps * N_ENVS + 1, sampler.single_observation_space, sampler.single_action_space
    )
    policy = CannedActions(actions)
    built = time.perf_counter()
    for _ in range(steps):
        replay.add(sampler.step(policy))
        sampler.pop_finished()
    end = time.perf_counter()
    sampler.close()
    return built - start, end - built


def theirs(steps: int, actions: np.ndarray) -> tuple[float, float]:
    start = time.perf_counter()
    envs = make_benchmark_envs(make("metaworld/MT10"))  # type: ignore[arg-type]
    assert envs.num_envs == N_ENVS
    envs.reset(seed=0)
    built = time.perf_counter()
    for i in range(steps):
        envs.step(actions[(i + 1) % len(actions)])
    end = time.perf_counter()
    envs.close()
    return built - start, end - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=2000, help="vector steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
          f"load {os.getloadavg()[0]:.2f}, {N_ENVS} envs, gymnasium {gym.__version__}")  # fmt: skip
    actions = np.random.default_rng(0).uniform(-1, 1, (256, N_ENVS, 4)).astype(np.float32)
    warm = make("metaworld/MT10")  # metaworld.MT10(seed) once (~5 s): every side reuses it
    ours(args.steps, actions, warm)  # builds the envs a run of this sampler keeps
    sides = {
        "ours, cold (builds its envs)": lambda: ours(args.steps, actions),
        "ours, warm (envs built)": lambda: ours(args.steps, actions, warm),
        "metaworld": lambda: theirs(args.steps, actions),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides.items())
        for name, fn in order if r % 2 == 0 else order[::-1]:
            times[name].append(fn())
    n = args.steps * N_ENVS
    rate: dict[str, float] = {}
    stepping: dict[str, float] = {}
    for name, runs in times.items():
        build = statistics.median(b for b, _ in runs)
        step = statistics.median(s for _, s in runs)
        rate[name] = statistics.median(n / (b + s) for b, s in runs)
        stepping[name] = n / step
        print(f"{name}: build+reset {build:.2f} s, {n:,} steps {step:.2f} s "
              f"({n / step:,.0f} steps/s); all included {rate[name]:,.0f} steps/s")  # fmt: skip
    cold = rate["ours, cold (builds its envs)"] / rate["metaworld"]
    print(f"cold ratio (one short run from scratch) {cold:.2f}")
    steady = stepping["ours, warm (envs built)"] / stepping["metaworld"]
    print(f"ratio_vs_metaworld={steady:.2f}")


if __name__ == "__main__":
    main()
