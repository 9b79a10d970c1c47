"""Evaluate finished runs on the test goals of another goal draw of their family (issue 14):
the same checkpoints scored on our seeded test goals and on oyster's (`env.goal_draw`), to tell
a difference in the agent from a difference in the goals.

Run (from the repository root):

    python benchmarks/eval_goal_draw.py runs/meta14/point_robot/pearl-s0 ... --draws seeded oyster

Prints, per run, the mean return of episodes k = 1..K over the test goals of each draw (the
run's own eval protocol: K = eval.episodes, eval.repeats trials per goal, deterministic, the
run's eval seed). Nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("runs", nargs="+", type=Path, help="run directories with a checkpoint")
parser.add_argument("--draws", nargs="+", default=["seeded", "oyster"], help="env.goal_draw")
parser.add_argument("--repeats", type=int, default=None, help="trials per goal (default: run's)")


def main(argv: list[str] | None = None) -> None:
    args = parser.parse_args(argv)

    from gmtl_rl.envs.registry import build
    from gmtl_rl.evaluation.adaptation import run_adaptation
    from gmtl_rl.run_dir import RunDir
    from gmtl_rl.runner import open_for_evaluation

    print("| run (env steps) | " + " | ".join(f"{d}: k = 1..K" for d in args.draws) + " |")
    print("|---" * (len(args.draws) + 1) + "|")
    for path in args.runs:
        run, config, _ = open_for_evaluation(RunDir(path), [], None)
        try:
            cells = []
            for draw in args.draws:
                options = {**config.env.options.model_dump(), "goal_draw": draw}
                family = build(config.env.name, options, where="env")
                cfg = config.eval
                with run.evaluation_policy() as policy:
                    rows = run_adaptation(
                        policy, family, cfg.tasks(family), episodes=cfg.episodes,
                        repeats=args.repeats or cfg.repeats, n_envs=cfg.n_envs,
                        seed=run.seeds.eval, deterministic=cfg.deterministic,
                    )  # fmt: skip
                means = [
                    np.mean([r.episode_return for r in rows if r.episode == k])
                    for k in range(1, cfg.episodes + 1)
                ]
                cells.append(" / ".join(f"{m:.2f}" for m in means))
            steps = run.counters.env_steps
            print(f"| {path} ({steps:,}) | " + " | ".join(cells) + " |", flush=True)
        finally:
            run.close()


if __name__ == "__main__":
    main()
