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
from gmtl_rl.evaluation.adaptation import AdaptationRow, read_csv, run_adaptation

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "configs" / "maml_2d_navigation.yaml"
AUTHORS_ITERATIONS = 100  # maml_trpo_point.py L54 and trpo_point.py L33: n_itr=100
EVAL_STEPS = 3
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
    return RowResult(name, points, updates, steps, seconds, per_iteration)


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
    return RowResult("random", adaptation_by_inner_step(rows, eval_episodes), 0, 0, 0.0, 0.0)


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


def plot(results: list[RowResult], path: Path, episodes_per_step: int) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = {"MAML": "tab:green", "pretrained": "tab:blue", "random": "black", "oracle": "red"}
    for r in results:
        x = [p.inner_steps for p in r.points]
        y = [p.episode_return for p in r.points]
        err = [1.96 * p.return_se for p in r.points]
        colour = colours[r.agent]
        if r.agent == "oracle":
            ax.axhline(y[0], color=colour, label="oracle (ours)")
            ax.axhline(PUBLISHED["oracle"][0], color=colour, ls=":", label="oracle (paper)")
            continue
        ax.errorbar(x, y, yerr=err, color=colour, marker="o", capsize=3, label=f"{r.agent} (ours)")
        ax.plot(range(len(PUBLISHED[r.agent])), PUBLISHED[r.agent], color=colour, ls=":",
                marker="x", label=f"{r.agent} (paper)")  # fmt: skip
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(top=-1.0)
    steps = range(EVAL_STEPS + 1)
    ax.set_xticks(list(steps), [f"{k}\n({k * episodes_per_step} episodes)" for k in steps])
    ax.set_xlabel("inner policy-gradient steps (episodes they consumed)")
    ax.set_ylabel("average return on the test goals")
    ax.set_title("2-D navigation (MAML, Finn et al. 2017)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: list[RowResult], args: argparse.Namespace, command: str) -> str:
    e = args.eval_episodes
    header = "| agent | " + " | ".join(f"{k} steps" for k in range(EVAL_STEPS + 1)) + " |"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=AUTHORS_ITERATIONS)
    parser.add_argument("--oracle-iterations", type=int, default=AUTHORS_ITERATIONS)
    parser.add_argument("--eval-episodes", type=int, default=40, help="per inner step")
    parser.add_argument("--eval-goals", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "maml_2d_navigation")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = args.runs / time.strftime("%Y%m%d-%H%M%S")
    built = configs(args)
    e = args.eval_episodes
    results = [train_row(name, built[name], runs, e) for name in ("MAML", "pretrained")]
    results.append(random_row(built["MAML"], args.seed, args.eval_episodes))
    results.append(train_row("oracle", built["oracle"], runs, args.eval_episodes))
    args.docs.mkdir(parents=True, exist_ok=True)
    write_csv(results, args.docs / "maml_2d_navigation.csv")
    plot(results, args.docs / "maml_2d_navigation.png", args.eval_episodes)
    command = "python " + " ".join(sys.argv)
    (args.docs / "maml_2d_navigation.md").write_text(report(results, args, command))
    print((args.docs / "maml_2d_navigation.md").read_text())


if __name__ == "__main__":
    main()
