"""Multi-task SAC update cost: 1 vs 10 vs 50 task classes at the same batch size.

Run (from the repository root):

    python benchmarks/mtsac_update.py                    # [400, 400, 400], batch 1280 (MT10)
    python benchmarks/mtsac_update.py --hidden 256 256 --batch-size 256

What is measured, in one process on the CPU with `torch.set_num_threads(--threads)`, each
variant timed as replay draw + `storage.batch` + `agent.update` per gradient step, on the
same synthetic replay (Meta-World's sizes: obs 39, action 4) with rows spread over the
classes:

* `sac` — single-task SAC, 1 class, uniform batches (the reference);
* `mtsac` with C = 10 and 50 classes — one-hot class input, one temperature per class,
  task-balanced batches (Meta-World paper's MT-SAC);
* `mhsac` with C = 10 and 50 — MT-SAC plus one actor and critic head per class, all heads
  from one batched last layer.

Rounds alternate over the variants (order rotated every round); each rate is the median over
rounds. The last line printed is `mhsac10_ratio=<update time / sac's>` (issue target ≤ 1.2).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from gmtl_rl.agents.sac import SAC, MHSACConfig, MTSACConfig, SACConfig
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.core.replay import SAMPLERS, ReplayStorage


def filled_storage(n: int, classes: int, obs_dim: int, act_dim: int, seed: int) -> ReplayStorage:
    rng = np.random.default_rng(seed)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    storage = ReplayStorage(n, obs_space, act_space)
    task = np.arange(n) % classes
    storage.add(
        StepBatch(
            obs=rng.standard_normal((n, obs_dim), dtype=np.float32),
            action=rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
            reward=rng.standard_normal(n, dtype=np.float32),
            next_obs=rng.standard_normal((n, obs_dim), dtype=np.float32),
            terminated=np.zeros(n, bool),
            truncated=(np.arange(n) // classes) % 500 == 499,
            task_id=task,
            task_class=task,
            episode_id=np.arange(n) % classes + classes * (np.arange(n) // (500 * classes)),
            step_index=(np.arange(n) // classes) % 500,
            success=np.zeros(n, np.float32),
            valid=np.ones(n, bool),
        )
    )
    return storage


def variant(config: SACConfig, classes: int, args: argparse.Namespace) -> Callable[[int], None]:
    storage = filled_storage(args.fill, classes, args.obs_dim, args.act_dim, args.seed)
    agent = SAC(config, EnvSpec(storage_space(storage), act_space(args), classes))
    sampler = SAMPLERS[config.replay_sampler]()
    rng = np.random.default_rng(args.seed)

    def run(steps: int) -> None:
        for _ in range(steps):
            agent.update(storage.batch(sampler.rows(storage, config.batch_size, rng)))

    return run


def storage_space(storage: ReplayStorage) -> gym.spaces.Box:
    shape = storage.columns["obs"].shape[1:]
    return gym.spaces.Box(-np.inf, np.inf, shape, np.float32)


def act_space(args: argparse.Namespace) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, (args.act_dim,), np.float32)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hidden", type=int, nargs="+", default=[400, 400, 400])
    parser.add_argument("--batch-size", type=int, default=1280)
    parser.add_argument("--obs-dim", type=int, default=39)
    parser.add_argument("--act-dim", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fill", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    common = {"hidden": args.hidden, "batch_size": args.batch_size, "buffer_size": args.fill}
    variants = {
        "sac": variant(SACConfig(**common), 1, args),
        "mtsac10": variant(MTSACConfig(**common), 10, args),
        "mhsac10": variant(MHSACConfig(**common), 10, args),
        "mtsac50": variant(MTSACConfig(**common), 50, args),
        "mhsac50": variant(MHSACConfig(**common), 50, args),
    }
    print(f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(
        f"hidden {args.hidden}, batch {args.batch_size}, obs {args.obs_dim}, act {args.act_dim}, "
        f"replay {args.fill}, {args.rounds} rounds x {args.updates} updates"
    )
    for run in variants.values():
        run(args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(args.rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            variants[name](args.updates)
            rates[name].append(args.updates / (time.perf_counter() - start))
    base = statistics.median(rates["sac"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<8} {rate:7.1f} updates/s   time ratio vs sac {base / rate:.2f}")
    ratio = base / statistics.median(rates["mhsac10"])
    print(f"mhsac10_ratio={ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
