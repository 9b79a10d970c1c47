"""Shared test helper: Meta-World's meta-learning protocol (ML1 reach-v3, 2 envs) run on a
meta-learner for 2 rounds of 1 adaptation + 1 scored episode, the size the agent tests use to
check what the protocol shows the agent."""

from __future__ import annotations

from typing import Any

import torch

from gmtl_rl import envs


def ml1_reach() -> Any:
    return envs.make("metaworld/ML1", task_name="reach-v3", meta_batch_size=2)


def two_rounds(agent: Any, ml1: Any) -> Any:
    """Run on one torch thread: a network step per env step, where a second thread only adds
    overhead (5x for RL²'s GRU here)."""
    from gmtl_rl.evaluation.metaworld_protocol import evaluate_metalearning  # imports Meta-World

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate_metalearning(
            agent, ml1, num_evals=2, adaptation_episodes=1, evaluation_episodes=1,
            meta_batch_size=2, tasks_per_class=40,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
