"""Batched task envs: N envs of one cheap family, each on its own task, stepped as one array
operation instead of N Python `step` calls (issue 15).

A family whose dynamics are a few array operations (the point robots, ...) implements
`TaskDistribution.make_batched_env` with a `BatchedTaskEnv` subclass; the sampler then uses it
in place of a `SyncVectorEnv` of single envs (`sampler.backend: auto` or `batched`), and no
agent can tell: the contract is the single env's, row by row.

- Gymnasium's vector-env conventions: `reset(seed=int | list, options={"reset_mask": m})`,
  `step(actions)` returning arrays, the three autoreset modes with `SyncVectorEnv`'s
  semantics (NEXT_STEP: an env that ended is reset by the next `step`, which returns its reset
  observation with reward 0; SAME_STEP: it is reset within the step, its successor and info
  in `info["final_obs"]` / `info["final_info"]`), `info[key]` with its `info["_key"]` mask.
- The task API of `TaskEnvWrapper`: `set_pending(i, (task_id, task))` queues a task that the
  next reset of env i applies; `get_state(i)` / `set_state(i, state)` save and restore env i
  exactly, in the single env's format (a checkpoint of either path resumes on the other).
- One numpy generator per env, seeded as Gymnasium seeds a single env (`reset(seed=s)` →
  `np_random(s)`), and the draws each env would make, in its order: the same seeds give the
  same transitions as the per-env path (tests/envs/test_batched.py and
  test_batched_discrete.py hold that for every family with one, in every autoreset mode).
- `NumericalGuard`'s rule, vectorised: a row whose observation or reward is not finite is
  truncated there with its last good observation, reward 0 and
  `info["numerical_instability"] = 1`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gmtl_rl.core.records import Obs, obs_copy, obs_index
from gmtl_rl.envs.task import Task

Info = dict[str, Any]


class BatchedTaskEnv(VectorEnv[Any, Any, Any]):
    """N envs of one family as arrays (see the module docstring). Subclasses keep their state
    in arrays with one row per env and implement `_apply_tasks`, `_reset_rows`, `_observe`,
    `_step_rows`, `get_state` and `set_state`."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        single_observation_space: gym.Space[Any],
        single_action_space: gym.Space[Any],
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {"autoreset_mode": self.autoreset_mode}
        self.tasks: list[Task] = [task] * num_envs
        self.pending: list[tuple[int, Task] | None] = [None] * num_envs
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, bool)  # ended at the last step, not reset since
        self._last_obs: Obs | None = None  # the last finite observation of every row
        self.restarts = 0  # the sampler's worker-restart count; nothing here restarts

    # -- what a family implements --------------------------------------------------------------
    @abstractmethod
    def _apply_tasks(self, rows: np.ndarray) -> None:
        """Load `self.tasks[i]` into the parameter arrays of the rows `rows`."""

    @abstractmethod
    def _reset_rows(self, rows: np.ndarray) -> None:
        """Start an episode in the rows `rows` (draws from `self.rng(i)`, in the single env's
        order)."""

    @abstractmethod
    def _observe(self) -> Obs:
        """The observation of every row (a new array: the caller may keep it)."""

    @abstractmethod
    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Step the rows where the bool mask `rows` is set (leave the others untouched): reward,
        terminated, truncated [N] and per-key info columns [N], of which only `rows` count."""

    @abstractmethod
    def get_state(self, i: int) -> dict[str, Any]:
        """Env i's state, in its single env's `get_state` format."""

    @abstractmethod
    def set_state(self, i: int, state: dict[str, Any]) -> None:
        """Restore env i from `get_state`'s output (the single env's format)."""

    # -- the per-env task API of the sampler --------------------------------------------------
    def rng(self, i: int) -> np.random.Generator:
        """Env i's generator; like a single env's `np_random`, randomly seeded if never seeded."""
        rng = self._rngs[i]
        if rng is None:
            rng = self._rngs[i] = seeding.np_random()[0]
        return rng

    def set_pending(self, i: int, pending: tuple[int, Task]) -> None:
        self.pending[i] = pending

    def has_state(self) -> bool:
        return True

    # -- Gymnasium's VectorEnv ------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Obs, Info]:
        seeds: list[int | None]
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
        mask = np.ones(self.num_envs, bool)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], bool)
            if mask.shape != (self.num_envs,) or not mask.any():
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) "
                    f"with a True value; got {options['reset_mask']!r}"
                )
        rows = np.flatnonzero(mask)
        for i in rows:
            if seeds[i] is not None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
        self._reset(rows)
        obs = self._observe()
        self._last_obs = obs_copy(obs)
        return obs, {}

    def _reset(self, rows: np.ndarray) -> None:
        """Apply queued tasks and start an episode in `rows` (indices)."""
        switched = [i for i in rows if self.pending[i] is not None]
        for i in switched:
            pending = self.pending[i]
            assert pending is not None
            self.tasks[i], self.pending[i] = pending[1], None
        if switched:
            self._apply_tasks(np.asarray(switched, np.int64))
        self._reset_rows(rows)
        self._autoreset[rows] = False

    def step(self, actions: Any) -> tuple[Obs, np.ndarray, np.ndarray, np.ndarray, Info]:
        actions = np.asarray(actions)
        if self.autoreset_mode == AutoresetMode.DISABLED and self._autoreset.any():
            waiting = np.flatnonzero(self._autoreset).tolist()
            raise RuntimeError(f"envs {waiting} ended and were not reset (autoreset disabled)")
        resetting = np.zeros(self.num_envs, bool)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            resetting = self._autoreset.copy()
        stepping = ~resetting
        reward, terminated, truncated, columns = self._step_rows(actions, stepping)
        reward = np.where(stepping, reward, 0.0).astype(np.float64)
        terminated, truncated = terminated & stepping, truncated & stepping
        obs = self._observe()
        broken = stepping & ~(_finite_rows(obs) & np.isfinite(reward))
        if broken.any():  # NumericalGuard: truncate with the last good observation
            assert self._last_obs is not None
            obs = _merge_rows(obs, self._last_obs, broken)
            reward[broken], terminated[broken], truncated[broken] = 0.0, False, True
        reported = stepping.copy()
        info: Info = {}
        ended = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any():
            done = np.flatnonzero(ended)
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in done:
                final_obs[i] = obs_copy(obs_index(obs, int(i)))
            info["final_obs"], info["_final_obs"] = final_obs, ended.copy()
            info["final_info"] = _columns_info(columns, broken, ended)
            info["_final_info"] = ended.copy()
            reported &= ~ended  # a reset env reports its (empty) reset info, as SyncVectorEnv
            self._reset(done)
            obs = _merge_rows(obs, self._observe(), ended)
        if resetting.any():
            self._reset(np.flatnonzero(resetting))
            obs = _merge_rows(obs, self._observe(), resetting)
        info.update(_columns_info(columns, broken, reported))
        self._autoreset = ended
        self._last_obs = obs_copy(obs)
        return obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        del kwargs


def _finite_rows(obs: Obs) -> np.ndarray:
    if isinstance(obs, dict):
        return np.logical_and.reduce([_finite_rows(v) for v in obs.values()])
    flat = np.asarray(obs).reshape(len(obs), -1)
    if not np.issubdtype(flat.dtype, np.floating):
        return np.ones(len(flat), bool)
    return np.isfinite(flat).all(axis=1)


def _merge_rows(current: Obs, fresh: Obs, mask: np.ndarray) -> Obs:
    """`current` with the rows of `fresh` where `mask` (in place; returns it)."""
    if isinstance(current, dict):
        assert isinstance(fresh, dict)
        for k in current:
            current[k][mask] = fresh[k][mask]
    else:
        current[mask] = np.asarray(fresh)[mask]
    return current


def _columns_info(columns: dict[str, np.ndarray], broken: np.ndarray, rows: np.ndarray) -> Info:
    """Vector info of the rows `rows`: each column with its `_key` mask; broken rows report
    `numerical_instability` (NumericalGuard's key) besides their step's columns."""
    info: Info = {}
    if not rows.any():
        return info
    for key, values in columns.items():
        info[key], info[f"_{key}"] = values, rows.copy()
    if (broken & rows).any():
        info["numerical_instability"] = np.where(broken & rows, 1.0, 0.0)
        info["_numerical_instability"] = broken & rows
    return info
