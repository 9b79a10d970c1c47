"""RL²'s Bernoulli multi-armed bandits (Duan et al. 2016, "RL²", §4.1 and Table 1): a task is a
vector of k arm probabilities p_i ~ U[0, 1]; an episode is one pull, a trial n episodes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode
from pydantic import Field

from gmtl_rl.core.records import Obs
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution


# The single and batched envs share these functions, so they make the same draws and give the
# same numbers by construction.
def pull_draw(rng: np.random.Generator) -> float:
    """The one draw of a pull: a uniform in [0, 1) from the env's own generator."""
    return float(rng.random())


def pull(p: np.ndarray, action: npt.ArrayLike, u: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The dynamics, over a leading batch dim: reward 1.0 where `u < p[action]` (a Bernoulli
    draw of the pulled arm), else 0.0, and that arm's mean p[action]. `p`: [B, k] float64;
    actions outside 0..k-1 are an IndexError (numpy's negative indices are not arms)."""
    k = p.shape[-1]
    arm = np.asarray(action).astype(np.int64)
    if np.any((arm < 0) | (arm >= k)):
        raise IndexError(f"bandit action {arm} out of range for {k} arms (valid: 0..{k - 1})")
    mean = p[np.arange(len(p)), arm]
    return (np.asarray(u) < mean).astype(np.float64), mean


class BanditEnv(gym.Env[np.ndarray, np.int64]):
    """k Bernoulli arms; every step pulls one, is rewarded 1 with probability p[a], and ends
    the episode (terminated: the bandit has no state to continue from).

    The observation is a constant float32 zero of shape (1,): the bandit has a single state,
    and RL² sees the previous action and reward as inputs of its own (§4.1). `info["arm_mean"]`
    is p[a], the pulled arm's expected reward (for regret; agents never see it). There is no
    `info["success"]`: the benchmark defines none (RL² reports total reward).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(self, p: npt.ArrayLike) -> None:
        self.p = np.asarray(p, dtype=np.float64).copy()
        self.arms = len(self.p)
        self.horizon = 1
        self.action_space = gym.spaces.Discrete(self.arms)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward, mean = pull(self.p[None], [int(action)], [pull_draw(self.np_random)])
        return np.zeros(1, np.float32), float(reward[0]), True, False, {"arm_mean": float(mean[0])}

    # StatefulEnv protocol: lets a checkpoint resume an episode in flight exactly.
    def get_state(self) -> dict[str, Any]:
        return {"p": self.p.tolist(), "rng": self.np_random.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.p = np.asarray(state["p"], dtype=np.float64)
        self.np_random.bit_generator.state = state["rng"]


class BatchedBandit(BatchedTaskEnv):
    """N bandits as arrays: the same `pull` as `BanditEnv`, one call for all rows; each row
    draws its uniform from its own generator (`pull_draw`, a short loop over the stepping
    rows), so the same seeds give the same rewards as the per-env path."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        env: BanditEnv,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        """`env`: a single env of the family, whose settings every row takes."""
        super().__init__(num_envs, task, env.observation_space, env.action_space, autoreset_mode)
        self.p = np.tile(env.p, (num_envs, 1))  # [N, k]

    def _apply_tasks(self, rows: np.ndarray) -> None:
        for i in rows:  # Bandit.set_task
            self.p[i] = self.tasks[i].array("p")

    def _reset_rows(self, rows: np.ndarray) -> None:
        del rows  # a reset draws nothing and the bandit has no state

    def _observe(self) -> Obs:
        return np.zeros((self.num_envs, 1), np.float32)

    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        idx = np.flatnonzero(rows)
        u = np.array([pull_draw(self.rng(int(i))) for i in idx], np.float64)
        reward, mean = np.zeros(self.num_envs), np.zeros(self.num_envs)
        reward[idx], mean[idx] = pull(self.p[idx], actions[idx], u)
        # Every pull ends its episode; the base class masks the rows that did not step.
        terminated, truncated = np.ones(self.num_envs, bool), np.zeros(self.num_envs, bool)
        return reward, terminated, truncated, {"arm_mean": mean}

    def get_state(self, i: int) -> dict[str, Any]:
        return {"p": self.p[i].tolist(), "rng": self.rng(i).bit_generator.state}

    def set_state(self, i: int, state: dict[str, Any]) -> None:
        self.p[i] = np.asarray(state["p"], dtype=np.float64)
        self.rng(i).bit_generator.state = state["rng"]


class BanditOptions(FamilyOptions):
    arms: int = Field(5, ge=2, le=1000, description="arms k (RL² §4.1: 5, 10 or 50)")
    n_train: int = Field(1000, ge=1, le=MAX_TASKS, description="train bandit instances")
    n_test: int = Field(
        1000, ge=1, le=MAX_TASKS, description="held-out test instances (RL² Table 1 averages 1000)"
    )
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the instance split; independent of the run seed"
    )


@register_family
class Bandit(TaskDistribution):
    """RL² bandits (Duan et al. 2016, §4.1): each task's arm probabilities p_i ~ U[0, 1],
    independently; train and test instances come from two independent streams of `split_seed`
    (so the test instances do not depend on `n_train`).

    Episodes are one pull (`horizon` 1): a trial of n episodes on one task is the paper's
    n-pull bandit problem, scored by total reward (Table 1).

    >>> dist = Bandit(BanditOptions(arms=3, n_train=2, n_test=2))
    >>> env = dist.make_env(dist.test_tasks()[0])
    >>> _ = env.reset(seed=0)
    >>> _, reward, terminated, truncated, info = env.step(2)
    >>> terminated, truncated, info["arm_mean"] == dist.test_tasks()[0]["p"][2]
    (True, False, True)
    """

    name = "bandit"
    description = "RL² Bernoulli bandits: k arms, p_i ~ U[0,1], one pull per episode"
    Options = BanditOptions
    options: BanditOptions

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        train_seq, test_seq = np.random.SeedSequence(o.split_seed).spawn(2)
        # Continuous draws: the two splits are disjoint with probability 1 (a test checks it).
        train = np.random.default_rng(train_seq).uniform(0.0, 1.0, size=(o.n_train, o.arms))
        test = np.random.default_rng(test_seq).uniform(0.0, 1.0, size=(o.n_test, o.arms))
        self._train = [Task.create(self.name, i, p=p) for i, p in enumerate(train)]
        self._test = [Task.create(self.name, i, p=p) for i, p in enumerate(test)]

    @property
    def horizon(self) -> int:
        return 1

    def make_env(self, task: Task | None = None) -> gym.Env:
        task = task or self._train[0]
        return BanditEnv(task.array("p"))

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedBandit:
        task = task or self._train[0]
        single = self.make_env(task)
        assert isinstance(single, BanditEnv)
        return BatchedBandit(num_envs, task, single, autoreset_mode)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, BanditEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        p = task.array("p")
        if p.shape != (inner.arms,):
            raise ValueError(
                f"{self.name}: task {task.index} has {len(p)} arms, the env {inner.arms}"
            )
        inner.p = p
