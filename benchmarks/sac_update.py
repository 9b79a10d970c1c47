"""SAC gradient-step throughput: gmtl_rl's `SAC.update` against stable-baselines3's `SAC.train`.

Run (from the repository root, stable-baselines3 installed):

    python benchmarks/sac_update.py                # defaults: [256, 256], batch 256, 2 threads
    python benchmarks/sac_update.py --hidden 400 300 --threads 1 --rounds 7

What is measured, in one process on the CPU with `torch.set_num_threads(--threads)`:

* both agents get the same network sizes (`--hidden` for actor and both critics), batch size,
  learning rate and defaults (twin critics, Polyak targets, auto-tuned entropy temperature),
  on a synthetic Box env with HalfCheetah's sizes (obs dim 17, action dim 6 by default);
* both replay buffers are pre-filled with the same `--fill` random transitions;
* ours: `UniformSampler().rows(storage, batch, rng)` + `storage.batch(rows)` + `agent.update`
  per step, so drawing the batch is timed, as SB3's `train()` times its own sampling;
* SB3: `model.train(gradient_steps=N, batch_size=B)`, which samples and updates N times;
* after a warm-up of both, `--rounds` alternating rounds of `--updates` steps each (the order
  flips every round); each side's rate is the median over rounds, in updates per second.

The last line printed is `ratio_vs_sb3=<ours / SB3's>` with two decimals.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import SAC as SB3SAC
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from gmtl_rl.agents.sac import SAC, SACConfig
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.core.replay import ReplayStorage, UniformSampler


class BoxEnv(gym.Env[np.ndarray, np.ndarray]):
    """A do-nothing env with Box spaces: SB3 needs an env to build its model, never steps it."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.obs_dim = obs_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(self.obs_dim, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros(self.obs_dim, np.float32), 0.0, False, False, {}


def random_transitions(n: int, obs_dim: int, act_dim: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.standard_normal((n, obs_dim), dtype=np.float32),
        "next_obs": rng.standard_normal((n, obs_dim), dtype=np.float32),
        "action": rng.uniform(-1.0, 1.0, (n, act_dim)).astype(np.float32),
        "reward": rng.standard_normal(n, dtype=np.float32),
        "terminated": rng.random(n) < 0.01,
    }


def build_ours(
    env: BoxEnv, data: dict[str, np.ndarray], hidden: list[int], batch_size: int, seed: int
) -> Callable[[int], None]:
    """Our agent and replay; returns `run(n)`, which draws and learns from n batches."""
    n = len(data["reward"])
    agent = SAC(
        SACConfig(hidden=hidden, batch_size=batch_size, buffer_size=n),
        EnvSpec(env.observation_space, env.action_space, num_task_classes=1),
    )
    storage = ReplayStorage(n, env.observation_space, env.action_space)
    zeros = np.zeros(n, np.int64)
    storage.add(
        StepBatch(
            obs=data["obs"],
            action=data["action"],
            reward=data["reward"],
            next_obs=data["next_obs"],
            terminated=data["terminated"],
            truncated=np.zeros(n, bool),
            task_id=zeros,
            task_class=zeros,
            episode_id=zeros,
            step_index=zeros,
            success=np.zeros(n, np.float32),
            valid=np.ones(n, bool),
        )
    )
    sampler = UniformSampler()
    rng = np.random.default_rng(seed)

    def run(steps: int) -> None:
        for _ in range(steps):
            agent.update(storage.batch(sampler.rows(storage, batch_size, rng)))

    return run


def build_sb3(
    env: BoxEnv, data: dict[str, np.ndarray], hidden: list[int], batch_size: int, seed: int
) -> Callable[[int], None]:
    """SB3's SAC with its replay filled directly; returns `run(n)` = `train(n, batch_size)`."""
    n = len(data["reward"])
    model = SB3SAC(
        "MlpPolicy",
        DummyVecEnv([lambda: env]),
        policy_kwargs={"net_arch": list(hidden)},
        batch_size=batch_size,
        buffer_size=n,
        learning_starts=0,
        device="cpu",
        seed=seed,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))
    rb = model.replay_buffer
    assert rb is not None
    rb.observations[:n, 0] = data["obs"]
    rb.next_observations[:n, 0] = data["next_obs"]
    rb.actions[:n, 0] = data["action"]
    rb.rewards[:n, 0] = data["reward"]
    rb.dones[:n, 0] = data["terminated"]
    rb.pos, rb.full = 0, True

    def run(steps: int) -> None:
        model.train(gradient_steps=steps, batch_size=batch_size)

    return run


def rate(run: Callable[[int], None], steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - start)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="MLP sizes")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--act-dim", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--fill", type=int, default=10_000, help="transitions in each replay")
    parser.add_argument("--warmup", type=int, default=100, help="untimed updates of each first")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds")
    parser.add_argument("--updates", type=int, default=300, help="updates per round and side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    env = BoxEnv(args.obs_dim, args.act_dim)
    data = random_transitions(args.fill, args.obs_dim, args.act_dim, args.seed)
    sides = {
        "gmtl_rl": build_ours(env, data, args.hidden, args.batch_size, args.seed),
        "sb3": build_sb3(env, data, args.hidden, args.batch_size, args.seed),
    }

    print(f"cpu: {cpu_model()} ({os.cpu_count()} logical cores), {platform.platform()}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), stable-baselines3 {stable_baselines3.__version__}"
    )
    print(
        f"hidden {args.hidden}, batch {args.batch_size}, obs dim {args.obs_dim}, "
        f"act dim {args.act_dim}, replay {args.fill}, {args.rounds} rounds x {args.updates} updates"
    )

    for run in sides.values():
        run(args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(args.rounds):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for name in order:
            rates[name].append(rate(sides[name], args.updates))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()))

    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(f"gmtl_rl SAC.update: {medians['gmtl_rl']:.1f} updates/s (median)")
    print(f"sb3 SAC.train: {medians['sb3']:.1f} updates/s (median)")
    ratio = medians["gmtl_rl"] / medians["sb3"]
    print(f"ratio_vs_sb3={ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
