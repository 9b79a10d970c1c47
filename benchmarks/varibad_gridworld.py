"""VariBAD's gridworld result (Zintgraf et al. 2020): the return of each of a trial's 4 episodes
on varibad's 5×5 gridworld, VariBAD and RL² beside the exact Bayes-optimal agent and the oracle
(issue 17).

Run (from the repository root; one run at a time, each a normal `gmtl train` run):

    python benchmarks/varibad_gridworld.py --seeds 0 1 2              # the authors' 2e7 frames
    python benchmarks/varibad_gridworld.py --seeds 0 --steps varibad=20000 rl2=20000 \
        --configs configs/smoke --runs /tmp/vg --records /tmp/vg/records --out /tmp/vg  # a check

VariBAD trains from configs/varibad_gridworld.yaml (varibad's args_grid_varibad.py, held by
tests/agents/test_varibad.py) and RL² from configs/rl2_gridworld.yaml (varibad's
args_grid_rl2.py where our RL² has the setting; its header names the rest); only `seed`,
`total_steps` (`--steps`: a truncation of the authors' 2e7 frames when smaller) and the
checkpoint schedule are overridden. Each is scored by its own final evaluation: every one of
the 21 goals, one trial of 4 episodes, the belief (hidden state) kept across the trial,
deterministic actions. The Bayes-optimal agent (configs/bayes_optimal_gridworld.yaml) is run
through the same evaluator, and its exact expectation (`gridworld_bayes.solve`) and the goal-known
oracle's (`oracle_return`) are printed beside it.

A finished run's results are copied to `<records>/gridworld/<agent>-s<seed>` (run directories
do not outlive a session) and the report reads a run from there when its directory is gone; a
stopped run is resumed. Writes `<out>/varibad_gridworld.{md,csv,png}`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from _runs import add_run_arguments, finished_or_record, train_or_resume

from gmtl_rl.evaluation.stats import CurvePoint

ROOT = Path(__file__).parents[1]
LEARNERS = ("varibad", "rl2")
BAYES = "bayes_optimal"
SIZE, HORIZON, EPISODES = 5, 15, 4  # varibad's GridNavi-v0 and trials of 4 episodes


def fmt(point: CurvePoint) -> str:
    low, high = point.mean_ci
    return f"{point.mean:.2f} [{low:.2f}, {high:.2f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--agents", nargs="+", choices=LEARNERS, default=list(LEARNERS))
    parser.add_argument("--steps", nargs="+", default=[], metavar="AGENT=STEPS",
                        help="env steps per agent (default: its config's, 2e7)")  # fmt: skip
    add_run_arguments(parser, Path("runs/varibad_gridworld"), "<agent>_gridworld.yaml")
    args = parser.parse_args(argv)

    from gmtl_rl.agents.gridworld_bayes import oracle_return, solve
    from gmtl_rl.config import read_yaml
    from gmtl_rl.evaluation.adaptation import read_csv, summarize
    from gmtl_rl.evaluation.plots import Reference, plot_adaptation
    from gmtl_rl.run_dir import RunDir

    def config_for(agent: str) -> Path:
        path = args.configs / f"{agent}_gridworld.yaml"
        if not path.is_file():
            raise SystemExit(f"{agent}: no config {path}")
        return path

    steps = {a: int(read_yaml(config_for(a))["total_steps"]) for a in args.agents}
    for item in args.steps:
        agent, _, value = item.partition("=")
        if agent not in steps or not value.isdigit():
            raise SystemExit(f"--steps {item}: expected AGENT=STEPS with AGENT in {list(steps)}")
        steps[agent] = int(value)

    runs: dict[str, list[Path]] = {a: [] for a in (*args.agents, BAYES)}
    plan = [(a, s) for a in args.agents for s in args.seeds] + [(BAYES, 0)]
    for agent, seed in plan:
        name = Path("gridworld") / f"{agent}-s{seed}"
        run = args.runs / name
        if not args.report_only:
            every = max(steps.get(agent, 1) // 4, 1)  # a checkpoint at each quarter
            plumbing = [f"seed={seed}", f"checkpoint.every_steps={every}", "checkpoint.keep=1"]
            config = ROOT / "configs" / "bayes_optimal_gridworld.yaml" if agent == BAYES else None
            train_or_resume(run, config or config_for(agent), plumbing, steps.get(agent))
        kept = finished_or_record(run, args.records / name)
        if kept is not None:
            runs[agent].append(kept)

    exact = solve(SIZE, HORIZON, EPISODES)
    oracle = float(oracle_return(SIZE, HORIZON))
    bayes = [float(r) for r in exact.episode_returns]
    summaries = {
        a: summarize([row for run in dirs for row in read_csv(RunDir(run).adaptation_csv)])
        for a, dirs in runs.items()
        if dirs
    }
    trained = {
        a: sorted({int(read_yaml(RunDir(r).config).get("total_steps", 0)) for r in dirs})
        for a, dirs in runs.items()
    }

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "varibad_gridworld.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "seeds", "env_steps", "k", "return", "low", "high", "success",
                         "bayes_optimal_exact", "oracle_exact"])  # fmt: skip
        for agent, s in summaries.items():
            budget = "/".join(map(str, trained[agent]))
            for k, (point, succ) in enumerate(zip(s.episode_return, s.success, strict=True)):
                low, high = point.mean_ci
                writer.writerow([agent, len(runs[agent]), budget, k + 1, f"{point.mean:.4g}",
                                 f"{low:.4g}", f"{high:.4g}", f"{succ.mean:.3g}",
                                 f"{bayes[k]:.4g}", f"{oracle:.4g}"])  # fmt: skip

    ks = range(1, EPISODES + 1)
    lines = [
        "| agent (env steps, seeds) | " + " | ".join(f"k = {k}" for k in ks) + " | trial |",
        "|---" * (EPISODES + 2) + "|",
    ]
    for agent, s in summaries.items():
        cells = " | ".join(fmt(p) for p in s.episode_return)
        total = sum(p.mean for p in s.episode_return)
        if agent == BAYES:  # nothing trained: the evaluator on the exact agent
            lines.append(f"| Bayes-optimal, evaluated | {cells} | {total:.2f} |")
            continue
        budget = "/".join(f"{n:,}" for n in trained[agent])
        lines.append(f"| {agent} ({budget}, {len(runs[agent])}) | {cells} | {total:.2f} |")
    lines.append(
        "| Bayes-optimal, exact | " + " | ".join(f"{r:.2f}" for r in bayes)
        + f" | {sum(bayes):.2f} |"
    )  # fmt: skip
    lines.append(
        "| oracle (goal known), exact | " + " | ".join(f"{oracle:.2f}" for _ in ks)
        + f" | {EPISODES * oracle:.2f} |"
    )  # fmt: skip
    table = "\n".join(lines)
    command = "python " + " ".join(["benchmarks/varibad_gridworld.py", *sys.argv[1:]])
    (args.out / "varibad_gridworld.md").write_text(
        f"Written by `{command}`.\n\n{table}\n\n![adaptation](varibad_gridworld.png)\n"
    )
    print(table)

    if summaries:
        level = CurvePoint(1, 1, oracle, oracle, (oracle, oracle), (oracle, oracle))
        names = {a: "Bayes-optimal" if a == BAYES else a for a in summaries}
        plot_adaptation(
            {names[a]: s.episode_return for a, s in summaries.items()},
            {names[a]: s.success for a, s in summaries.items()},
            args.out / "varibad_gridworld.png",
            title=f"gridworld 5×5: the 21 goals, episode k of a trial (seeds {args.seeds})",
            references={"oracle (goal known)": Reference(level)},
        )
    for agent in args.agents:
        if agent not in summaries:
            continue
        ours = np.array([p.mean for p in summaries[agent].episode_return])
        gaps = ", ".join(f"{g:+.2f}" for g in ours - np.array(bayes))
        print(f"{agent}: against the Bayes-optimal per episode {gaps}")


if __name__ == "__main__":
    main()
