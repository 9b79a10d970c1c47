"""HER's bit flipping (Andrychowicz et al. 2017, §3.1 "A motivating example" and Fig. 1):
a sparse-reward goal env whose tasks are target bit vectors."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import Field, model_validator

from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution


class BitFlipEnv(gym.Env[Any, np.int64]):
    """State and goal in {0,1}^n; action i flips bit i; reward 0 at the goal, -1 elsewhere.

    GoalEnv convention: Dict observation with `observation` (= the bits), `achieved_goal`
    (= the bits) and `desired_goal`, all float32, and a vectorised `compute_reward`.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self, goal: np.ndarray, horizon: int | None = None, terminate_on_success: bool = False
    ) -> None:
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
        state = self._state.astype(np.float32)
        return {
            "observation": state,
            "achieved_goal": state.copy(),
            "desired_goal": self.goal.astype(np.float32),
        }

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None
    ) -> np.ndarray:
        """-1 where any bit differs, 0 where all match; over leading batch dimensions."""
        differ = np.any(np.asarray(achieved_goal) != np.asarray(desired_goal), axis=-1)
        return np.where(differ, -1.0, 0.0)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        # Uniform start (HER §3.1); it may equal the goal with probability 2^-n, as in HER.
        self._state = self.np_random.integers(0, 2, size=self.n_bits, dtype=np.int8)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self._state[int(action)] ^= 1
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


class BitFlipOptions(FamilyOptions):
    n_bits: int = Field(10, ge=1, le=1024, description="bits n (HER tries up to 50)")
    n_train: int = Field(80, ge=1, le=MAX_TASKS, description="train goals")
    n_test: int = Field(
        20, ge=1, le=MAX_TASKS, description="held-out test goals (disjoint from train)"
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
        if self.n_bits < 63 and self.n_train + self.n_test > 2**self.n_bits:
            raise ValueError(
                f"n_train + n_test = {self.n_train + self.n_test} distinct goals do not exist "
                f"with n_bits = {self.n_bits} (at most {2**self.n_bits})"
            )
        return self


@register_family
class BitFlip(TaskDistribution):
    """Bit flipping with a seeded, disjoint train/test split of target vectors."""

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
        goals = self._distinct_goals(o.n_train + o.n_test)
        self._train = [Task.create(self.name, i, goal=g) for i, g in enumerate(goals[: o.n_train])]
        self._test = [Task.create(self.name, i, goal=g) for i, g in enumerate(goals[o.n_train :])]

    def _distinct_goals(self, n: int) -> list[tuple[int, ...]]:
        # Deviation: HER draws a fresh goal every episode; here goals are a fixed seeded split.
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
        return BitFlipEnv(task.array("goal"), o.horizon, o.terminate_on_success)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, BitFlipEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        inner.goal = task.array("goal").astype(np.int8)
