"""The one sampler: a batch of envs, each on its own task, stepped by one policy.

Termination vs truncation and Gymnasium's vector autoreset modes are handled here and nowhere
else. Every env is wrapped in `TaskEnvWrapper`, so a task switch is queued and applied by the
next reset; the sampler resets explicitly whenever it switches tasks. A family with a batched
env (`gmtl_rl.envs.batched`: all envs as one array operation) is stepped through it instead
(backend `auto` or `batched`), with the same task API and the same transitions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EpisodeRecord, Obs, StepBatch, obs_copy, obs_index
from gmtl_rl.core.schedules import TaskSchedule
from gmtl_rl.core.workers import SubprocessVectorEnv
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.numerical_guard import NumericalGuard
from gmtl_rl.envs.registry import families
from gmtl_rl.envs.task import Task, TaskDistribution
from gmtl_rl.errors import ConfigError

AUTORESET_MODES = {
    "disabled": AutoresetMode.DISABLED,
    "next_step": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
}


class TaskEnvWrapper(gym.Wrapper[Any, Any, Any, Any]):
    """Carries the env's task; a queued task is applied at the next reset."""

    def __init__(self, env: gym.Env, distribution: TaskDistribution, task_id: int, task: Task):
        super().__init__(env)
        self.distribution = distribution
        self.task_id = task_id
        self.task = task
        self.pending: tuple[int, Task] | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if self.pending is not None:
            self.task_id, self.task = self.pending
            self.distribution.set_task(self.env, self.task)
            self.pending = None
        return self.env.reset(seed=seed, options=options)


def make_task_env(distribution: TaskDistribution, task: Task) -> gym.Env:
    """An env of `distribution` on `task`, guarded against simulator blow-ups."""
    env = NumericalGuard(distribution.make_env(task))
    return TaskEnvWrapper(env, distribution, 0, task)


@dataclass
class _EnvSlots:
    """Per-env bookkeeping, one array entry per env."""

    n: int
    task_id: np.ndarray = field(init=False)
    episode_id: np.ndarray = field(init=False)
    trial_id: np.ndarray = field(init=False)
    episode_in_trial: np.ndarray = field(init=False)
    step_index: np.ndarray = field(init=False)
    ep_return: np.ndarray = field(init=False)
    ep_success: np.ndarray = field(init=False)
    active: np.ndarray = field(init=False)  # False once the schedule has no more trials
    awaiting_autoreset: np.ndarray = field(init=False)  # NEXT_STEP: next step is a dummy

    def __post_init__(self) -> None:
        self.task_id = np.zeros(self.n, np.int64)
        self.episode_id = np.zeros(self.n, np.int64)
        self.trial_id = np.zeros(self.n, np.int64)
        self.episode_in_trial = np.zeros(self.n, np.int64)
        self.step_index = np.zeros(self.n, np.int64)
        self.ep_return = np.zeros(self.n, np.float64)
        self.ep_success = np.zeros(self.n, bool)
        self.active = np.ones(self.n, bool)
        self.awaiting_autoreset = np.zeros(self.n, bool)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}


class RolloutSampler:
    """Steps `n_envs` envs, each set to a task from `tasks`, and returns typed step records.

    A trial is `episodes_per_trial` consecutive episodes on one task; `policy.reset(mask)` is
    called when a trial starts. Finished episodes accumulate in `finished` until popped.
    """

    def __init__(
        self,
        distribution: TaskDistribution,
        tasks: Sequence[Task],
        n_envs: int,
        schedule: TaskSchedule,
        seed: int,
        episodes_per_trial: int = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.DISABLED,
        backend: str = "auto",
        worker_timeout_s: float = 60.0,
        max_restarts: int = 3,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if not tasks:
            raise ValueError("the sampler needs at least one task")
        self.distribution = distribution
        self.tasks = list(tasks)
        self.task_classes = distribution.task_classes(self.tasks)  # [len(tasks)] class ids
        self.schedule = schedule
        self.episodes_per_trial = episodes_per_trial
        self.mode = (
            AUTORESET_MODES[autoreset_mode] if isinstance(autoreset_mode, str) else autoreset_mode
        )
        self.seed = seed
        self.finished: list[EpisodeRecord] = []
        self.instabilities = 0  # episodes cut by NumericalGuard (simulator blow-ups)
        self.transitions = 0  # valid transitions taken so far (schedules may budget on it)
        self._next_episode_id = 0
        self._next_trial_id = 0
        self._policy_needs_reset = np.zeros(n_envs, bool)
        self.slots = _EnvSlots(n_envs)
        factories = [self._env_factory(i) for i in range(n_envs)]
        self.vec: Any
        batched = None
        if backend in ("auto", "batched"):
            batched = distribution.make_batched_env(n_envs, self.tasks[0], self.mode)
            if batched is None and backend == "batched":
                with_one = ", ".join(
                    name
                    for name, cls in families().items()
                    if cls.make_batched_env is not TaskDistribution.make_batched_env
                )
                raise ConfigError(
                    f"sampler.backend: batched, but task family {distribution.name!r} has no "
                    f"batched env (families with one: {with_one}); use auto or sync"
                )
        if batched is not None:
            self.vec = batched
        elif backend == "subprocess":
            if self.mode != AutoresetMode.DISABLED:
                raise ValueError("the subprocess backend resets envs itself: autoreset disabled")
            self.vec = SubprocessVectorEnv(factories, worker_timeout_s, max_restarts)
        elif backend == "ray":
            if self.mode != AutoresetMode.DISABLED:
                raise ValueError("the ray backend resets envs itself: autoreset disabled")
            from gmtl_rl.core.ray_workers import RayVectorEnv  # imports ray: only when asked

            # Every env starts from the same factory: one object-store copy for all workers.
            self.vec = RayVectorEnv([factories[0]] * n_envs, worker_timeout_s, max_restarts)
        elif backend in ("sync", "auto", "batched"):
            # copy=False: the vector env returns its own observation buffer, which every step
            # and reset overwrites in place; the sampler copies once per step and once per
            # reset wherever it keeps observations (`_start`, `_merge`, `load_state_dict`).
            self.vec = SyncVectorEnv(factories, autoreset_mode=self.mode, copy=False)
        else:
            raise ValueError(
                f"unknown sampler backend {backend!r}: auto, batched, sync, subprocess or ray"
            )
        self.single_action_space = self.vec.single_action_space
        self.single_observation_space = self.vec.single_observation_space
        self._obs: Obs = self._start(np.ones(n_envs, bool), seed=seed)

    @property
    def num_envs(self) -> int:
        return self.slots.n

    def _env_factory(self, i: int) -> Any:
        # A module-level function and its arguments: picklable, for Ray workers.
        return functools.partial(make_task_env, self.distribution, self.tasks[0])

    def _wrapper(self, i: int) -> TaskEnvWrapper:
        env = self.vec.envs[i]
        assert isinstance(env, TaskEnvWrapper)
        return env

    # Per-env access that works for every backend: the wrapper of an env in this process, or
    # the vector env's own per-env methods (workers, a batched env).
    @property
    def _vec_has_task_api(self) -> bool:
        return isinstance(self.vec, SubprocessVectorEnv | BatchedTaskEnv)

    def _set_pending(self, i: int, task_id: int) -> None:
        pending = (task_id, self.tasks[task_id])
        if self._vec_has_task_api:
            self.vec.set_pending(i, pending)
        else:
            self._wrapper(i).pending = pending

    def _get_env_state(self, i: int) -> Any:
        if self._vec_has_task_api:
            return self.vec.get_state(i)
        return self._wrapper(i).unwrapped.get_state()  # type: ignore[attr-defined]

    def _set_env_state(self, i: int, state: Any) -> None:
        if self._vec_has_task_api:
            self.vec.set_state(i, state)
        else:
            self._wrapper(i).unwrapped.set_state(state)  # type: ignore[attr-defined]

    @property
    def worker_restarts(self) -> int:
        return self.vec.restarts if self._vec_has_task_api else 0

    # -- trials and resets ----------------------------------------------------------------
    def _new_episode(self, mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        self.slots.episode_id[idx] = self._next_episode_id + np.arange(len(idx))
        self._next_episode_id += len(idx)
        self.slots.step_index[idx] = 0
        self.slots.ep_return[idx] = 0.0
        self.slots.ep_success[idx] = False

    def restart(self, schedule: TaskSchedule, seed: int) -> None:
        """Start over in every env: new trials from `schedule`, envs reset with seeds drawn
        from `seed`. A loop that collects in rounds (PEARL: one task per round) keeps no env
        state between rounds, so its checkpoints need none."""
        self.schedule = schedule
        self.slots.active[:] = True
        self._obs = self._start(np.ones(self.num_envs, bool), seed=seed)

    def _start(self, mask: np.ndarray, seed: int | None = None) -> Obs:
        """Start new trials in `mask`: ask the schedule for tasks, queue them, reset (all envs
        with per-env seeds from `seed` when one is given). With a seed the result is a copy, to
        keep; without one it may be the vector env's own buffer: callers `_merge` it (a copy)."""
        for i in np.flatnonzero(mask):
            task_id = self.schedule.next_task(int(i))
            if task_id is None:
                self.slots.active[i] = False
                task_id = int(self.slots.task_id[i])  # idle: keep stepping the old task
            self._set_pending(int(i), task_id)
            self.slots.task_id[i] = task_id
            self.slots.trial_id[i] = self._next_trial_id
            self._next_trial_id += 1
        self.slots.episode_in_trial[mask] = 0
        self._policy_needs_reset |= mask
        if seed is not None:
            seeds = np.random.SeedSequence(seed).generate_state(self.num_envs)
            obs, _ = self.vec.reset(seed=[int(s) for s in seeds])
            obs = obs_copy(obs)
        else:
            obs, _ = self.vec.reset(options={"reset_mask": mask.copy()})
        self.slots.awaiting_autoreset[mask] = False
        self._new_episode(mask)
        return obs

    # -- stepping ---------------------------------------------------------------------------
    def step(self, policy: Policy, deterministic: bool = False) -> StepBatch:
        """Step every env once; returns the transitions just taken."""
        s = self.slots
        if self._policy_needs_reset.any():
            policy.reset(self._policy_needs_reset.copy())
            self._policy_needs_reset[:] = False
        obs = self._obs
        task_class = self.task_classes[s.task_id]
        actions = policy.act(obs, task_class, deterministic)
        raw_next, reward, terminated, truncated, info = self.vec.step(actions)
        next_obs = obs_copy(raw_next)
        # NEXT_STEP: an env that ended last step was reset by this call; its row is a dummy.
        valid = ~s.awaiting_autoreset & s.active
        dummy = s.awaiting_autoreset.copy()
        done = (terminated | truncated) & ~dummy
        success = _info_column(info, "success", self.num_envs)
        unstable = _info_column(info, "numerical_instability", self.num_envs)

        true_next = next_obs
        if self.mode == AutoresetMode.SAME_STEP and done.any():
            true_next = obs_copy(next_obs)
            # The returned obs of a finished env is already the reset obs; the true successor
            # and the step's info are in final_obs / final_info.
            final_obs, final_info = info["final_obs"], info.get("final_info", {})
            final_success = _info_column(final_info, "success", self.num_envs)
            final_unstable = _info_column(final_info, "numerical_instability", self.num_envs)
            for i in np.flatnonzero(done):
                _set_row(true_next, int(i), final_obs[i])
                success[i] = final_success[i]
                unstable[i] = final_unstable[i]
        self.instabilities += int((unstable[valid] > 0).sum())

        batch = StepBatch(
            obs=obs,
            action=np.asarray(actions),
            reward=np.asarray(reward, dtype=np.float32),
            next_obs=true_next,
            terminated=terminated & valid,
            truncated=truncated & valid,
            task_id=s.task_id.copy(),
            task_class=task_class,
            episode_id=s.episode_id.copy(),
            step_index=s.step_index.copy(),
            success=success,
            valid=valid,
        )
        policy.observe(batch)
        self._account(batch, done & valid)

        # Decide what each env does next. NEXT_STEP dummies start their new episode now.
        if dummy.any():
            s.awaiting_autoreset[dummy] = False
            self._new_episode(dummy)
        s.step_index[valid] += 1
        new_trial = done & (s.episode_in_trial + 1 >= self.episodes_per_trial)
        s.episode_in_trial[done & ~new_trial] += 1
        same_task = done & ~new_trial
        self._obs = next_obs
        if new_trial.any():
            self._obs = _merge(self._obs, self._start(new_trial), new_trial)
        if same_task.any():
            if self.mode == AutoresetMode.DISABLED:
                reset_obs, _ = self.vec.reset(options={"reset_mask": same_task.copy()})
                self._obs = _merge(self._obs, reset_obs, same_task)
                self._new_episode(same_task)
            elif self.mode == AutoresetMode.SAME_STEP:
                self._new_episode(same_task)
            else:
                s.awaiting_autoreset |= same_task
        return batch

    def _account(self, batch: StepBatch, ended: np.ndarray) -> None:
        s = self.slots
        v = batch.valid
        self.transitions += int(v.sum())
        s.ep_return[v] += batch.reward[v]
        s.ep_success[v] |= batch.success[v] >= 1.0
        for i in np.flatnonzero(ended):
            self.finished.append(
                EpisodeRecord(
                    env_index=int(i),
                    task_id=int(s.task_id[i]),
                    episode_id=int(s.episode_id[i]),
                    trial_id=int(s.trial_id[i]),
                    episode_in_trial=int(s.episode_in_trial[i]),
                    episode_return=float(s.ep_return[i]),
                    length=int(s.step_index[i] + 1),
                    success=bool(s.ep_success[i]),
                    terminated=bool(batch.terminated[i]),
                )
            )

    def pop_finished(self) -> list[EpisodeRecord]:
        out, self.finished = self.finished, []
        return out

    @property
    def all_idle(self) -> bool:
        return not self.slots.active.any()

    def close(self) -> None:
        self.vec.close()

    # -- checkpointing ------------------------------------------------------------------------
    def envs_are_stateful(self) -> bool:
        if self._vec_has_task_api:
            return self.vec.has_state()
        return all(hasattr(self._wrapper(i).unwrapped, "get_state") for i in range(self.num_envs))

    def counters_state(self) -> dict[str, int]:
        """The sampler's counters alone: enough for a loop that restarts every env between
        collections (PEARL) to continue its episode ids exactly."""
        return {
            "next_episode_id": self._next_episode_id,
            "next_trial_id": self._next_trial_id,
            "instabilities": self.instabilities,
            "transitions": self.transitions,
        }

    def load_counters(self, state: dict[str, Any]) -> None:
        self._next_episode_id = int(state["next_episode_id"])
        self._next_trial_id = int(state["next_trial_id"])
        self.instabilities = int(state["instabilities"])
        self.transitions = int(state["transitions"])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: bookkeeping, current obs, env states."""
        stateful = self.envs_are_stateful()
        return {
            "slots": self.slots.arrays(),
            "obs": obs_copy(self._obs),
            "policy_needs_reset": self._policy_needs_reset.copy(),
            **self.counters_state(),
            "schedule": self.schedule.state_dict(),
            "env_states": [self._get_env_state(i) for i in range(self.num_envs)]
            if stateful
            else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore; envs without get_state/set_state restart their episodes (trial continues)."""
        for name, value in state["slots"].items():
            getattr(self.slots, name)[...] = value
        self.load_counters(state)
        self.schedule.load_state_dict(state["schedule"])
        self._policy_needs_reset[...] = state["policy_needs_reset"]
        for i in range(self.num_envs):
            self._set_pending(i, int(self.slots.task_id[i]))
        obs, _ = self.vec.reset(options={"reset_mask": np.ones(self.num_envs, bool)})
        if state["env_states"] is not None:
            for i, env_state in enumerate(state["env_states"]):
                self._set_env_state(i, env_state)
            self._obs = obs_copy(state["obs"])  # the caller's checkpoint stays the caller's
        else:
            # The vector env's own buffer: the next step would overwrite it in place.
            self._obs = obs_copy(obs)
            self.slots.awaiting_autoreset[:] = False
            self._new_episode(np.ones(self.num_envs, bool))


def _info_column(info: dict[str, Any], key: str, n: int) -> np.ndarray:
    """A float32 [n] column from a vector info dict (0 where the env did not report it)."""
    out = np.zeros(n, np.float32)
    if key in info:
        mask = info.get(f"_{key}", np.ones(n, bool))
        out[mask] = np.asarray(info[key], dtype=np.float32)[mask]
    return out


def _set_row(batch: Obs, i: int, value: Any) -> None:
    if isinstance(batch, dict):
        for k in batch:
            batch[k][i] = value[k]
    else:
        batch[i] = value


def _merge(current: Obs, fresh: Obs, mask: np.ndarray) -> Obs:
    """Rows of `fresh` where `mask`, else rows of `current`."""
    out = obs_copy(current)
    idx = np.flatnonzero(mask)
    if isinstance(out, dict):
        assert isinstance(fresh, dict)
        for k in out:
            out[k][idx] = fresh[k][idx]
    else:
        out[idx] = obs_index(fresh, idx)
    return out
