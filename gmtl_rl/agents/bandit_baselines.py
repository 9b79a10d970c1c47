"""The Bernoulli-bandit baselines of RL² (Duan et al. 2016, §4.1, Table 1).

Non-learning policies that adapt within a trial: a trial is n one-pull episodes on one
k-armed bandit, and each policy keeps, per env, the success and failure counts of every arm
since the trial started (`reset(mask)`), updated in `observe` from the action taken and its
0/1 reward. As in the paper, every policy starts from Beta(1, 1) priors: arm i's posterior is
Beta(1 + successes_i, 1 + failures_i). They train nothing (the `baseline` training loop only
evaluates them) and never see the task: `task_class` and the (constant) observation are
ignored. `deterministic` is ignored too: the randomisation (ties, exploration, posterior
samples) is part of each algorithm, so the evaluator's default deterministic mode still runs
the published algorithms.

Every policy is vectorised over envs (arrays [N, k]) and draws from its own numpy generator,
seeded from the run; the counts and the generator state are its `state_dict`. Hyperparameters
were grid-searched per (n, k) in the paper and are not published; the defaults here are
ordinary choices (see each config), and configs/bandit/ gives the values used for n = 10, k = 5.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field, model_validator

from gmtl_rl.agents.gittins import default_lookahead, gittins_table
from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.policy import state_restored
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch
from gmtl_rl.errors import ConfigError

# The deepest Gittins recursion a config may ask for: its build grows with depth² (measured
# 1.2 s at 546, so about 40 s at 3000; n = 500 at γ = 0.99 needs 961).
MAX_GITTINS_DEPTH = 3000


class BanditConfig(AgentConfig):
    """What every bandit baseline has: the trial length it keeps its counts across."""

    episodes_per_trial: int = Field(
        10, ge=1, description="n: pulls (one-step episodes) per trial on one bandit"
    )

    def trial_episodes(self) -> int:
        return self.episodes_per_trial  # also eval.episodes when a config leaves it out


class RandomConfig(BanditConfig):
    """A uniformly random arm every pull (Table 1's "Random")."""

    name: Literal["bandit_random"] = "bandit_random"


class GreedyConfig(BanditConfig):
    """The arm with the highest posterior mean (Table 1's "Greedy")."""

    name: Literal["bandit_greedy"] = "bandit_greedy"


class EpsilonGreedyConfig(BanditConfig):
    """ε-greedy on the posterior mean (Table 1's "ε-Greedy")."""

    name: Literal["bandit_egreedy"] = "bandit_egreedy"
    epsilon: float = Field(0.1, ge=0, le=1, description="probability of a uniformly random arm")


class UCB1Config(BanditConfig):
    """UCB1 (Auer, Cesa-Bianchi & Fischer 2002, Fig. 1) with a tunable exploration scale."""

    name: Literal["bandit_ucb1"] = "bandit_ucb1"
    c: float = Field(
        1.0, ge=0, description="exploration scale: index = mean + c sqrt(2 ln t / n_i) (UCB1: 1)"
    )
    prior_counts: bool = Field(
        True,
        description="count the Beta(1, 1) prior as one success and one failure per arm "
        "(RL²'s baselines all start from it); false: Auer's UCB1, each arm pulled once first",
    )


class ThompsonConfig(BanditConfig):
    """Thompson sampling: one draw from each arm's Beta posterior (Table 1's "TS")."""

    name: Literal["bandit_ts"] = "bandit_ts"


class OptimisticThompsonConfig(BanditConfig):
    """Optimistic Thompson sampling (May et al. 2012, JMLR 13, §3): each arm's draw is
    raised to its posterior mean if below it (Table 1's "OTS")."""

    name: Literal["bandit_ots"] = "bandit_ots"
    samples: int = Field(
        1, ge=1, le=1000, description="posterior draws per arm and pull; the largest is used"
    )


class GittinsConfig(BanditConfig):
    """The Gittins index policy for Beta-Bernoulli arms (Table 1's "Gittins")."""

    name: Literal["bandit_gittins"] = "bandit_gittins"
    gamma: float = Field(0.9, gt=0, lt=1, description="discount of the index")
    lookahead: int | None = Field(
        None,
        ge=0,
        le=100_000,
        description="steps the index recursion looks past a + b = n + 2 before taking the "
        "mean as known (caps the table: build cost ~ (n + lookahead)²); null: the smallest L "
        "with gamma^L <= 0.01",
    )

    @model_validator(mode="after")
    def _table_builds_in_seconds(self) -> GittinsConfig:
        lookahead = self.lookahead if self.lookahead is not None else default_lookahead(self.gamma)
        depth = self.episodes_per_trial + 2 + lookahead
        if depth > MAX_GITTINS_DEPTH:
            raise ValueError(
                f"the Gittins table would reach a + b = {depth} (episodes_per_trial + 2 + "
                f"lookahead {lookahead}), past {MAX_GITTINS_DEPTH}: minutes to build; lower "
                "episodes_per_trial, or set lookahead (a shorter recursion, a coarser index)"
            )
        return self


class BanditPolicy(ABC):
    """Base of the baselines: per-env Beta posterior counts, updated in `observe`."""

    def __init__(self, config: BanditConfig, num_arms: int, seed: int, first_arm: int = 0) -> None:
        self.config = config
        self.num_arms = num_arms
        self.first_arm = first_arm  # the action of arm 0 (gymnasium's Discrete `start`)
        self.rng = np.random.default_rng(seed)
        self.successes_NK = np.zeros((0, num_arms), np.int64)
        self.failures_NK = np.zeros((0, num_arms), np.int64)

    # -- the Policy protocol ------------------------------------------------------------------
    def reset(self, env_mask: np.ndarray) -> None:
        mask = np.asarray(env_mask, bool)
        if len(mask) != len(self.successes_NK):
            self._alloc(len(mask))  # a new set of envs (e.g. evaluation): all start
            return
        self.successes_NK[mask] = 0
        self.failures_NK[mask] = 0

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del obs, deterministic  # the arms' counts are the whole state; see the module docstring
        if len(task_class) != len(self.successes_NK):
            self._alloc(len(task_class))
        return self.choose().astype(np.int64) + self.first_arm

    def observe(self, step: StepBatch) -> None:
        rows = np.flatnonzero(step.valid)  # invalid rows (autoreset dummies, idle envs): no pull
        if len(rows) == 0:
            return
        arms = (
            np.asarray(step.action).reshape(step.num_envs)[rows].astype(np.int64) - self.first_arm
        )
        reward = np.asarray(step.reward)[rows]
        if not np.isin(reward, (0.0, 1.0)).all():
            raise ValueError(
                f"{self.config.name} counts Bernoulli rewards (0 or 1); got "
                f"{sorted(set(reward.tolist()) - {0.0, 1.0})[:3]} (use a Bernoulli bandit env)"
            )
        win = reward == 1.0
        self.successes_NK[rows, arms] += win  # one (env, arm) pair per row: no repeats
        self.failures_NK[rows, arms] += ~win

    # -- what each baseline writes ------------------------------------------------------------
    @abstractmethod
    def choose(self) -> np.ndarray:
        """The arm [N] each env pulls next, from the counts."""

    # -- shared pieces ------------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        self.successes_NK = np.zeros((n, self.num_arms), np.int64)
        self.failures_NK = np.zeros((n, self.num_arms), np.int64)

    @property
    def posterior_mean_NK(self) -> np.ndarray:
        """Mean of Beta(1 + s, 1 + f)."""
        return (self.successes_NK + 1) / (self.successes_NK + self.failures_NK + 2)

    def argmax_random_ties(self, values_NK: np.ndarray) -> np.ndarray:
        """Per row, the best arm, ties broken uniformly at random."""
        best = values_NK == values_NK.max(axis=1, keepdims=True)
        # Uniform noise on the best arms only (> 0 almost surely), 0 elsewhere.
        return np.argmax(best * (self.rng.random(values_NK.shape) + 1e-12), axis=1)

    def uniform_arms(self, n: int) -> np.ndarray:
        return self.rng.integers(0, self.num_arms, size=n)

    # -- the Agent protocol -------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        return []  # nothing is learned

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """The counts and the generator put back afterwards."""
        with state_restored(self):
            yield

    def state_dict(self) -> dict[str, Any]:
        return {
            "successes": self.successes_NK.copy(),
            "failures": self.failures_NK.copy(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        successes = np.asarray(state["successes"], np.int64)
        failures = np.asarray(state["failures"], np.int64)
        if successes.shape != failures.shape or successes.shape[1:] != (self.num_arms,):
            raise ValueError(
                f"bandit counts of shape {successes.shape} / {failures.shape} do not fit "
                f"{self.num_arms} arms"
            )
        self.successes_NK, self.failures_NK = successes.copy(), failures.copy()
        self.rng.bit_generator.state = state["rng"]


class RandomBandit(BanditPolicy):
    def choose(self) -> np.ndarray:
        return self.uniform_arms(len(self.successes_NK))


class GreedyBandit(BanditPolicy):
    def choose(self) -> np.ndarray:
        return self.argmax_random_ties(self.posterior_mean_NK)


class EpsilonGreedyBandit(BanditPolicy):
    config: EpsilonGreedyConfig

    def choose(self) -> np.ndarray:
        n = len(self.successes_NK)
        explore = self.rng.random(n) < self.config.epsilon
        return np.where(
            explore, self.uniform_arms(n), self.argmax_random_ties(self.posterior_mean_NK)
        )


class UCB1Bandit(BanditPolicy):
    """Index mean_i + c sqrt(2 ln t / n_i), t the pulls of the trial so far.

    `prior_counts` (default): the Beta(1, 1) prior counts as two pulls per arm, so
    mean_i = (s_i + 1) / (n_i + 2) (the posterior mean), n_i counts them and t = Σ n_i; no
    arm needs an initial pull, and c → 0 is the greedy policy. Otherwise Auer's UCB1: the
    empirical mean s_i / n_i, and any arm never pulled comes first (random among them).
    """

    config: UCB1Config

    def choose(self) -> np.ndarray:
        pulls = (self.successes_NK + self.failures_NK).astype(np.float64)
        if self.config.prior_counts:
            pulls += 2.0
            mean = self.posterior_mean_NK
        else:
            mean = self.successes_NK / np.maximum(pulls, 1.0)
        total = pulls.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.config.c * np.sqrt(2.0 * np.log(np.maximum(total, 1.0)) / pulls)
        index = np.where(pulls > 0, mean + bonus, np.inf)
        return self.argmax_random_ties(index)


class ThompsonBandit(BanditPolicy):
    def choose(self) -> np.ndarray:
        return np.argmax(self.rng.beta(self.successes_NK + 1, self.failures_NK + 1), axis=1)


class OptimisticThompsonBandit(BanditPolicy):
    config: OptimisticThompsonConfig

    def choose(self) -> np.ndarray:
        a, b = self.successes_NK + 1, self.failures_NK + 1
        draws = self.rng.beta(a[..., None], b[..., None], size=(*a.shape, self.config.samples))
        return self.argmax_random_ties(np.maximum(draws.max(axis=-1), self.posterior_mean_NK))


class GittinsBandit(BanditPolicy):
    """The arm of the highest Gittins index ν(1 + s_i, 1 + f_i) (ties at random).

    RL² used "its best approximation" without saying which. This is the infinite-horizon
    discounted index (γ = `gamma`, a tuned hyperparameter, as the trial itself is undiscounted
    and finite), computed by calibration (`agents.gittins`) once per (gamma, table size,
    lookahead) and cached for the process. The table covers a + b ≤ n + 2 (n pulls on one
    arm from Beta(1, 1)); a trial longer than n (eval.episodes > episodes_per_trial) grows it.
    """

    config: GittinsConfig

    def __init__(self, config: GittinsConfig, num_arms: int, seed: int, first_arm: int = 0) -> None:
        super().__init__(config, num_arms, seed, first_arm)
        self.lookahead = (
            config.lookahead if config.lookahead is not None else default_lookahead(config.gamma)
        )
        self.table = gittins_table(config.gamma, config.episodes_per_trial + 2, self.lookahead)

    def choose(self) -> np.ndarray:
        a, b = self.successes_NK + 1, self.failures_NK + 1
        needed = int((a + b).max(initial=2))
        if needed >= len(self.table):  # more pulls than the configured trial: grow by doubling
            size = max(needed, 2 * (len(self.table) - 1))
            self.table = gittins_table(self.config.gamma, size, self.lookahead)
        return self.argmax_random_ties(self.table[a, b])


POLICIES: dict[str, tuple[type[BanditConfig], type[BanditPolicy], str]] = {
    "bandit_random": (RandomConfig, RandomBandit, "uniformly random arm (RL² Table 1)"),
    "bandit_greedy": (GreedyConfig, GreedyBandit, "highest Beta posterior mean (RL² Table 1)"),
    "bandit_egreedy": (
        EpsilonGreedyConfig,
        EpsilonGreedyBandit,
        "ε-greedy on the Beta posterior mean (RL² Table 1)",
    ),
    "bandit_ucb1": (UCB1Config, UCB1Bandit, "UCB1 with exploration scale c (RL² Table 1)"),
    "bandit_ts": (ThompsonConfig, ThompsonBandit, "Thompson sampling, Beta posteriors"),
    "bandit_ots": (
        OptimisticThompsonConfig,
        OptimisticThompsonBandit,
        "optimistic Thompson sampling (May et al. 2012)",
    ),
    "bandit_gittins": (
        GittinsConfig,
        GittinsBandit,
        "Gittins index policy, Beta-Bernoulli arms, by calibration",
    ),
}


def build_bandit_policy(
    config: BanditConfig, env: EnvSpec, seed: int = 0, device: str = "cpu"
) -> BanditPolicy:
    del device  # numpy only
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"agent.name: {config.name} pulls one of k arms and needs a Discrete(k) action "
            f"space; this env's is {env.action_space} (use env.name: bandit)"
        )
    policy_cls = POLICIES[config.name][1]
    space = env.action_space
    return policy_cls(config, int(space.n), seed, int(space.start))


for _name, (_config, _policy, _description) in POLICIES.items():
    register_agent(AgentSpec(_name, _description, "baseline", _config, build_bandit_policy))
