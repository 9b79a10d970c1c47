"""PEARL learns to adapt on the point robot: on held-out goals, the episode after the posterior
takes over beats the exploration episode and beats a SAC that cannot tell goals apart.

A few minutes on 2 cores, so `slow`; `benchmarks/meta_point_robot.py` makes the same check at
full length with RL² beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gmtl_rl import runner
from gmtl_rl.config import load_config
from gmtl_rl.evaluation.adaptation import read_csv

CONFIGS = Path(__file__).parents[2] / "configs"
EPISODES = 3
EVAL = [f"eval.episodes={EPISODES}", "eval.repeats=2", "eval.n_envs=20", "threads=1",
        "logging.tensorboard=false", "checkpoint.every_steps=0"]  # fmt: skip


def _returns_by_k(run: Path) -> dict[int, float]:
    rows = read_csv(run / "eval" / "adaptation.csv")
    return {k: float(np.mean([r.episode_return for r in rows if r.episode == k]))
            for k in range(1, EPISODES + 1)}  # fmt: skip


@pytest.mark.slow
def test_pearl_adapts_on_held_out_goals_and_beats_non_adaptive_sac(tmp_path):
    pearl = load_config(
        CONFIGS / "pearl_point_robot.yaml",
        [
            "total_steps=60000", "agent.hidden=[128,128]", "agent.encoder_hidden=[128,128]",
            "agent.updates_per_iteration=200", "agent.initial_steps=200",
            "agent.steps_prior=200", "agent.steps_extra_posterior=200",
            "agent.eval_exploration_episodes=1", "sampler.n_envs=10", "eval.every_steps=0",
            *EVAL,
        ],
    )  # fmt: skip
    sac = load_config(
        CONFIGS / "smoke" / "sac_point_robot.yaml",
        ["total_steps=10000", "env.observe_goal=false", "env.n_train=80", "env.n_test=20",
         "agent.hidden=[128,128]", "agent.batch_size=256", "agent.learning_starts=1000",
         *EVAL],
    )  # fmt: skip
    pearl_k = _returns_by_k(runner.train(pearl, tmp_path / "pearl"))
    sac_k = _returns_by_k(runner.train(sac, tmp_path / "sac"))
    # Episode 1 explores with z from the prior; from episode 2 the posterior knows the goal.
    assert pearl_k[EPISODES] > pearl_k[1] + 2.0, pearl_k
    assert pearl_k[EPISODES] > sac_k[EPISODES] + 2.0, (pearl_k, sac_k)
    # SAC is not told the goal and cannot infer it: its curve is flat.
    assert abs(sac_k[EPISODES] - sac_k[1]) < 2.0, sac_k
