"""The PEARL point robots (Rakelly et al. 2019, oyster `point_robot.py`): 2-D navigation to a
goal that is the task. The fast workhorses for every test."""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from pydantic import Field

from gmtl_rl.core.records import Obs
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution

MAX_STEP = 0.1  # action bound per axis: s' = s + clip(a, -0.1, 0.1)
OYSTER_GOAL_SEED = 1337  # oyster point_robot.py seeds numpy's global RNG with it for its goals


def move(
    pos: np.ndarray,
    goal: np.ndarray,
    action: np.ndarray,
    sparse: np.ndarray | bool,
    goal_radius: float,
    success_radius: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The dynamics and reward, over any leading batch dims (one env is a batch of one, so the
    single and batched envs give the same numbers): s' = s + clip(a), the dense reward
    -‖s' - g‖, the sparse one (oyster SparsePointEnv: dense + 1 inside the goal radius, else
    0) where `sparse`, success inside `success_radius`."""
    pos = pos + np.clip(np.asarray(action, np.float64), -MAX_STEP, MAX_STEP)
    delta = pos - goal
    dist = np.hypot(delta[..., 0], delta[..., 1])
    dense = -dist
    sparse_reward = np.where(dist <= goal_radius, dense + 1.0, 0.0)
    reward = np.where(sparse, sparse_reward, dense)
    info = {
        "success": (dist <= success_radius).astype(np.float64),
        "distance": dist,
        "dense_reward": dense,
        "sparse_reward": sparse_reward,
    }
    return pos, reward, info


def goal_reward(
    achieved_goal: np.ndarray, desired_goal: np.ndarray, sparse: np.ndarray | bool, radius: float
) -> np.ndarray:
    """GoalEnv reward of the observed (float32) goals, over leading batch dims: relabelled
    rewards (HER) equal the env's own exactly."""
    dense = -np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
    return np.where(sparse, np.where(dense >= -radius, dense + 1.0, 0.0), dense)


class PointRobotEnv(gym.Env[Any, np.ndarray]):
    """Point in the plane moved by bounded displacements; reward -‖s - g‖ after the move.

    With `observe_goal` the observation follows the GoalEnv convention (a Dict with
    `observation`, `achieved_goal`, `desired_goal`) so the goal is visible to goal-conditioned
    agents; without it the goal is hidden, as meta-RL needs.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self,
        goal: np.ndarray,
        horizon: int = 20,
        start: Literal["uniform", "origin"] = "uniform",
        reward: Literal["dense", "sparse"] = "dense",
        goal_radius: float = 0.2,
        success_radius: float = 0.1,
        observe_goal: bool = False,
    ) -> None:
        self.goal = np.asarray(goal, dtype=np.float64).copy()
        self.horizon = horizon
        self.start = start
        self.reward_mode = reward
        self.goal_radius = goal_radius
        self.success_radius = success_radius
        self.observe_goal = observe_goal
        self.action_space = gym.spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
        point = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.observation_space: gym.spaces.Space[Any] = (
            gym.spaces.Dict({"observation": point, "achieved_goal": point, "desired_goal": point})
            if observe_goal
            else point
        )
        self._pos = np.zeros(2)
        self._t = 0

    def _obs(self) -> Any:
        pos = self._pos.astype(np.float32)
        if self.observe_goal:
            return {
                "observation": pos,
                "achieved_goal": pos.copy(),
                "desired_goal": self.goal.astype(np.float32),
            }
        return pos

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if self.start == "uniform":
            self._pos = self.np_random.uniform(-1.0, 1.0, size=2)
        else:
            self._pos = np.zeros(2)
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        sparse = self.reward_mode == "sparse"
        self._pos, reward, columns = move(
            self._pos, self.goal, action, sparse, self.goal_radius, self.success_radius
        )
        self._t += 1
        info = {key: float(value) for key, value in columns.items()}
        return self._obs(), float(reward), False, self._t >= self.horizon, info

    # StatefulEnv protocol: lets a checkpoint resume an episode in flight exactly.
    def get_state(self) -> dict[str, Any]:
        return {
            "pos": self._pos.tolist(),
            "t": self._t,
            "goal": self.goal.tolist(),
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._pos = np.asarray(state["pos"], dtype=np.float64)
        self._t = int(state["t"])
        self.goal = np.asarray(state["goal"], dtype=np.float64)
        self.np_random.bit_generator.state = state["rng"]


class GoalPointRobotEnv(PointRobotEnv):
    """The point robot as a GoalEnv: the goal is in the observation and rewards can be
    recomputed for any goal (HER relabelling)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(observe_goal=True, **kwargs)

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None
    ) -> np.ndarray:
        """Vectorised over leading batch dimensions (GoalEnv convention)."""
        sparse = self.reward_mode == "sparse"
        return goal_reward(achieved_goal, desired_goal, sparse, self.goal_radius)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = super().step(action)
        # Reward from the observed (float32) goals, so relabelled rewards match exactly.
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], info))
        return obs, reward, terminated, truncated, info


class BatchedPointRobot(BatchedTaskEnv):
    """N point robots as arrays: the same `move` as `PointRobotEnv`, one call for all rows."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        env: PointRobotEnv,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        """`env`: a single env of the family, whose settings every row takes."""
        super().__init__(num_envs, task, env.observation_space, env.action_space, autoreset_mode)
        self.horizon, self.start = env.horizon, env.start
        self.goal_radius, self.success_radius = env.goal_radius, env.success_radius
        self.observe_goal = env.observe_goal
        self.pos = np.zeros((num_envs, 2))
        self.t = np.zeros(num_envs, np.int64)
        self.goal = np.tile(env.goal, (num_envs, 1))
        self.sparse = np.full(num_envs, env.reward_mode == "sparse")

    def _apply_tasks(self, rows: np.ndarray) -> None:
        for i in rows:
            task = self.tasks[i]
            self.goal[i] = task.array("goal")
            self.sparse[i] = dict(task.params).get("reward", "dense") == "sparse"

    def _reset_rows(self, rows: np.ndarray) -> None:
        if self.start == "uniform":
            for i in rows:  # each row draws from its own generator, as a single env would
                self.pos[i] = self.rng(int(i)).uniform(-1.0, 1.0, size=2)
        else:
            self.pos[rows] = 0.0
        self.t[rows] = 0

    def _observe(self) -> Obs:
        pos = self.pos.astype(np.float32)
        if self.observe_goal:
            return {
                "observation": pos,
                "achieved_goal": pos.copy(),
                "desired_goal": self.goal.astype(np.float32),
            }
        return pos

    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        pos, reward, info = move(
            self.pos, self.goal, actions, self.sparse, self.goal_radius, self.success_radius
        )
        self.pos = np.where(rows[:, None], pos, self.pos)
        self.t += rows
        if self.observe_goal:  # GoalPointRobotEnv: the reward of the observed float32 goals
            pos32, goal32 = self.pos.astype(np.float32), self.goal.astype(np.float32)
            reward = goal_reward(pos32, goal32, self.sparse, self.goal_radius)
        terminated = np.zeros(self.num_envs, bool)
        return reward, terminated, self.t >= self.horizon, info

    def get_state(self, i: int) -> dict[str, Any]:
        return {
            "pos": self.pos[i].tolist(),
            "t": int(self.t[i]),
            "goal": self.goal[i].tolist(),
            "rng": self.rng(i).bit_generator.state,
        }

    def set_state(self, i: int, state: dict[str, Any]) -> None:
        self.pos[i] = np.asarray(state["pos"], dtype=np.float64)
        self.t[i] = int(state["t"])
        self.goal[i] = np.asarray(state["goal"], dtype=np.float64)
        self.rng(i).bit_generator.state = state["rng"]


class PointRobotOptions(FamilyOptions):
    n_train: int = Field(80, ge=1, le=MAX_TASKS, description="train goals")
    n_test: int = Field(20, ge=1, le=MAX_TASKS, description="held-out test goals")
    horizon: int = Field(20, ge=1, description="episode length (truncation)")
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the goal split; independent of the run seed"
    )
    goal_draw: Literal["seeded", "oyster"] = Field(
        "seeded",
        description=(
            "seeded: goals drawn from split_seed; oyster: the PEARL authors' own goals "
            "(oyster's np.random.seed(1337) draw, first n_train train, the next n_test test; "
            "split_seed unused)"
        ),
    )
    observe_goal: bool = Field(
        False, description="Dict observation with the goal (goal-conditioned) vs hidden (meta-RL)"
    )
    success_radius: float = Field(
        0.1, gt=0, description="success if within this distance (ours; PEARL reports return)"
    )


class _PointFamily(TaskDistribution):
    options: Any

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        goals = self._goals()
        self._train = [
            Task.create(self.name, i, goal=g, **self._task_params("train"))
            for i, g in enumerate(goals["train"])
        ]
        self._test = [
            Task.create(self.name, i, goal=g, **self._task_params("test"))
            for i, g in enumerate(goals["test"])
        ]

    def _goals(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _task_params(self, split: str) -> dict[str, Any]:
        """Task parameters besides the goal (the sparse family's reward mode per split)."""
        del split
        return {}

    def _env_kwargs(self) -> dict[str, Any]:
        o = self.options
        return {
            "horizon": o.horizon,
            "observe_goal": o.observe_goal,
            "success_radius": o.success_radius,
        }

    @property
    def horizon(self) -> int | None:
        return int(self.options.horizon)

    @property
    def observes_task(self) -> bool:
        return bool(
            self.options.observe_goal
        )  # hidden goals (meta-RL) tell tasks apart only by reward

    def make_env(self, task: Task | None = None) -> gym.Env:
        task = task or self._train[0]
        kwargs = self._env_kwargs()
        kwargs["reward"] = dict(task.params).get("reward", kwargs.get("reward", "dense"))
        if kwargs.pop("observe_goal"):
            return GoalPointRobotEnv(goal=task.array("goal"), **kwargs)
        return PointRobotEnv(goal=task.array("goal"), **kwargs)

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedPointRobot:
        task = task or self._train[0]
        single = self.make_env(task)
        assert isinstance(single, PointRobotEnv)
        return BatchedPointRobot(num_envs, task, single, autoreset_mode)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, PointRobotEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        inner.goal = task.array("goal")
        inner.reward_mode = dict(task.params).get("reward", "dense")


@register_family
class PointRobot(_PointFamily):
    name = "point-robot"
    description = "PEARL point robot: goal ~ U[-1,1]^2, start ~ U[-1,1]^2, reward -‖s-g‖"
    Options = PointRobotOptions

    def _goals(self) -> dict[str, np.ndarray]:
        n_train, n_test = self.options.n_train, self.options.n_test
        if self.options.goal_draw == "oyster":
            # oyster PointEnv: np.random.seed(1337), then [uniform(-1, 1), uniform(-1, 1)] per
            # goal, which is this draw row by row; train = the first 80, test = the last 20 of
            # its 100 goals (launch_experiment.py), which is this split at 80/20.
            oyster_rng = np.random.RandomState(OYSTER_GOAL_SEED)
            goals = oyster_rng.uniform(-1.0, 1.0, size=(n_train + n_test, 2))
        else:
            rng = np.random.default_rng(self.options.split_seed)
            goals = rng.uniform(-1.0, 1.0, size=(n_train + n_test, 2))
        return {"train": goals[:n_train], "test": goals[n_train:]}

    def _env_kwargs(self) -> dict[str, Any]:
        return {**super()._env_kwargs(), "start": "uniform"}


class SparsePointRobotOptions(PointRobotOptions):
    goal_radius: float = Field(0.2, gt=0, description="sparse reward radius around the goal")
    reward: Literal["dense", "sparse"] = Field(
        "dense", description="reward of the train tasks (PEARL meta-trains on dense)"
    )
    test_reward: Literal["dense", "sparse"] = Field(
        "sparse", description="reward of the test tasks (PEARL meta-tests on sparse)"
    )
    success_radius: float = Field(0.2, gt=0, description="success inside the goal radius")


@register_family
class SparsePointRobot(_PointFamily):
    name = "sparse-point-robot"
    description = "PEARL sparse point robot: goals on the unit upper half circle, start (0,0)"
    Options = SparsePointRobotOptions

    def _goals(self) -> dict[str, np.ndarray]:
        # oyster: angles linspace(0, pi, n) on the unit circle, shuffled; the first 80 train,
        # the last 20 test.
        n_train, n_test = self.options.n_train, self.options.n_test
        angles = np.linspace(0.0, np.pi, n_train + n_test)
        goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        if self.options.goal_draw == "oyster":
            # oyster SparsePointEnv: np.random.seed(1337), then np.random.shuffle(goals), which
            # permutes rows as RandomState(1337).permutation does.
            order = np.random.RandomState(OYSTER_GOAL_SEED).permutation(len(goals))
        else:
            order = np.random.default_rng(self.options.split_seed).permutation(len(goals))
        return {"train": goals[order[:n_train]], "test": goals[order[n_train:]]}

    def _task_params(self, split: str) -> dict[str, Any]:
        return {"reward": self.options.reward if split == "train" else self.options.test_reward}

    @property
    def defines_sparse_reward(self) -> bool:
        return True

    def sparse_reward(self, dense: np.ndarray) -> np.ndarray:
        """The sparse reward of a dense one (oyster's sparsify_rewards, plus its +1 inside
        the radius): what PEARL's context sees when it meta-trains on dense reward."""
        dense = np.asarray(dense, np.float32)
        return np.where(dense >= -self.options.goal_radius, dense + 1.0, 0.0).astype(np.float32)

    def _env_kwargs(self) -> dict[str, Any]:
        o = self.options
        return {
            **super()._env_kwargs(),
            "start": "origin",
            "reward": o.reward,
            "goal_radius": o.goal_radius,
        }
