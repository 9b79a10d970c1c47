"""Four Rooms (Sutton, Precup & Singh 1999; option-critic, Bacon et al. 2017) and MiniGrid's
FourRooms, as task families whose tasks are goals (or layout seeds)."""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from pydantic import Field

from gmtl_rl.core.records import Obs
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import (
    MAX_SEED,
    MAX_TASKS,
    FamilyOptions,
    Task,
    TaskDistribution,
    find_layer,
)

# The layout of the option-critic code (jeanharb/option_critic, fourrooms/fourrooms.py):
# 13x13 with the outer wall, 104 free cells including the 4 hallways.
LAYOUT = """\
wwwwwwwwwwwww
w     w     w
w     w     w
w           w
w     w     w
w     w     w
ww wwww     w
w     www www
w     w     w
w     w     w
w           w
w     w     w
wwwwwwwwwwwww"""
WALLS = np.array([[c == "w" for c in line] for line in LAYOUT.splitlines()])
CELLS = np.argwhere(~WALLS)  # [104, 2] (row, col); the index is the option-critic state number
N_CELLS = len(CELLS)
CELL_INDEX = {(int(r), int(c)): i for i, (r, c) in enumerate(CELLS)}
# Actions as in the option-critic code: 0 up, 1 down, 2 left, 3 right.
DIRECTIONS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])
# East doorway (7, 9): state 62 of the option-critic code, the goal of the first 1000 episodes.
EAST_DOORWAY = CELL_INDEX[(7, 9)]
# Lower-right room without its hallways: rows 8-11, columns 7-11 (20 cells).
LOWER_RIGHT_ROOM = [CELL_INDEX[(r, c)] for r in range(8, 12) for c in range(7, 12)]


def _transition_table() -> np.ndarray:
    """[cells, actions] -> next cell; a move into a wall stays put."""
    table = np.empty((N_CELLS, len(DIRECTIONS)), dtype=np.int64)
    for i, cell in enumerate(CELLS):
        for a, d in enumerate(DIRECTIONS):
            r, c = cell + d
            table[i, a] = i if WALLS[r, c] else CELL_INDEX[(int(r), int(c))]
    return table


TRANSITIONS = _transition_table()


# The single and batched envs share these functions, so they make the same draws and give the
# same numbers by construction.
def start_cell(rng: np.random.Generator, goal: int) -> int:
    """A uniform start over all cells but the goal (option-critic code: init_states)."""
    start = int(rng.integers(N_CELLS - 1))
    return start + (start >= goal)


def slip_offset(rng: np.random.Generator, slip: float) -> int:
    """The draws of one step: 0 (the intended move, probability 1 - slip), else 1, 2 or 3
    (uniformly one of the other three directions: direction (action + offset) % 4)."""
    if rng.random() < slip:
        return int(rng.integers(1, 4))
    return 0


def walk(
    cell: npt.ArrayLike, action: npt.ArrayLike, offset: npt.ArrayLike, goal: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dynamics, over any batch shape: the next cell after moving in the intended direction
    `action` (offset 0) or in (action + offset) % 4 (a slip), a wall leaving it in place;
    whether it is the goal; whether the intended move was taken."""
    intended = np.asarray(action).astype(np.int64)
    slipped = np.asarray(offset, np.int64)
    direction = np.where(slipped == 0, intended, (intended + slipped) % 4)
    after = TRANSITIONS[np.asarray(cell, np.int64), direction]
    return after, after == np.asarray(goal), slipped == 0


def cell_obs(cell: npt.ArrayLike, observation: str) -> np.ndarray:
    """The observation of `cell` over any batch shape (a new array): the int64 index, or a
    float32 one-hot."""
    index = np.array(cell, np.int64)
    if observation == "index":
        return index
    return (np.arange(N_CELLS) == index[..., None]).astype(np.float32)


class FourRoomsEnv(gym.Env[Any, np.int64]):
    """Tabular Four Rooms: reward 1 and termination on reaching the goal cell, 0 otherwise.

    Dynamics follow Sutton, Precup & Singh (1999) §3, quoted in the option-critic code's
    docstring: the intended move succeeds with probability 2/3, otherwise one of the other three
    directions is taken (1/9 each); a move into a wall leaves the agent in place.
    Deviation: the option-critic code itself slips differently (only after a successful intended
    move, and then to a random free neighbour of the new cell); we follow the documented rule.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self,
        goal: int = EAST_DOORWAY,
        slip: float = 1.0 / 3.0,
        observation: Literal["index", "onehot"] = "index",
        horizon: int = 1000,
    ) -> None:
        self.goal = int(goal)
        self.slip = slip
        self.observation_mode = observation
        self.horizon = horizon
        self.action_space = gym.spaces.Discrete(len(DIRECTIONS))
        self.observation_space: gym.spaces.Space[Any] = (
            gym.spaces.Discrete(N_CELLS)
            if observation == "index"
            else gym.spaces.Box(0.0, 1.0, shape=(N_CELLS,), dtype=np.float32)
        )
        self._cell = 0
        self._t = 0

    def _obs(self) -> Any:
        if self.observation_mode == "index":
            return np.int64(self._cell)
        return cell_obs(np.int64(self._cell), self.observation_mode)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self._cell = start_cell(self.np_random, self.goal)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        offset = slip_offset(self.np_random, self.slip)
        cell, reached, intended = walk(np.int64(self._cell), int(action), offset, self.goal)
        self._cell = int(cell)
        self._t += 1
        terminated = bool(reached)
        truncated = not terminated and self._t >= self.horizon
        info = {"success": float(terminated), "intended": bool(intended)}
        return self._obs(), float(terminated), terminated, truncated, info

    # StatefulEnv protocol: lets a checkpoint resume an episode in flight exactly.
    def get_state(self) -> dict[str, Any]:
        return {
            "cell": self._cell,
            "t": self._t,
            "goal": self.goal,
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._cell = int(state["cell"])
        self._t = int(state["t"])
        self.goal = int(state["goal"])
        self.np_random.bit_generator.state = state["rng"]


class BatchedFourRooms(BatchedTaskEnv):
    """N Four Rooms envs as arrays: the same `walk` and `cell_obs` as `FourRoomsEnv`, one call
    for all rows. The start and the slip are random at every reset and step: each row draws
    from its own generator with the single env's calls (`start_cell`, `slip_offset`), in a
    short loop over rows, so the same seeds give the same transitions as the per-env path."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        env: FourRoomsEnv,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        """`env`: a single env of the family, whose settings every row takes."""
        super().__init__(num_envs, task, env.observation_space, env.action_space, autoreset_mode)
        self.slip, self.horizon = env.slip, env.horizon
        self.observation_mode = env.observation_mode
        self.cell = np.zeros(num_envs, np.int64)
        self.t = np.zeros(num_envs, np.int64)
        self.goal = np.full(num_envs, env.goal, np.int64)

    def _apply_tasks(self, rows: np.ndarray) -> None:
        for i in rows:  # FourRooms.set_task
            self.goal[i] = int(self.tasks[i]["goal"])

    def _reset_rows(self, rows: np.ndarray) -> None:
        for i in rows:  # each row draws from its own generator, as a single env would
            self.cell[i] = start_cell(self.rng(int(i)), int(self.goal[i]))
        self.t[rows] = 0

    def _observe(self) -> Obs:
        return cell_obs(self.cell, self.observation_mode)

    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        # The slip: a short loop over the stepping rows, each drawing from its own generator
        # with the single env's calls (a vectorised draw would not give its numbers).
        offset = np.zeros(self.num_envs, np.int64)
        for i in np.flatnonzero(rows):
            offset[i] = slip_offset(self.rng(int(i)), self.slip)
        cell, reached, intended = walk(
            self.cell[rows], actions[rows], offset[rows], self.goal[rows]
        )
        self.cell[rows] = cell
        self.t += rows
        terminated, taken = np.zeros(self.num_envs, bool), np.zeros(self.num_envs, bool)
        terminated[rows], taken[rows] = reached, intended
        truncated = ~terminated & (self.t >= self.horizon)
        columns = {"success": terminated.astype(np.float64), "intended": taken}
        return terminated.astype(np.float64), terminated, truncated, columns

    def get_state(self, i: int) -> dict[str, Any]:
        return {
            "cell": int(self.cell[i]),
            "t": int(self.t[i]),
            "goal": int(self.goal[i]),
            "rng": self.rng(i).bit_generator.state,
        }

    def set_state(self, i: int, state: dict[str, Any]) -> None:
        self.cell[i] = int(state["cell"])
        self.t[i] = int(state["t"])
        self.goal[i] = int(state["goal"])
        self.rng(i).bit_generator.state = state["rng"]


class FourRoomsOptions(FamilyOptions):
    slip: float = Field(1 / 3, ge=0, le=1, description="chance the move goes another way")
    observation: Literal["index", "onehot"] = Field(
        "index", description="Discrete(104) cell index, or a float32 one-hot for MLP agents"
    )
    horizon: int = Field(1000, ge=1, description="episode length (truncation)")
    goal_switch_episode: int = Field(
        1000, ge=0, description="episode after which the goal moves (informational, HRL loop)"
    )
    split_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the order of the test goals")


@register_family
class FourRooms(TaskDistribution):
    """Option-critic Four Rooms.

    Bacon et al. (2017), "Four-Rooms Domain": the goal starts in the east doorway and after 1000
    episodes moves to a random cell of the lower-right room. Here the train task is the doorway
    goal and the test tasks are the 20 lower-right room cells (a seeded order, so
    `test_tasks()[0]` is the paper's single random draw); the evaluator treats the switch as a
    move to a new task, and `goal_switch_episode` tells an HRL loop when to make it.
    """

    name = "four-rooms"
    description = "option-critic Four Rooms: goal in the east doorway, test goals lower-right room"
    Options = FourRoomsOptions
    options: FourRoomsOptions

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        order = np.random.default_rng(self.options.split_seed).permutation(LOWER_RIGHT_ROOM)
        self._train = [self._task(0, EAST_DOORWAY)]
        self._test = [self._task(i, int(cell)) for i, cell in enumerate(order)]

    def _task(self, index: int, cell: int) -> Task:
        return Task.create(self.name, index, goal=cell, goal_rc=CELLS[cell])

    @property
    def horizon(self) -> int | None:
        return self.options.horizon

    @property
    def goal_switch_episode(self) -> int:
        return self.options.goal_switch_episode

    def make_env(self, task: Task | None = None) -> gym.Env:
        o = self.options
        task = task or self._train[0]
        return FourRoomsEnv(int(task["goal"]), o.slip, o.observation, o.horizon)

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedFourRooms:
        """The goal switch needs nothing here: the sampler's `GoalSwitchSchedule` queues the
        moved goal with `set_pending`, as it does for single envs."""
        task = task or self._train[0]
        single = self.make_env(task)
        assert isinstance(single, FourRoomsEnv)
        return BatchedFourRooms(num_envs, task, single, autoreset_mode)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, FourRoomsEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        inner.goal = int(task["goal"])


class SeededLayout(gym.Wrapper[Any, Any, Any, Any]):
    """Every reset draws MiniGrid's layout, goal and start from `layout_seed` (the task); the
    caller's seed then reseeds the env RNG, so seeding still behaves as Gymnasium expects."""

    def __init__(self, env: gym.Env, layout_seed: int) -> None:
        super().__init__(env)
        self.layout_seed = layout_seed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=self.layout_seed, options=options)
        if seed is not None:  # MiniGrid FourRooms dynamics are deterministic: layout unaffected
            inner = self.env.unwrapped
            inner._np_random, inner._np_random_seed = seeding.np_random(seed)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "success": float(terminated)}


class MiniGridFourRoomsOptions(FamilyOptions):
    n_train: int = Field(80, ge=1, le=MAX_TASKS, description="train layout seeds")
    n_test: int = Field(20, ge=1, le=MAX_TASKS, description="held-out test layout seeds")
    horizon: int = Field(100, ge=1, description="MiniGrid max_steps (truncation)")
    split_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed that draws the layout seeds")


@register_family
class MiniGridFourRooms(TaskDistribution):
    """MiniGrid-FourRooms-v0 with flat float32 observations; a task is a layout seed that fixes
    the doorways, goal and start of every episode."""

    name = "minigrid-four-rooms"
    description = "MiniGrid FourRooms (19x19, egocentric 7x7 view flattened); tasks = layout seeds"
    Options = MiniGridFourRoomsOptions
    options: MiniGridFourRoomsOptions

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        rng = np.random.default_rng(o.split_seed)
        seeds = rng.choice(2**31 - 1, size=o.n_train + o.n_test, replace=False)
        self._train = [Task.create(self.name, i, seed=s) for i, s in enumerate(seeds[: o.n_train])]
        self._test = [Task.create(self.name, i, seed=s) for i, s in enumerate(seeds[o.n_train :])]

    @property
    def horizon(self) -> int | None:
        return self.options.horizon

    def make_env(self, task: Task | None = None) -> gym.Env:
        from minigrid.envs import FourRoomsEnv
        from minigrid.wrappers import ImgObsWrapper

        task = task or self._train[0]
        # The class behind MiniGrid-FourRooms-v0, built directly: gym.make's spec would make
        # Gymnasium's checker try to rebuild minigrid wrappers that cannot be recreated.
        env = FourRoomsEnv(max_steps=self.options.horizon)
        # Image (7x7x3 object/colour/state codes) -> flat float32 vector for MLP agents.
        flat = gym.wrappers.FlattenObservation(ImgObsWrapper(env))
        return SeededLayout(gym.wrappers.DtypeObservation(flat, np.float32), int(task["seed"]))

    def set_task(self, env: gym.Env, task: Task) -> None:
        # The sampler wraps envs (NumericalGuard, ...): look for the layer, not the outermost.
        find_layer(env, SeededLayout, self.name).layout_seed = int(task["seed"])
