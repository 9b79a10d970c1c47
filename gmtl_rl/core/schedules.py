"""Task schedules: which task each env runs for its next trial.

The sampler asks its schedule at every trial start; None leaves the env idle. Training draws
uniformly (`UniformTaskSchedule`), evaluation walks a fixed queue (`FixedTaskSchedule`),
Four Rooms moves its goal after an episode count (`GoalSwitchSchedule`), PEARL collects a
step budget on one task (`BudgetSchedule`) and a continual run draws from the current element
of its task sequence (`SequenceTaskSchedule`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class TaskSchedule(Protocol):
    """Which task an env runs for its next trial; None leaves the env idle (evaluation end)."""

    def next_task(self, env_index: int) -> int | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class UniformTaskSchedule:
    """Training: each trial draws a task uniformly from the task list, with its own generator."""

    def __init__(self, num_tasks: int, rng: np.random.Generator) -> None:
        self.num_tasks = num_tasks
        self.rng = rng

    def next_task(self, env_index: int) -> int | None:
        return int(self.rng.integers(self.num_tasks))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class SequenceTaskSchedule:
    """A task sequence (Continual World): each trial draws uniformly among the tasks of the
    current element; with `element=None`, an element uniformly first, then one of its tasks
    (the multi-task upper bound: every element at once).

    `ranges[k]` = (first, end) task ids of element k in the sampler's task list."""

    def __init__(
        self, ranges: Sequence[tuple[int, int]], rng: np.random.Generator, element: int | None = 0
    ) -> None:
        if any(end <= first for first, end in ranges):
            raise ValueError(f"every element of a sequence needs a task, got ranges {ranges}")
        self.ranges = [(int(first), int(end)) for first, end in ranges]
        self.rng = rng
        self.element = element

    def next_task(self, env_index: int) -> int | None:
        del env_index
        element = self.element
        if element is None:
            element = int(self.rng.integers(len(self.ranges)))
        first, end = self.ranges[element]
        return first + int(self.rng.integers(end - first))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "element": self.element}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.element = None if state["element"] is None else int(state["element"])


class FixedTaskSchedule:
    """Evaluation: a fixed queue of task ids (one entry per trial), handed out in order."""

    def __init__(self, queue: Sequence[int]) -> None:
        self.queue = list(queue)
        self.position = 0

    def next_task(self, env_index: int) -> int | None:
        if self.position >= len(self.queue):
            return None
        self.position += 1
        return self.queue[self.position - 1]

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])


class GoalSwitchSchedule:
    """Task 0 for the first `switch_after` episodes started, task 1 from then on (None: never).

    Four Rooms (Bacon et al. 2017, Sec. 5.1): the goal moves after 1000 episodes."""

    def __init__(self, switch_after: int | None) -> None:
        self.switch_after = switch_after
        self.started = 0

    def next_task(self, env_index: int) -> int:
        del env_index
        self.started += 1
        if self.switch_after is None or self.started <= self.switch_after:
            return 0
        return 1

    def state_dict(self) -> dict[str, Any]:
        return {"started": self.started}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.started = int(state["started"])


class CollectionProgress(Protocol):
    """What a budget needs to know of the sampler collecting it."""

    transitions: int  # valid transitions taken so far
    finished: list[Any]  # episodes finished since the collection started


class BudgetSchedule:
    """Episodes on `task` until about `steps` transitions are collected, whole episodes only
    (oyster collects whole trajectories until it has `steps`).

    A new episode starts only while the steps taken plus a horizon for every episode still
    running stay under the budget, so parallel envs do not overshoot it: 400 steps of a
    200-step family are 2 episodes, not one per env. Without a horizon, episodes start while
    fewer than `steps` transitions are taken."""

    def __init__(
        self,
        task: int,
        steps: int,
        sampler: CollectionProgress | None = None,
        horizon: int | None = None,
    ) -> None:
        self.task, self.steps, self.sampler = task, steps, sampler
        self.horizon = horizon or 0
        self.start = sampler.transitions if sampler is not None else 0
        self.started = 0

    def next_task(self, env_index: int) -> int | None:
        del env_index
        if self.sampler is None:
            return None
        taken = self.sampler.transitions - self.start
        running = self.started - len(self.sampler.finished)
        if taken + running * self.horizon >= self.steps:
            return None
        self.started += 1
        return self.task

    def state_dict(self) -> dict[str, Any]:
        return {}  # lives within one collection; checkpoints fall between collections

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state
