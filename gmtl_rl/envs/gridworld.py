"""VariBAD's gridworld (Zintgraf et al. 2020; lmzintgraf/varibad @57e1795,
environments/navigation/gridworld.py, `GridNavi-v0`): a 5×5 grid, start in the corner (0, 0),
a hidden goal cell that is the task; 15 steps per episode, and in varibad 4 episodes per trial
(config/gridworld/args_grid_varibad.py:11, `max_rollouts_per_task`).

Every detail is the authors' (gridworld.py line numbers):
- observation: the cell's coordinates (x, y) as floats in [0, size - 1] (L29, L96-99), not
  a one-hot; start (0, 0) (L35);
- actions 0 noop, 1 up (y + 1), 2 right (x + 1), 3 down (y - 1), 4 left (x - 1) (L30,
  L101-115); a move into the outer wall leaves the agent where it is (min/max clipping);
- goal uniform over the cells outside the 2×2 start corner: 21 of the 25 (L37-42, L56);
- reward after the move: +1 on the goal, -0.1 elsewhere (L133-137); the episode does not end
  at the goal: the agent may stay there and collect +1 every step;
- the episode ends after `horizon` = 15 steps (L128-131; environments/__init__.py:98-102);
  here that is a truncation (a time limit), never a termination.

Deliberate differences: varibad's BAMDP wrapper (environments/wrappers.py:47-63, 124-125)
appends a done bit to the observation when a trial has several episodes; here agents learn of
episode ends through `observe` (`StepBatch.done`), as RL² does, and the observation is the
cell alone. varibad evaluates on the same goal distribution it trains on, which is the default
here (both splits are all 21 goals); `holdout` makes a seeded, disjoint held-out split.
`info["success"]` (on the goal at this step) is ours: varibad reports return only.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode
from pydantic import Field, ValidationInfo, field_validator

from gmtl_rl.core.records import Obs
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, FamilyOptions, Task, TaskDistribution

# (dx, dy) of the actions noop, up, right, down, left (gridworld.py:30, 106-113).
MOVES = np.array([(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)], np.int64)
ACTION_NAMES = ("noop", "up", "right", "down", "left")
GOAL_REWARD, STEP_REWARD = 1.0, -0.1  # gridworld.py:134-137
START = (0, 0)  # gridworld.py:35


def goal_cells(size: int) -> list[tuple[int, int]]:
    """The possible goals in varibad's order (itertools.product over (x, y)): every cell but
    the 2×2 corner around the start (gridworld.py:38-42)."""
    corner = {(0, 0), (0, 1), (1, 0), (1, 1)}
    return [(x, y) for x in range(size) for y in range(size) if (x, y) not in corner]


def grid_step(
    pos: np.ndarray, goal: np.ndarray, action: npt.ArrayLike, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dynamics over a leading batch dim B (one env is a batch of one, so the single and
    batched envs give the same numbers): the next cells [B, 2] (walls clip), rewards [B] and
    whether each is on its goal [B]. Actions outside 0..4 are an IndexError."""
    a = np.asarray(action).reshape(-1).astype(np.int64)
    if np.any((a < 0) | (a >= len(MOVES))):
        bad = a[(a < 0) | (a >= len(MOVES))][0]
        valid = ", ".join(f"{i} {name}" for i, name in enumerate(ACTION_NAMES))
        raise IndexError(f"gridworld action {bad} out of range (valid: {valid})")
    after = np.clip(pos + MOVES[a], 0, size - 1)
    on_goal = (after == goal).all(axis=-1)
    return after, np.where(on_goal, GOAL_REWARD, STEP_REWARD), on_goal


class GridNaviEnv(gym.Env[np.ndarray, np.int64]):
    """One varibad gridworld episode on a fixed goal (see the module docstring).

    >>> env = GridNaviEnv(goal=(1, 2))
    >>> env.reset(seed=0)[0].tolist()
    [0.0, 0.0]
    >>> [env.step(a)[1] for a in (1, 1, 2, 0)]  # up, up (0, 2), right: the goal, stay
    [-0.1, -0.1, 1.0, 1.0]
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(self, goal: npt.ArrayLike, size: int = 5, horizon: int = 15) -> None:
        self.size, self.horizon = size, horizon
        self.goal = np.asarray(goal, np.int64).copy()
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self.observation_space = gym.spaces.Box(0.0, size - 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.array(START, np.int64)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)  # nothing is drawn: the dynamics are deterministic
        self._pos = np.array(START, np.int64)
        self._t = 0
        return self._pos.astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        after, reward, on_goal = grid_step(self._pos[None], self.goal[None], action, self.size)
        self._pos = after[0]
        self._t += 1
        info = {"success": float(on_goal[0])}
        return self._pos.astype(np.float32), float(reward[0]), False, self._t >= self.horizon, info

    # StatefulEnv protocol: lets a checkpoint resume an episode in flight exactly.
    def get_state(self) -> dict[str, Any]:
        return {"pos": self._pos.tolist(), "t": self._t, "goal": self.goal.tolist()}

    def set_state(self, state: dict[str, Any]) -> None:
        self._pos = np.asarray(state["pos"], np.int64)
        self._t = int(state["t"])
        self.goal = np.asarray(state["goal"], np.int64)


class BatchedGridNavi(BatchedTaskEnv):
    """N gridworlds as arrays: the same `grid_step` as `GridNaviEnv`, one call for all rows."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        env: GridNaviEnv,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        """`env`: a single env of the family, whose settings and goal every row takes."""
        super().__init__(num_envs, task, env.observation_space, env.action_space, autoreset_mode)
        self.size, self.horizon = env.size, env.horizon
        self.pos = np.zeros((num_envs, 2), np.int64)
        self.t = np.zeros(num_envs, np.int64)
        self.goal = np.tile(env.goal, (num_envs, 1))

    def _apply_tasks(self, rows: np.ndarray) -> None:
        self.goal[rows] = [self.tasks[i]["goal"] for i in rows]

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.pos[rows], self.t[rows] = START, 0

    def _observe(self) -> Obs:
        return self.pos.astype(np.float32)

    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        # Rows that do not step (NEXT_STEP's reset rows) take a noop, so their actions are
        # neither applied nor validated.
        actions = np.where(rows, np.asarray(actions).reshape(-1), 0)
        after, reward, on_goal = grid_step(self.pos, self.goal, actions, self.size)
        self.pos = np.where(rows[:, None], after, self.pos)
        self.t += rows
        terminated = np.zeros(self.num_envs, bool)
        return reward, terminated, self.t >= self.horizon, {"success": on_goal.astype(np.float64)}

    def get_state(self, i: int) -> dict[str, Any]:
        return {"pos": self.pos[i].tolist(), "t": int(self.t[i]), "goal": self.goal[i].tolist()}

    def set_state(self, i: int, state: dict[str, Any]) -> None:
        self.pos[i] = np.asarray(state["pos"], np.int64)
        self.t[i] = int(state["t"])
        self.goal[i] = np.asarray(state["goal"], np.int64)


class GridworldOptions(FamilyOptions):
    size: int = Field(5, ge=3, le=10, description="cells per side (varibad num_cells: 5)")
    horizon: int = Field(15, ge=1, le=1000, description="steps per episode (varibad: 15)")
    holdout: int = Field(
        0,
        ge=0,
        description="goals held out of the train split as the test split (seeded); 0: both "
        "splits are all the goals, as varibad",
    )
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the held-out goals; independent of the run seed"
    )

    @field_validator("holdout")
    @classmethod
    def _leaves_a_train_goal(cls, holdout: int, info: ValidationInfo) -> int:
        size = info.data.get("size")
        if size is not None and holdout >= len(goal_cells(size)):
            n = len(goal_cells(size))
            raise ValueError(
                f"{holdout} of the {n} goals of a {size}x{size} grid leaves none to train on; "
                f"valid: 0..{n - 1}"
            )
        return holdout


@register_family
class Gridworld(TaskDistribution):
    """varibad's GridNavi-v0 goals as tasks: `Task.create("gridworld", i, goal=(x, y))`.

    >>> dist = Gridworld(GridworldOptions())
    >>> len(dist.train_tasks()), dist.train_tasks() == dist.test_tasks(), dist.horizon
    (21, True, 15)
    """

    name = "gridworld"
    description = "varibad GridNavi: 5x5 grid, hidden goal (21 cells), +1 on it, -0.1 elsewhere"
    Options = GridworldOptions
    options: GridworldOptions

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        goals = goal_cells(o.size)
        if o.holdout == 0:
            train, test = goals, goals
        else:
            order = np.random.default_rng(o.split_seed).permutation(len(goals))
            test = [goals[i] for i in sorted(order[: o.holdout])]
            train = [goals[i] for i in sorted(order[o.holdout :])]
        self._train = [Task.create(self.name, i, goal=g) for i, g in enumerate(train)]
        self._test = [Task.create(self.name, i, goal=g) for i, g in enumerate(test)]

    @property
    def horizon(self) -> int:
        return self.options.horizon

    def make_env(self, task: Task | None = None) -> gym.Env:
        task = task or self._train[0]
        return GridNaviEnv(task["goal"], self.options.size, self.options.horizon)

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedGridNavi:
        task = task or self._train[0]
        single = self.make_env(task)
        assert isinstance(single, GridNaviEnv)
        return BatchedGridNavi(num_envs, task, single, autoreset_mode)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, GridNaviEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        inner.goal = np.asarray(task["goal"], np.int64)
