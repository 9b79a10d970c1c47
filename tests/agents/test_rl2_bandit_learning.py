"""RL² learns to explore a bandit: trained on Bernoulli bandits (Duan et al. 2016 Table 1's
n = 10 pulls, k = 5 arms) for a fraction of configs/rl2_bandit.yaml's budget, its total reward
per trial on held-out instances beats Thompson sampling's and random's under the same evaluator,
instance by instance (paired bootstrap interval above 0).

Why TS: at n = 10 Thompson sampling over-explores (paper 5.7, ours 5.8) while the learnt
policy, like Gittins (6.6), exploits early; a policy that had not learnt to use its history
scores like random (5.0), and one that never explores scores greedy's ~6.6 only by reading
rewards in context. Both are things RL² must learn.

Measured (2026-12-01, seed 0, 2 cores shared with one other run, 46 s): RL² 6.53 per trial, TS
5.83 (gap +0.71 [0.50, 0.92]), random 5.00 (gap +1.53 [1.31, 1.74])."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gmtl_rl import runner
from gmtl_rl.agents.registry import agent_spec, parse_agent_config
from gmtl_rl.config import load_config
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.evaluation.adaptation import read_csv, run_adaptation
from gmtl_rl.evaluation.stats import stratified_bootstrap_ci

ROOT = Path(__file__).parents[2]
STEPS = 400_000  # of the config's 2M: ~40 s on 2 cores
INSTANCES = 500
TRAINING = [
    f"total_steps={STEPS}", f"env.n_test={INSTANCES}", f"eval.n_envs={INSTANCES}",
    "eval.every_steps=0", "checkpoint.every_steps=0", "logging.every_steps=100000",
]  # fmt: skip


def _totals(rows, instances: int) -> np.ndarray:
    totals = np.zeros(instances)
    for row in rows:
        totals[row.task] += row.episode_return / (1 + max(r.repeat for r in rows))
    return totals


def test_rl2_beats_thompson_sampling_and_random_on_held_out_bandits(tmp_path):
    config = load_config(ROOT / "configs" / "rl2_bandit.yaml", TRAINING)
    run = runner.train(config, tmp_path / "rl2")
    rl2 = _totals(read_csv(run / "eval" / "adaptation.csv"), INSTANCES)

    distribution = config.env.build()
    tasks = distribution.test_tasks()
    env = distribution.make_env()
    spec = EnvSpec(env.observation_space, env.action_space, num_task_classes=1)
    env.close()
    gaps = {}
    for name in ("bandit_ts", "bandit_random"):
        agent_config = parse_agent_config({"name": name, "episodes_per_trial": 10})
        policy = agent_spec(name).build(agent_config, spec, 0, "cpu")
        rows = run_adaptation(policy, distribution, tasks, 10, n_envs=INSTANCES, seed=0)
        baseline = _totals(rows, INSTANCES)
        gap = rl2 - baseline  # paired by instance: same arms, same test split
        low, high = stratified_bootstrap_ci(gap, np.zeros(INSTANCES), "mean", n_resamples=2000)
        gaps[name] = (float(gap.mean()), low, high, float(baseline.mean()))
    report = f"RL² {rl2.mean():.2f} per trial; gap to each baseline (mean, CI, baseline): {gaps}"
    print(report)
    assert gaps["bandit_ts"][1] > 0, report
    assert gaps["bandit_random"][1] > 0.5, report
