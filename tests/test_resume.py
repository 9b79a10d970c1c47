"""Resume loses nothing: a run split by a checkpoint and a new process ends where a straight
run ends (CPU, parameters equal within 1e-6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from trees import assert_tree_equal

from gmtl_rl import checkpoint
from gmtl_rl.cli import main

SMOKE = str(Path(__file__).parent.parent / "configs" / "smoke" / "sac_point_robot.yaml")


def _final_agent(run_dir: Path) -> dict:
    return checkpoint.load_latest(run_dir / "checkpoints").agent["agent"]


AGENTS = {
    "sac": [],
    # HER: relabelling reads the episode index, which a resumed run rebuilds from replay.
    "sac_her": ["agent.name=sac_her", "agent.gamma=0.99", "agent.tau=0.005"],
    # Multi-head MT-SAC on hidden goals: per-class heads, temperatures, balanced batches.
    "mhsac": ["agent.name=mhsac", "env.observe_goal=false", "eval.split=train"],
    "mtsac_pcgrad": ["agent.name=mtsac_pcgrad", "env.observe_goal=false", "eval.split=train"],
    # Envs in worker processes: their states travel through the pipes into the checkpoint.
    "sac-subprocess": ["sampler.backend=subprocess"],
    # Multi-task architectures on MT-SAC (issue 19).
    "mtsac_softmod": [
        "agent.name=mtsac_softmod",
        "agent.soft_modules.module_width=32",
        "agent.soft_modules.routing_width=32",
        "env.observe_goal=false",
        "eval.split=train",
    ],
    "mtsac_care": [
        "agent.name=mtsac_care",
        "agent.care.context=learned",
        "env.observe_goal=false",
        "eval.split=train",
    ],
    "mtsac_moore": ["agent.name=mtsac_moore", "env.observe_goal=false", "eval.split=train"],
    # Extreme-task mask-out and w-reset firing often: their random stream resumes too.
    "mtsac_paco": [
        "agent.name=mtsac_paco",
        "agent.paco.extreme_task_loss=0.5",
        "agent.paco.reset_extreme_tasks=interpolate",
        "env.observe_goal=false",
        "eval.split=train",
    ],
    # MAML: per-env adapted parameters and the blocks they learn from, collection in rounds.
    "maml": [
        "agent={name: maml, hidden: [16], episodes_per_step: 2, trials_per_update: 2, "
        "eval_inner_steps: 1, eval_episodes_per_step: 1}",
        "env.observe_goal=false",
    ],
}


@pytest.mark.parametrize("agent", list(AGENTS))
def test_split_run_resumed_in_a_new_process_matches_the_straight_run(tmp_path, agent):
    common = ["total_steps=460", "checkpoint.every_steps=0", "eval.max_tasks=2", *AGENTS[agent]]
    assert main(["train", SMOKE, *common, "--run-dir", str(tmp_path / "straight")]) == 0
    # Stop at 230 env steps: mid-episode (115 steps per env, horizon 20) and mid-training.
    split = tmp_path / "split"
    assert main(["train", SMOKE, *common, "total_steps=230", "--run-dir", str(split)]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "gmtl_rl.cli", "resume", str(split), "total_steps=460"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    straight, resumed = _final_agent(tmp_path / "straight"), _final_agent(split)
    assert straight["updates"] == resumed["updates"] > 0
    assert_tree_equal(straight, resumed, atol=1e-6)


def test_metrics_log_is_cut_back_to_the_checkpoint_on_resume(tmp_path):
    run = tmp_path / "run"
    assert main(["train", SMOKE, "total_steps=200", "--run-dir", str(run)]) == 0
    rows_at_200 = (run / "metrics.csv").read_text().splitlines()
    assert main(["resume", str(run), "total_steps=400"]) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[: len(rows_at_200)] == rows_at_200
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps == sorted(steps) and steps[-1] == 400
