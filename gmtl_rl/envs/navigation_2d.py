"""MAML's 2-D navigation (Finn et al. 2017, §5.2), as the authors' code defines it
(cbfinn/maml_rl @9c8e2eb, maml_examples/point_env_randgoal.py; line numbers below are that
file's unless another is named):

- a point starts at (0, 0) every episode (L33) and observes its position (L34, L44);
- the task is a goal g ~ U[-0.5, 0.5]² (L19-20, L28);
- an action is a displacement s' = s + a (L38), a in [-0.1, 0.1]² (L16-17): rllab's
  `normalize` wrapper (rllab/envs/normalized_env.py:79-83, used by maml_trpo_point.py:32)
  clips it to those bounds;
- the reward after the move is -‖s' - g‖, the plain Euclidean distance (L39-42). The paper's
  text says the negative *squared* distance; the code that produced its numbers uses the
  plain one, and so does this family;
- the episode terminates when |x - g_x| < 0.01 and |y - g_y| < 0.01 (L43), and is truncated
  after 100 steps (`max_path_length`, maml_trpo_point.py:21).

Deliberate differences: the action space is [-0.1, 0.1]² itself, not rllab's normalised
[-1, 1]² that `normalize` rescales (an agent that squashes its output into its action space
takes the same steps); MAML samples fresh goals every meta-iteration, here the train goals are
a fixed seeded split of `n_train` goals (DESIGN: tasks are data, saved with every run); the
test split is 40 goals, as MAML's evaluation (maml_examples/test_maml_point.py:26-28), either
seeded like the train split or, with `test_goals: maml`, exactly the authors' 40
(`np.random.seed(1); np.random.uniform(-0.5, 0.5, (40, 2))`). `info["success"]` (the goal
reached: the termination rule) and `info["distance"]` are ours: MAML reports return only.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode
from pydantic import Field

from gmtl_rl.core.records import Obs
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution

MAX_STEP = 0.1  # action bound per axis (point_env_randgoal.py:16-17)
GOAL_BOUND = 0.5  # goals ~ U[-0.5, 0.5]² (point_env_randgoal.py:19-20, 28)
DONE_TOLERANCE = 0.01  # done when |dx| < 0.01 and |dy| < 0.01 (point_env_randgoal.py:43)
MAML_TEST_SEED = 1  # test_maml_point.py:27: np.random.seed(1), then 40 goals


def navigate(
    pos: np.ndarray, goal: np.ndarray, action: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The dynamics over a leading batch dim B (one env is a batch of one, so the single and
    batched envs give the same numbers): the next positions [B, 2], the authors' reward
    -(dx² + dy²)^0.5 [B] (their expression, so the values match theirs bit for bit), whether
    the goal is reached [B], and the distance [B]."""
    step = np.clip(np.asarray(action, np.float64).reshape(pos.shape), -MAX_STEP, MAX_STEP)
    after = pos + step
    dx, dy = after[:, 0] - goal[:, 0], after[:, 1] - goal[:, 1]
    distance = (dx**2 + dy**2) ** 0.5
    reached = (np.abs(dx) < DONE_TOLERANCE) & (np.abs(dy) < DONE_TOLERANCE)
    return after, -distance, reached, distance


class Navigation2DEnv(gym.Env[np.ndarray, np.ndarray]):
    """One episode of MAML's point navigation to a hidden goal (see the module docstring).

    >>> env = Navigation2DEnv(goal=(0.1, 0.0))
    >>> _ = env.reset(seed=0)
    >>> _, reward, terminated, truncated, _ = env.step(np.array([0.5, 0.0]))  # clipped to 0.1
    >>> reward, terminated, truncated
    (-0.0, True, False)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(self, goal: npt.ArrayLike, horizon: int = 100) -> None:
        self.goal = np.asarray(goal, np.float64).copy()
        self.horizon = horizon
        self.action_space = gym.spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
        # Unbounded, as the authors' (L12-13): nothing stops the point walking away.
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)  # nothing is drawn: the start and the dynamics are fixed
        self._pos = np.zeros(2)
        self._t = 0
        return self._pos.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        after, reward, reached, distance = navigate(self._pos[None], self.goal[None], action)
        self._pos = after[0]
        self._t += 1
        info = {"success": float(reached[0]), "distance": float(distance[0])}
        truncated = self._t >= self.horizon
        return self._pos.astype(np.float32), float(reward[0]), bool(reached[0]), truncated, info

    # StatefulEnv protocol: lets a checkpoint resume an episode in flight exactly.
    def get_state(self) -> dict[str, Any]:
        return {"pos": self._pos.tolist(), "t": self._t, "goal": self.goal.tolist()}

    def set_state(self, state: dict[str, Any]) -> None:
        self._pos = np.asarray(state["pos"], np.float64)
        self._t = int(state["t"])
        self.goal = np.asarray(state["goal"], np.float64)


class BatchedNavigation2D(BatchedTaskEnv):
    """N 2-D navigation envs as arrays: the same `navigate` as `Navigation2DEnv`, one call for
    all rows."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        env: Navigation2DEnv,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        """`env`: a single env of the family, whose settings and goal every row takes."""
        super().__init__(num_envs, task, env.observation_space, env.action_space, autoreset_mode)
        self.horizon = env.horizon
        self.pos = np.zeros((num_envs, 2))
        self.t = np.zeros(num_envs, np.int64)
        self.goal = np.tile(env.goal, (num_envs, 1))

    def _apply_tasks(self, rows: np.ndarray) -> None:
        self.goal[rows] = [self.tasks[i]["goal"] for i in rows]

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.pos[rows], self.t[rows] = 0.0, 0

    def _observe(self) -> Obs:
        return self.pos.astype(np.float32)

    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        after, reward, reached, distance = navigate(self.pos, self.goal, actions)
        self.pos = np.where(rows[:, None], after, self.pos)
        self.t += rows
        info = {"success": reached.astype(np.float64), "distance": distance}
        return reward, reached, self.t >= self.horizon, info

    def get_state(self, i: int) -> dict[str, Any]:
        return {"pos": self.pos[i].tolist(), "t": int(self.t[i]), "goal": self.goal[i].tolist()}

    def set_state(self, i: int, state: dict[str, Any]) -> None:
        self.pos[i] = np.asarray(state["pos"], np.float64)
        self.t[i] = int(state["t"])
        self.goal[i] = np.asarray(state["goal"], np.float64)


class Navigation2DOptions(FamilyOptions):
    n_train: int = Field(
        1000, ge=1, le=MAX_TASKS, description="train goals (MAML draws fresh ones instead)"
    )
    n_test: int = Field(40, ge=1, le=MAX_TASKS, description="test goals (MAML evaluates 40)")
    test_goals: Literal["seeded", "maml"] = Field(
        "seeded",
        description="seeded: drawn from split_seed like the train goals; maml: the authors' "
        "draw, np.random.seed(1) then uniform(-0.5, 0.5, (n_test, 2)) (their 40 at n_test 40)",
    )
    horizon: int = Field(100, ge=1, le=100_000, description="steps per episode (MAML: 100)")
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the goal split; independent of the run seed"
    )


@register_family
class Navigation2D(TaskDistribution):
    """MAML's 2-D navigation goals as tasks: `Task.create("2d-navigation", i, goal=(x, y))`.
    Train and test goals come from two independent streams of `split_seed` (so the test goals
    do not move when n_train does); continuous draws, so the splits are disjoint with
    probability 1 (a test checks it).

    >>> dist = Navigation2D(Navigation2DOptions(test_goals="maml"))
    >>> [round(v, 4) for v in dist.test_tasks()[0]["goal"]]  # the authors' first test goal
    [-0.083, 0.2203]
    """

    name = "2d-navigation"
    description = "MAML 2-D navigation: goal ~ U[-0.5,0.5]^2, start (0,0), reward -‖s-g‖, 100 steps"
    Options = Navigation2DOptions
    options: Navigation2DOptions

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        train_seq, test_seq = np.random.SeedSequence(o.split_seed).spawn(2)
        low, high = -GOAL_BOUND, GOAL_BOUND
        train = np.random.default_rng(train_seq).uniform(low, high, size=(o.n_train, 2))
        if o.test_goals == "maml":
            # The legacy generator of the authors' np.random.seed(1) (never the global one).
            legacy = np.random.RandomState(MAML_TEST_SEED)
            test = legacy.uniform(low, high, size=(o.n_test, 2))
        else:
            test = np.random.default_rng(test_seq).uniform(low, high, size=(o.n_test, 2))
        self._train = [Task.create(self.name, i, goal=g) for i, g in enumerate(train)]
        self._test = [Task.create(self.name, i, goal=g) for i, g in enumerate(test)]

    @property
    def horizon(self) -> int:
        return self.options.horizon

    def make_env(self, task: Task | None = None) -> gym.Env:
        task = task or self._train[0]
        return Navigation2DEnv(task.array("goal"), self.options.horizon)

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedNavigation2D:
        task = task or self._train[0]
        single = self.make_env(task)
        assert isinstance(single, Navigation2DEnv)
        return BatchedNavigation2D(num_envs, task, single, autoreset_mode)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, Navigation2DEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        inner.goal = task.array("goal")
