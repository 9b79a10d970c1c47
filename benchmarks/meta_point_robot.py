"""Meta-RL on the PEARL point robots: PEARL and RL² against a non-adaptive SAC, by their
adaptation curves on held-out goals (return of episode k = 1..K of a trial on a test goal the
agent never trained on).

Run (from the repository root; every run is a normal `gmtl train` run under --runs):

    python benchmarks/meta_point_robot.py --family point-robot --seeds 0 1 2
    python benchmarks/meta_point_robot.py --family sparse-point-robot --pearl-steps 400000

Agents: PEARL (configs/pearl_<family>.yaml), RL² (configs/rl2_<family>.yaml, where shipped)
and SAC on the same hidden-goal tasks, which cannot tell goals apart and so cannot adapt (its
curve is flat; it learns the best goal-agnostic behaviour). Budgets are CLI options; every
agent is evaluated with the same protocol (test split, `--episodes` K, 3 repeats per goal).

Runs whose directory already holds a finished run are reused (`--reuse`; e.g. a long RL² run
trained with `gmtl train`), and every run is evaluated here with one protocol (`gmtl eval RUN
--split test --episodes K`, 3 repeats per goal), so all curves compare like for like.

Writes `<out>/meta_<family>.csv` (agent, seed, k, mean return, mean success over the test
goals), `<out>/meta_<family>_adaptation.png` (all agents on one plot, 95% intervals over
goals × seeds) and `<out>/meta_<family>_training.png` (test return at k = K against env
steps), and prints the check of issue 5: per agent, the last episode's return against the
first, and against SAC's. RL² is evaluated with its own K (the trial length it meta-trained on;
`--rl2-run` takes a finished run, e.g. from benchmarks/rl2_point_robot.py).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
SAC_BASELINE = ROOT / "configs" / "smoke" / "sac_point_robot.yaml"


def runs_for(args: argparse.Namespace) -> dict[str, tuple[Path, list[str]]]:
    """agent label -> (config, overrides) for this family."""
    slug = args.family.replace("-", "_")
    common = [
        "threads=1",
        f"eval.episodes={args.episodes}",
        "eval.repeats=3",
        "eval.split=test",
        "logging.tensorboard=false",
    ]
    runs: dict[str, tuple[Path, list[str]]] = {
        "pearl": (
            ROOT / "configs" / f"pearl_{slug}.yaml",
            [f"total_steps={args.pearl_steps}", *common, *args.pearl_override],
        )
    }
    rl2 = ROOT / "configs" / f"rl2_{slug}.yaml"
    if rl2.exists() and not args.skip_rl2:
        runs["rl2"] = (rl2, [f"total_steps={args.rl2_steps}", *common])
    runs["sac (non-adaptive)"] = (
        SAC_BASELINE,
        [
            f"experiment=sac-{args.family}-hidden-goal",
            f"env.name={args.family}",
            "env.observe_goal=false",
            "env.n_train=80",
            "env.n_test=20",
            "agent.hidden=[256,256]",
            "agent.batch_size=256",
            "agent.buffer_size=1000000",
            "agent.learning_starts=1000",
            "sampler.n_envs=4",
            f"eval.every_steps={max(args.sac_steps // 10, 1)}",
            f"total_steps={args.sac_steps}",
            "checkpoint.every_steps=0",
            "logging.every_steps=5000",
            *common,
        ],
    )
    return runs


def train(config: Path, overrides: list[str], run_dir: Path, reuse: bool) -> tuple[Path, float]:
    start = time.perf_counter()
    if reuse and (run_dir / "eval" / "summary.json").is_file():
        return run_dir, float("nan")
    cmd = [sys.executable, "-m", "gmtl_rl.cli", "train", str(config), *overrides]
    done = subprocess.run([*cmd, "--run-dir", str(run_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return run_dir, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--family", choices=["point-robot", "sparse-point-robot"],
                        default="point-robot")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--episodes", type=int, default=4, help="K: episodes per trial")
    parser.add_argument("--pearl-steps", type=int, default=300_000)
    parser.add_argument("--pearl-override", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rl2-steps", type=int, default=2_000_000)
    parser.add_argument("--skip-rl2", action="store_true")
    parser.add_argument("--rl2-run", type=Path, help="a finished RL² run to use (not trained)")
    parser.add_argument("--sac-steps", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --runs")
    parser.add_argument("--runs", type=Path, default=Path("runs/benchmarks/meta_point_robot"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)

    from gmtl_rl.evaluation.adaptation import read_csv

    jobs = {
        (label, seed): (config, [*overrides, f"seed={seed}"])
        for label, (config, overrides) in runs_for(args).items()
        for seed in args.seeds
        if not (label == "rl2" and args.rl2_run)
    }
    tag = args.family.replace("-", "_")
    with ThreadPoolExecutor(args.workers) as pool:
        futures = {
            key: pool.submit(train, config, overrides,
                             args.runs / tag / f"{key[0].split()[0]}-s{key[1]}", args.reuse)
            for key, (config, overrides) in jobs.items()
        }  # fmt: skip
        done = {key: f.result() for key, f in futures.items()}
    if args.rl2_run:
        done[("rl2", 0)] = (args.rl2_run, float("nan"))

    from gmtl_rl import runner
    from gmtl_rl.evaluation.adaptation import summarize
    from gmtl_rl.evaluation.plots import plot_adaptation
    from gmtl_rl.evaluation.training import read_eval_points, write_training_plot

    args.out.mkdir(parents=True, exist_ok=True)
    table: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    pooled: dict[str, list] = defaultdict(list)
    points: dict[str, list] = defaultdict(list)
    with open(args.out / f"meta_{tag}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "seed", "k", "return", "success", "wall_s"])
        for (label, seed), (run_dir, wall) in sorted(done.items()):
            # RL² is evaluated on trials as long as those it trained on (its eval.episodes).
            k = None if label == "rl2" else args.episodes
            out = runner.evaluate(run_dir, split="test", episodes=k)
            rows = read_csv(out / "adaptation.csv")
            pooled[label].extend(rows)
            points[label].extend(read_eval_points(run_dir / "metrics.csv", seed))
            for k in sorted({r.episode for r in rows}):
                ret = float(np.mean([r.episode_return for r in rows if r.episode == k]))
                suc = float(np.mean([r.success for r in rows if r.episode == k]))
                table[label][k].append(ret)
                writer.writerow([label, seed, k, f"{ret:.4g}", f"{suc:.3g}", f"{wall:.0f}"])
    summaries = {label: summarize(rows) for label, rows in pooled.items()}
    title = f"{args.family}: held-out goals, episode k of a trial (seeds {args.seeds})"
    plot_adaptation(
        {k: s.episode_return for k, s in summaries.items()},
        {k: s.success for k, s in summaries.items()},
        args.out / f"meta_{tag}_adaptation.png",
        title=title,
    )
    if all(points.values()):
        write_training_plot(
            dict(points), args.out / f"meta_{tag}_training.png",
            title=f"{args.family}: test return at the last evaluated episode vs env steps",
        )  # fmt: skip

    sac = table.get("sac (non-adaptive)", {})
    sac_last = float(np.mean(sac[max(sac)])) if sac else float("nan")
    print(f"\n{args.family}: mean test return of episode k (seeds {args.seeds})")
    for label, by_k in table.items():
        first, last = float(np.mean(by_k[1])), float(np.mean(by_k[max(by_k)]))
        curve = "  ".join(f"k={k}: {np.mean(v):.2f}" for k, v in sorted(by_k.items()))
        verdict = (
            "" if label.startswith("sac") else
            f"  last>first: {last > first}  last>sac: {last > sac_last}"
        )  # fmt: skip
        print(f"  {label:<20} {curve}{verdict}")


if __name__ == "__main__":
    main()
