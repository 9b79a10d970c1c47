"""Reward overrides for the `gym` family: `fn(obs, action, next_obs, reward, info, task)`."""

from __future__ import annotations

from typing import Any

import numpy as np

from gmtl_rl.envs.task import Task


def target_velocity(
    obs: Any, action: Any, next_obs: Any, reward: float, info: dict[str, Any], task: Task
) -> float:
    """PEARL cheetah-vel reward for any env reporting `x_velocity`: track `target_velocity`."""
    # oyster half_cheetah_vel.py: -|v - v_goal| - 0.5 * 1e-1 * ||a||^2
    ctrl_cost = 0.05 * float(np.sum(np.square(action)))
    return -abs(float(info["x_velocity"]) - float(task["target_velocity"])) - ctrl_cost
