"""Task and goal distributions, their envs, and the family registry."""

from gmtl_rl.envs import bandit as _bandit  # noqa: F401  (registers families)
from gmtl_rl.envs import bit_flip as _bit_flip  # noqa: F401
from gmtl_rl.envs import four_rooms as _four_rooms  # noqa: F401
from gmtl_rl.envs import gridworld as _gridworld  # noqa: F401
from gmtl_rl.envs import metaworld_families as _metaworld_families  # noqa: F401
from gmtl_rl.envs import navigation_2d as _navigation_2d  # noqa: F401
from gmtl_rl.envs import pearl_mujoco as _pearl_mujoco  # noqa: F401
from gmtl_rl.envs import plugin as _plugin  # noqa: F401
from gmtl_rl.envs import point_robot as _point_robot  # noqa: F401
from gmtl_rl.envs import robotics as _robotics  # noqa: F401
from gmtl_rl.envs import tabular_mdp as _tabular_mdp  # noqa: F401
from gmtl_rl.envs.registry import build, families, family, make, register_family
from gmtl_rl.envs.task import (
    FamilyOptions,
    Task,
    TaskDistribution,
    is_goal_env,
    tasks_from_json,
    tasks_to_json,
)

__all__ = [
    "FamilyOptions",
    "Task",
    "TaskDistribution",
    "build",
    "families",
    "family",
    "is_goal_env",
    "make",
    "register_family",
    "tasks_from_json",
    "tasks_to_json",
]
