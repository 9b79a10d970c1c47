"""The CPU-sized comparison of the multi-task architectures (issue 19, item 7): MT-SAC, PCGrad,
Soft Modularization, CARE, MOORE and PaCo on point-robot with 10 hidden goals and the goal's
class id visible (configs/mt_point_robot.yaml), several seeds each, IQM with 95% intervals.

Run (from the repository root; one run at a time, each a normal `gmtl train` run):

    python benchmarks/mt_architectures_point_robot.py --seeds 0 1 2 3 4 --runs runs/mt19 --out docs

A finished run directory is reused and a stopped one resumed (`gmtl resume`), so the script
continues across sessions. Writes `<out>/mt_point_robot.md` (the table), `<out>/
mt_point_robot.csv` (one row per method and budget) and `<out>/mt_point_robot_training.png`
(success and return against env steps, mean and 95% interval over seeds).

Every method keeps its MT10 structure (Soft Modularization 2 layers of 2 modules, CARE 6
encoders, MOORE 4 experts, PaCo 5 parameter sets) with widths scaled to the config's 64; CARE
uses a learned context per class (point goals have no task descriptions: Meta-World+'s CARE).
Shared by all: the config's batch, replay, learning start, update ratio and evaluation. At the
budgets before the last the statistic is taken over seeds (each seed's mean over the 10 goals,
resampled as runs); at the last, over the final evaluation's rows by the project's one rule
(`gmtl_rl.evaluation.adaptation.summarize`: runs resampled within goals).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import numpy as np
from _runs import train_or_resume

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "configs/mt_point_robot.yaml"
METHODS: dict[str, list[str]] = {
    "MT-SAC": ["agent.name=mtsac"],
    "PCGrad": ["agent.name=mtsac_pcgrad"],
    "Soft Modularization": [
        "agent.name=mtsac_softmod",
        "agent.soft_modules.module_width=64",
        "agent.soft_modules.routing_width=64",
    ],
    "CARE": [
        "agent.name=mtsac_care",
        "agent.care.context=learned",
        "agent.care.encoder_width=32",
        "agent.care.embedding_dim=32",
    ],
    "MOORE": ["agent.name=mtsac_moore"],
    "PaCo": ["agent.name=mtsac_paco"],
}
BUDGETS = (7500, 12500, 20000)  # env steps read off the scheduled evaluations; then the last


def slug(method: str) -> str:
    return method.lower().replace(" ", "-").replace("_", "-")


def interval(point) -> str:  # type: ignore[no-untyped-def]
    return f"{point.iqm:.2f} [{point.iqm_ci[0]:.2f}, {point.iqm_ci[1]:.2f}]"


def training_seconds(run: Path) -> float:
    """The run's own clock at its last metrics row (time_s: seconds of training)."""
    with open(run / "metrics.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["time_s"])


def report(runs: dict[str, list[Path]], out: Path) -> None:
    from gmtl_rl.evaluation.adaptation import read_csv, summarize
    from gmtl_rl.evaluation.stats import iqm, stratified_bootstrap_ci
    from gmtl_rl.evaluation.training import (
        read_eval_points,
        summarize_points,
        write_training_plot,
    )

    table, rows, training, last = [], [], {}, 0
    for method, paths in runs.items():
        done = [p for p in paths if (p / "eval" / "adaptation.csv").is_file()]
        if not done:
            continue
        seeds = [int(p.name.rsplit("-s", 1)[1]) for p in done]
        points = [
            q
            for p, s in zip(done, seeds, strict=True)
            for q in read_eval_points(p / "metrics.csv", s)
        ]
        training[method] = points
        returns, successes = summarize_points(points)
        cells = []
        for budget in BUDGETS:
            at = [i for i, c in enumerate(successes) if c.episode == budget]
            if at:
                success, ret = successes[at[0]], returns[at[0]]
                cells.append(f"{interval(success)} / {ret.iqm:.2f}")
                rows.append(
                    [method, budget, len(done), success.iqm, *success.iqm_ci, ret.iqm, *ret.iqm_ci]
                )
            else:
                cells.append("")
        final = summarize([r for p in done for r in read_csv(p / "eval" / "adaptation.csv")])
        success, ret = final.success[-1], final.episode_return[-1]
        last = max(q.step for q in points)
        rows.append([method, last, len(done), success.iqm, *success.iqm_ci, ret.iqm, *ret.iqm_ci])
        cells.append(f"**{interval(success)}** / {interval(ret)}")
        # Sample efficiency in one number: each seed's success averaged over its evaluations
        # (the area under its success curve), IQM over seeds, seeds resampled.
        auc = np.array([np.mean([q.success for q in points if q.seed == s]) for s in seeds])
        lo, hi = stratified_bootstrap_ci(auc, np.zeros(auc.size, np.int64), "iqm")
        rows.append([method, "auc", len(done), iqm(auc), lo, hi, "", "", ""])
        cells.append(f"{iqm(auc):.2f} [{lo:.2f}, {hi:.2f}]")
        cells.append(f"{np.median([training_seconds(p) for p in done]):.0f}")
        table.append(f"| {method} ({len(done)} seeds) | " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    heads = [f"{b / 1000:g}k: success / return" for b in BUDGETS]
    last_label = f"final ({last // 1000}k): success / return"
    head = (
        f"| method | {' | '.join(heads)} | {last_label} | success over training (AUC) "
        "| s of training (median) |"
    )
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
        f"`python benchmarks/mt_architectures_point_robot.py`, {time.strftime('%Y-%m-%d')}",
        "",
        head,
        "|" + "---|" * (len(BUDGETS) + 4),
        *table,
    ]
    (out / "mt_point_robot.md").write_text("\n".join(lines) + "\n")
    with open(out / "mt_point_robot.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "step", "seeds", "success_iqm", "success_lo", "success_hi",
                         "return_iqm", "return_lo", "return_hi"])  # fmt: skip
        writer.writerows(rows)
    if training:
        title = "MT point robot (10 hidden goals, class visible): evaluation on the train goals"
        write_training_plot(training, out / "mt_point_robot_training.png", title=title)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--runs", type=Path, default=Path("runs/mt-point-robot"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args(argv)

    runs: dict[str, list[Path]] = {m: [] for m in args.methods}
    for seed in args.seeds:
        for method in args.methods:
            run = args.runs / f"{slug(method)}-s{seed}"
            runs[method].append(run)
            if not args.report_only:
                wall = train_or_resume(run, CONFIG, [*METHODS[method], f"seed={seed}"])
                if wall > 0:  # the load says whether the run had its core to itself
                    print(f"{run.name}: {wall:.0f} s, load {os.getloadavg()[0]:.2f}", flush=True)
    report(runs, args.out)


if __name__ == "__main__":
    main()
