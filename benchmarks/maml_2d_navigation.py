"""MAML's 2-D navigation table (Finn et al. 2017, Table 4 / Fig. 4 left), reproduced here.

Four rows, each evaluated as the authors' maml_examples/test_maml_point.py (cbfinn/maml_rl
@9c8e2eb) does: on their 40 test goals, 3 inner policy-gradient steps on 40 sampled episodes
each (their 4000-step VPG batches), step size 0.5 then 0.25; the return after k steps is the
mean over the 40 episodes sampled after the k-th step (`agents.maml.adaptation_by_inner_step`):
- MAML: configs/maml_2d_navigation.yaml (`--iterations` of the authors' 100 meta-iterations);
- pretrained: the same policy trained on all tasks without the inner step (inner_steps 0,
  one Adam step of lr 1e-3 per iteration on 20 tasks x 20 episodes: the authors' use_maml=False
  run "maml0_fbs20_mbs20"), then adapted like MAML;
- random: the untrained policy (the authors' test script builds a fresh tanh 100-100
  GaussianMLPPolicy), adapted like MAML;
- oracle: the goal appended to the observation (point_env_randgoal_oracle.py) and plain TRPO
  (maml_examples/trpo_point.py: 10 episodes per iteration, δ 0.01, 100 iterations),
  evaluated without adaptation.

    python benchmarks/maml_2d_navigation.py                   # the full table (hours)
    python benchmarks/maml_2d_navigation.py --iterations 1 --oracle-iterations 1 \
        --eval-episodes 2 --eval-goals 4 --docs /tmp/maml-check   # does it run? (a minute)

Writes <docs>/maml_2d_navigation.md (the table beside the published one, the 15% check on
MAML's 1-3 step returns, the episodes each step consumed, budgets and times),
maml_2d_navigation.csv (one row per agent and inner step) and maml_2d_navigation.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gmtl_rl import runner
from gmtl_rl.agents.maml import InnerStepPoint, adaptation_by_inner_step, build_maml
from gmtl_rl.config import RunConfig, load_config
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.envs.navigation_2d import Navigation2D, Navigation2DEnv
from gmtl_rl.envs.registry import families, register_family
from gmtl_rl.envs.task import Task
from gmtl_rl.evaluation.adaptation import AdaptationRow, read_csv, run_adaptation, summarize
from gmtl_rl.evaluation.adaptation import write_csv as write_adaptation_csv

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "configs" / "maml_2d_navigation.yaml"
RECORDS = ROOT / "docs" / "records" / "maml_2d_navigation"  # the seeds' records (--aggregate)
AUTHORS_ITERATIONS = 100  # maml_trpo_point.py L54 and trpo_point.py L33: n_itr=100
EVAL_STEPS = 3
STEP_NAMES = [f"{k} step{'' if k == 1 else 's'}" for k in range(EVAL_STEPS + 1)]
# test_maml_point.py's VPG batches: batch_size=4000 steps, gathered by rllab's VectorizedSampler
# on batch_size / max_path_length = 40 envs in lockstep (sandbox/rocky/tf/samplers/
# vectorized_sampler.py obtain_samples); AverageReturn is the mean over the completed paths.
RLLAB_BATCH_STEPS = 4000
RLLAB_ENVS = 40
TOLERANCE = 0.15  # the bar: MAML's returns after 1-3 steps within 15% of the paper's
# icml/icml_point_results_{maml,sens0,random,oracle}.pkl: mean over the 40 goals after k steps.
PUBLISHED: dict[str, tuple[float, ...]] = {
    "MAML": (-40.41, -11.68, -3.33, -3.23),
    "pretrained": (-40.81, -19.73, -11.72, -8.47),
    "random": (-82.66, -57.96, -53.84, -46.81),
    "oracle": (-2.29,),
}


class _GoalObserved(gym.ObservationWrapper[Any, Any, Any]):
    """[position, goal]: the observation of point_env_randgoal_oracle.py."""

    def __init__(self, env: Navigation2DEnv) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        goal = self.env.unwrapped.goal  # type: ignore[attr-defined]
        return np.concatenate([observation, goal]).astype(np.float32)


class Navigation2DOracle(Navigation2D):
    """2-D navigation with the goal observed (the oracle row); sync envs, not batched."""

    name = "2d-navigation-oracle"
    description = "MAML 2-D navigation with the goal appended to the observation (oracle)"

    def make_env(self, task: Task | None = None) -> gym.Env:
        inner = super().make_env(task)
        assert isinstance(inner, Navigation2DEnv)
        return _GoalObserved(inner)

    def make_batched_env(  # type: ignore[override]
        self, num_envs: int, task: Task | None = None, autoreset_mode: Any = None
    ) -> None:
        return None


if Navigation2DOracle.name not in families():
    register_family(Navigation2DOracle)


@dataclass(frozen=True)
class RowResult:
    agent: str
    points: list[InnerStepPoint]
    goal_rows: list[AdaptationRow]  # per test goal and inner step: `goal_means`
    rllab_returns: list[float]  # per inner step: `rllab_batch_returns`
    iterations: int
    env_steps: int
    train_seconds: float
    seconds_per_iteration: float


def _common(args: argparse.Namespace) -> list[str]:
    e = args.eval_episodes
    return [
        f"seed={args.seed}", f"env.n_test={args.eval_goals}", f"eval.n_envs={args.eval_goals}",
        f"agent.eval_episodes_per_step={e}", f"agent.eval_inner_steps={EVAL_STEPS}",
        f"eval.episodes={(EVAL_STEPS + 1) * e}", "checkpoint.every_steps=0", "eval.every_steps=0",
        "logging.every_steps=1",  # a metrics row per meta-iteration: its time and returns
    ]  # fmt: skip


def configs(args: argparse.Namespace) -> dict[str, RunConfig]:
    """The training runs of the MAML, pretrained and oracle rows."""
    n, common = args.iterations, _common(args)
    e = args.eval_episodes
    maml = [*common, f"total_episodes={n * 20 * 40}", f"total_steps={n * 20 * 40 * 100}"]
    pretrained = [
        *common, "agent.inner_steps=0", "agent.outer_optimizer=adam", "agent.adam_lr=0.001",
        f"total_episodes={n * 20 * 20}", f"total_steps={n * 20 * 20 * 100}",
    ]  # fmt: skip
    # trpo_point.py: 1000 steps (10 episodes, each on a fresh goal) per TRPO iteration; here 10
    # goals x 1 episode, the linear baseline fitted per goal (theirs: one fit on all 10)
    m = args.oracle_iterations
    oracle = [
        *common, "env.name=2d-navigation-oracle", "agent.inner_steps=0",
        "agent.episodes_per_step=1", "agent.trials_per_update=10", "sampler.n_envs=10",
        "agent.eval_inner_steps=0", f"eval.episodes={e}",
        f"total_episodes={m * 10}", f"total_steps={m * 10 * 100}",
    ]  # fmt: skip
    return {
        "MAML": load_config(CONFIG, maml),
        "pretrained": load_config(CONFIG, pretrained),
        "oracle": load_config(CONFIG, oracle),
    }


def _iteration_time(run: Path) -> tuple[int, float]:
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("updates")]
    if not rows:
        return 0, float("nan")
    last = rows[-1]
    updates = int(float(last["updates"]))
    return updates, float(last["time_s"]) / max(updates, 1)


def train_row(name: str, config: RunConfig, runs: Path, eval_episodes: int) -> RowResult:
    start = time.perf_counter()
    run = runner.train(config, runs / name.lower())
    seconds = time.perf_counter() - start
    rows = read_csv(run / "eval" / "adaptation.csv")
    updates, per_iteration = _iteration_time(run)
    steps = int(float(_last(run / "metrics.csv", "step")))
    points = adaptation_by_inner_step(rows, eval_episodes)
    goals = goal_means(name, config.seed, rows, eval_episodes)
    rllab = rllab_batch_returns(rows, eval_episodes, config.seed)
    return RowResult(name, points, goals, rllab, updates, steps, seconds, per_iteration)


def _last(path: Path, column: str) -> str:
    with open(path, newline="") as f:
        return [r[column] for r in csv.DictReader(f)][-1]


def random_row(config: RunConfig, seed: int, eval_episodes: int) -> RowResult:
    """The untrained tanh policy of test_maml_point.py, adapted like MAML."""
    distribution = config.env.build()
    env = distribution.make_env()
    spec = EnvSpec(env.observation_space, env.action_space, 1)
    env.close()
    agent_config = config.agent.model_copy(update={"activation": "tanh"})
    agent = build_maml(agent_config, spec, seed)  # type: ignore[arg-type]
    tasks = distribution.test_tasks()
    with agent.evaluating():
        rows: list[AdaptationRow] = run_adaptation(
            agent, distribution, tasks, config.eval.episodes, n_envs=len(tasks), seed=seed,
            deterministic=False, run="random", run_seed=seed,
        )  # fmt: skip
    points = adaptation_by_inner_step(rows, eval_episodes)
    goals = goal_means("random", seed, rows, eval_episodes)
    rllab = rllab_batch_returns(rows, eval_episodes, seed)
    return RowResult("random", points, goals, rllab, 0, 0, 0.0, 0.0)


def goal_means(
    agent: str, seed: int, rows: list[AdaptationRow], episodes_per_step: int
) -> list[AdaptationRow]:
    """A seed's record: per test goal, the mean over the episodes sampled after k inner steps,
    as one adaptation row with `episode` = k + 1 (what `summarize` pools over seeds)."""
    blocks: dict[tuple[int, int], list[AdaptationRow]] = {}
    for r in rows:
        blocks.setdefault((r.task, (r.episode - 1) // episodes_per_step), []).append(r)
    return [
        AdaptationRow(
            run=agent,
            seed=seed,
            task=task,
            task_index=group[0].task_index,
            repeat=0,
            episode=k + 1,
            episode_return=float(np.mean([r.episode_return for r in group])),
            success=float(np.mean([r.success for r in group])),
            length=round(float(np.mean([r.length for r in group]))),
        )
        for (task, k), group in sorted(blocks.items())
    ]


def rllab_batch_mean(
    lengths: np.ndarray, returns: np.ndarray, rng: np.random.Generator, sims: int = 200
) -> float:
    """The mean return of a batch as the authors' evaluation gathered it, for a policy whose
    episodes are those given (length, return), drawn i.i.d.: RLLAB_ENVS envs step in lockstep,
    each restarting when its episode ends; after every step the lengths of the completed paths
    are summed, and at the first step where the sum reaches RLLAB_BATCH_STEPS the completed
    paths are the batch (paths in progress are dropped). Episodes that end early at the goal
    are short and good, so they fill more of such a batch than of one counted in episodes.
    The mean over `sims` simulated batches."""
    most = int(np.ceil((RLLAB_BATCH_STEPS / RLLAB_ENVS + lengths.max()) / lengths.min())) + 1
    draws = rng.integers(len(lengths), size=(sims, RLLAB_ENVS, most))
    length, ret = lengths[draws], returns[draws]
    end = np.cumsum(length, axis=2).reshape(sims, -1)  # lockstep step at which each path ends
    length, ret = length.reshape(sims, -1), ret.reshape(sims, -1)
    order = np.argsort(end, axis=1, kind="stable")
    collected = np.cumsum(np.take_along_axis(length, order, axis=1), axis=1)
    first = np.argmax(collected >= RLLAB_BATCH_STEPS, axis=1)  # the path that fills the batch
    stop = np.take_along_axis(end, order, axis=1)[np.arange(sims), first]
    batch = end <= stop[:, None]  # every path completed by that step, ties included
    return float(np.mean((ret * batch).sum(axis=1) / batch.sum(axis=1)))


def rllab_batch_returns(
    rows: list[AdaptationRow], episodes_per_step: int, seed: int
) -> list[float]:
    """Per inner step, the mean over test goals of `rllab_batch_mean` of that goal's episodes
    after the step: what the authors' AverageReturn would read for this policy."""
    rng = np.random.default_rng(seed)
    blocks: dict[tuple[int, int], list[AdaptationRow]] = {}
    for r in rows:
        blocks.setdefault(((r.episode - 1) // episodes_per_step, r.task), []).append(r)
    per_step: dict[int, list[float]] = {}
    for (k, _task), group in sorted(blocks.items()):
        lengths = np.array([r.length for r in group], dtype=np.int64)
        returns = np.array([r.episode_return for r in group], dtype=np.float64)
        per_step.setdefault(k, []).append(rllab_batch_mean(lengths, returns, rng))
    return [float(np.mean(per_step[k])) for k in sorted(per_step)]


# -- the report ----------------------------------------------------------------------------
def within(ours: float, paper: float) -> bool:
    return abs(ours - paper) <= TOLERANCE * abs(paper)


def write_csv(results: list[RowResult], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", *InnerStepPoint.__dataclass_fields__, "published"])
        for r in results:
            for p in r.points:
                paper = PUBLISHED[r.agent]
                published = paper[p.inner_steps] if p.inner_steps < len(paper) else ""
                writer.writerow([r.agent, *asdict(p).values(), published])


def report(results: list[RowResult], args: argparse.Namespace, command: str) -> str:
    e = args.eval_episodes
    header = "| agent | " + " | ".join(STEP_NAMES) + " |"
    lines = [
        "# MAML 2-D navigation: the paper's table, reproduced",
        "",
        "Written by `benchmarks/maml_2d_navigation.py` (see its docstring and docs/maml.md).",
        "",
        f"Command: `{command}`",
        "",
        f"Budget: MAML {args.iterations} of the authors' {AUTHORS_ITERATIONS} meta-iterations"
        f" (20 tasks x (20 + 20) episodes each), pretrained {args.iterations} iterations"
        f" (20 x 20), oracle {args.oracle_iterations} TRPO iterations (10 episodes). "
        f"Evaluation: {args.eval_goals} test goals, {EVAL_STEPS} inner steps on {e} sampled "
        f"episodes each (step size 0.5, then 0.25), seed {args.seed}.",
        "",
        "Average return after k inner steps, ours (paper); `*`: MAML within 15% of the paper.",
        "",
        header,
        "|" + "---|" * (EVAL_STEPS + 2),
    ]
    for r in results:
        cells = []
        for p in r.points:
            paper = PUBLISHED[r.agent]
            ref = paper[p.inner_steps] if p.inner_steps < len(paper) else None
            if ref is None:
                cells.append(f"{p.episode_return:.2f}")
                continue
            hit = r.agent == "MAML" and p.inner_steps > 0 and within(p.episode_return, ref)
            cells.append(f"{p.episode_return:.2f}{'*' if hit else ''} ({ref:.2f})")
        lines.append(f"| {r.agent} | " + " | ".join(cells) + " |")
    maml = next(r for r in results if r.agent == "MAML")
    hits = [within(p.episode_return, PUBLISHED["MAML"][p.inner_steps]) for p in maml.points[1:4]]
    lines += [
        "",
        f"MAML within 15% of the paper at 1-3 steps: {sum(hits)} of {len(hits)}.",
        "",
        "Episodes each point consumed (its inner steps learnt from k x "
        f"{e} episodes; the point itself averages the next {e}):",
        "",
        "| inner steps | episodes consumed | episodes averaged |",
        "|---|---|---|",
    ]
    for p in maml.points:
        span = f"{p.first_episode}-{p.last_episode}"
        lines.append(f"| {p.inner_steps} | {p.episodes_consumed} | {span} |")
    lines += [
        "",
        "| agent | meta-iterations | env steps | training wall-clock | per iteration |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.agent} | {r.iterations} | {r.env_steps} | {r.train_seconds:.0f} s | "
            f"{r.seconds_per_iteration:.1f} s |"
        )
    lines += ["", "![adaptation](maml_2d_navigation.png)", ""]
    return "\n".join(lines)


# -- the seeds' records and the table over seeds ----------------------------------------------
def write_record(results: list[RowResult], records: Path, seed: int, command: str) -> None:
    """`<records>/seed<S>.csv` (per goal and inner step, every row) and `seed<S>.json` (the
    training budget and time of each row): what the table over seeds is built from, kept in
    the repository because run directories do not outlive a session."""
    write_adaptation_csv([g for r in results for g in r.goal_rows], records / f"seed{seed}.csv")
    info = {
        "seed": seed,
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "rows": {
            r.agent: {
                "iterations": r.iterations,
                "env_steps": r.env_steps,
                "train_seconds": round(r.train_seconds, 1),
                "seconds_per_iteration": round(r.seconds_per_iteration, 2),
                "rllab_batch_return": [round(x, 4) for x in r.rllab_returns],
            }
            for r in results
        },
    }
    (records / f"seed{seed}.json").write_text(json.dumps(info, indent=2) + "\n")


def rebuild_record(runs: Path, args: argparse.Namespace) -> list[RowResult]:
    """The rows of a seed that was trained already (`runs` holds its maml/, pretrained/ and
    oracle/ run directories): read back, and the random row evaluated again (seeded: the same
    numbers)."""
    built = configs(args)
    e = args.eval_episodes
    results = []
    for name in ("MAML", "pretrained", "oracle"):
        run = runs / name.lower()
        rows = read_csv(run / "eval" / "adaptation.csv")
        updates, per_iteration = _iteration_time(run)
        steps = int(float(_last(run / "metrics.csv", "step")))
        seconds = float(per_iteration * updates)
        points = adaptation_by_inner_step(rows, e)
        goals = goal_means(name, args.seed, rows, e)
        rllab = rllab_batch_returns(rows, e, args.seed)
        results.append(
            RowResult(name, points, goals, rllab, updates, steps, seconds, per_iteration)
        )
    results.insert(2, random_row(built["MAML"], args.seed, e))
    return results


AGENTS = ("MAML", "pretrained", "random", "oracle")


def aggregate(records: Path, out: Path, command: str) -> str:
    """The table over every seed recorded in `records`: per agent and inner step the mean over
    seeds and goals with its 95% interval by `summarize`'s rule (goal strata, seeds
    resampled), each seed's mean, and the paper's value."""
    seeds = sorted(int(f.stem.removeprefix("seed")) for f in records.glob("seed*.csv"))
    if not seeds:
        raise SystemExit(f"{records}: no seed<S>.csv records (run a seed first)")
    rows = [r for s in seeds for r in read_csv(records / f"seed{s}.csv")]
    info = {s: json.loads((records / f"seed{s}.json").read_text()) for s in seeds}
    by_agent = {a: [r for r in rows if r.run == a] for a in AGENTS}
    summaries = {a: summarize(g) for a, g in by_agent.items() if g}
    per_seed = {
        (a, s, k): float(np.mean([r.episode_return for r in g if r.seed == s and r.episode == k]))
        for a, g in by_agent.items()
        for s in seeds
        for k in sorted({r.episode for r in g})
    }
    header = "| agent | " + " | ".join(STEP_NAMES) + " |"
    lines = [
        "# MAML 2-D navigation: the paper's table, reproduced",
        "",
        "Written by `benchmarks/maml_2d_navigation.py --aggregate` from the seeds' records in "
        f"`{records.relative_to(ROOT) if records.is_relative_to(ROOT) else records}` "
        "(see the script's docstring and docs/maml.md).",
        "",
        f"Seeds: {', '.join(map(str, seeds))}; each seed's command is in the last table.",
        "",
        f"Budget per seed: MAML {info[seeds[0]]['rows']['MAML']['iterations']} meta-iterations "
        f"(the authors' {AUTHORS_ITERATIONS}; 20 tasks x (20 + 20) episodes each), pretrained the "
        "same number of iterations (20 x 20 episodes, one Adam step), oracle "
        f"{info[seeds[0]]['rows']['oracle']['iterations']} TRPO iterations (10 episodes). "
        f"Evaluation: the authors' 40 test goals, {EVAL_STEPS} inner steps on 40 sampled "
        "episodes each (step size 0.5, then 0.25).",
        "",
        "Average return after k inner steps: mean over seeds and goals [95% interval, goals as "
        "strata, seeds resampled], then (the paper's value). `*`: within 15% of the paper.",
        "",
        header,
        "|" + "---|" * (EVAL_STEPS + 2),
    ]
    checks = []
    for agent, summary in summaries.items():
        paper = PUBLISHED[agent]
        cells = []
        for k, point in enumerate(summary.episode_return):
            low, high = point.mean_ci
            ref = paper[k] if k < len(paper) else None
            hit = ref is not None and k > 0 and within(point.mean, ref)
            if agent == "MAML" and k > 0 and ref is not None:
                checks.append(hit)
            cell = f"{point.mean:.2f}{'*' if hit else ''} [{low:.2f}, {high:.2f}]"
            cells.append(cell + (f" ({ref:.2f})" if ref is not None else ""))
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    lines += ["", f"MAML within 15% of the paper at 1-3 steps: {sum(checks)} of {len(checks)}."]
    lines += [
        "",
        "The same episodes averaged as the authors' evaluation batches average them "
        f"(`rllab_batch_mean`: {RLLAB_BATCH_STEPS}-step batches gathered by {RLLAB_ENVS} envs "
        "in lockstep, in-progress paths dropped, so paths that end early at the goal weigh "
        "more), mean over seeds, then (the paper's value):",
        "",
        header,
        "|" + "---|" * (EVAL_STEPS + 2),
    ]
    for agent in summaries:
        kept = [info[s]["rows"][agent].get("rllab_batch_return") for s in seeds]
        if not all(kept):
            continue  # a record written before this column existed
        means = np.mean(np.array(kept, dtype=np.float64), axis=0)
        paper = PUBLISHED[agent]
        cells = [
            f"{m:.2f}" + (f" ({paper[k]:.2f})" if k < len(paper) else "")
            for k, m in enumerate(means)
        ]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "How the goals spread (per goal: its mean over the seeds), MAML:",
        "",
        "| goals | " + " | ".join(STEP_NAMES) + " |",
        "|" + "---|" * (EVAL_STEPS + 2),
    ]
    maml_rows = by_agent["MAML"]
    goals = sorted({r.task for r in maml_rows})
    per_goal = [
        np.array(
            [
                np.mean([r.episode_return for r in maml_rows if r.episode == k and r.task == g])
                for g in goals
            ]
        )
        for k in sorted({r.episode for r in maml_rows})
    ]
    spreads = (
        ("median", np.median),
        ("best 75%: mean", _best_three_quarters),
        ("worst 25%: mean", _worst_quarter),
    )
    for label, stat in spreads:
        spread = " | ".join(f"{stat(v):.2f}" for v in per_goal)
        lines.append(f"| {label} | {spread} |")
    lines += ["", "Each seed's mean over the 40 goals:", "", "| agent | seed | "
              + " | ".join(STEP_NAMES) + " |",
              "|" + "---|" * (EVAL_STEPS + 3)]  # fmt: skip
    for agent, g in by_agent.items():
        for s in seeds:
            ks = sorted({r.episode for r in g})
            values = " | ".join(f"{per_seed[(agent, s, k)]:.2f}" for k in ks)
            lines.append(f"| {agent} | {s} | {values} |")
    lines += ["", "| seed | date | MAML training | per meta-iteration | pretrained | oracle | "
              "command |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in seeds:
        rows_info = info[s]["rows"]
        lines.append(
            f"| {s} | {info[s]['date']} | {rows_info['MAML']['train_seconds']:.0f} s | "
            f"{rows_info['MAML']['seconds_per_iteration']:.1f} s | "
            f"{rows_info['pretrained']['train_seconds']:.0f} s | "
            f"{rows_info['oracle']['train_seconds']:.0f} s | `{info[s]['command']}` |"
        )
    lines += ["", f"Command for this table: `{command}`", "",
              "![adaptation](maml_2d_navigation.png)", ""]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "maml_2d_navigation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "inner_steps", "return", "low", "high", "success", "seeds",
                         "published"])  # fmt: skip
        for agent, summary in summaries.items():
            pairs = zip(summary.episode_return, summary.success, strict=True)
            for k, (point, succ) in enumerate(pairs):
                paper = PUBLISHED[agent]
                writer.writerow([agent, k, f"{point.mean:.4g}", f"{point.mean_ci[0]:.4g}",
                                 f"{point.mean_ci[1]:.4g}", f"{succ.mean:.3g}", len(seeds),
                                 paper[k] if k < len(paper) else ""])  # fmt: skip
    plot_summaries(summaries, out / "maml_2d_navigation.png", len(seeds))
    text = "\n".join(lines)
    (out / "maml_2d_navigation.md").write_text(text)
    return text


def _best_three_quarters(values: np.ndarray) -> float:
    ranked = np.sort(values)[::-1]  # returns: higher is better
    return float(ranked[: int(np.ceil(0.75 * len(ranked)))].mean())


def _worst_quarter(values: np.ndarray) -> float:
    ranked = np.sort(values)
    return float(ranked[: max(len(ranked) // 4, 1)].mean())


def plot_summaries(summaries: dict[str, Any], path: Path, n_seeds: int) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = {"MAML": "tab:green", "pretrained": "tab:blue", "random": "black", "oracle": "red"}
    for agent, summary in summaries.items():
        points = summary.episode_return
        y = np.array([p.mean for p in points])
        low = np.array([p.mean_ci[0] for p in points])
        high = np.array([p.mean_ci[1] for p in points])
        colour = colours[agent]
        if agent == "oracle":
            ax.axhline(y[0], color=colour, label="oracle (ours)")
            ax.axhline(PUBLISHED["oracle"][0], color=colour, ls=":", label="oracle (paper)")
            continue
        x = np.arange(len(points))
        ax.errorbar(x, y, yerr=[y - low, high - y], color=colour, marker="o", capsize=3,
                    label=f"{agent} (ours)")  # fmt: skip
        ax.plot(range(len(PUBLISHED[agent])), PUBLISHED[agent], color=colour, ls=":",
                marker="x", label=f"{agent} (paper)")  # fmt: skip
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(top=-1.0)
    steps = range(EVAL_STEPS + 1)
    ax.set_xticks(list(steps), [f"{k}\n({k * 40} episodes)" for k in steps])
    ax.set_xlabel("inner policy-gradient steps (episodes they consumed)")
    ax.set_ylabel("average return on the 40 test goals")
    ax.set_title(f"2-D navigation (MAML, Finn et al. 2017): {n_seeds} seed(s), 95% intervals")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=AUTHORS_ITERATIONS)
    parser.add_argument("--oracle-iterations", type=int, default=AUTHORS_ITERATIONS)
    parser.add_argument("--eval-episodes", type=int, default=40, help="per inner step")
    parser.add_argument("--eval-goals", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "maml_2d_navigation")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs",
                        help="where a seed's own report goes (--aggregate: the table)")  # fmt: skip
    parser.add_argument("--records", type=Path, default=None,
                        help="where seed<S>.csv/.json go (default: none for a seed's run; "
                        f"{RECORDS.relative_to(ROOT)} for --aggregate)")  # fmt: skip
    parser.add_argument("--record-only", type=Path, metavar="RUNS", default=None,
                        help="train nothing: write --seed's record from its run directories "
                        "(RUNS/maml, RUNS/pretrained, RUNS/oracle)")  # fmt: skip
    parser.add_argument("--aggregate", action="store_true",
                        help="train nothing: the table over the seeds in --records")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    command = "python " + " ".join(sys.argv)
    if args.aggregate:
        print(aggregate(args.records or RECORDS, args.docs, command))
        return
    if args.record_only is not None:
        if args.records is None:
            raise SystemExit("--record-only needs --records DIR")
        results = rebuild_record(args.record_only, args)
        write_record(results, args.records, args.seed, command)
        print(f"wrote {args.records}/seed{args.seed}.csv, .json")
        return
    runs = args.runs / time.strftime("%Y%m%d-%H%M%S")
    built = configs(args)
    e = args.eval_episodes
    results = [train_row(name, built[name], runs, e) for name in ("MAML", "pretrained")]
    results.append(random_row(built["MAML"], args.seed, args.eval_episodes))
    results.append(train_row("oracle", built["oracle"], runs, args.eval_episodes))
    if args.records is not None:
        write_record(results, args.records, args.seed, command)
    args.docs.mkdir(parents=True, exist_ok=True)
    write_csv(results, args.docs / "maml_2d_navigation.csv")
    seed_summaries = {r.agent: summarize(r.goal_rows) for r in results}
    plot_summaries(seed_summaries, args.docs / "maml_2d_navigation.png", 1)
    (args.docs / "maml_2d_navigation.md").write_text(report(results, args, command))
    print((args.docs / "maml_2d_navigation.md").read_text())


if __name__ == "__main__":
    main()
