"""Goal distributions over Gymnasium-Robotics envs: Fetch (HER, Plappert et al. 2018) and the
D4RL mazes (Fu et al. 2020). Tasks are goals; spaces and `compute_reward` are the env's own."""

from __future__ import annotations

import contextlib
import io
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution, find_layer
from gmtl_rl.errors import ConfigError

# gymnasium_robotics 1.4.2 prints a farama_notifications note about Adroit rewards to stderr at
# every import; we use no Adroit env, so it is silenced (import errors still propagate).
with contextlib.redirect_stderr(io.StringIO()):
    import gymnasium_robotics

gym.register_envs(gymnasium_robotics)

Obs = dict[str, np.ndarray]


class _GoalTaskWrapper(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Holds a goal task, switches it at the next reset, and reports `info["success"]` (0/1)."""

    def __init__(self, env: gym.Env[Any, Any], task: Task) -> None:
        # Recorded so that env.spec.make() (used by gymnasium's env checker) rebuilds this env.
        gym.utils.RecordConstructorArgs.__init__(self, task=task)
        super().__init__(env)
        self.task = task
        self._pending: Task | None = None

    def set_task(self, task: Task) -> None:
        """Switch to `task` at the next reset (the episode in flight keeps its goal)."""
        self._pending = task

    def _take_pending(self) -> None:
        if self._pending is not None:
            self.task, self._pending = self._pending, None

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any
    ) -> np.ndarray:
        """The env's own reward, vectorised over a leading batch dimension (GoalEnv)."""
        return self.env.unwrapped.compute_reward(achieved_goal, desired_goal, info)  # type: ignore[attr-defined]

    @staticmethod
    def _success(info: dict[str, Any], key: str) -> dict[str, Any]:
        if key in info:
            info["success"] = float(info[key])
        return info

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        key = "is_success" if "is_success" in info else "success"
        return obs, float(reward), terminated, truncated, self._success(info, key)


class FixedGoalWrapper(_GoalTaskWrapper):
    """Sets a Fetch env's goal to the task's `goal` after each reset.

    Fetch's `step` and `_get_obs` read `env.unwrapped.goal` (fetch_env.py, robot_env.py), so
    overriding it once per reset fixes the goal for the whole episode; the object's start
    position stays the env's own random draw. With `fixed=False` the env keeps its own
    per-reset goal and the task only labels episodes.
    Example: `FixedGoalWrapper(gym.make("FetchReach-v4"), Task.create("r", 0, goal=g))`.
    """

    def __init__(self, env: gym.Env[Any, Any], task: Task, fixed: bool = True) -> None:
        super().__init__(env, task)
        gym.utils.RecordConstructorArgs.__init__(self, task=task, fixed=fixed)
        self.fixed = fixed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        self._take_pending()
        obs, info = self.env.reset(seed=seed, options=options)
        if self.fixed:
            goal = self.task.array("goal")
            self.env.unwrapped.goal = goal.copy()  # type: ignore[attr-defined]
            obs = {**obs, "desired_goal": goal.copy()}
        return obs, info


class GoalCellWrapper(_GoalTaskWrapper):
    """Resets a maze env with the task's `goal_cell` (and a fixed `reset_cell`, if given).

    Uses the maze's own `reset(options={"goal_cell", "reset_cell"})` (maze_v4.py), which puts
    the goal at the cell centre plus the env's uniform position noise; options given to
    `reset` by the caller take precedence.
    """

    def __init__(
        self, env: gym.Env[Any, Any], task: Task, reset_cell: tuple[int, int] | None = None
    ) -> None:
        super().__init__(env, task)
        gym.utils.RecordConstructorArgs.__init__(self, task=task, reset_cell=reset_cell)
        self.reset_cell = reset_cell

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        self._take_pending()
        cells = {"goal_cell": np.array(self.task["goal_cell"]), "reset_cell": self.reset_cell}
        obs, info = self.env.reset(seed=seed, options={**cells, **(options or {})})
        return obs, self._success(info, "success")


class _SplitOptions(FamilyOptions):
    n_train: int = Field(50, ge=1, le=MAX_TASKS, description="train goals")
    n_test: int = Field(20, ge=1, le=MAX_TASKS, description="held-out test goals")
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the goal split; independent of the run seed"
    )
    reward_type: Literal["sparse", "dense"] = Field(
        "sparse", description="the env's reward_type: sparse (its default) or dense"
    )


class FetchOptions(_SplitOptions):
    goals: Literal["fixed", "env"] = Field(
        "fixed",
        description="fixed: the task's goal every episode; env: the env's own per-reset goal "
        "(tasks then only index episodes)",
    )
    horizon: int = Field(50, ge=1, description="episode length (the env's own: 50)")


class _FetchFamily(TaskDistribution):
    """Goals drawn by the env's own `_sample_goal` (seeded resets of a probe env)."""

    Options = FetchOptions
    options: FetchOptions
    env_id: ClassVar[str]

    @property
    def observes_task(self) -> bool:
        return True  # GoalEnv: the goal is in the observation

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        # Every goal is one the env itself would set: reset(seed) then plain resets, train first.
        probe = gym.make(self.env_id)
        probe.reset(seed=o.split_seed)
        goals = [probe.unwrapped.goal.copy()]  # type: ignore[attr-defined]
        for _ in range(o.n_train + o.n_test - 1):
            probe.reset()
            goals.append(probe.unwrapped.goal.copy())  # type: ignore[attr-defined]
        probe.close()
        self._train = [Task.create(self.name, i, goal=g) for i, g in enumerate(goals[: o.n_train])]
        self._test = [Task.create(self.name, i, goal=g) for i, g in enumerate(goals[o.n_train :])]

    @property
    def horizon(self) -> int | None:
        return self.options.horizon

    def make_env(self, task: Task | None = None) -> gym.Env:
        o = self.options
        env = gym.make(self.env_id, max_episode_steps=o.horizon, reward_type=o.reward_type)
        return FixedGoalWrapper(env, task or self._train[0], fixed=o.goals == "fixed")

    def set_task(self, env: gym.Env, task: Task) -> None:
        find_layer(env, FixedGoalWrapper, self.name).set_task(task)


@register_family
class FetchReach(_FetchFamily):
    name = "fetch-reach"
    description = "FetchReach-v4: move the gripper to a goal; reward -[‖grip - g‖ > 0.05]"
    env_id = "FetchReach-v4"


@register_family
class FetchPush(_FetchFamily):
    name = "fetch-push"
    description = "FetchPush-v4: push the block to a goal on the table; random block start"
    env_id = "FetchPush-v4"


@register_family
class FetchPickAndPlace(_FetchFamily):
    name = "fetch-pick-and-place"
    description = "FetchPickAndPlace-v4: carry the block to a goal, half of them in the air"
    env_id = "FetchPickAndPlace-v4"


@register_family
class FetchSlide(_FetchFamily):
    name = "fetch-slide"
    description = "FetchSlide-v4: slide the puck to a goal out of the gripper's reach"
    env_id = "FetchSlide-v4"


class MazeOptions(_SplitOptions):
    maze: Literal["u_maze", "medium", "large"] = Field(
        "u_maze", description="maze map (D4RL): u_maze, medium or large"
    )
    reset_cell: tuple[int, int] | None = Field(
        None, description="fixed start cell (row, col); default: the env's own random free cell"
    )
    position_noise: float | None = Field(
        None,
        ge=0,
        le=0.5,
        description="goal and start jitter, ± this fraction of a cell (env's own: 0.25; "
        "0 = cell centres)",
    )
    terminate_on_success: bool = Field(
        False, description="end the episode at the goal (continuing_task=False)"
    )
    horizon: int | None = Field(None, ge=1, description="episode length; default: the env's own")


class _MazeFamily(TaskDistribution):
    """Goal cells drawn uniformly (with replacement, as the env does) from the free cells."""

    Options = MazeOptions
    options: MazeOptions
    ids: ClassVar[dict[str, str]]

    @property
    def observes_task(self) -> bool:
        return True  # GoalEnv: the goal is in the observation

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        self.env_id = self.ids[o.maze]
        maze_map = gym.spec(self.env_id).kwargs["maze_map"]
        # Free = not a wall (maps.py: 1 is a wall; 0, "g", "r", "c" are open).
        free = [(r, c) for r, row in enumerate(maze_map) for c, v in enumerate(row) if v != 1]
        if o.reset_cell is not None and tuple(o.reset_cell) not in free:
            raise ConfigError(
                f"env.reset_cell: {o.reset_cell} is a wall or outside the maze "
                f"{o.maze}; free cells: {free}"
            )
        # Deviation from a held-out split: with 7 free cells (u_maze) train and test share cells;
        # the held-out part is the env's per-reset jitter and start cell.
        rng = np.random.default_rng(o.split_seed)
        cells = [free[i] for i in rng.integers(len(free), size=o.n_train + o.n_test)]
        self.free_cells = free
        self._train = [
            Task.create(self.name, i, goal_cell=c) for i, c in enumerate(cells[: o.n_train])
        ]
        self._test = [
            Task.create(self.name, i, goal_cell=c) for i, c in enumerate(cells[o.n_train :])
        ]

    @property
    def horizon(self) -> int | None:
        spec = gym.spec(self.env_id)
        return self.options.horizon or spec.max_episode_steps

    def make_env(self, task: Task | None = None) -> gym.Env:
        o = self.options
        # continuing_task=True with reset_target=False keeps one goal for the whole episode:
        # maze_v4.py update_goal only moves the goal when both are True (its docstring says
        # the opposite of reset_target; the code is what runs).
        env = gym.make(
            self.env_id,
            max_episode_steps=self.horizon,
            reward_type=o.reward_type,
            continuing_task=not o.terminate_on_success,
            reset_target=False,
        )
        if o.position_noise is not None:
            # Not a constructor kwarg we can pass: PointMazeEnv forwards **kwargs to PointEnv too.
            env.unwrapped.position_noise_range = o.position_noise  # type: ignore[attr-defined]
        reset_cell = tuple(o.reset_cell) if o.reset_cell is not None else None
        return GoalCellWrapper(env, task or self._train[0], reset_cell)  # type: ignore[arg-type]

    def set_task(self, env: gym.Env, task: Task) -> None:
        find_layer(env, GoalCellWrapper, self.name).set_task(task)


@register_family
class PointMaze(_MazeFamily):
    name = "point-maze"
    description = "PointMaze-v3 (D4RL): 2-D point to a goal cell; sparse reward 1 within 0.45"
    ids: ClassVar[dict[str, str]] = {
        "u_maze": "PointMaze_UMaze-v3",
        "medium": "PointMaze_Medium-v3",
        "large": "PointMaze_Large-v3",
    }


@register_family
class AntMaze(_MazeFamily):
    name = "ant-maze"
    description = "AntMaze-v5 (D4RL): Ant to a goal cell of a 4 m-cell maze; sparse reward"
    ids: ClassVar[dict[str, str]] = {
        "u_maze": "AntMaze_UMaze-v5",
        "medium": "AntMaze_Medium-v5",
        "large": "AntMaze_Large-v5",
    }
