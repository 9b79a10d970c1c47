"""Replay: preallocated ring storage (one numpy column per field) plus sampling strategies.

Storage knows nothing about how it is sampled; samplers are small objects that turn a storage
and a generator into row indices (uniform, task-balanced, ...). Saved as `.npz`, no pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from gmtl_rl.core.records import Obs, StepBatch
from gmtl_rl.errors import CheckpointError


class ReplayBatch(NamedTuple):
    """A batch of transitions drawn from replay (B rows)."""

    obs: Obs  # [B, ...]
    action: np.ndarray  # [B, A]
    reward: np.ndarray  # [B] float32
    next_obs: Obs  # [B, ...]
    terminated: np.ndarray  # [B] float32, 1.0 where the MDP ended (no bootstrap)
    task_id: np.ndarray  # [B] int64, index into the training task list
    task_class: np.ndarray  # [B] int64, the task's class id (multi-task conditioning)
    rows: np.ndarray  # [B] storage rows, for strategies that need neighbours (HER)


def _obs_columns(space: gym.Space[Any], prefix: str) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Column name -> (shape, dtype) for an observation space; Dict spaces get one per key."""
    if isinstance(space, gym.spaces.Dict):
        cols: dict[str, tuple[tuple[int, ...], Any]] = {}
        for key, sub in space.spaces.items():
            cols.update(_obs_columns(sub, f"{prefix}.{key}"))
        return cols
    if isinstance(space, gym.spaces.Discrete):
        return {prefix: ((), np.int64)}
    if isinstance(space, gym.spaces.Box):
        dtype = np.float32 if np.issubdtype(space.dtype, np.floating) else space.dtype
        return {prefix: (tuple(space.shape), dtype)}
    raise TypeError(f"replay cannot store observations of space {space}")


def _action_column(space: gym.Space[Any]) -> tuple[tuple[int, ...], Any]:
    if isinstance(space, gym.spaces.Discrete):
        return (), np.int64
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape), np.float32
    raise TypeError(f"replay cannot store actions of space {space}")


class _TaskIndex:
    """Per-task FIFO of storage rows, so per-task sampling never scans the whole buffer.

    Storage overwrites rows oldest-first, so within one task the overwritten row is always
    that task's oldest entry: popping from the front keeps every FIFO exact.
    """

    def __init__(self) -> None:
        self.rows: dict[int, np.ndarray] = {}
        self.head: dict[int, int] = {}
        self.count: dict[int, int] = {}

    def push(self, task: int, rows: np.ndarray) -> None:
        buf = self.rows.get(task)
        count = self.count.get(task, 0)
        if buf is None or count + len(rows) > len(buf):
            old = self.ordered(task) if buf is not None else np.empty(0, np.int64)
            buf = np.empty(max(64, 2 * (count + len(rows))), np.int64)
            buf[:count] = old
            self.rows[task], self.head[task] = buf, 0
        end = self.head[task] + count
        if end + len(rows) <= len(buf):
            buf[end : end + len(rows)] = rows
        else:
            buf[(end + np.arange(len(rows))) % len(buf)] = rows
        self.count[task] = count + len(rows)

    def pop_front(self, task: int, n: int) -> None:
        self.head[task] = (self.head[task] + n) % len(self.rows[task])
        self.count[task] -= n

    def ordered(self, task: int) -> np.ndarray:
        """Rows of `task`, oldest first."""
        buf, head, count = self.rows[task], self.head[task], self.count[task]
        return buf[(head + np.arange(count)) % len(buf)]

    def pick(self, task: int, positions: np.ndarray) -> np.ndarray:
        """Rows at FIFO positions (0 = oldest) of `task`."""
        buf = self.rows[task]
        return buf[(self.head[task] + positions) % len(buf)]

    def tasks(self) -> list[int]:
        return sorted(t for t, c in self.count.items() if c > 0)


class ReplayStorage:
    """Ring buffer of transitions with `task_id`, `episode_id` and `step_index` columns."""

    def __init__(
        self,
        capacity: int,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs_keys = (
            list(observation_space.spaces)
            if isinstance(observation_space, gym.spaces.Dict)
            else None
        )
        spec: dict[str, tuple[tuple[int, ...], Any]] = {}
        spec.update(_obs_columns(observation_space, "obs"))
        spec.update(_obs_columns(observation_space, "next_obs"))
        spec["action"] = _action_column(action_space)
        spec["reward"] = ((), np.float32)
        spec["terminated"] = ((), np.bool_)
        spec["truncated"] = ((), np.bool_)
        spec["task_id"] = ((), np.int64)
        spec["task_class"] = ((), np.int64)
        spec["episode_id"] = ((), np.int64)
        spec["step_index"] = ((), np.int64)
        self.spec = spec
        self.columns = {
            k: np.zeros((capacity, *shape), dtype) for k, (shape, dtype) in spec.items()
        }
        self.pos = 0  # next row to write
        self.size = 0
        self.task_index = _TaskIndex()  # per task: PEARL's per-task context, HER's episodes
        self.class_index = _TaskIndex()  # per class: MT-SAC's balanced batches

    def __len__(self) -> int:
        return self.size

    def add(self, batch: StepBatch) -> None:
        """Store the valid rows of one sampler step (vectorised over envs)."""
        keep = np.flatnonzero(batch.valid)
        n = len(keep)
        if n == 0:
            return
        if n > self.capacity:
            raise ValueError(f"cannot add {n} rows to a replay of capacity {self.capacity}")
        rows = (self.pos + np.arange(n)) % self.capacity
        n_over = self.size + n - self.capacity  # the last n_over of `rows` hold stored rows
        if n_over > 0:  # overwriting the oldest rows (also when this add only starts to wrap)
            overwritten = rows[n - n_over :]
            for column, index in (("task_id", self.task_index), ("task_class", self.class_index)):
                old, counts = np.unique(self.columns[column][overwritten], return_counts=True)
                for key, count in zip(old, counts, strict=True):
                    index.pop_front(int(key), int(count))
        # Hot path: plain slices when nothing wraps and every row is valid (no fancy indexing).
        dest: Any = slice(self.pos, self.pos + n) if self.pos + n <= self.capacity else rows
        src: Any = slice(None) if n == batch.num_envs else keep
        self._write_obs("obs", batch.obs, dest, src)
        self._write_obs("next_obs", batch.next_obs, dest, src)
        c = self.columns
        c["action"][dest] = batch.action[src]
        c["reward"][dest] = batch.reward[src]
        c["terminated"][dest] = batch.terminated[src]
        c["truncated"][dest] = batch.truncated[src]
        c["task_id"][dest] = batch.task_id[src]
        c["task_class"][dest] = batch.task_class[src]
        c["episode_id"][dest] = batch.episode_id[src]
        c["step_index"][dest] = batch.step_index[src]
        _push_grouped(self.task_index, batch.task_id[src], rows)
        _push_grouped(self.class_index, batch.task_class[src], rows)
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def _write_obs(self, prefix: str, obs: Obs, rows: Any, keep: Any) -> None:
        if isinstance(obs, dict):
            for key, value in obs.items():
                self.columns[f"{prefix}.{key}"][rows] = value[keep]
        else:
            self.columns[prefix][rows] = obs[keep]

    def read_obs(self, prefix: str, rows: np.ndarray) -> Obs:
        if self.obs_keys is not None:
            return {k: self.columns[f"{prefix}.{k}"][rows] for k in self.obs_keys}
        return self.columns[prefix][rows]

    def batch(self, rows: np.ndarray) -> ReplayBatch:
        c = self.columns
        return ReplayBatch(
            obs=self.read_obs("obs", rows),
            action=c["action"][rows],
            reward=c["reward"][rows],
            next_obs=self.read_obs("next_obs", rows),
            terminated=c["terminated"][rows].astype(np.float32),
            task_id=c["task_id"][rows],
            task_class=c["task_class"][rows],
            rows=rows,
        )

    def tasks(self) -> list[int]:
        """Task ids with at least one stored row."""
        return self.task_index.tasks()

    def recent_rows(self, task: int, n: int) -> np.ndarray:
        """The newest `n` rows of `task`, oldest first (PEARL's per-task recent context)."""
        count = self.task_index.count.get(task, 0)
        n = min(n, count)
        return self.task_index.pick(task, np.arange(count - n, count))

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the filled rows to `path` (.npz, uncompressed, no pickle)."""
        order = self._insertion_order()
        arrays = {f"col.{k}": v[order] for k, v in self.columns.items()}
        arrays["meta.capacity"] = np.asarray(self.capacity)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    def load(self, path: str | Path) -> None:
        """Refill from `save`'s file; rows come back in insertion order, oldest first."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path}: not a readable replay file ({err})") from None
        cols = {k[4:]: v for k, v in arrays.items() if k.startswith("col.")}
        if set(cols) != set(self.spec):
            raise CheckpointError(
                f"{path}: replay columns {sorted(cols)} do not match this run's {sorted(self.spec)}"
            )
        n = len(cols["reward"])
        if n > self.capacity:
            raise CheckpointError(f"{path}: holds {n} rows but the capacity is {self.capacity}")
        for k, (shape, dtype) in self.spec.items():  # check everything before writing anything
            if cols[k].shape != (n, *shape) or cols[k].dtype != np.dtype(dtype):
                raise CheckpointError(f"{path}: column {k!r} has the wrong shape or dtype")
        for k in self.spec:
            self.columns[k][:n] = cols[k]
        self.size, self.pos = n, n % self.capacity
        self.task_index, self.class_index = _TaskIndex(), _TaskIndex()
        _push_grouped(self.task_index, self.columns["task_id"][:n], np.arange(n))
        _push_grouped(self.class_index, self.columns["task_class"][:n], np.arange(n))

    def _insertion_order(self) -> np.ndarray:
        if self.size < self.capacity:
            return np.arange(self.size)
        return (self.pos + np.arange(self.capacity)) % self.capacity


def _push_grouped(index: _TaskIndex, keys: np.ndarray, rows: np.ndarray) -> None:
    """Append `rows` to `index` under their `keys` (one push when all keys agree)."""
    if (keys == keys[0]).all():
        index.push(int(keys[0]), rows)
        return
    for key in np.unique(keys):
        index.push(int(key), rows[keys == key])


class ReplaySampler(Protocol):
    """Strategy: storage rows for a batch."""

    def rows(
        self, storage: ReplayStorage, batch_size: int, rng: np.random.Generator
    ) -> np.ndarray: ...


class UniformSampler:
    """Every stored transition equally likely."""

    def rows(self, storage: ReplayStorage, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        if storage.size == 0:
            raise ValueError("cannot sample from an empty replay")
        return rng.integers(storage.size, size=batch_size)


class TaskBalancedSampler:
    """An equal share of the batch per stored task class (MT-SAC), uniform within each class.

    With C classes, each gets batch_size // C rows and the remainder goes to randomly chosen
    classes, so the batch size is exact. (Per class, not per task: Meta-World MT10 has 10
    classes of 50 goals each, and the benchmark balances the 10 classes.)
    """

    def rows(self, storage: ReplayStorage, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        index = storage.class_index
        tasks = index.tasks()
        if not tasks:
            raise ValueError("cannot sample from an empty replay")
        share = np.full(len(tasks), batch_size // len(tasks))
        share[rng.choice(len(tasks), size=batch_size % len(tasks), replace=False)] += 1
        parts = [
            index.pick(t, rng.integers(index.count[t], size=k))
            for t, k in zip(tasks, share, strict=True)
            if k > 0
        ]
        return np.concatenate(parts)


SAMPLERS: Mapping[str, type] = {"uniform": UniformSampler, "task_balanced": TaskBalancedSampler}
