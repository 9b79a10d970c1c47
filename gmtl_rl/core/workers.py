"""Envs stepped in worker processes that survive their envs: a worker that raises, dies or
hangs past a timeout is reported, replaced by a fresh one, and counted.

`SubprocessVectorEnv` serves `RolloutSampler` (sampler.backend: subprocess) with the same
calls it makes on a `SyncVectorEnv` with autoreset disabled: `reset(seed=..., options=
{"reset_mask": mask})`, `step(actions)`, plus per-env commands for the task wrapper
(`set_pending`, `get_state`, `set_state`). When env i fails during a step, that step returns
env i's last observation with reward 0, `truncated=True` and `info["worker_restart"] = 1.0`
(the episode is cut there, as a time limit would), and a new worker with a fresh env takes its
place; the sampler then starts a new episode in it as after any episode end. More than
`max_restarts` restarts in a run raise `EnvWorkerFailure`: a persistently broken env stops
training (the last checkpoint stays whole) instead of looping.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

from gmtl_rl.errors import EnvWorkerFailure

EnvFactory = Callable[[], gym.Env]


def _worker(conn: Connection, factory: EnvFactory) -> None:
    """The loop of one worker process: run commands on its env, reply ("ok"|"error", value)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    env: Any = factory()
    while True:
        try:
            command, arg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        try:
            if command == "step":
                result: Any = env.step(arg)
            elif command == "reset":
                result = env.reset(seed=arg)
            elif command == "set_pending":
                env.pending = arg
                result = None
            elif command == "has_state":
                result = hasattr(env.unwrapped, "get_state")
            elif command == "get_state":
                result = env.unwrapped.get_state()
            elif command == "set_state":
                result = env.unwrapped.set_state(arg)
            elif command == "spaces":
                result = (env.observation_space, env.action_space)
            elif command == "close":
                env.close()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown worker command {command!r}")
            conn.send(("ok", result))
        except Exception:  # reported to the parent, which restarts this worker
            conn.send(("error", traceback.format_exc(limit=4)))


class _WorkerFailed(Exception):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index, self.reason = index, reason


class SubprocessVectorEnv:
    """N envs, one per worker process, with restart on failure (see the module docstring)."""

    def __init__(
        self,
        factories: Sequence[EnvFactory],
        timeout_s: float = 60.0,
        max_restarts: int = 3,
    ) -> None:
        self.factories = list(factories)
        self.num_envs = len(self.factories)
        self.timeout_s = timeout_s
        self.max_restarts = max_restarts
        self.restarts = 0
        self._ctx = mp.get_context("fork")  # factories are closures; fork needs no pickling
        self._procs: list[Any] = [None] * self.num_envs
        self._conns: list[Connection | None] = [None] * self.num_envs
        self._seeds: list[int | None] = [None] * self.num_envs
        self._last_obs: list[Any] = [None] * self.num_envs
        for i in range(self.num_envs):
            self._start_worker(i)
        spaces = self._call(0, "spaces", None)
        self.single_observation_space, self.single_action_space = spaces

    # -- workers ------------------------------------------------------------------------------
    def _start_worker(self, i: int) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker, args=(child, self.factories[i]), daemon=True)
        proc.start()
        child.close()
        self._procs[i], self._conns[i] = proc, parent

    def _kill_worker(self, i: int) -> None:
        proc, conn = self._procs[i], self._conns[i]
        if conn is not None:
            conn.close()
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(timeout=5)

    def _send(self, i: int, command: str, arg: Any) -> None:
        conn = self._conns[i]
        assert conn is not None
        try:
            conn.send((command, arg))
        except (BrokenPipeError, OSError) as err:
            raise _WorkerFailed(i, f"worker died ({err})") from None

    def _receive(self, i: int) -> Any:
        conn = self._conns[i]
        assert conn is not None
        try:
            ready = conn.poll(self.timeout_s)
            if not ready:
                raise _WorkerFailed(i, f"no reply within {self.timeout_s:g} s")
            status, value = conn.recv()
        except (EOFError, OSError):
            code = self._procs[i].exitcode if self._procs[i] is not None else None
            raise _WorkerFailed(i, f"worker died (exit code {code})") from None
        if status == "error":
            last = value.strip().splitlines()[-1]
            raise _WorkerFailed(i, f"env raised {last}")
        return value

    def _call(self, i: int, command: str, arg: Any) -> Any:
        self._send(i, command, arg)
        return self._receive(i)

    def _restart(self, failure: _WorkerFailed) -> Any:
        """Replace worker i with a fresh env, reset; returns its first observation."""
        self.restarts += 1
        if self.restarts > self.max_restarts:
            self.close()
            raise EnvWorkerFailure(
                f"env worker {failure.index} failed: {failure.reason}; {self.restarts - 1} "
                f"restarts already (limit sampler.max_restarts={self.max_restarts})"
            )
        self._kill_worker(failure.index)
        self._start_worker(failure.index)
        seed = self._seeds[failure.index]
        # A distinct, deterministic seed per restart: the same failures replay the same way.
        new_seed = None if seed is None else seed + 1_000_003 * self.restarts
        obs, _ = self._call(failure.index, "reset", new_seed)
        return obs

    # -- the vector env calls RolloutSampler makes --------------------------------------------
    def reset(
        self, seed: Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        mask = (options or {}).get("reset_mask", np.ones(self.num_envs, bool))
        indices = [int(i) for i in np.flatnonzero(mask)]
        if seed is not None:
            self._seeds = [int(s) for s in seed]
        for i in indices:
            self._send(i, "reset", None if seed is None else int(seed[i]))
        for i in indices:
            try:
                self._last_obs[i], _ = self._receive(i)
            except _WorkerFailed as failure:  # a reset that fails: restart and reset again
                self._last_obs[i] = self._restart(failure)
        return _stack(self._last_obs), {}

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        n = self.num_envs
        rewards = np.zeros(n, np.float64)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        failed: list[_WorkerFailed] = []
        sent = []
        for i in range(n):
            try:
                self._send(i, "step", actions[i])
                sent.append(i)
            except _WorkerFailed as failure:
                failed.append(failure)
        for i in sent:
            try:
                obs, reward, term, trunc, info = self._receive(i)
            except _WorkerFailed as failure:
                failed.append(failure)
                continue
            self._last_obs[i] = obs
            rewards[i], terminated[i], truncated[i], infos[i] = reward, term, trunc, info
        for lost in failed:
            # The episode ends here with the last observation; the next reset starts anew.
            self._restart(lost)
            truncated[lost.index] = True
            infos[lost.index] = {"worker_restart": 1.0}
        return _stack(self._last_obs), rewards, terminated, truncated, _vector_info(infos)

    def set_pending(self, i: int, pending: Any) -> None:
        try:
            self._call(i, "set_pending", pending)
        except _WorkerFailed as failure:
            self._restart(failure)
            self._call(i, "set_pending", pending)

    def has_state(self) -> bool:
        return all(self._call(i, "has_state", None) for i in range(self.num_envs))

    def get_state(self, i: int) -> Any:
        return self._call(i, "get_state", None)

    def set_state(self, i: int, state: Any) -> None:
        self._call(i, "set_state", state)

    def close(self) -> None:
        for i in range(self.num_envs):
            conn = self._conns[i]
            if conn is None:
                continue
            try:
                conn.send(("close", None))
                conn.poll(5)
            except (BrokenPipeError, OSError):
                pass
            self._kill_worker(i)
            self._conns[i] = None


def _stack(items: list[Any]) -> Any:
    if isinstance(items[0], dict):
        return {k: np.stack([np.asarray(x[k]) for x in items]) for k in items[0]}
    return np.stack([np.asarray(x) for x in items])


def _vector_info(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Gymnasium's vector info layout for numeric keys: key -> [N] values, _key -> [N] mask."""
    out: dict[str, Any] = {}
    n = len(infos)
    for i, info in enumerate(infos):
        for key, value in info.items():
            if not isinstance(value, bool | int | float | np.number):
                continue
            if key not in out:
                out[key], out[f"_{key}"] = np.zeros(n, np.float64), np.zeros(n, bool)
            out[key][i], out[f"_{key}"][i] = float(value), True
    return out
