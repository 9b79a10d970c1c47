"""Envs stepped by Ray actors (`sampler.backend: ray`): the subprocess backend's protocol and
failure handling, with Ray actors instead of forked processes, so the workers may sit on other
machines of a Ray cluster.

`RayVectorEnv` is a `SubprocessVectorEnv` whose transport is Ray: the sampler makes the same
calls (`reset` with a mask, `step`, `set_pending`, `get_state`/`set_state` for exact resume),
and a worker that raises, dies or is silent past `timeout_s` is replaced by a fresh actor, its
episode cut there, and counted in `restarts`, up to `max_restarts`.

What crosses the wire: actions to the workers and transitions back, once per step, as with
the subprocess backend. The policy acts in the sampler's process (PEARL's context, RL²'s
hidden state and option-critic's options are per-env state that lives with the agent), so
there are no policy weights to ship to workers; the env factory (task distribution and first
task) is what every worker needs, and it is put in Ray's object store once (`ray.put`) and
shared by all workers and their restarts.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Sequence
from typing import Any

from gmtl_rl.core.workers import EnvFactory, SubprocessVectorEnv, _WorkerFailed
from gmtl_rl.ray_cluster import RaySession, connect, import_ray

RAY_HINT = " (sampler.backend: ray; or use sync or subprocess)"
# Starting an actor (a new Ray worker process, or a node of a cluster that scales up) is not a
# hang: it gets this long, apart from worker_timeout_s which bounds each env call.
ACTOR_START_TIMEOUT_S = 300.0


class EnvHost:
    """The body of one Ray actor: one env, the commands of a subprocess worker."""

    def __init__(self, factory: EnvFactory) -> None:
        self.env: Any = factory()

    def call(self, command: str, arg: Any) -> tuple[str, Any]:
        """("ok", result) or ("error", traceback): an env's exception is the sampler's to
        handle (restart), not an actor failure for Ray to log."""
        try:
            return "ok", self._run(command, arg)
        except Exception:
            return "error", traceback.format_exc(limit=4)

    def _run(self, command: str, arg: Any) -> Any:
        env = self.env
        if command == "step":
            return env.step(arg)
        if command == "reset":
            return env.reset(seed=arg)
        if command == "set_pending":
            env.pending = arg
            return None
        if command == "has_state":
            return hasattr(env.unwrapped, "get_state")
        if command == "get_state":
            return env.unwrapped.get_state()
        if command == "set_state":
            return env.unwrapped.set_state(arg)
        if command == "spaces":
            return env.observation_space, env.action_space
        if command == "close":
            return env.close()
        raise ValueError(f"unknown worker command {command!r}")


class RayVectorEnv(SubprocessVectorEnv):
    """N envs, one per Ray actor, with restart on failure (see the module docstring).

    Joins the Ray this process already runs, else connects to $RAY_ADDRESS, else starts a
    local Ray (shut down again by `close`). Actors reserve no CPU and are spread over the
    cluster's nodes: an env worker mostly waits for the next action.
    """

    def __init__(
        self,
        factories: Sequence[EnvFactory],
        timeout_s: float = 60.0,
        max_restarts: int = 3,
    ) -> None:
        self._session: RaySession = connect(hint=RAY_HINT)
        ray = import_ray()
        self._ray = ray
        self._actor_class = ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(EnvHost)
        # One object-store copy per distinct factory (the sampler passes one for all envs).
        refs: dict[int, Any] = {}
        self._factory_refs = [refs.setdefault(id(f), ray.put(f)) for f in factories]
        self._actors: list[Any] = [None] * len(factories)
        self._in_flight: list[Any] = [None] * len(factories)
        self._starting: list[Any] = [None] * len(factories)  # readiness of new actors
        try:
            super().__init__(factories, timeout_s, max_restarts)
        except BaseException:
            self.close()
            raise

    # -- the transport: Ray actors instead of processes and pipes -------------------------------
    def _start_worker(self, i: int) -> None:
        # Not awaited here: all actors start together; the first reply waits for readiness.
        self._actors[i] = self._actor_class.remote(self._factory_refs[i])
        self._starting[i] = self._actors[i].__ray_ready__.remote()

    def _kill_worker(self, i: int) -> None:
        actor, self._actors[i] = self._actors[i], None
        self._in_flight[i] = None
        if actor is not None:
            self._ray.kill(actor, no_restart=True)

    def _send(self, i: int, command: str, arg: Any) -> None:
        self._in_flight[i] = self._actors[i].call.remote(command, arg)

    def _receive(self, i: int) -> Any:
        from ray.exceptions import GetTimeoutError, RayActorError, RayError

        ref, self._in_flight[i] = self._in_flight[i], None
        ready, self._starting[i] = self._starting[i], None
        try:
            if ready is not None:
                self._ray.get(ready, timeout=ACTOR_START_TIMEOUT_S)
            status, value = self._ray.get(ref, timeout=self.timeout_s)
        except GetTimeoutError:
            waited = self.timeout_s if ready is None else f"start + {self.timeout_s:g}"
            raise _WorkerFailed(i, f"no reply within {waited} s") from None
        except RayActorError as err:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # Ray colours its messages
            reason = text.splitlines()[0] if text else type(err).__name__
            raise _WorkerFailed(i, f"worker died ({reason})") from None
        except RayError as err:  # e.g. a result that cannot be serialised
            raise _WorkerFailed(i, f"{type(err).__name__}") from None
        if status == "error":
            raise _WorkerFailed(i, f"env raised {value.strip().splitlines()[-1]}")
        return value

    def close(self) -> None:
        for i, actor in enumerate(getattr(self, "_actors", [])):
            if actor is None:
                continue
            try:  # let the env release its resources (MuJoCo renderers, files)
                self._send(i, "close", None)
                self._ray.get(self._in_flight[i], timeout=5)
            except Exception:
                pass
            self._kill_worker(i)
        if getattr(self, "_session", None) is not None:
            self._session.close()
