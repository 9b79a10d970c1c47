"""A-GEM (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM") as Continual World
runs it (continualworld/methods/agem.py).

At the end of each task a fixed number of its transitions, drawn with replacement from its
replay, go into an episodic memory that is never overwritten (`on_task_start`,
replay_buffers.py `EpisodicMemory`). From the second task on, every update also computes the
SAC losses' gradient g_ref on a batch drawn from that memory without replacement, and where
the update's gradient g points against it (g·g_ref < 0) replaces g by its projection
g − (g·g_ref / g_ref·g_ref) g_ref, which no longer increases the memory's loss to first order.

Suffixes: B = rows, D = flattened observation features, A = action dims, P = parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gmtl_rl.core.networks import flatten_obs
from gmtl_rl.core.replay import ReplayBatch

_COLUMNS = ("obs", "action", "reward", "next_obs", "terminated", "task_id", "task_class")


def project(grads: Sequence[torch.Tensor], ref_grads: Sequence[torch.Tensor]) -> bool:
    """A-GEM's projection of `grads` against `ref_grads`, in place, over all of them as one
    vector (agem.py `_project_gradients`); True when it projected (g·g_ref < 0)."""
    g_P = torch.cat([g.reshape(-1) for g in grads])
    ref_P = torch.cat([r.reshape(-1) for r in ref_grads])
    dot = g_P @ ref_P
    if not bool(dot < 0):  # agem.py: dot_prod >= 0 -> the gradient as it is
        return False
    coef = dot / (ref_P @ ref_P)
    torch._foreach_add_(list(grads), torch._foreach_mul(list(ref_grads), -coef))
    return True


class EpisodicMemory:
    """Transitions kept for good (capacity = per-task share × tasks), as plain arrays."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self.columns: dict[str, np.ndarray] = {}

    def add(self, batch: ReplayBatch) -> None:
        """Append a batch (observations flattened as the agent reads them)."""
        rows = {
            "obs": flatten_obs(batch.obs),
            "action": np.asarray(batch.action, np.float32),
            "reward": np.asarray(batch.reward, np.float32),
            "next_obs": flatten_obs(batch.next_obs),
            "terminated": np.asarray(batch.terminated, np.float32),
            "task_id": np.asarray(batch.task_id, np.int64),
            "task_class": np.asarray(batch.task_class, np.int64),
        }
        n = len(rows["reward"])
        if self.size + n > self.capacity:  # agem.py asserts the same
            raise ValueError(
                f"episodic memory of {self.capacity} transitions cannot take {n} more "
                f"(it holds {self.size})"
            )
        if not self.columns:
            self.columns = {
                k: np.zeros((self.capacity, *v.shape[1:]), v.dtype) for k, v in rows.items()
            }
        for k, v in rows.items():
            self.columns[k][self.size : self.size + n] = v
        self.size += n

    def sample(self, n: int, generator: torch.Generator) -> ReplayBatch:
        """min(n, size) distinct transitions, uniformly (replay_buffers.py `sample_batch`)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty episodic memory")
        rows = torch.randperm(self.size, generator=generator)[: min(n, self.size)].numpy()
        c = self.columns
        return ReplayBatch(
            obs=c["obs"][rows],
            action=c["action"][rows],
            reward=c["reward"][rows],
            next_obs=c["next_obs"][rows],
            terminated=c["terminated"][rows],
            task_id=c["task_id"][rows],
            task_class=c["task_class"][rows],
            rows=rows,
        )

    def state_dict(self) -> dict[str, Any]:
        """The filled rows as tensors (a torch checkpoint loads them without pickle)."""
        return {
            "size": self.size,
            "columns": {
                k: torch.from_numpy(v[: self.size].copy()) for k, v in self.columns.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.columns = 0, {}
        columns = state["columns"]
        if int(state["size"]) == 0:
            return
        arrays = {k: columns[k].numpy() for k in _COLUMNS}
        self.columns = {
            k: np.zeros((self.capacity, *v.shape[1:]), v.dtype) for k, v in arrays.items()
        }
        for k, v in arrays.items():
            self.columns[k][: len(v)] = v
        self.size = int(state["size"])
