"""Learning on the CPU-sized sequence (issue 18): two point-robot goals in opposite corners,
learnt one after the other. Fine-tuning learns the first and then forgets it while it learns
the second; perfect memory (every transition kept and replayed) keeps it."""

from __future__ import annotations

from pathlib import Path

from gmtl_rl.cli import main
from gmtl_rl.evaluation.continual import read_run

CONFIG = Path(__file__).parents[2] / "configs/continual/point_robot_sequence.yaml"
# Goals 11 (0.78, 0.55) and 14 (-0.79, -0.79) of the shipped sequence; each element gets
# 3500 env steps (the shipped 5000 cut to what a test affords: seed 0 passes success 0.5 on
# the first goal at about 3000). The checks read single evaluations (every 500 steps, 10
# stochastic episodes per element): the last of the first window and the last of the run,
# not CW's mean of five, which would mix in the first window's unlearnt start.
OVERRIDES = ["sequence.tasks=[11,14]", "sequence.steps_per_task=3500"]


def train(method: str, tmp_path: Path) -> Path:
    """One method's run; each test trains its own (not a module fixture holding both), so the
    two pytest-xdist workers train them side by side."""
    run = tmp_path / method
    args = ["train", str(CONFIG), *OVERRIDES, f"agent.method={method}", "seed=0"]
    assert main([*args, "--run-dir", str(run)]) == 0
    return run


def first_goal(run_dir: Path) -> tuple[float, float, float]:
    """Success on the first goal at the end of its window and at the end of the run, and on
    the second goal at the end of the run."""
    run = read_run(run_dir)
    window_end = run.success_ET[run.position_E == 0, 0][-1]
    return float(window_end), float(run.success_ET[-1, 0]), float(run.success_ET[-1, 1])


def test_finetuning_learns_the_first_goal_then_forgets_it(tmp_path: Path):
    learnt, end, second = first_goal(train("finetune", tmp_path))
    assert learnt >= 0.5, f"the first goal was not learnt in its window: {learnt}"
    assert second >= 0.5, f"the second goal was not learnt: {second}"
    assert end <= 0.2, f"fine-tuning did not forget the first goal: {learnt} -> {end}"


def test_perfect_memory_keeps_the_first_goal(tmp_path: Path):
    learnt, end, second = first_goal(train("perfect_memory", tmp_path))
    assert learnt >= 0.5, f"the first goal was not learnt in its window: {learnt}"
    assert second >= 0.5, f"the second goal was not learnt: {second}"
    assert end >= 0.8, f"perfect memory forgot the first goal: {learnt} -> {end}"
