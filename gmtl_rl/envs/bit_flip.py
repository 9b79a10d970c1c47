"""HER's bit flipping (Andrychowicz et al. 2017, §3.1 "A motivating example" and Fig. 1):
a sparse-reward goal env whose tasks are target bit vectors.

Two ways to set the goal (`goal_sampling`):
- `split` (default): each task is one target vector from a fixed, seeded train/test split, so
  held-out goals are goals never trained on;
- `uniform`: the paper's task: start and goal both uniform over {0,1}^n, the goal drawn anew
  at every reset from the env's own generator (after the start); tasks carry no goal and only
  index episodes (`n_test` evaluation episodes per repeat).

`info["success"]` is per step (the state equals the goal now). An episode counts as solved
when any of its steps reported success — HER's criterion ("the goal was achieved at an
arbitrary timestep") — because the sampler ORs success over the episode
(`core.rollout.RolloutSampler`, `EpisodeRecord.success`) for training logs and evaluation.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from pydantic import Field, model_validator

from gmtl_rl.core.records import Obs
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution


def flip(bits: np.ndarray, action: Any) -> np.ndarray:
    """The dynamics, over any leading batch dims (one env is a batch of one, so the single and
    batched envs give the same bits): a copy of `bits` (int8 [..., n]) with bit `action` of
    each row flipped. Actions index as numpy does: -n..n-1, anything else is an IndexError."""
    n = bits.shape[-1]
    action = np.asarray(action).astype(np.int64)
    if np.any((action < -n) | (action >= n)):
        raise IndexError(f"bit-flip action {action} out of range for {n} bits")
    flipped = np.arange(n) == (action % n)[..., None]
    return bits ^ flipped.astype(np.int8)


def goal_reward(achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """-1 where any bit differs, 0 where all match, over leading batch dims: the reward of
    `compute_reward` and of every step (single and batched), so relabelled rewards match."""
    differ = np.any(np.asarray(achieved_goal) != np.asarray(desired_goal), axis=-1)
    return np.where(differ, -1.0, 0.0)


def bit_obs(bits: np.ndarray, goal: np.ndarray) -> dict[str, np.ndarray]:
    """The GoalEnv observation of `bits` and `goal` (int8), over leading batch dims."""
    state = bits.astype(np.float32)
    return {
        "observation": state,
        "achieved_goal": state.copy(),
        "desired_goal": goal.astype(np.float32),
    }


GoalSampling = Literal["split", "uniform"]


class BitFlipEnv(gym.Env[Any, np.int64]):
    """State and goal in {0,1}^n; action i flips bit i; reward 0 at the goal, -1 elsewhere.

    GoalEnv convention: Dict observation with `observation` (= the bits), `achieved_goal`
    (= the bits) and `desired_goal`, all float32, and a vectorised `compute_reward`.
    `goal_sampling="uniform"` draws a new goal at every reset (HER §3.1); `"split"` keeps
    `goal` (the task's) until `set_task` changes it.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self,
        goal: np.ndarray,
        horizon: int | None = None,
        terminate_on_success: bool = False,
        goal_sampling: GoalSampling = "split",
    ) -> None:
        if goal_sampling not in ("split", "uniform"):
            raise ValueError(f"goal_sampling must be 'split' or 'uniform', got {goal_sampling!r}")
        self.goal_sampling = goal_sampling
        self.goal = np.asarray(goal, dtype=np.int8).copy()
        self.n_bits = len(self.goal)
        # Episode length n as in SB3's BitFlippingEnv (max_steps defaults to n_bits): exactly
        # enough to flip every bit.
        self.horizon = horizon if horizon is not None else self.n_bits
        # HER §3.1 gives -1 "as long as it is not in the target state" with fixed-length
        # episodes (and the baselines HER code never terminates), so by default success does
        # not end the episode: relabelled transitions then need no recomputed terminal flag.
        # `terminate_on_success` gives SB3's BitFlippingEnv behaviour instead.
        self.terminate_on_success = terminate_on_success
        self.action_space = gym.spaces.Discrete(self.n_bits)
        bits = gym.spaces.Box(0.0, 1.0, shape=(self.n_bits,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(
            {"observation": bits, "achieved_goal": bits, "desired_goal": bits}
        )
        self._state = np.zeros(self.n_bits, dtype=np.int8)
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        return bit_obs(self._state, self.goal)

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None
    ) -> np.ndarray:
        """-1 where any bit differs, 0 where all match; over leading batch dimensions."""
        return goal_reward(achieved_goal, desired_goal)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        # Uniform start (HER §3.1); it may equal the goal with probability 2^-n, as in HER.
        self._state = self.np_random.integers(0, 2, size=self.n_bits, dtype=np.int8)
        if self.goal_sampling == "uniform":  # then a uniform goal, from the same generator
            self.goal = self.np_random.integers(0, 2, size=self.n_bits, dtype=np.int8)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self._state = flip(self._state, int(action))
        self._t += 1
        obs = self._obs()
        # Reward from the observed goals, so relabelled rewards match exactly.
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"]))
        success = reward == 0.0
        terminated = success and self.terminate_on_success
        truncated = not terminated and self._t >= self.horizon
        return obs, reward, terminated, truncated, {"success": float(success)}

    # StatefulEnv protocol: lets a checkpoint resume an episode in flight exactly.
    def get_state(self) -> dict[str, Any]:
        return {
            "bits": self._state.tolist(),
            "t": self._t,
            "goal": self.goal.tolist(),
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._state = np.asarray(state["bits"], dtype=np.int8)
        self._t = int(state["t"])
        self.goal = np.asarray(state["goal"], dtype=np.int8)
        self.np_random.bit_generator.state = state["rng"]


class BatchedBitFlip(BatchedTaskEnv):
    """N bit-flip envs as arrays: the same `flip`, `bit_obs` and `goal_reward` as
    `BitFlipEnv`, one call for all rows."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        env: BitFlipEnv,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        """`env`: a single env of the family, whose settings every row takes."""
        super().__init__(num_envs, task, env.observation_space, env.action_space, autoreset_mode)
        self.n_bits, self.horizon = env.n_bits, env.horizon
        self.terminate_on_success = env.terminate_on_success
        self.goal_sampling = env.goal_sampling
        self.bits = np.zeros((num_envs, env.n_bits), np.int8)
        self.t = np.zeros(num_envs, np.int64)
        self.goal = np.tile(env.goal, (num_envs, 1))

    def _apply_tasks(self, rows: np.ndarray) -> None:
        if self.goal_sampling == "uniform":  # BitFlip.set_task: the goal comes with the reset
            return
        for i in rows:  # BitFlip.set_task
            self.goal[i] = self.tasks[i].array("goal").astype(np.int8)

    def _reset_rows(self, rows: np.ndarray) -> None:
        uniform = self.goal_sampling == "uniform"
        for i in rows:  # each row draws from its own generator, as a single env would
            rng = self.rng(int(i))
            self.bits[i] = rng.integers(0, 2, size=self.n_bits, dtype=np.int8)
            if uniform:  # BitFlipEnv.reset: start, then goal
                self.goal[i] = rng.integers(0, 2, size=self.n_bits, dtype=np.int8)
        self.t[rows] = 0

    def _observe(self) -> Obs:
        return bit_obs(self.bits, self.goal)

    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        self.bits[rows] = flip(self.bits[rows], actions[rows])
        self.t += rows
        obs = bit_obs(self.bits, self.goal)
        reward = goal_reward(obs["achieved_goal"], obs["desired_goal"])
        success = reward == 0.0
        terminated = success & self.terminate_on_success
        truncated = ~terminated & (self.t >= self.horizon)
        return reward, terminated, truncated, {"success": success.astype(np.float64)}

    def get_state(self, i: int) -> dict[str, Any]:
        return {
            "bits": self.bits[i].tolist(),
            "t": int(self.t[i]),
            "goal": self.goal[i].tolist(),
            "rng": self.rng(i).bit_generator.state,
        }

    def set_state(self, i: int, state: dict[str, Any]) -> None:
        self.bits[i] = np.asarray(state["bits"], dtype=np.int8)
        self.t[i] = int(state["t"])
        self.goal[i] = np.asarray(state["goal"], dtype=np.int8)
        self.rng(i).bit_generator.state = state["rng"]


class BitFlipOptions(FamilyOptions):
    n_bits: int = Field(10, ge=1, le=1024, description="bits n (HER tries up to 50)")
    goal_sampling: GoalSampling = Field(
        "split",
        description="split: each task is one goal of a seeded train/test split; uniform: "
        "a fresh uniform goal every episode (HER), tasks only index episodes",
    )
    n_train: int = Field(80, ge=1, le=MAX_TASKS, description="train goals (uniform: tasks)")
    n_test: int = Field(
        20,
        ge=1,
        le=MAX_TASKS,
        description="held-out test goals, disjoint from train (uniform: evaluation episodes "
        "per repeat)",
    )
    horizon: int | None = Field(None, ge=1, description="episode length; default n_bits")
    terminate_on_success: bool = Field(
        False, description="end the episode at the goal (SB3) instead of running on (HER)"
    )
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the goal split; independent of the run seed"
    )

    @model_validator(mode="after")
    def _enough_goals(self) -> BitFlipOptions:
        split = self.goal_sampling == "split"
        if split and self.n_bits < 63 and self.n_train + self.n_test > 2**self.n_bits:
            raise ValueError(
                f"n_train + n_test = {self.n_train + self.n_test} distinct goals do not exist "
                f"with n_bits = {self.n_bits} (at most {2**self.n_bits})"
            )
        return self


@register_family
class BitFlip(TaskDistribution):
    """Bit flipping with a seeded, disjoint train/test split of target vectors, or (option
    `goal_sampling: uniform`) HER's uniform goal per episode."""

    name = "bit-flip"
    description = "HER bit flipping: n bits, flip one per step, reward -1 until state == goal"
    Options = BitFlipOptions
    options: BitFlipOptions

    @property
    def observes_task(self) -> bool:
        return True  # GoalEnv: the goal is in the observation

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        if o.goal_sampling == "uniform":
            # HER's task: every episode draws its own goal, so a task only names the episode
            # slot (the evaluator runs one trial per test task) and the splits are alike.
            self._train = [self._uniform(i, "train") for i in range(o.n_train)]
            self._test = [self._uniform(i, "test") for i in range(o.n_test)]
            return
        goals = self._distinct_goals(o.n_train + o.n_test)
        self._train = [Task.create(self.name, i, goal=g) for i, g in enumerate(goals[: o.n_train])]
        self._test = [Task.create(self.name, i, goal=g) for i, g in enumerate(goals[o.n_train :])]

    def _uniform(self, index: int, split: str) -> Task:
        return Task.create(self.name, index, goal_sampling="uniform", split=split)

    def _distinct_goals(self, n: int) -> list[tuple[int, ...]]:
        # Deviation (goal_sampling: split, the default): HER draws a fresh goal every episode
        # (goal_sampling: uniform); here goals are a fixed seeded split, so held-out goals are
        # goals never trained on.
        rng = np.random.default_rng(self.options.split_seed)
        seen: dict[tuple[int, ...], None] = {}  # insertion-ordered set
        while len(seen) < n:
            for row in rng.integers(0, 2, size=(n, self.options.n_bits)).tolist():
                if len(seen) < n:
                    seen.setdefault(tuple(row))
        return list(seen)

    @property
    def horizon(self) -> int | None:
        return self.options.horizon or self.options.n_bits

    def make_env(self, task: Task | None = None) -> gym.Env:
        task = task or self._train[0]
        o = self.options
        if o.goal_sampling == "uniform":  # the first reset draws the goal
            goal = np.zeros(o.n_bits, np.int8)
            return BitFlipEnv(goal, o.horizon, o.terminate_on_success, "uniform")
        return BitFlipEnv(task.array("goal"), o.horizon, o.terminate_on_success)

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedBitFlip:
        task = task or self._train[0]
        single = self.make_env(task)
        assert isinstance(single, BitFlipEnv)
        return BatchedBitFlip(num_envs, task, single, autoreset_mode)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, BitFlipEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        if inner.goal_sampling == "uniform":  # the goal is drawn at the reset that follows
            return
        inner.goal = task.array("goal").astype(np.int8)
