"""SAC+HER on FetchReach: gmtl_rl's `sac_her` against stable-baselines3's SAC + HerReplayBuffer.

Run (from the repository root):

    python benchmarks/her_fetch_reach.py                       # configs/her_fetch_reach.yaml
    python benchmarks/her_fetch_reach.py --hidden 256 256 --steps 10000 --seeds 0 1

Both sides train through `gmtl train`'s runner from configs/her_fetch_reach.yaml with the same
budget, network (`--hidden`), batch, learning rate, γ, τ, warm-up, HER strategy (`future`,
4 goals per transition = relabel ratio 0.8), one env, one gradient step per env step, and are
evaluated by the same evaluator on the same 50 held-out goals every `--eval-every` steps
(deterministic actions, one episode per goal). SB3's side is `agent: {name: sb3, algo: SAC}`
(its own SAC and HerReplayBuffer). Writes `<out>/her_fetch_reach.csv` (side, seed, step,
wall-clock seconds, success, return) and `<out>/her_fetch_reach.png` (success against env
steps and against wall-clock), and prints the final success of each side.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from itertools import groupby
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gmtl_rl import runner
from gmtl_rl.config import apply_overrides, load_config, parse_config, read_yaml

CONFIG = Path(__file__).parents[1] / "configs" / "her_fetch_reach.yaml"


def configs(args: argparse.Namespace, seed: int) -> dict[str, object]:
    shared = [
        f"seed={seed}", f"total_steps={args.steps}", f"eval.every_steps={args.eval_every}",
        "checkpoint.every_steps=0", "logging.tensorboard=false",
    ]  # fmt: skip
    ours = load_config(CONFIG, [*shared, f"agent.hidden={list(args.hidden)}"])
    a = ours.agent
    data = read_yaml(CONFIG)
    data["agent"] = {
        "name": "sb3",
        "algo": "SAC",
        "her": True,
        "her_strategy": "future",
        "her_n_sampled_goal": 4,  # = relabel ratio 0.8
        "kwargs": {
            "policy_kwargs": {"net_arch": list(args.hidden)},
            "batch_size": a.batch_size,  # type: ignore[attr-defined]
            "buffer_size": a.buffer_size,  # type: ignore[attr-defined]
            "learning_rate": a.lr,  # type: ignore[attr-defined]
            "gamma": a.gamma,  # type: ignore[attr-defined]
            "tau": a.tau,  # type: ignore[attr-defined]
            "learning_starts": a.learning_starts,  # type: ignore[attr-defined]
            "train_freq": 1,
            "gradient_steps": 1,
        },
    }
    data["experiment"] = "her-fetch-reach-sb3"
    sb3 = parse_config(apply_overrides(data, shared))
    return {"gmtl_rl": ours, "sb3": sb3}


def eval_points(run: Path) -> list[tuple[int, float, float, float]]:
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_success_last"]]
    return [
        (int(r["step"]), float(r["time_s"]), float(r["eval_success_last"]),
         float(r["eval_return_last"]))
        for r in rows
    ]  # fmt: skip


def plot(table: list[tuple[str, int, int, float, float, float]], path: Path, title: str) -> None:
    """Success against env steps (left) and wall-clock (right), one line per side and seed."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colors = {"gmtl_rl": "tab:blue", "sb3": "tab:orange"}
    for (side, seed), rows in groupby(sorted(table), key=lambda r: (r[0], r[1])):
        pts = list(rows)
        for ax, x in zip(axes, (2, 3), strict=True):
            ax.plot([r[x] for r in pts], [r[4] for r in pts], marker="o", color=colors[side],
                    alpha=0.8, label=f"{side} (seed {seed})")  # fmt: skip
    axes[0].set_xlabel("env steps")
    axes[1].set_xlabel("wall-clock seconds (training + evaluation)")
    axes[0].set_ylabel("success on 50 held-out goals")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize="small")
    fig.suptitle(title)
    FigureCanvasAgg(fig).print_png(str(path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/benchmarks/her_fetch_reach")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{platform.machine()} {platform.platform()}, hidden {args.hidden}, {args.steps} steps")

    table: list[tuple[str, int, int, float, float, float]] = []
    for seed in args.seeds:
        for side, config in configs(args, seed).items():
            start = time.perf_counter()
            run = runner.train(config, out / f"{side}-s{seed}-{int(time.time())}")  # type: ignore[arg-type]
            points = eval_points(run)
            table += [(side, seed, *p) for p in points]
            step, _, success, ret = points[-1]
            wall = time.perf_counter() - start
            print(f"{side:<8} seed {seed}: success {success:.2f}, return {ret:.1f} "
                  f"at {step} steps, {wall:.0f} s")  # fmt: skip

    with open(out / "her_fetch_reach.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["side", "seed", "step", "wall_s", "success", "return"])
        writer.writerows(table)
    plot(table, out / "her_fetch_reach.png", f"FetchReach SAC+HER, hidden {args.hidden}")
    print(f"wrote {out / 'her_fetch_reach.csv'} and plots")


if __name__ == "__main__":
    main()
