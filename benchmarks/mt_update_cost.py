"""Update cost of multi-task methods on MT-SAC: PCGrad, Soft Modularization, CARE, MOORE, PaCo
against MT-SAC (issue 19).

Run (from the repository root):

    python benchmarks/mt_update_cost.py                  # MT10: 10 classes, batch 1280, 3x400
    python benchmarks/mt_update_cost.py --classes 50     # MT50's class count, same batch
    python benchmarks/mt_update_cost.py --quick          # a seconds-long check that it runs
    python benchmarks/mt_update_cost.py --methods mtsac mtsac_moore   # some of the methods

What is measured, in one process with `torch.set_num_threads(--threads)` on `--device`: for
each method, an agent built through the registry from its config (MT10 sizes of REFERENCE.md
"MT-SAC on MT10" unless overridden), fed the same synthetic replay (Meta-World's sizes: obs 39,
action 4; rows spread evenly over the classes), timed per gradient step as replay draw +
`storage.batch` + `agent.update`. Rounds alternate over the methods (order rotated every
round); each method's time per update is the median over rounds, and its ratio is to the
first method's (the baseline, MT-SAC).

Each architecture runs with its preset's MT10 settings (docs/multitask_architectures.md):
Soft Modularization with a 2×400 encoder f (`--hidden` minus its first layer), 2 layers of 2
modules of 256 and its loss re-weighting; CARE with 6 encoders and the shipped task metadata
(the first `--classes` task names); MOORE with 4 experts; PaCo with 5 parameter sets. The four
presets also clip gradients to norm 1 (Meta-World+), which MT-SAC does not: the clipping is part
of their measured cost. Timing only: run it on a quiet machine.

Adding a method: one entry in METHODS, its registered agent name and the config keys that make
it that method (a value may be a function of the arguments); `--methods` picks some.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from mtsac_update import filled_storage  # benchmarks/: the same synthetic replay

from gmtl_rl.agents.registry import agent_spec, parse_agent_config
from gmtl_rl.core.mt_architectures import shipped_task_names
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.core.replay import SAMPLERS

Keys = dict[str, Any | Callable[[argparse.Namespace], Any]]
# name -> (registered agent, config keys on top of the sizes): the first is the baseline.
METHODS: dict[str, tuple[str, Keys]] = {
    "mtsac": ("mtsac", {}),
    "mtsac_pcgrad": ("mtsac_pcgrad", {}),  # = mtsac + gradient_surgery: pcgrad
    # Soft Modularization's encoder f is one layer shorter than MT-SAC's MLP (2×400 at MT10).
    "mtsac_softmod": ("mtsac_softmod", {"hidden": lambda a: a.hidden[1:] or a.hidden}),
    "mtsac_care": (
        "mtsac_care",
        {"care": lambda a: {"task_names": shipped_task_names()[: a.classes]}},
    ),
    "mtsac_moore": ("mtsac_moore", {}),
    "mtsac_paco": ("mtsac_paco", {}),
}
QUICK = ["--hidden", "16", "16", "--batch-size", "60", "--fill", "2000", "--rounds", "1",
         "--updates", "2", "--warmup", "1"]  # fmt: skip


def method_runner(agent: str, keys: Keys, args: argparse.Namespace) -> Callable[[int], None]:
    """`run(n)`: n gradient steps of a fresh agent of this method on its own replay."""
    sizes = {"hidden": args.hidden, "batch_size": args.batch_size, "buffer_size": args.fill}
    own = {k: v(args) if callable(v) else v for k, v in keys.items()}
    config = parse_agent_config({"name": agent, **sizes, **own})
    storage = filled_storage(args.fill, args.classes, args.obs_dim, args.act_dim, args.seed)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (args.obs_dim,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (args.act_dim,), np.float32)
    env = EnvSpec(obs_space, act_space, args.classes)
    learner = agent_spec(agent).build(config, env, args.seed, args.device)
    sampler = SAMPLERS[getattr(config, "replay_sampler", "uniform")]()
    batch_size = int(config.model_dump()["batch_size"])
    rng = np.random.default_rng(args.seed)

    def run(steps: int) -> None:
        for _ in range(steps):
            learner.update(storage.batch(sampler.rows(storage, batch_size, rng)))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    return run


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[400, 400, 400])
    parser.add_argument("--batch-size", type=int, default=1280)
    parser.add_argument("--obs-dim", type=int, default=39)
    parser.add_argument("--act-dim", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fill", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it run (no timing)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:  # the tiny sizes after the given arguments: they win
        args = parser.parse_args([*argv, *QUICK])
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    runners = {name: method_runner(*METHODS[name], args) for name in args.methods}
    print(f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {args.device}")
    print(
        f"{args.classes} classes, hidden {args.hidden}, batch {args.batch_size}, obs "
        f"{args.obs_dim}, act {args.act_dim}, replay {args.fill}, {args.rounds} rounds x "
        f"{args.updates} updates (median over rounds)"
    )
    for run in runners.values():
        run(args.warmup)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for i in range(args.rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            runners[name](args.updates)
            seconds[name].append((time.perf_counter() - start) / args.updates)
    per_update = {name: statistics.median(values) for name, values in seconds.items()}
    base = names[0]
    for name, value in per_update.items():
        ratio = value / per_update[base]
        print(f"{name:<15} {1000 * value:9.2f} ms/update   ratio vs {base} {ratio:.2f}")
    for name in names[1:]:
        print(f"{name}_ratio={per_update[name] / per_update[base]:.2f}")
    return per_update


if __name__ == "__main__":
    main()
