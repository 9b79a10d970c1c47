"""Four Rooms reproduction (Bacon, Harb & Precup 2017, Fig. 2): steps per episode of
option-critic (4 options) and a flat actor-critic over 2000 episodes, the goal moving from the
east doorway to a lower-right room cell after episode 1000, over many seeds.

Run (from the repository root):

    python benchmarks/four_rooms.py                       # 10 seeds, 2 processes
    python benchmarks/four_rooms.py --seeds 20 --workers 2 --out docs/figures

Every run is a normal `gmtl train` run (configs/option_critic_four_rooms.yaml and its
`actor_critic` twin) under `<runs>/`; the script reads each run's episodes.csv and writes
`<out>/four_rooms.csv` (agent, seed, episode, steps) and `<out>/four_rooms.png`: the mean
steps per episode (smoothed over a 20-episode window) with a 95% bootstrap band over seeds,
and, enlarged, the 200 episodes after the goal moves.
"""

from __future__ import annotations

import argparse
import csv
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CONFIG = Path(__file__).parents[1] / "configs" / "option_critic_four_rooms.yaml"
AGENTS = {"option-critic (4 options)": "option_critic", "actor-critic (flat)": "actor_critic"}


def one_run(agent: str, seed: int, runs: str) -> list[int]:
    from gmtl_rl import runner
    from gmtl_rl.config import load_config

    overrides = [f"agent.name={agent}", f"seed={seed}", "logging.tensorboard=false"]
    if agent == "actor_critic":
        overrides.append("agent.num_options=1")
    config = load_config(CONFIG, overrides)
    run = runner.train(config, Path(runs) / f"{agent}-s{seed}")
    with open(run / "episodes.csv", newline="") as f:
        return [int(r["length"]) for r in csv.DictReader(f)]


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    kernel = np.ones(window) / window
    return np.convolve(x, kernel, mode="valid")


def band(curves: np.ndarray, rng: np.random.Generator, resamples: int = 1000) -> np.ndarray:
    """95% percentile-bootstrap interval of the mean over seeds, per episode: [2, T]."""
    idx = rng.integers(len(curves), size=(resamples, len(curves)))
    means = curves[idx].mean(1)
    return np.quantile(means, [0.025, 0.975], axis=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--runs", default="runs/benchmarks/four_rooms")
    parser.add_argument("--out", default="runs/benchmarks/four_rooms")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    jobs = [(label, agent, seed) for label, agent in AGENTS.items() for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(one_run, agent, seed, args.runs) for _, agent, seed in jobs]
        lengths = [f.result() for f in futures]
    table: dict[str, list[list[int]]] = {label: [] for label in AGENTS}
    with open(out / "four_rooms.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "seed", "episode", "steps"])
        for (label, agent, seed), steps in zip(jobs, lengths, strict=True):
            table[label].append(steps)
            writer.writerows([agent, seed, k + 1, s] for k, s in enumerate(steps))

    rng = np.random.default_rng(0)
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    full, zoom = fig.subplots(1, 2, width_ratios=[2, 1])
    for (label, runs), color in zip(table.items(), ("tab:blue", "tab:orange"), strict=True):
        curves = np.array([smooth(np.asarray(r, float), args.window) for r in runs])
        x = np.arange(curves.shape[1]) + args.window
        lo, hi = band(curves, rng)
        full.fill_between(x, lo, hi, color=color, alpha=0.25)
        full.plot(x, curves.mean(0), color=color, label=label)
        raw = np.array([np.asarray(r[1000:1200], float) for r in runs])
        zx = np.arange(1, raw.shape[1] + 1)
        zlo, zhi = band(raw, rng)
        zoom.fill_between(zx, zlo, zhi, color=color, alpha=0.25)
        zoom.plot(zx, raw.mean(0), color=color, label=label)
        spans = [(900, 1000), (1000, 1010), (1010, 1050), (1050, 1100), (1900, 2000)]
        summary = "; ".join(f"{a + 1}-{b} {raw_mean(runs, a, b):.1f}" for a, b in spans)
        print(f"{label}: mean steps per episode, episodes {summary}")
    full.axvline(1000, color="grey", ls="--", lw=1)
    full.set_xlabel("episode")
    full.set_ylabel(f"steps per episode (mean over {args.seeds} seeds, {args.window}-ep. window)")
    full.set_yscale("log")
    full.legend()
    zoom.set_xlabel("episodes after the goal moved")
    zoom.set_ylabel("steps per episode")
    zoom.set_yscale("log")
    for ax in (full, zoom):
        ax.grid(True, alpha=0.3)
    fig.suptitle("Four Rooms: the goal moves after episode 1000 (shaded: 95% bootstrap CI)")
    FigureCanvasAgg(fig).print_png(str(out / "four_rooms.png"))
    print(f"wrote {out / 'four_rooms.csv'} and {out / 'four_rooms.png'}")


def raw_mean(runs: list[list[int]], a: int, b: int) -> float:
    return float(np.mean([np.mean(r[a:b]) for r in runs]))


if __name__ == "__main__":
    main()
