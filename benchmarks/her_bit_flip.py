"""HER's bit-flipping curve (Andrychowicz et al. 2017, Fig. 1): the success of DQN and DQN+HER
on fresh goals against the number of bits n (issue 16). The paper: DQN alone fails beyond
n ≈ 13, DQN+HER solves n up to 50 (a curve; no table).

Run (from the repository root; one run at a time, each a normal `gmtl train` run):

    python benchmarks/her_bit_flip.py                     # n = 5..50, 3 seeds, both agents
    python benchmarks/her_bit_flip.py --agents dqn_her && \
        python benchmarks/her_bit_flip.py --agents dqn --bits 5 10 15 20 30  # what the records hold
    python benchmarks/her_bit_flip.py --bits 5 8 --seeds 0 --cycles-per-bit 2 \
        --configs configs/smoke --runs /tmp/bf --records /tmp/bf/records --out /tmp/bf  # a check

Each run is `configs/<agent>_bit_flip.yaml` (the paper's settings, held in its header) with the
setup's n: `env.n_bits=n`, the paper's 40 optimisation steps per cycle of 16 episodes of n steps
(`agent.updates_per_step = 40 / (16 n)`), and a budget of `--cycles-per-bit` × n cycles (by
default 40 × n, 144,000 env steps at n = 15, and 80 × n at n = 50, 3.2M, where 40 × n ended
mid-climb; the paper does not state its budget, and DI-engine's HER-DQN converges at 150k env
steps for n = 15). Start and goal are uniform in every
episode; success is reaching the goal at any step, greedy, on 100 fresh goals at the end of the
run (and at each quarter of it).

A finished run's results are copied to `<records>/bit_flip/<agent>-n<n>-s<seed>` (run
directories do not outlive a session), and the report reads a run from there when its directory
is gone; a stopped run is resumed. Writes `<out>/her_bit_flip.{md,csv,png}`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from _runs import add_run_arguments, finished_or_record, train_or_resume, training_time

AGENTS = ("dqn_her", "dqn")
LABELS = {"dqn_her": "DQN+HER", "dqn": "DQN"}
BITS = (5, 10, 15, 20, 30, 40, 50)
EPISODES_PER_CYCLE, UPDATES_PER_CYCLE = 16, 40  # the paper's cycle (one process here)
CYCLES_PER_BIT = 40  # the budget: this × n cycles, except
LONGER = {50: 80}  # where 40 × n ended while success was still climbing (see ABOUT)
ABOUT = """The paper's Figure 1 (Andrychowicz et al. 2017): DQN fails beyond n ≈ 13 bits, DQN+HER
solves n up to 50; it gives curves, no table, and no budget. Each run here is
`configs/dqn_bit_flip.yaml` or `configs/dqn_her_bit_flip.yaml` (the paper's settings, named in
their headers) with `env.n_bits=n`, the paper's 40 optimisation steps per cycle of 16 episodes
of n steps, and a stated budget of 40 × n cycles (144,000 env steps at n = 15; DI-engine's
HER-DQN converges at 150k there). At n = 50 that budget (1.6M env steps) ended mid-climb:
DQN+HER's evaluations at 1.2M / 1.6M were 0.03 / 0.28, 0.01 / 0.34 and 0.05 / 0.47 (seeds 0,
1, 2), so n = 50 runs 80 × n cycles by default (3.2M; an existing 1.6M run is resumed to it),
which the env-steps column shows; the earlier evaluations stay in each record's metrics.csv.
DQN alone was not run at n = 40 and 50: it scored 0.00 at every n from 15 to 30. The seconds
are each run's training wall-clock from its metrics.csv (its periodic and final evaluations'
episodes included; process start-up and writing the report files not), least and most over
seeds, on the 2-core VM, one run at a time. Records:
docs/records/bit_flip/<agent>-n<n>-s<seed>. A "—" is a point not run.
"""


@dataclass(frozen=True)
class Cell:
    """One point of the curve: an agent at n bits, pooled over its seeds."""

    agent: str
    n_bits: int
    seeds: int
    env_steps: str
    goals: int  # evaluation episodes per seed, each on a freshly drawn start and goal
    success: float
    low: float
    high: float
    seconds_min: float  # training wall-clock of the fastest and slowest seed's run (nan: none)
    seconds_max: float


def budget(n: int, cycles_per_bit: int) -> int:
    """Env steps of `cycles_per_bit` × n cycles of 16 episodes of n steps."""
    return cycles_per_bit * n * EPISODES_PER_CYCLE * n


def overrides(agent: str, n: int, seed: int, cycles_per_bit: int) -> list[str]:
    """The setup's n on the shipped config, the paper's updates per env step, and checkpoints
    and evaluations every quarter of the budget, rounded down to whole cycles."""
    cycles = cycles_per_bit * n
    quarter = max(cycles // 4, 1) * EPISODES_PER_CYCLE * n
    return [
        f"seed={seed}",
        f"experiment={agent}-bit-flip-n{n}",
        f"env.n_bits={n}",
        f"agent.updates_per_step={UPDATES_PER_CYCLE / (EPISODES_PER_CYCLE * n)!r}",
        f"sampler.n_envs={EPISODES_PER_CYCLE}",
        f"eval.every_steps={quarter}",
        f"checkpoint.every_steps={quarter}",
        "checkpoint.keep=1",
    ]


def same_setup_or_exit(run: Path, config: Path, asked: list[str]) -> None:
    """A run directory already there must hold this setup (agent and env settings, e.g. not a
    `--configs configs/smoke` check's run): a resume never changes them."""
    from gmtl_rl.config import load_config

    saved_path = run / "config.yaml"
    if not saved_path.is_file():
        return
    wanted, saved = load_config(config, asked), load_config(saved_path, [])
    if wanted.agent != saved.agent or wanted.env != saved.env:
        raise SystemExit(
            f"{run}: holds a run of another setup than {config} with {' '.join(asked)} "
            "(its agent or env settings differ); pass another --runs or remove it"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bits", type=int, nargs="+", default=list(BITS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--cycles-per-bit", type=int, default=None,
                        help=f"budget: this × n cycles of 16 episodes (default {CYCLES_PER_BIT}; "
                        f"at n: cycles {LONGER})")  # fmt: skip
    add_run_arguments(parser, Path("runs/her_bit_flip"), "<agent>_bit_flip.yaml")
    args = parser.parse_args(argv)
    if min(args.bits) < 1 or (args.cycles_per_bit is not None and args.cycles_per_bit < 1):
        parser.error("--bits and --cycles-per-bit must be >= 1")

    from gmtl_rl.config import read_yaml
    from gmtl_rl.evaluation.adaptation import read_csv, summarize
    from gmtl_rl.run_dir import RunDir

    runs: dict[tuple[str, int], list[Path]] = {}
    for agent in args.agents:
        config = args.configs / f"{agent}_bit_flip.yaml"
        if not config.is_file():
            parser.error(f"--agents {agent}: no config {config}")
        for n in args.bits:
            for seed in args.seeds:
                name = Path("bit_flip") / f"{agent}-n{n}-s{seed}"
                run = args.runs / name
                if not args.report_only:
                    cycles = args.cycles_per_bit or LONGER.get(n, CYCLES_PER_BIT)
                    steps = budget(n, cycles)
                    asked = overrides(agent, n, seed, cycles)
                    same_setup_or_exit(run, config, asked)
                    seconds = train_or_resume(run, config, asked, steps)
                    print(f"{name}: {steps:,} env steps ({seconds:.0f} s in this call)")
                kept = finished_or_record(run, args.records / name)
                if kept is not None:
                    runs.setdefault((agent, n), []).append(kept)

    rows = []
    for (agent, n), dirs in sorted(runs.items()):
        point = summarize([r for d in dirs for r in read_csv(RunDir(d).adaptation_csv)]).success[0]
        total_steps = sorted({int(read_yaml(RunDir(d).config)["total_steps"]) for d in dirs})
        summaries = [json.loads(RunDir(d).summary_json.read_text()) for d in dirs]
        num_tasks = sorted({int(summary["num_tasks"]) for summary in summaries})
        # one value unless seeds ran different budgets
        budgets = "/".join(f"{s:,}" for s in total_steps)
        run_seconds = [timed[1] for d in dirs if (timed := training_time(d)) is not None]
        rows.append(
            Cell(
                agent, n, len(dirs), budgets, num_tasks[0], point.mean, *point.mean_ci,
                seconds_min=min(run_seconds, default=float("nan")),
                seconds_max=max(run_seconds, default=float("nan")),
            )
        )  # fmt: skip
    if not rows:
        print("no finished run to report")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "her_bit_flip.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)

    bits = sorted({r.n_bits for r in rows})
    agents = [a for a in AGENTS if any(r.agent == a for r in rows)]
    lines = [
        "| n | env steps | " + " | ".join(f"{LABELS[a]} success" for a in agents) + " |",
        "|---|---|" + "---|" * len(agents),
    ]
    for n in bits:
        cells, env_steps = [], ""
        for a in agents:
            hit = [r for r in rows if r.agent == a and r.n_bits == n]
            if not hit:
                cells.append("—")
                continue
            r = hit[0]
            env_steps = r.env_steps
            wall_clock = (
                "" if math.isnan(r.seconds_min) else f", {r.seconds_min:.0f}-{r.seconds_max:.0f} s"
            )
            cells.append(f"{r.success:.2f} [{r.low:.2f}, {r.high:.2f}] ({r.seeds}){wall_clock}")
        lines.append(f"| {n} | {env_steps} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    command = "python " + " ".join(["benchmarks/her_bit_flip.py", *sys.argv[1:]])
    goals = "/".join(str(g) for g in sorted({r.goals for r in rows}))
    (args.out / "her_bit_flip.md").write_text(
        f"Written by `{command}`. Success on {goals} freshly drawn (start, goal) pairs at the end "
        "of each run, greedy, mean over seeds (their number in parentheses) with a 95% "
        "bootstrap interval.\n\n"
        f"{table}\n\n![success against n](her_bit_flip.png)\n\n{ABOUT}"
    )
    print(table)
    plot(rows, agents, args.out / "her_bit_flip.png")


def plot(rows: list[Cell], agents: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for agent in agents:
        mine = sorted((r for r in rows if r.agent == agent), key=lambda r: r.n_bits)
        n = [r.n_bits for r in mine]
        ax.plot(n, [r.success for r in mine], marker="o", label=LABELS[agent])
        ax.fill_between(n, [r.low for r in mine], [r.high for r in mine], alpha=0.2)
    ax.set_xlabel("number of bits n")
    ax.set_ylabel("success on fresh goals")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("bit flipping (HER, Fig. 1): success at the end of training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
