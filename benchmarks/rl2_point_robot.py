"""RL² on the PEARL point robots: does it adapt on held-out goals, and does that beat a policy
that cannot adapt?

Run (from the repository root):

    python benchmarks/rl2_point_robot.py                          # point-robot, config budget
    python benchmarks/rl2_point_robot.py --env sparse-point-robot --steps 1500000
    python benchmarks/rl2_point_robot.py --steps 600000 --out runs/benchmarks/rl2
    python benchmarks/rl2_point_robot.py --rl2-run RUN_DIR     # RL² already trained by gmtl train

Both runs are normal `gmtl train` runs under `<runs>/`: RL² from configs/rl2_<env>.yaml, and
the non-adaptive baseline, SAC on the same family with the goal hidden (a memoryless policy
on the position alone: the best it can do is one path for all goals; an RL² agent with K = 1
still adapts within an episode, so it is no non-adaptive baseline). Both are evaluated by the
standard protocol on the test goals (K episodes per trial, 3 repeats; RL² keeps its hidden
state across the trial).

The check (also `tests/agents/test_rl2.py::test_rl2_adapts_on_held_out_goals`):
- adaptation: return of episode K minus episode 1, paired per test goal (mean over repeats),
  has a 95% bootstrap interval (over test goals) above 0;
- RL²'s episode-K return minus SAC's mean return, paired per test goal, has a 95% bootstrap
  interval above 0.

Writes `<out>/rl2_<env>_adaptation.csv` (agent, k, mean return, 95% interval),
`<out>/rl2_<env>_learning.csv` (RL²'s scheduled evaluations: env step, return of episode 1
and K on the test goals) and `<out>/rl2_<env>.png` (both curves).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIGS = Path(__file__).parents[1] / "configs"


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Result:
    env: str
    steps: int
    rl2_run: Path
    sac_run: Path
    episodes: int
    rl2_curve: list[Interval]  # return of episode k = 1..K, over test trials
    sac_curve: list[Interval]
    adaptation_gain: Interval  # episode K - episode 1, paired per test goal
    gain_over_sac: Interval  # RL² episode K - SAC mean, paired per test goal
    rl2_wall_s: float
    sac_wall_s: float

    @property
    def passed(self) -> bool:
        return self.adaptation_gain.low > 0 and self.gain_over_sac.low > 0


def bootstrap(values: np.ndarray, rng: np.random.Generator, resamples: int = 4000) -> Interval:
    """Mean and 95% percentile-bootstrap interval of the mean."""
    values = np.asarray(values, float)
    idx = rng.integers(len(values), size=(resamples, len(values)))
    low, high = np.quantile(values[idx].mean(1), [0.025, 0.975])
    return Interval(float(values.mean()), float(low), float(high))


def _returns(run: Path) -> dict[tuple[int, int], dict[int, float]]:
    """(task, repeat) -> {k: return} from a run's final evaluation."""
    table: dict[tuple[int, int], dict[int, float]] = {}
    with open(run / "eval" / "adaptation.csv", newline="") as f:
        for r in csv.DictReader(f):
            table.setdefault((int(r["task"]), int(r["repeat"])), {})[int(r["episode"])] = float(
                r["return"]
            )
    return table


def _per_task(table: dict[tuple[int, int], dict[int, float]], k: int) -> np.ndarray:
    """[tasks, K] return of episode k, averaged over repeats."""
    tasks = sorted({task for task, _ in table})
    return np.array(
        [
            [np.mean([v[j] for (t, _), v in table.items() if t == task]) for j in range(1, k + 1)]
            for task in tasks
        ]
    )


def train(config_data: dict, run_dir: Path) -> float:
    from gmtl_rl import runner
    from gmtl_rl.config import parse_config

    start = time.perf_counter()
    runner.train(parse_config(config_data), run_dir)
    return time.perf_counter() - start


def run(
    env: str = "point-robot",
    steps: int | None = None,
    sac_steps: int = 20_000,
    seed: int = 0,
    runs: Path = Path("runs/benchmarks/rl2"),
    rl2_run: Path | None = None,
    sac_run: Path | None = None,
) -> Result:
    """Train (or, with `rl2_run`, reuse a finished run of configs/rl2_<env>.yaml) and compare."""
    import yaml

    rl2_cfg = yaml.safe_load((CONFIGS / f"rl2_{env.replace('-', '_')}.yaml").read_text())
    rl2_cfg["seed"] = seed
    if steps is not None:
        rl2_cfg["total_steps"] = steps
        rl2_cfg["eval"]["every_steps"] = max(steps // 10, 1)
    rl2_cfg["checkpoint"]["every_steps"] = 0
    # SAC on the same family and test protocol, goal hidden (observe_goal is the default False).
    sac_cfg = {
        "experiment": f"sac-hidden-goal-{env}",
        "seed": seed,
        "total_steps": sac_steps,
        "threads": 1,
        "env": rl2_cfg["env"],
        "agent": {
            "name": "sac", "hidden": [256, 256], "batch_size": 256,
            "learning_starts": 1000, "updates_per_step": 0.5,
        },  # the quickstart's SAC (configs/quickstart.yaml)
        "sampler": {"n_envs": 4},
        "eval": {**rl2_cfg["eval"], "every_steps": 0},
        "checkpoint": {"every_steps": 0},
        "logging": {"every_steps": 5000, "tensorboard": False},
    }  # fmt: skip
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if rl2_run is None:
        rl2_run = runs / f"rl2-{env}-s{seed}-{stamp}"
        rl2_wall = train(rl2_cfg, rl2_run)
    else:  # its own config decides; wall time from its metrics log
        rl2_cfg = yaml.safe_load((rl2_run / "config.yaml").read_text())
        sac_cfg["env"], sac_cfg["eval"] = rl2_cfg["env"], {**rl2_cfg["eval"], "every_steps": 0}
        with open(rl2_run / "metrics.csv", newline="") as f:
            rl2_wall = max(float(r["time_s"]) for r in csv.DictReader(f))
    if sac_run is None:
        sac_run = runs / f"sac-{env}-s{seed}-{stamp}"
        sac_wall = train(sac_cfg, sac_run)
    else:
        with open(sac_run / "metrics.csv", newline="") as f:
            sac_wall = max(float(r["time_s"]) for r in csv.DictReader(f))

    k = int(rl2_cfg["eval"]["episodes"])
    rng = np.random.default_rng(seed)
    # Per test goal first (mean over repeats), then intervals over goals: repeats can be exact
    # copies (sparse-point-robot starts at the origin; evaluation is deterministic).
    rl2, sac = _per_task(_returns(rl2_run), k), _per_task(_returns(sac_run), k)  # [tasks, K]
    rl2_curve = [bootstrap(rl2[:, j], rng) for j in range(k)]
    sac_curve = [bootstrap(sac[:, j], rng) for j in range(k)]
    gain = bootstrap(rl2[:, -1] - rl2[:, 0], rng)
    over_sac = bootstrap(rl2[:, -1] - sac.mean(1), rng)
    return Result(
        env, int(rl2_cfg["total_steps"]), rl2_run, sac_run, k, rl2_curve, sac_curve, gain,
        over_sac, rl2_wall, sac_wall,
    )  # fmt: skip


def learning_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(env step, return of episode 1, return of episode K) of each scheduled evaluation."""
    rows = []
    with open(run_dir / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r.get("eval_return_first"):
                rows.append(
                    (int(r["step"]), float(r["eval_return_first"]), float(r["eval_return_last"]))
                )
    return rows


def write(result: Result, out: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out.mkdir(parents=True, exist_ok=True)
    name = f"rl2_{result.env.replace('-', '_')}"
    with open(out / f"{name}_adaptation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "episode", "return_mean", "ci95_low", "ci95_high"])
        for agent, curve in (("rl2", result.rl2_curve), ("sac_hidden_goal", result.sac_curve)):
            for k, p in enumerate(curve, start=1):
                writer.writerow([agent, k, f"{p.mean:.4g}", f"{p.low:.4g}", f"{p.high:.4g}"])
    learning = learning_curve(result.rl2_run)
    with open(out / f"{name}_learning.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["env_step", "return_episode_1", f"return_episode_{result.episodes}"])
        writer.writerows(learning)

    fig = Figure(figsize=(11, 4), layout="constrained")
    adapt, learn = fig.subplots(1, 2)
    ks = np.arange(1, result.episodes + 1)
    for label, points, color in (
        ("RL²", result.rl2_curve, "tab:blue"),
        ("SAC, goal hidden (non-adaptive)", result.sac_curve, "tab:orange"),
    ):
        adapt.fill_between(
            ks, [p.low for p in points], [p.high for p in points], color=color, alpha=0.25
        )
        adapt.plot(ks, [p.mean for p in points], "o-", color=color, label=label)
    adapt.set_xticks(ks)
    adapt.set_xlabel("episode k of the trial (test goals)")
    adapt.set_ylabel("return (mean, 95% bootstrap CI)")
    adapt.legend()
    if learning:
        x = np.array([c[0] for c in learning])
        learn.plot(x, [c[1] for c in learning], "o-", label="RL², episode 1")
        learn.plot(x, [c[2] for c in learning], "o-", label=f"RL², episode {result.episodes}")
    learn.axhline(
        float(np.mean([p.mean for p in result.sac_curve])), color="tab:orange", ls="--",
        label="SAC, goal hidden (final)",
    )  # fmt: skip
    learn.set_xlabel("env steps")
    learn.set_ylabel("test-goal return")
    learn.legend()
    for ax in (adapt, learn):
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"RL² on {result.env}: adaptation on held-out goals and learning curve")
    FigureCanvasAgg(fig).print_png(str(out / f"{name}.png"))


def report(result: Result) -> str:
    def fmt(p: Interval) -> str:
        return f"{p.mean:.2f} [{p.low:.2f}, {p.high:.2f}]"

    lines = [
        f"env {result.env}, RL² {result.steps} env steps ({result.rl2_wall_s:.0f} s), "
        f"SAC baseline ({result.sac_wall_s:.0f} s); load {os.getloadavg()[0]:.1f}",
        "RL² return by episode: " + ", ".join(fmt(p) for p in result.rl2_curve),
        "SAC return by episode: " + ", ".join(fmt(p) for p in result.sac_curve),
        f"adaptation gain (episode {result.episodes} - 1): {fmt(result.adaptation_gain)}",
        f"RL² episode {result.episodes} - SAC: {fmt(result.gain_over_sac)}",
        f"check: {'PASS' if result.passed else 'FAIL'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--env", default="point-robot", choices=["point-robot", "sparse-point-robot"]
    )
    parser.add_argument("--steps", type=int, default=None, help="RL² env steps (default: config)")
    parser.add_argument("--sac-steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/benchmarks/rl2")
    parser.add_argument("--out", default="runs/benchmarks/rl2")
    parser.add_argument("--rl2-run", default=None, help="a finished RL² run to evaluate instead")
    parser.add_argument("--sac-run", default=None, help="a finished SAC baseline run to reuse")
    args = parser.parse_args(argv)
    rl2_run = Path(args.rl2_run) if args.rl2_run else None
    sac_run = Path(args.sac_run) if args.sac_run else None
    result = run(args.env, args.steps, args.sac_steps, args.seed, Path(args.runs), rl2_run, sac_run)
    write(result, Path(args.out))
    text = report(result)
    print(text)
    summary = {"command": "python benchmarks/rl2_point_robot.py", "args": vars(args)}
    (Path(args.out) / f"rl2_{args.env.replace('-', '_')}_summary.json").write_text(
        json.dumps({**summary, "report": text.splitlines()}, indent=2)
    )


if __name__ == "__main__":
    main()
