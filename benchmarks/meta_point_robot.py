"""Meta-RL on the PEARL point robots, between its bounds: PEARL (and RL²) against the oracle
(SAC shown the goal) and the non-adaptive baseline (SAC with the goal hidden), by their
adaptation curves on the held-out test goals (issue 14).

Run (from the repository root; one run at a time, each a normal `gmtl train` run):

    python benchmarks/meta_point_robot.py --family point-robot --seeds 0 1 2 \
        --steps pearl=76000 oracle=50000 nonadaptive=50000
    python benchmarks/meta_point_robot.py --family sparse-point-robot --seeds 0 1 2 \
        --agents pearl rl2 oracle nonadaptive --steps pearl=126000 oracle=50000 nonadaptive=50000

Every agent trains from its shipped config (configs/<agent>_<family>.yaml: oyster's settings
for PEARL, held by tests/agents/test_pearl_configs.py) with only `seed`, `total_steps` (the CPU
budget, the truncation of the authors' 500 iterations stated by `--steps`) and plumbing
(evaluation and checkpoint schedules) overridden. The oracle and non-adaptive configs evaluate
with PEARL's protocol (a test holds them equal), so each run's own final evaluation
(eval/adaptation.csv) is compared as it is; RL² keeps its own trial length.

A run directory that holds a finished run is reused; one with a checkpoint is resumed with
`gmtl resume` (a session that ended mid-run loses nothing but the steps since its last
checkpoint); the script can be stopped and started again at any point. A finished run's
results (config, metrics, final evaluation; no checkpoints) are copied to
`<records>/<family>/<agent>-s<seed>` (default docs/records/), and the report reads a run from
there when its directory is gone: run directories do not outlive a working session here.

Writes `<out>/meta_<family>.csv` (agent, seed, k, mean return and success over the test goals,
env steps, seconds of training summed over the run's attempts), `<out>/meta_<family>.md` (the table:
mean over seeds and goals with 95% intervals by `summarize`'s rule, runs resampled within goal
strata) and `<out>/meta_<family>_adaptation.png` (the meta-learners' curves with the oracle and
non-adaptive levels as reference lines), and prints the issue's checks: PEARL's posterior
episodes against the oracle (within 15%?), and success after the exploration episodes.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from _runs import add_run_arguments, finished_or_record, train_or_resume

from gmtl_rl.evaluation.stats import CurvePoint

AGENTS = ("pearl", "rl2", "oracle", "nonadaptive")
BOUNDS = ("oracle", "nonadaptive")


def config_for(agent: str, family: str, configs: Path) -> Path:
    path = configs / f"{agent}_{family.replace('-', '_')}.yaml"
    if not path.is_file():
        raise SystemExit(f"{agent} on {family}: no config {path}")
    return path


def train_or_resume_agent(agent: str, seed: int, steps: int, args: argparse.Namespace) -> Path:
    """Bring one run to `steps` env steps: reuse it, resume it or start it."""
    run = args.runs / args.family.replace("-", "_") / f"{agent}-s{seed}"
    plumbing = [
        f"seed={seed}",
        "logging.tensorboard=false",
        f"checkpoint.every_steps={args.every}",
        "checkpoint.keep=1",
        f"eval.every_steps={args.every}",
    ]
    config = config_for(agent, args.family, args.configs)
    train_or_resume(run, config, plumbing, total_steps=steps)
    return run


def training_wall_s(metrics_csv: Path) -> float:
    """Seconds of training: `time_s` counts from the start of each attempt (train, then every
    resume), so the run's total is the sum of each attempt's last value."""
    with open(metrics_csv, newline="") as f:
        times = [float(row["time_s"]) for row in csv.DictReader(f) if row.get("time_s")]
    ends = [t for t, after in zip(times, [*times[1:], 0.0], strict=True) if after < t]
    return float(sum(ends))


def fmt(point: CurvePoint) -> str:
    low, high = point.mean_ci
    return f"{point.mean:.2f} [{low:.2f}, {high:.2f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--family", choices=["point-robot", "sparse-point-robot"],
                        default="point-robot")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=["pearl", *BOUNDS])
    parser.add_argument("--steps", nargs="+", default=[], metavar="AGENT=STEPS",
                        help="env steps per agent (default: its config's)")  # fmt: skip
    parser.add_argument("--every", type=int, default=10_000,
                        help="env steps between checkpoints, and between evaluations")  # fmt: skip
    add_run_arguments(parser, Path("runs/meta"), "<agent>_<family>.yaml")
    args = parser.parse_args(argv)

    from gmtl_rl.config import read_yaml
    from gmtl_rl.evaluation.adaptation import read_csv, summarize
    from gmtl_rl.evaluation.plots import plot_adaptation
    from gmtl_rl.evaluation.runs import bound_references
    from gmtl_rl.run_dir import RunDir

    steps = {
        a: int(read_yaml(config_for(a, args.family, args.configs))["total_steps"])
        for a in args.agents
    }
    for item in args.steps:
        agent, _, value = item.partition("=")
        if agent not in steps or not value.isdigit():
            raise SystemExit(f"--steps {item}: expected AGENT=STEPS with AGENT in {list(steps)}")
        steps[agent] = int(value)

    runs: dict[str, list[Path]] = {a: [] for a in args.agents}
    for agent in args.agents:
        for seed in args.seeds:
            name = Path(args.family.replace("-", "_")) / f"{agent}-s{seed}"
            run = args.runs / name
            if not args.report_only:
                run = train_or_resume_agent(agent, seed, steps[agent], args)
            kept = finished_or_record(run, args.records / name)
            if kept is not None:
                runs[agent].append(kept)

    tag = args.family.replace("-", "_")
    args.out.mkdir(parents=True, exist_ok=True)
    exploration: dict[str, int] = {}
    trained: dict[str, set[int]] = {a: set() for a in runs}  # env steps of the agent's runs
    with open(args.out / f"meta_{tag}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "seed", "k", "return", "success", "env_steps", "wall_s"])
        for agent, dirs in runs.items():
            for run in dirs:
                summary = json.loads(RunDir(run).summary_json.read_text())
                exploration[agent] = int(summary.get("exploration_episodes", 0))
                trained[agent].add(int(summary["step"]))
                wall = training_wall_s(RunDir(run).metrics)
                rows = read_csv(RunDir(run).adaptation_csv)
                for k in sorted({r.episode for r in rows}):
                    at_k = [r for r in rows if r.episode == k]
                    writer.writerow([
                        agent, summary["seed"], k,
                        f"{np.mean([r.episode_return for r in at_k]):.4g}",
                        f"{np.mean([r.success for r in at_k]):.3g}",
                        summary["step"], f"{wall:.0f}",
                    ])  # fmt: skip

    learners = {a: d for a, d in runs.items() if a not in BOUNDS and d}
    references = bound_references(runs.get("oracle", []), runs.get("nonadaptive", []))
    summaries = {
        a: summarize([row for run in dirs for row in read_csv(RunDir(run).adaptation_csv)])
        for a, dirs in learners.items()
    }
    width = max((len(s.episode_return) for s in summaries.values()), default=1)
    lines = [
        f"| agent (env steps, seeds) | {' | '.join(f'k = {k}' for k in range(1, width + 1))} |",
        "|---" * (width + 1) + "|",
    ]
    for agent, s in summaries.items():
        cells = " | ".join(fmt(p) for p in s.episode_return)
        budget = "/".join(f"{n:,}" for n in sorted(trained[agent]))
        lines.append(f"| {agent} ({budget}, {len(learners[agent])}) | {cells} |")
    for label, ref in references.items():
        lines.append(f"| {label}: level over all k | {fmt(ref.episode_return)} |")
    table = "\n".join(lines)
    (args.out / f"meta_{tag}.md").write_text(table + "\n")
    print(table)

    if summaries:
        plot_adaptation(
            {a: s.episode_return for a, s in summaries.items()},
            {a: s.success for a, s in summaries.items()},
            args.out / f"meta_{tag}_adaptation.png",
            title=f"{args.family}: held-out goals, episode k of a trial (seeds {args.seeds})",
            references=references,
        )
    oracle = next((r for label, r in references.items() if label.startswith("oracle")), None)
    for agent, s in summaries.items():
        first = exploration.get(agent, 0)  # episodes 1..first explore (PEARL: prior z)
        post = s.episode_return[first:]
        post_success = s.success[first:]
        ret = float(np.mean([p.mean for p in post]))
        suc = float(np.mean([p.mean for p in post_success]))
        check = f"{agent}: episodes {first + 1}-{len(s.episode_return)} (after {first} "
        check += f"exploration): mean return {ret:.2f}, success {suc:.2f}"
        if oracle is not None:
            level = oracle.episode_return.mean
            gap = (level - ret) / abs(level) if level else float("nan")
            check += f"; oracle {level:.2f}, gap {100 * gap:.1f}% of the oracle's return"
        print(check)


if __name__ == "__main__":
    main()
