"""Hindsight experience replay (Andrychowicz et al. 2017): relabel goals at sample time.

A sampled transition (s_t, a_t, g) of a finished episode gets, with probability
`relabel_ratio`, a goal the agent actually achieved in that episode instead of g:

- `future`: the achieved goal after a step t' drawn uniformly from [t, T-1] (HER §4.5;
  SB3's HerReplayBuffer draws the same range, so t' = t, the goal just reached, is included),
- `final`: the achieved goal after the last step T-1,
- `episode`: after a step drawn uniformly from [0, T-1].

The reward is then recomputed by the env's own vectorised `compute_reward(achieved, goal,
info)` (HER §3.1). `relabel_ratio` = k / (k + 1) for HER's k sampled goals per transition
(k = 4 → 0.8). Termination flags are kept as stored, as SB3 does. Transitions of running
episodes are not relabelled (their end is unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from gmtl_rl.core.replay import ReplayBatch, ReplayStorage

HERStrategy = Literal["future", "final", "episode"]
ComputeReward = Callable[[np.ndarray, np.ndarray, Any], np.ndarray]


class HindsightRelabeler:
    """Turns a replay batch of GoalEnv transitions into a partly relabelled one."""

    def __init__(
        self, compute_reward: ComputeReward, strategy: HERStrategy, relabel_ratio: float
    ) -> None:
        if strategy not in ("future", "final", "episode"):
            raise ValueError(f"unknown HER strategy {strategy!r}: valid: future, final, episode")
        if not 0.0 <= relabel_ratio <= 1.0:
            raise ValueError(f"relabel_ratio must be in [0, 1], got {relabel_ratio}")
        self.compute_reward = compute_reward
        self.strategy = strategy
        self.relabel_ratio = relabel_ratio

    def goal_steps(
        self, step: np.ndarray, length: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """The step t' whose achieved goal becomes the new goal, per row (length > 0)."""
        u = rng.random(len(step))
        if self.strategy == "future":
            return step + np.floor(u * (length - step)).astype(np.int64)
        if self.strategy == "final":
            return length - 1
        return np.floor(u * length).astype(np.int64)

    def __call__(
        self, storage: ReplayStorage, batch: ReplayBatch, rng: np.random.Generator
    ) -> ReplayBatch:
        if not isinstance(batch.obs, dict) or not isinstance(batch.next_obs, dict):
            raise TypeError("HER needs GoalEnv observations (observation/achieved/desired_goal)")
        rows = batch.rows
        cols = storage.columns
        length = storage.episodes.length[rows]
        step = cols["step_index"][rows]
        # Draw for every row, whatever is relabelled, so the RNG stream is batch-shaped only.
        chosen = rng.random(len(rows)) < self.relabel_ratio
        goal_step = self.goal_steps(step, np.maximum(length, 1), rng)
        goal_row = storage.episodes.step_rows(rows, goal_step)
        safe_row = np.maximum(goal_row, 0)
        relabel = (
            chosen
            & (length > 0)
            & (goal_row >= 0)
            & (cols["episode_id"][safe_row] == cols["episode_id"][rows])
            & (cols["step_index"][safe_row] == goal_step)
        )
        if not relabel.any():
            return batch
        idx = np.flatnonzero(relabel)
        new_goal = cols["next_obs.achieved_goal"][safe_row[idx]]
        obs = {k: v.copy() if k == "desired_goal" else v for k, v in batch.obs.items()}
        next_obs = {k: v.copy() if k == "desired_goal" else v for k, v in batch.next_obs.items()}
        obs["desired_goal"][idx] = new_goal
        next_obs["desired_goal"][idx] = new_goal
        reward = batch.reward.copy()
        achieved = batch.next_obs["achieved_goal"][idx]
        reward[idx] = np.asarray(self.compute_reward(achieved, new_goal, None), np.float32)
        return batch._replace(obs=obs, next_obs=next_obs, reward=reward)
