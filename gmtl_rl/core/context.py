"""PEARL's context sampler: a strategy over the shared replay, beside the replay samplers.

Each train task's context is the part of its latest collection kept as context (oyster
clears a task's encoder buffer before collecting, so its context is always its latest prior
data; Rakelly et al. 2019, Alg. 1, "S_c"). One `ReplayStorage` with per-task FIFO indexes
holds every task; this class counts, per task, the rows of its context and the rows added
after them, and finds them with `recent_rows`.

Rows of the collection in progress are "pending": while it runs, they are context only if the
collection adds to the encoder buffer (oyster's `collect_data(..., add_to_enc_buffer=True)`
adds each trajectory before the next posterior is inferred; the extra RL-only posterior data
never enters it), so a context batch drawn mid-collection never takes in RL-only rows nor
drops the oldest context rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gmtl_rl.core.replay import ReplayBatch, ReplayStorage


class TaskContexts:
    """Per-task context rows in a shared replay, and uniform draws from them."""

    def __init__(
        self,
        replay: ReplayStorage,
        num_tasks: int,
        rng: np.random.Generator,
        reward: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.replay = replay
        self.rng = rng
        self.reward = reward  # what the encoder sees of the stored reward (sparse families)
        self.count = np.zeros(num_tasks, np.int64)  # rows kept as context
        self.tail = np.zeros(num_tasks, np.int64)  # rows added after them (RL data only)
        self.pending = 0  # rows of the collection in progress (on `pending_task`)
        self.pending_task = -1
        self.pending_as_context = False

    def clear(self, task: int) -> None:
        """A new collection on `task` replaces its context."""
        self.count[task] = 0
        self.tail[task] = 0

    def begin(self, task: int, as_context: bool) -> None:
        """A collection on `task` starts; its rows are added with `collected`."""
        self.pending, self.pending_task, self.pending_as_context = 0, task, as_context

    def collected(self, rows: int) -> None:
        """`rows` transitions of the collection in progress went into the replay."""
        self.pending += rows

    def end(self) -> None:
        """The collection is over: its rows join the context or the RL-only tail."""
        task = self.pending_task
        if self.pending_as_context:
            self.count[task] += self.pending
        else:
            self.tail[task] += self.pending
        self.pending, self.pending_task = 0, -1

    def rows(self, task: int) -> np.ndarray:
        """Replay rows of `task`'s current context, oldest first."""
        count, tail = int(self.count[task]), int(self.tail[task])
        pending = self.pending if task == self.pending_task else 0
        rows = self.replay.recent_rows(task, count + tail + pending)
        lost = count + tail + pending - len(rows)  # overwritten by newer data in a full replay
        context = rows[: max(0, count - lost)]
        if pending and self.pending_as_context:  # newest rows: [count][tail][pending]
            context = np.concatenate([context, rows[-min(pending, len(rows)) :]])
        return context

    def has_data(self, task: int) -> bool:
        return self.replay.task_index.count.get(task, 0) > 0 and len(self.rows(task)) > 0

    def sample(self, task: int, size: int) -> ReplayBatch:
        """`size` transitions drawn uniformly from the task's context, rewards as the encoder
        sees them."""
        rows = self.rows(task)
        if len(rows) == 0:
            raise RuntimeError(f"train task {task} has no context data in the replay")
        batch = self.replay.batch(rows[self.rng.integers(len(rows), size=size)])
        if self.reward is not None:
            batch = batch._replace(reward=self.reward(batch.reward))
        return batch

    def draw_tasks(self, size: int) -> np.ndarray:
        """`size` tasks uniformly. One replay holds every task, oldest rows overwritten first,
        so a task left uncollected for long can lose all its data (oyster keeps one buffer per
        task); such draws are redrawn among the tasks that have data."""
        n = len(self.count)
        tasks = self.rng.integers(n, size=size)
        usable = np.array([self.has_data(int(t)) for t in tasks])
        if usable.all():
            return tasks
        available = [t for t in range(n) if self.has_data(t)]
        if not available:
            raise RuntimeError("no train task has data in the replay")
        tasks[~usable] = self.rng.choice(available, size=int((~usable).sum()))
        return tasks

    def state_dict(self) -> dict[str, Any]:
        # Checkpoints fall between collections: nothing is pending.
        return {"count": self.count.tolist(), "tail": self.tail.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count[...] = state["count"]
        self.tail[...] = state["tail"]
