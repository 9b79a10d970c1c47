"""Replay: preallocated ring storage (one numpy column per field) plus sampling strategies.

Storage knows nothing about how it is sampled; samplers are small objects that turn a storage
and a generator into row indices (uniform, task-balanced, ...). Saved as `.npz`, no pickle.
"""

from __future__ import annotations

import itertools
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

    Adds and pops are queued as arrays (`append`, `drop_oldest`) and applied on the next read,
    grouped by task: a sampler step with N envs on N tasks costs two list appends instead of N
    Python pushes, and a loop that reads once per many steps (PEARL, every uniform-replay
    agent) pays one push per task per read. Queued pushes go before queued pops: both act on
    one FIFO per task, pushes at the back and pops (always a task's oldest rows) at the front.
    """

    def __init__(self) -> None:
        self._rows: dict[int, np.ndarray] = {}
        self._head: dict[int, int] = {}
        self._count: dict[int, int] = {}
        self._queued_keys: list[np.ndarray] = []
        self._queued_rows: list[np.ndarray] = []
        self._queued_pops: list[np.ndarray] = []

    # -- writes (queued) -----------------------------------------------------------------------
    def append(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Queue `rows` under their `keys` (arrays of equal length; copied: a caller's view
        of its own columns may change before the queue is applied)."""
        self._queued_keys.append(np.array(keys, np.int64))
        self._queued_rows.append(np.array(rows, np.int64))

    def drop_oldest(self, keys: np.ndarray) -> None:
        """Queue the removal of one oldest row of its task per entry of `keys`."""
        self._queued_pops.append(np.array(keys, np.int64))

    def _apply_queued(self) -> None:
        if self._queued_keys:
            keys = np.concatenate(self._queued_keys)
            rows = np.concatenate(self._queued_rows)
            self._queued_keys, self._queued_rows = [], []
            order = np.argsort(keys, kind="stable")  # stable: each task's rows stay in order
            keys, rows = keys[order], rows[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            ends = np.r_[starts[1:], len(keys)]
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                self._push(int(keys[a]), rows[a:b])
        if self._queued_pops:
            keys, counts = np.unique(np.concatenate(self._queued_pops), return_counts=True)
            self._queued_pops = []
            for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
                self._head[key] = (self._head[key] + n) % len(self._rows[key])
                self._count[key] -= n

    def _push(self, task: int, rows: np.ndarray) -> None:
        buf = self._rows.get(task)
        count = self._count.get(task, 0)
        if buf is None or count + len(rows) > len(buf):
            old = self._ordered(task) if buf is not None else np.empty(0, np.int64)
            buf = np.empty(max(64, 2 * (count + len(rows))), np.int64)
            buf[:count] = old
            self._rows[task], self._head[task] = buf, 0
        end = self._head[task] + count
        if end + len(rows) <= len(buf):
            buf[end : end + len(rows)] = rows
        else:
            buf[(end + np.arange(len(rows))) % len(buf)] = rows
        self._count[task] = count + len(rows)

    def _ordered(self, task: int) -> np.ndarray:
        buf, head, count = self._rows[task], self._head[task], self._count[task]
        return buf[(head + np.arange(count)) % len(buf)]

    # -- reads (apply what is queued first) --------------------------------------------------
    @property
    def count(self) -> dict[int, int]:
        """Rows per task (a live view: do not modify)."""
        self._apply_queued()
        return self._count

    def ordered(self, task: int) -> np.ndarray:
        """Rows of `task`, oldest first."""
        self._apply_queued()
        return self._ordered(task)

    def pick(self, task: int, positions: np.ndarray) -> np.ndarray:
        """Rows at FIFO positions (0 = oldest) of `task`."""
        self._apply_queued()
        buf = self._rows[task]
        return buf[(self._head[task] + positions) % len(buf)]

    def tasks(self) -> list[int]:
        self._apply_queued()
        return sorted(t for t, c in self._count.items() if c > 0)


class EpisodeIndex:
    """Where the steps of each stored episode are: for a row at step t, the row of step t'.

    Rows of one episode interleave with other envs' rows in the ring, so finished episodes
    are also listed contiguously, in step order, in a second ring (`flat`); a row keeps the
    position of its episode's first step there (`start`) and the episode's `length` (0 while
    the episode runs). Rows of running episodes wait per env in `staging`. Everything is
    derived from the storage's `episode_id` / `step_index` / `env_index` columns and rebuilt
    from them on load. HER needs this to pick goals from the same episode (future/episode).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.start = np.zeros(capacity, np.int64)
        self.length = np.zeros(capacity, np.int64)
        self.flat = np.zeros(capacity, np.int64)
        self.flat_pos = 0
        self.staging = np.zeros((0, 0), np.int64)  # [env, step] -> row of a running episode

    def add(self, rows: np.ndarray, env: np.ndarray, step: np.ndarray, done: np.ndarray) -> None:
        """Record rows just written (one per env); episodes that ended move to `flat`."""
        self.length[rows] = 0  # overwritten rows belong to a new, running episode
        need_envs, need_steps = int(env.max()) + 1, int(step.max()) + 1
        if need_envs > self.staging.shape[0] or need_steps > self.staging.shape[1]:
            grown = np.full(
                (max(need_envs, self.staging.shape[0]), max(need_steps, 2 * self.staging.shape[1])),
                -1,  # no row (a step whose row was overwritten before its episode ended)
                np.int64,
            )
            grown[: self.staging.shape[0], : self.staging.shape[1]] = self.staging
            self.staging = grown
        self.staging[env, step] = rows
        for i in np.flatnonzero(done):  # once per finished episode, not per transition
            self._finish(self.staging[env[i], : step[i] + 1])

    def _finish(self, episode_rows: np.ndarray) -> None:
        n = len(episode_rows)
        if n > self.capacity:  # longer than the whole buffer: its start is gone anyway
            return
        self.flat[(self.flat_pos + np.arange(n)) % self.capacity] = episode_rows
        self.start[episode_rows] = self.flat_pos
        self.length[episode_rows] = n
        self.flat_pos = (self.flat_pos + n) % self.capacity

    def step_rows(self, rows: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Row of step `steps[i]` of the episode of `rows[i]` (finished episodes only).

        May be -1 or a row since overwritten by another episode when the episode was older
        than the buffer: callers check `episode_id` and `step_index` of the result.
        """
        return self.flat[(self.start[rows] + steps) % self.capacity]

    def rebuild(self, columns: Mapping[str, np.ndarray], order: np.ndarray) -> None:
        """Refill from stored columns; `order` lists the filled rows oldest first."""
        self.__init__(self.capacity)  # type: ignore[misc]
        if len(order) == 0:
            return
        done = columns["terminated"][order] | columns["truncated"][order]
        env, step = columns["env_index"][order], columns["step_index"][order]
        # Replay in chunks that end at an episode end: inside one, each env's rows belong to
        # one episode, so the vectorised staging write cannot mix two episodes of an env.
        bounds = np.concatenate([[0], np.flatnonzero(done) + 1, [len(order)]])
        for a, b in itertools.pairwise(bounds.tolist()):
            if b > a:
                self.add(order[a:b], env[a:b], step[a:b], done[a:b])


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
        spec["env_index"] = ((), np.int64)
        self.spec = spec
        self.columns = {
            k: np.zeros((capacity, *shape), dtype) for k, (shape, dtype) in spec.items()
        }
        self.pos = 0  # next row to write
        self.size = 0
        self.task_index = _TaskIndex()  # per task: PEARL's per-task context, HER's episodes
        self.class_index = _TaskIndex()  # per class: MT-SAC's balanced batches
        self.episodes = EpisodeIndex(capacity)  # per episode: HER's goals from the same episode

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
            self.task_index.drop_oldest(self.columns["task_id"][overwritten])
            self.class_index.drop_oldest(self.columns["task_class"][overwritten])
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
        c["env_index"][dest] = keep
        self.task_index.append(batch.task_id[src], rows)
        self.class_index.append(batch.task_class[src], rows)
        done = batch.terminated[keep] | batch.truncated[keep]
        self.episodes.add(rows, keep, batch.step_index[keep], done)
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
        self.task_index.append(self.columns["task_id"][:n], np.arange(n))
        self.class_index.append(self.columns["task_class"][:n], np.arange(n))
        self.episodes.rebuild(self.columns, np.arange(n))

    def _insertion_order(self) -> np.ndarray:
        if self.size < self.capacity:
            return np.arange(self.size)
        return (self.pos + np.arange(self.capacity)) % self.capacity


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
