"""The CPU-sized Continual World comparison (issue 18): every method of `cl_sac` on the
four-goal point-robot sequence (configs/continual/point_robot_sequence.yaml), 3 seeds, with
the single-goal reference runs forward transfer is measured against, then Continual World's
metrics and figure by `gmtl continual`.

Run (from the repository root; one run at a time, each a normal `gmtl train` run):

    python benchmarks/continual_point_robot.py --seeds 0 1 2 --runs runs/cw14 --out docs

A finished run directory is reused and a stopped one resumed (`gmtl resume`), so the script
continues across sessions. Writes, through `gmtl continual`, `<out>/continual_metrics.csv`,
`<out>/continual_metrics.json` and `<out>/continual.png`, and `<out>/continual_wall.csv`
(seconds of training of every run, with the load average when it finished: the two cores may
be shared).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import yaml
from _runs import gmtl, train_or_resume

ROOT = Path(__file__).parents[1]
SEQUENCE = ROOT / "configs/continual/point_robot_sequence.yaml"
SINGLE = ROOT / "configs/continual/point_robot_single.yaml"
METHODS = ("finetune", "l2", "ewc", "mas", "packnet", "agem", "perfect_memory", "multitask")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--runs", type=Path, default=Path("runs/cw-point-robot"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args(argv)

    goals = yaml.safe_load(SEQUENCE.read_text())["sequence"]["tasks"]
    walls: list[tuple[str, float, float]] = []
    methods, references = [], []
    for seed in args.seeds:
        for method in args.methods:
            run = args.runs / f"{method}-s{seed}"
            methods.append(run)
            if not args.report_only:
                wall = train_or_resume(run, SEQUENCE, [f"agent.method={method}", f"seed={seed}"])
                walls.append((run.name, wall, os.getloadavg()[0]))
        for goal in goals:  # the single-task reference of forward transfer, per element
            run = args.runs / f"single-{goal}-s{seed}"
            references.append(run)
            if not args.report_only:
                overrides = [f"sequence.tasks=[{goal}]", f"seed={seed}"]
                wall = train_or_resume(run, SINGLE, overrides)
                walls.append((run.name, wall, os.getloadavg()[0]))
    args.out.mkdir(parents=True, exist_ok=True)
    if walls:
        with open(args.out / "continual_wall.csv", "a", newline="") as f:
            writer = csv.writer(f)
            for name, wall, load in walls:
                if wall > 0:
                    writer.writerow([name, f"{wall:.1f}", f"{load:.2f}"])
    report = ["continual", *map(str, methods), "--reference", *map(str, references)]
    gmtl([*report, "--out", str(args.out)])


if __name__ == "__main__":
    main()
