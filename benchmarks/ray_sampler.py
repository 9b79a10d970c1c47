"""Ray rollout workers against the in-process sampler: env steps per second of `RolloutSampler`
with `backend="ray"` (one Ray actor per env) and `backend="subprocess"` (one forked process
per env), each as a ratio to `backend="sync"` (all envs stepped in this process) measured in
the same run, on the same machine.

Run from the repository root (needs `pip install 'gmtl-rl[ray]'`):

    python benchmarks/ray_sampler.py                           # cheetah-vel, MT10, 2 and 4 envs
    python benchmarks/ray_sampler.py --n-envs 8 --steps 2000 --families cheetah-vel

Every backend steps the same envs with the same pre-drawn uniform random actions (no policy
network) for `--steps` sampler steps after `--warmup` steps, in alternating rounds; worker
start-up is not timed. `busy-5ms` is a synthetic env whose step burns ~5 ms of CPU (a stand-in
for a slow simulator), to show where remote workers start to pay. A local Ray is started
with one CPU per core. Prints one line per (family, n_envs) and, last, the best Ray ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.envs import build
from gmtl_rl.envs.task import FamilyOptions, Task, TaskDistribution


class CannedActions(StatelessPolicy):
    """Replays a fixed table of actions, so no backend pays for action sampling."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions, self.i = actions, 0

    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        self.i = (self.i + 1) % len(self.actions)
        return self.actions[self.i]


class BusyEnv(gym.Env[np.ndarray, np.ndarray]):
    """Each step burns `ms` milliseconds of CPU: a slow simulator, without the simulator."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, ms: float) -> None:
        self.ms, self.t = ms, 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(8, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        end = time.perf_counter() + self.ms / 1000
        while time.perf_counter() < end:
            pass
        self.t += 1
        return np.full(8, self.t, np.float32), 0.0, False, self.t >= 200, {}


class BusyFamily(TaskDistribution):
    name = "busy-5ms"

    def __init__(self) -> None:
        super().__init__(FamilyOptions())
        self._train = self._test = [Task.create(self.name, 0)]

    def make_env(self, task: Task | None = None) -> gym.Env:
        return BusyEnv(5.0)

    def set_task(self, env: gym.Env, task: Task) -> None:
        del env, task


def distribution(family: str) -> TaskDistribution:
    if family == "busy-5ms":
        return BusyFamily()
    return build(family, {})


def rate(
    dist: TaskDistribution, backend: str, n_envs: int, steps: int, warmup: int, actions: np.ndarray
) -> float:
    tasks = dist.train_tasks()
    schedule = UniformTaskSchedule(len(tasks), np.random.default_rng(0))
    sampler = RolloutSampler(dist, tasks, n_envs, schedule, seed=0, backend=backend)
    policy = CannedActions(actions)
    try:
        for _ in range(warmup):
            sampler.step(policy)
        start = time.perf_counter()
        for _ in range(steps):
            sampler.step(policy)
            sampler.pop_finished()
        elapsed = time.perf_counter() - start
    finally:
        sampler.close()
    return steps * n_envs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["cheetah-vel", "metaworld/MT10"])
    parser.add_argument("--n-envs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--steps", type=int, default=1000, help="timed sampler steps per round")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["sync", "subprocess", "ray"])
    args = parser.parse_args()

    import ray
    from ray import cloudpickle

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # BusyFamily for the actors
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()
    print(f"cpu: {cpu} ({os.cpu_count()} cores), {platform.platform()}, ray {ray.__version__}")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    best = 0.0
    try:
        for family in args.families:
            dist = distribution(family)
            space = dist.make_env().action_space
            assert isinstance(space, gym.spaces.Box)
            for n_envs in args.n_envs:
                rng = np.random.default_rng(0)
                actions = rng.uniform(space.low, space.high, (256, n_envs, *space.shape))
                actions = actions.astype(np.float32)
                rates: dict[str, list[float]] = {b: [] for b in args.backends}
                for r in range(args.rounds):
                    order = args.backends if r % 2 == 0 else args.backends[::-1]
                    for backend in order:
                        steps = rate(dist, backend, n_envs, args.steps, args.warmup, actions)
                        rates[backend].append(steps)
                median = {b: statistics.median(v) for b, v in rates.items()}
                parts = [f"{b} {median[b]:,.0f} steps/s" for b in args.backends]
                ratios = [
                    f"{b}/sync {median[b] / median['sync']:.2f}"
                    for b in args.backends
                    if b != "sync" and "sync" in median
                ]
                if "ray" in median and "sync" in median:
                    best = max(best, median["ray"] / median["sync"])
                print(f"{family}, {n_envs} envs: {', '.join(parts)}; {', '.join(ratios)}")
    finally:
        ray.shutdown()
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"best_ray_over_sync={best:.2f}")


if __name__ == "__main__":
    main()
