"""Catch simulator blow-ups before they reach replay: non-finite observations or rewards, and
MuJoCo's bad-acceleration warning (`mjWARN_BADQACC`: MuJoCo then resets the state itself, so
the observation is finite but belongs to no trajectory).

On such a step the episode is truncated there: the step returns the last good observation,
reward 0, `truncated=True` and `info["numerical_instability"] = 1.0`, which the rollout
sampler counts (`env_instabilities` in metrics.csv). So nothing non-finite is ever stored, and
the bootstrapped target of that one transition is Q(s_prev) instead of garbage.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

_BADQACC: int | None
try:  # mujoco is a dependency, but the guard also serves non-MuJoCo envs
    import mujoco

    _BADQACC = int(mujoco.mjtWarning.mjWARN_BADQACC)
except ImportError:  # pragma: no cover
    _BADQACC = None


def _finite(value: Any) -> bool:
    # Fast paths first: this runs twice per env step (obs and reward).
    if type(value) is float:
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    arr = np.asarray(value)
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


def _copy(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: np.array(v, copy=True) for k, v in obs.items()}
    return np.array(obs, copy=True)


class NumericalGuard(gym.Wrapper[Any, Any, Any, Any]):
    """Truncates the episode at a numerically broken step (see the module docstring)."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self._last_obs: Any = None
        self._warnings = 0
        self._data: Any = None  # the MuJoCo data of the episode (found once per reset)

    def _mujoco_warnings(self) -> int:
        warning = getattr(self._data, "warning", None)
        if warning is None or _BADQACC is None:
            return 0
        return int(warning[_BADQACC].number)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        # A task switch may load a new model (Meta-World) and with it new data: look it up here.
        self._data = getattr(self.env.unwrapped, "data", None)
        self._last_obs = _copy(obs)
        self._warnings = self._mujoco_warnings()
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        warnings = self._mujoco_warnings()
        broken = warnings > self._warnings or not _finite(obs) or not _finite(reward)
        self._warnings = warnings
        if broken and self._last_obs is not None:
            info = {**info, "numerical_instability": 1.0}
            return _copy(self._last_obs), 0.0, False, True, info
        self._last_obs = _copy(obs)
        return obs, reward, terminated, truncated, info
