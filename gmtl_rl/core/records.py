"""Typed records that cross the boundaries between sampler, replay, agents and evaluator.

Shape suffixes: N = envs in the batch, B = replay batch, A = action dims.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

# A batch of observations: an array [N, ...] or, for Dict spaces (GoalEnv), a dict of arrays.
Obs = np.ndarray | dict[str, np.ndarray]


def obs_index(obs: Obs, index: Any) -> Obs:
    """Select rows of a (possibly dict) observation batch."""
    if isinstance(obs, dict):
        return {k: v[index] for k, v in obs.items()}
    return obs[index]


def obs_copy(obs: Obs) -> Obs:
    if isinstance(obs, dict):
        return {k: np.array(v, copy=True) for k, v in obs.items()}
    return np.array(obs, copy=True)


@dataclass(frozen=True)
class StepBatch:
    """One step of every env in the sampler: the transition each env just took.

    `next_obs` is always the true successor (the final observation at an episode end, never
    the reset observation). Rows with `valid == False` are not transitions (the dummy step of a
    NEXT_STEP autoreset) and must not be stored or learned from.
    """

    obs: Obs  # [N, ...]
    action: np.ndarray  # [N, A]
    reward: np.ndarray  # [N] float32
    next_obs: Obs  # [N, ...]
    terminated: np.ndarray  # [N] bool: the MDP ended; do not bootstrap
    truncated: np.ndarray  # [N] bool: cut by a time limit; bootstrap through it
    task_id: np.ndarray  # [N] int64, index into the sampler's task list
    task_class: np.ndarray  # [N] int64, the task's class id (what multi-task agents see)
    episode_id: np.ndarray  # [N] int64, unique per episode within a run
    step_index: np.ndarray  # [N] int64, 0 for an episode's first transition
    success: np.ndarray  # [N] float32, info["success"] (0 where the env defines none)
    valid: np.ndarray  # [N] bool

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated

    @property
    def num_envs(self) -> int:
        return int(self.action.shape[0])


@dataclass(frozen=True)
class EpisodeRecord:
    """Summary of one finished episode, as the evaluator and the logs need it."""

    env_index: int
    task_id: int
    episode_id: int
    trial_id: int  # unique per trial (K consecutive episodes on one task) within a sampler
    episode_in_trial: int  # 0-based position of the episode inside its trial
    episode_return: float
    length: int
    success: bool  # Meta-World protocol: success == 1 at any step of the episode
    terminated: bool


@dataclass(frozen=True)
class EnvSpec:
    """What an agent needs to know about the envs it will act in."""

    observation_space: Any  # gymnasium Space of one env
    action_space: Any
    num_task_classes: int  # class ids an agent may be told: 0..num_task_classes-1
    goal_env: bool = False  # Dict observation + compute_reward (Gymnasium-Robotics GoalEnv)
    envs: Any = None  # the built vector env, for agents that step their envs themselves (SB3)
    horizon: int | None = None  # the family's episode length where it has one (sizing estimates)
    # A name per task class in class-id order where the family names them (Meta-World:
    # "reach-v3"; CARE looks its metadata up by them); None where classes are only numbers.
    task_class_names: tuple[str, ...] | None = None

    def with_envs(self, envs: Any) -> EnvSpec:
        return replace(self, envs=envs)


@dataclass(frozen=True)
class UpdateResult:
    """Diagnostics of one gradient update: each agent's result subclasses this with float
    fields, which become its metrics.csv columns."""

    def metrics(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
