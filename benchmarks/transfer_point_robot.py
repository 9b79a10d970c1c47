"""Transfer (issue 18): does pretraining on the train goals speed up goals never trained on?

SAC shown the goal (configs/oracle_point_robot.yaml) is pretrained on point-robot's 80 train
goals (oyster's draw); then, per seed, two runs learn 5 new goals (another draw,
`env.goal_draw: seeded`, `split_seed` 11, none of them trained on before): one from scratch,
one from the pretrained networks (`init_from`, `init_parts: [networks]`: weights only, fresh
optimisers, env steps from 0). Everything else is the same config. The curves are the new
goals' return and success against env steps (scheduled evaluations, 3 episodes x 2 trials per
goal, deterministic), mean over seeds.

Run (from the repository root; one run at a time):

    python benchmarks/transfer_point_robot.py --seeds 0 1 2 --runs runs/transfer --out docs

(`--source RUN` starts from an existing run of configs/oracle_point_robot.yaml instead of
training one.)

Writes `<out>/transfer_point_robot.csv` (arm, step, mean return and success over seeds, the
seeds) and `<out>/transfer_point_robot.png` (`gmtl plot --kind training`), and prints the
table. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from _runs import gmtl, train_or_resume

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "configs/oracle_point_robot.yaml"
NEW_GOALS = [
    "env.goal_draw=seeded", "env.split_seed=11", "env.n_train=5", "env.n_test=5",
    "eval.split=train",  # the new goals are this run's train goals
]  # fmt: skip


def evaluations(run: Path) -> dict[int, tuple[float, float]]:
    with open(run / "metrics.csv", newline="") as f:
        return {
            int(row["step"]): (float(row["eval_return_last"]), float(row["eval_success_last"]))
            for row in csv.DictReader(f)
            if row.get("eval_return_last")
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-steps", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=8_000, help="env steps on the new goals")
    parser.add_argument("--runs", type=Path, default=Path("runs/transfer"))
    parser.add_argument(
        "--source", type=Path, help="a finished oracle_point_robot run to start from "
        "(default: train one, <runs>/pretrain-s0)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)

    source = args.source or args.runs / "pretrain-s0"
    if args.source is None:
        overrides = [f"total_steps={args.pretrain_steps}", "seed=0", "experiment=transfer-source"]
        train_or_resume(source, CONFIG, overrides)
    budget = [f"total_steps={args.steps}", "eval.every_steps=500", "checkpoint.every_steps=0"]
    arms = {"scratch": [], "pretrained": [f"init_from={source}"]}
    curves: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for arm, extra in arms.items():
        curves[arm] = defaultdict(list)
        for seed in args.seeds:
            run = args.runs / f"{arm}-s{seed}"
            overrides = [*NEW_GOALS, *budget, *extra, f"seed={seed}", f"experiment=transfer-{arm}"]
            train_or_resume(run, CONFIG, overrides)
            for step, value in evaluations(run).items():
                curves[arm][step].append(value)

    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "transfer_point_robot.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "step", "return", "success", "seeds"])
        for arm, by_step in curves.items():
            for step, values in sorted(by_step.items()):
                ret, success = np.mean(values, axis=0)
                writer.writerow([arm, step, f"{ret:.3f}", f"{success:.3f}", len(values)])
    print(f"new goals, mean over seeds {args.seeds} (return / success):")
    steps = sorted(set(curves["scratch"]) | set(curves["pretrained"]))
    for step in steps:
        cells = []
        for arm in arms:
            pairs = curves[arm].get(step)
            cells.append("-" if not pairs else "{:.2f} / {:.2f}".format(*np.mean(pairs, axis=0)))
        print(f"  {step:>6}  scratch {cells[0]:>14}   pretrained {cells[1]:>14}")
    runs = [str(args.runs / f"{arm}-s{s}") for arm in arms for s in args.seeds]
    plot = args.out / "transfer_point_robot.png"
    gmtl(["plot", *runs, "--kind", "training", "--out", str(plot)])
    print(f"wrote {table}, {plot}")


if __name__ == "__main__":
    main()
