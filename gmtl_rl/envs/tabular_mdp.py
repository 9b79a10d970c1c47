"""RL²'s random tabular MDPs (Duan et al. 2016, "RL²", §4.2 and Table 2): |S| = 10, |A| = 5,
mean rewards μ[s, a] ~ N(1, 1), transitions P[s, a, ·] ~ Dirichlet(1, ..., 1), reward on taking
a in s ~ N(μ[s, a], 1), episodes of 10 steps from state 0; a trial is n episodes on one MDP.

A task is an instance seed, not the 550 numbers it stands for: `draw_mdp` turns the seed into
the MDP deterministically, so tasks.json stays small (1000 test tasks would be ~10 MB)."""

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

# Instance seeds are drawn in 0..MAX_SEED, the range every seeding API accepts (collisions are
# redrawn: the seeds of a family are distinct).


def draw_mdp(instance_seed: int, states: int, actions: int) -> tuple[np.ndarray, np.ndarray]:
    """The MDP of an instance seed (RL² §4.2): mean rewards μ [S, A] ~ N(1, 1), then transition
    probabilities P [S, A, S], each row ~ Dirichlet(1, ..., 1) (flat); both float64, both drawn
    from `np.random.default_rng(instance_seed)` in that order."""
    rng = np.random.default_rng(instance_seed)
    mean_reward = rng.normal(1.0, 1.0, size=(states, actions))
    transitions = rng.dirichlet(np.ones(states), size=(states, actions))
    return mean_reward, transitions


# The single and batched envs share these functions, so they make the same draws and give the
# same numbers by construction.
def step_draws(rng: np.random.Generator) -> tuple[float, float]:
    """The draws of one step, in order: the reward noise ~ N(0, 1), then a uniform in [0, 1)
    that picks the next state."""
    return float(rng.standard_normal()), float(rng.random())


def mdp_step(
    mean_reward: np.ndarray,
    transitions: np.ndarray,
    state: npt.ArrayLike,
    action: npt.ArrayLike,
    noise: npt.ArrayLike,
    u: npt.ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """The dynamics, over a leading batch dim B: reward μ[s, a] + noise and the next state, the
    first s' whose cumulative probability P[s, a, :s'+1] exceeds u (inverse CDF). `mean_reward`
    [B, S, A], `transitions` [B, S, A, S]; actions outside 0..A-1 are an IndexError."""
    n_states, n_actions = mean_reward.shape[-2:]
    a = np.asarray(action).astype(np.int64)
    if np.any((a < 0) | (a >= n_actions)):
        raise IndexError(
            f"tabular-mdp action {a} out of range for {n_actions} actions "
            f"(valid: 0..{n_actions - 1})"
        )
    b, s = np.arange(len(mean_reward)), np.asarray(state, np.int64)
    reward = mean_reward[b, s, a] + np.asarray(noise, np.float64)
    cdf = np.cumsum(transitions[b, s, a], axis=-1)  # [B, S]
    # u scaled by the row's total, so rounding in the sum can never pick past the last state.
    target = np.asarray(u, np.float64) * cdf[:, -1]
    after = np.minimum((cdf <= target[:, None]).sum(axis=-1), n_states - 1)
    return reward, after


def state_obs(state: npt.ArrayLike, n_states: int) -> np.ndarray:
    """The one-hot float32 observation of `state` over any batch shape (a new array)."""
    return (np.arange(n_states) == np.asarray(state, np.int64)[..., None]).astype(np.float32)


class TabularMDPEnv(gym.Env[np.ndarray, np.int64]):
    """One random tabular MDP (RL² §4.2): starts in state 0, reward ~ N(μ[s, a], 1), next state
    ~ P[s, a, ·]; truncated (never terminated) after `horizon` steps.

    The observation is the one-hot float32 of the current state (its argmax is the index).
    `mean_reward` [S, A] and `transitions` [S, A, S] are the current task's arrays (for
    planning baselines and oracles). There is no `info["success"]`: the benchmark defines none
    (RL² reports total reward).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self, instance_seed: int, states: int = 10, actions: int = 5, horizon: int = 10
    ) -> None:
        self.states, self.actions, self.horizon = states, actions, horizon
        self.action_space = gym.spaces.Discrete(actions)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(states,), dtype=np.float32)
        self.instance_seed = -1
        self.set_instance(instance_seed)
        self._state = 0
        self._t = 0

    def set_instance(self, instance_seed: int) -> None:
        """Switch to the MDP of `instance_seed` (drawn once here, then kept)."""
        if instance_seed != self.instance_seed:
            self.instance_seed = int(instance_seed)
            self.mean_reward, self.transitions = draw_mdp(
                self.instance_seed, self.states, self.actions
            )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._state, self._t = 0, 0  # RL² §4.2: every episode starts in state 0
        return state_obs(self._state, self.states), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        noise, u = step_draws(self.np_random)
        reward, after = mdp_step(
            self.mean_reward[None], self.transitions[None], [self._state], [int(action)],
            [noise], [u],
        )  # fmt: skip
        self._state = int(after[0])
        self._t += 1
        truncated = self._t >= self.horizon
        return state_obs(self._state, self.states), float(reward[0]), False, truncated, {}

    # StatefulEnv protocol: lets a checkpoint resume an episode in flight exactly.
    def get_state(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "t": self._t,
            "instance_seed": self.instance_seed,
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.set_instance(int(state["instance_seed"]))
        self._state = int(state["state"])
        self._t = int(state["t"])
        self.np_random.bit_generator.state = state["rng"]


class BatchedTabularMDP(BatchedTaskEnv):
    """N tabular MDPs as arrays: the same `mdp_step` and `state_obs` as `TabularMDPEnv`, one
    call for all rows. Each row draws its reward noise and next-state uniform from its own
    generator with the single env's call (`step_draws`, a short loop over the stepping rows),
    so the same seeds give the same transitions as the per-env path."""

    def __init__(
        self,
        num_envs: int,
        task: Task,
        env: TabularMDPEnv,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> None:
        """`env`: a single env of the family, whose settings and MDP every row takes."""
        super().__init__(num_envs, task, env.observation_space, env.action_space, autoreset_mode)
        self.states, self.actions, self.horizon = env.states, env.actions, env.horizon
        self.instance_seed = np.full(num_envs, env.instance_seed, np.int64)
        self.mean_reward = np.tile(env.mean_reward, (num_envs, 1, 1))  # [N, S, A]
        self.transitions = np.tile(env.transitions, (num_envs, 1, 1, 1))  # [N, S, A, S]
        self.state = np.zeros(num_envs, np.int64)
        self.t = np.zeros(num_envs, np.int64)

    def _load(self, i: int, instance_seed: int) -> None:
        if instance_seed != self.instance_seed[i]:
            self.instance_seed[i] = instance_seed
            self.mean_reward[i], self.transitions[i] = draw_mdp(
                instance_seed, self.states, self.actions
            )

    def _apply_tasks(self, rows: np.ndarray) -> None:
        for i in rows:  # TabularMDP.set_task
            self._load(int(i), int(self.tasks[i]["instance_seed"]))

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.state[rows], self.t[rows] = 0, 0  # state 0, no draws, as the single env

    def _observe(self) -> Obs:
        return state_obs(self.state, self.states)

    def _step_rows(
        self, actions: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        idx = np.flatnonzero(rows)
        draws = np.array([step_draws(self.rng(int(i))) for i in idx], np.float64).reshape(-1, 2)
        reward = np.zeros(self.num_envs)
        reward[idx], self.state[idx] = mdp_step(
            self.mean_reward[idx], self.transitions[idx], self.state[idx], actions[idx],
            draws[:, 0], draws[:, 1],
        )  # fmt: skip
        self.t += rows
        terminated = np.zeros(self.num_envs, bool)
        return reward, terminated, self.t >= self.horizon, {}

    def get_state(self, i: int) -> dict[str, Any]:
        return {
            "state": int(self.state[i]),
            "t": int(self.t[i]),
            "instance_seed": int(self.instance_seed[i]),
            "rng": self.rng(i).bit_generator.state,
        }

    def set_state(self, i: int, state: dict[str, Any]) -> None:
        self._load(i, int(state["instance_seed"]))
        self.state[i] = int(state["state"])
        self.t[i] = int(state["t"])
        self.rng(i).bit_generator.state = state["rng"]


class TabularMDPOptions(FamilyOptions):
    states: int = Field(10, ge=2, le=100, description="states |S| (RL² §4.2: 10)")
    actions: int = Field(5, ge=2, le=100, description="actions |A| (RL² §4.2: 5)")
    horizon: int = Field(10, ge=1, description="steps per episode (truncation; RL² §4.2: 10)")
    n_train: int = Field(1000, ge=1, le=MAX_TASKS, description="train MDP instances")
    n_test: int = Field(
        1000, ge=1, le=MAX_TASKS, description="held-out test instances (RL² Table 2 averages 1000)"
    )
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the instance seeds; independent of the run seed"
    )


def _distinct_seeds(rng: np.random.Generator, n: int, taken: set[int]) -> list[int]:
    """`n` distinct instance seeds from `rng`, none of them in `taken`."""
    seeds: dict[int, None] = {}  # insertion-ordered set
    while len(seeds) < n:
        for s in rng.integers(0, MAX_SEED, size=n - len(seeds), endpoint=True).tolist():
            if s not in taken:
                seeds.setdefault(s)
    return list(seeds)


@register_family
class TabularMDP(TaskDistribution):
    """RL² random tabular MDPs (Duan et al. 2016, §4.2); a task is
    `Task.create("tabular-mdp", i, instance_seed=s)` and `draw_mdp(s, states, actions)` its MDP.
    Test and train instance seeds come from two independent streams of `split_seed` (so the
    test instances do not depend on `n_train`), train seeds skipping any test seed.

    >>> dist = TabularMDP(TabularMDPOptions(n_train=2, n_test=2))
    >>> env = dist.make_env(dist.test_tasks()[0])
    >>> obs, _ = env.reset(seed=0)
    >>> int(obs.argmax()), obs.shape, dist.horizon
    (0, (10,), 10)
    """

    name = "tabular-mdp"
    description = "RL² random MDPs: 10 states, 5 actions, μ ~ N(1,1), Dirichlet(1) transitions"
    Options = TabularMDPOptions
    options: TabularMDPOptions

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        train_seq, test_seq = np.random.SeedSequence(o.split_seed).spawn(2)
        test = _distinct_seeds(np.random.default_rng(test_seq), o.n_test, set())
        train = _distinct_seeds(np.random.default_rng(train_seq), o.n_train, set(test))
        self._train = [Task.create(self.name, i, instance_seed=s) for i, s in enumerate(train)]
        self._test = [Task.create(self.name, i, instance_seed=s) for i, s in enumerate(test)]

    @property
    def horizon(self) -> int:
        return self.options.horizon

    def make_env(self, task: Task | None = None) -> gym.Env:
        o = self.options
        task = task or self._train[0]
        return TabularMDPEnv(int(task["instance_seed"]), o.states, o.actions, o.horizon)

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedTabularMDP:
        task = task or self._train[0]
        single = self.make_env(task)
        assert isinstance(single, TabularMDPEnv)
        return BatchedTabularMDP(num_envs, task, single, autoreset_mode)

    def set_task(self, env: gym.Env, task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, TabularMDPEnv):
            raise TypeError(f"{self.name} cannot set a task on {type(inner).__name__}")
        inner.set_instance(int(task["instance_seed"]))
