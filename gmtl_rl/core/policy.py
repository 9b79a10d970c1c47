"""The one protocol every agent acts through, batched over the sampler's envs.

The sampler never interprets the agent's state: it calls `reset(mask)` when a trial starts
in the masked envs (a trial is K consecutive episodes on one task; K = 1 in ordinary
training), `act` to get actions, and `observe` with every step just taken. RL² keeps its
hidden state across the episodes of a trial; PEARL adds transitions to its context in
`observe`; option-critic decides terminations there. This mirrors Meta-World's
`metaworld.evaluation` Agent / MetaLearningAgent protocols.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gmtl_rl.core.records import Obs, StepBatch, UpdateResult


@runtime_checkable
class Policy(Protocol):
    def reset(self, env_mask: np.ndarray) -> None:
        """A new trial starts in the envs where `env_mask` [N] is True."""

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions [N, A] (or [N] for discrete spaces) for observations [N, ...].

        `task_class` [N] is each env's task class id (`TaskDistribution.task_classes`: the
        Meta-World class, else the train task's position; -1 for a class never trained on).
        Multi-task agents condition on it; meta-RL agents must ignore it.
        """
        ...

    def observe(self, step: StepBatch) -> None:
        """The step just taken by every env (rows with `valid == False` are not transitions)."""


class Agent(Policy, Protocol):
    """What every training loop needs from an agent beyond acting. Agents are built through
    their registry spec's one signature, `build(config, env_spec, seed, device)`; each
    family's loop adds its own update method (`training.<family>`)."""

    config: Any

    def metric_names(self) -> list[str]:
        """Its UpdateResult's fields: the metrics.csv columns of its updates."""
        ...

    def evaluating(self) -> AbstractContextManager[None]:
        """Evaluation mode: whatever acting changes (hidden states, generators, learning
        inside `observe`) is put back or held off, so evaluating never changes training."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@contextmanager
def state_restored(agent: Any) -> Iterator[None]:
    """For the evaluation mode of an agent whose acting changes its state (hidden states,
    generators, options in force): its whole `state_dict` is put back afterwards."""
    saved = agent.state_dict()
    try:
        yield
    finally:
        agent.load_state_dict(saved)


class OnlineLearner:
    """Base of agents that learn inside `observe`, one update per transition (option-critic):
    `training` switches learning on, `_last` is the latest update's result."""

    training: bool = True
    _last: UpdateResult | None = None

    def pop_metrics(self) -> dict[str, float]:
        """The metrics of the latest update (for the next metrics row)."""
        return self._last.metrics() if self._last is not None else {}

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Learning off inside; generators and options in force put back afterwards."""
        self.training = False
        try:
            with state_restored(self):
                yield
        finally:
            self.training = True


class StatelessPolicy:
    """Base for policies without per-trial state: reset and observe do nothing."""

    def reset(self, env_mask: np.ndarray) -> None:
        del env_mask

    def observe(self, step: StepBatch) -> None:
        del step

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Nothing to put back: acting changes no state."""
        yield


class RandomPolicy(StatelessPolicy):
    """Uniform actions from the action space, drawn with its own seeded generator."""

    def __init__(self, low: np.ndarray, high: np.ndarray, rng: np.random.Generator) -> None:
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        self.rng = rng

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        n = len(task_class)
        u = self.rng.random((n, *self.low.shape), dtype=np.float32)
        return self.low + u * (self.high - self.low)


class RandomDiscretePolicy(StatelessPolicy):
    """Uniform actions of a `Discrete(n, start)` space, drawn with its own seeded generator."""

    def __init__(self, n: int, start: int, rng: np.random.Generator) -> None:
        self.n, self.start = n, start
        self.rng = rng

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.start + self.rng.integers(self.n, size=len(task_class), dtype=np.int64)
