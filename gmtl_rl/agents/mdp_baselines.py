"""Tabular-MDP baselines of RL² (Duan et al. 2016, §4.2, Table 2), vectorised over envs.

A trial is `episodes_per_trial` episodes of at most `horizon` steps on one MDP (the
`tabular-mdp` family: one-hot states, discrete actions, rewards N(μ(s,a), 1)). Every agent
but `mdp_random` keeps, per env, the counts of its trial so far (visits n(s,a), transitions
n(s,a,s'), reward sums) and, at the start of each episode, plans the rest of it by
finite-horizon backward induction on a model built from them; it then follows that plan
for the whole episode (no replanning inside an episode: the episodic setting of Osband et
al. 2013, used for all of them so they differ only in the model they plan on). All start
from the same priors: μ(s,a) ~ N(1, 1) with known unit noise variance (a Normal-Normal
conjugate update, for which n and Σr are sufficient: no sum of squares is kept) and
P(s,a,·) ~ Dirichlet(1, ..., 1), the distribution the tasks are drawn from. The step within
the episode is counted here (reset when `observe` sees an episode end and when a trial
starts), so an action is chosen for the steps that remain.

Sampling is the algorithm for these agents (posterior samples, ε, random tie-breaking), so
`deterministic` does not switch it off. Ties between best actions are broken uniformly at
random: with the flat prior every action of an unvisited state is tied. The paper
grid-searched the hyperparameters (ε, samples, scale, β) and did not publish them; the
defaults here are ordinary choices or the best of small grids on simulated instances at
n = 10, and configs/tabular_mdp/ records those grids and the values it uses.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.policy import state_restored
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch
from gmtl_rl.errors import ConfigError


# -- configs ---------------------------------------------------------------------------------
class _TrialConfig(AgentConfig):
    episodes_per_trial: int = Field(10, ge=1, description="n: episodes per trial on one MDP")

    def trial_episodes(self) -> int:
        return self.episodes_per_trial


class MDPRandomConfig(_TrialConfig):
    """Uniform random actions: Table 2's lower line."""

    name: Literal["mdp_random"] = "mdp_random"


class _PlannerConfig(_TrialConfig):
    """What every planning baseline shares: the episode horizon and the priors."""

    horizon: int = Field(
        10, ge=1, le=10_000, description="steps per episode planned for (the env's horizon)"
    )
    reward_prior_mean: float = Field(1.0, description="mean of the N(m, v) prior on μ(s,a)")
    reward_prior_var: float = Field(
        1.0, gt=0, le=1e6, description="variance of the N(m, v) prior on μ(s,a)"
    )
    reward_noise_var: float = Field(
        1.0, gt=0, le=1e6, description="known variance of a reward around μ(s,a)"
    )
    transition_prior: float = Field(
        1.0, gt=0, le=1e6, description="Dirichlet concentration of each next state (flat: 1)"
    )


class MDPGreedyConfig(_PlannerConfig):
    """Greedy on the posterior-mean MDP."""

    name: Literal["mdp_greedy"] = "mdp_greedy"


class MDPEpsilonGreedyConfig(_PlannerConfig):
    """ε-greedy on the posterior-mean MDP."""

    name: Literal["mdp_egreedy"] = "mdp_egreedy"
    epsilon: float = Field(
        0.1, ge=0, le=1, description="chance of a uniform action (paper: grid-searched)"
    )


class PSRLConfig(_PlannerConfig):
    """Posterior sampling RL: one posterior MDP per episode."""

    name: Literal["mdp_psrl"] = "mdp_psrl"


class OPSRLConfig(_PlannerConfig):
    """Optimistic PSRL: the max over several posterior MDPs' Q-values."""

    name: Literal["mdp_opsrl"] = "mdp_opsrl"
    samples: int = Field(
        5, ge=1, le=1000, description="posterior MDPs drawn per episode (paper: grid-searched)"
    )


class UCRL2Config(_PlannerConfig):
    """UCRL2 with finite-horizon extended value iteration."""

    name: Literal["mdp_ucrl2"] = "mdp_ucrl2"
    scale: float = Field(
        0.1, ge=0, le=1e3, description="factor on both confidence radii (paper: grid-searched)"
    )
    delta: float = Field(0.05, gt=0, lt=1, description="confidence parameter δ of the radii")


class BEBConfig(_PlannerConfig):
    """Bayesian exploration bonus on the posterior-mean MDP."""

    name: Literal["mdp_beb"] = "mdp_beb"
    beta: float = Field(
        0.5,
        ge=0,
        le=1e6,
        description="kolter_ng: bonus β / (1 + n(s,a)); tabula_rl: its `scaling` (paper: "
        "grid-searched)",
    )
    form: Literal["kolter_ng", "tabula_rl"] = Field(
        "kolter_ng",
        description="kolter_ng: reward bonus β / (1 + n); tabula_rl: TabulaRL's BEB (reward "
        "bonus 1 / (precision + 1), transition bonus 2H²β·H / (1 + Dirichlet total) per step "
        "to go)",
    )


# -- planning and posteriors (module functions, shared and tested on their own) --------------
def backward_induction(
    reward_NSA: np.ndarray,
    transition_NSAS: np.ndarray,
    horizon: int,
    bonus_per_step_NSA: np.ndarray | None = None,
) -> np.ndarray:
    """Finite-horizon Q-values q[N, H, S, A]; q[:, k] has k + 1 steps to go.

    Q_1 = R, Q_{k+1}(s,a) = R(s,a) + Σ_s' P(s'|s,a) max_a' Q_k(s',a') (Puterman 1994, §4.5;
    the planning step of PSRL, Osband et al. 2013), undiscounted as Table 2's total reward.
    `bonus_per_step_NSA`, when given, adds k · bonus to Q_{k+1} (k = the steps after this one:
    TabulaRL's `compute_qVals_opt` transition bonus).
    """
    n, s, a = reward_NSA.shape
    q_NHSA = np.empty((n, horizon, s, a))
    v_NS = np.zeros((n, s))
    for k in range(horizon):
        q_NHSA[:, k] = reward_NSA + np.einsum("nsat,nt->nsa", transition_NSAS, v_NS)
        if bonus_per_step_NSA is not None:
            q_NHSA[:, k] += k * bonus_per_step_NSA
        v_NS = q_NHSA[:, k].max(-1)
    return q_NHSA


def optimistic_transitions(p_hat: np.ndarray, radius: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The distribution within L1 distance `radius` of `p_hat` [..., S] that maximises its
    expectation of `values` (broadcast to p_hat's shape): UCRL2's inner maximisation
    (Jaksch, Ortner & Auer 2010, Figure 2). Mass min(radius / 2, 1 - p̂(s*)) is added to the
    best next state s* and the same mass taken from the worst states first."""
    values = np.broadcast_to(values, p_hat.shape)
    order = np.argsort(values, axis=-1, kind="stable")  # ascending: the best state last
    p = np.take_along_axis(p_hat, order, -1)
    gain = np.minimum(np.asarray(radius) / 2, 1.0 - p[..., -1])
    p[..., -1] += gain
    worse = p[..., :-1]
    before = np.cumsum(worse, -1) - worse  # mass of the states worse than each
    worse -= np.clip(gain[..., None] - before, 0.0, worse)
    out = np.empty_like(p)
    np.put_along_axis(out, order, p, -1)
    return out


def extended_backward_induction(
    reward_NSA: np.ndarray, p_hat_NSAS: np.ndarray, radius_NSA: np.ndarray, horizon: int
) -> np.ndarray:
    """`backward_induction` on the most optimistic transitions of the L1 confidence set at
    every step to go: finite-horizon extended value iteration (Jaksch et al. 2010, §3.1.2)."""
    n, s, a = reward_NSA.shape
    q_NHSA = np.empty((n, horizon, s, a))
    v_NS = np.zeros((n, s))
    for k in range(horizon):
        p_NSAS = optimistic_transitions(p_hat_NSAS, radius_NSA, v_NS[:, None, None, :])
        q_NHSA[:, k] = reward_NSA + np.einsum("nsat,nt->nsa", p_NSAS, v_NS)
        v_NS = q_NHSA[:, k].max(-1)
    return q_NHSA


def reward_posterior(
    visits: np.ndarray,
    reward_sum: np.ndarray,
    prior_mean: float,
    prior_var: float,
    noise_var: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the Normal posterior of μ(s,a) after n rewards summing to Σr,
    noise variance known: precision 1/v0 + n/σ², mean (m0/v0 + Σr/σ²) / precision."""
    precision = 1.0 / prior_var + visits / noise_var
    mean = (prior_mean / prior_var + reward_sum / noise_var) / precision
    return mean, 1.0 / precision


def transition_posterior_mean(counts_NSAS: np.ndarray, prior: float) -> np.ndarray:
    """Mean of the Dirichlet(prior + counts) posterior of P(·|s,a)."""
    alpha = counts_NSAS + prior
    return alpha / alpha.sum(-1, keepdims=True)


def sample_dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """One Dirichlet(alpha[..., :]) draw per leading index, from normalised Gamma draws."""
    g = rng.standard_gamma(alpha)
    total = g.sum(-1, keepdims=True)
    # A tiny concentration can underflow every Gamma draw of a row: use its mean there.
    return np.where(total > 0, g / np.maximum(total, 1e-300), alpha / alpha.sum(-1, keepdims=True))


def beb_bonus(visits: np.ndarray, beta: float) -> np.ndarray:
    """Kolter & Ng 2009's Bayesian exploration bonus β / (1 + n(s,a))."""
    return beta / (1.0 + visits)


def tabula_rl_beb_bonus(
    reward_precision: np.ndarray, dirichlet_total: np.ndarray, horizon: int, scaling: float
) -> tuple[np.ndarray, np.ndarray]:
    """BEB as iosband/TabulaRL's `BEB.gen_bonus` computes it (the baseline code RL² Table 2's
    set of algorithms matches): reward bonus 1 / (τ + 1), τ the posterior precision of the
    mean reward, and transition bonus β·H / (1 + Σα), β = 2H²·scaling, Σα the posterior
    Dirichlet total; the latter is added once per step to go (`backward_induction`)."""
    beta = 2 * horizon * horizon * scaling
    return 1.0 / (reward_precision + 1.0), beta * horizon / (1.0 + dirichlet_total)


def ucrl2_radii(
    visits_NSA: np.ndarray, delta: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """UCRL2's reward and L1 transition radii (Jaksch et al. 2010, Figure 1, step 3) at
    t = the env's steps so far in the trial, each times `scale`: √(7 ln(2SAt/δ) / (2 max(1,n)))
    and √(14 S ln(2At/δ) / max(1,n))."""
    _, s, a = visits_NSA.shape
    t_N = np.maximum(1, visits_NSA.sum((1, 2)))[:, None, None]
    n = np.maximum(1, visits_NSA)
    reward = np.sqrt(7 * np.log(2 * s * a * t_N / delta) / (2 * n))
    transition = np.sqrt(14 * s * np.log(2 * a * t_N / delta) / n)
    return scale * reward, scale * transition


def argmax_random_ties(rng: np.random.Generator, q_NA: np.ndarray) -> np.ndarray:
    """Per row, a uniformly drawn action among those of maximal value."""
    best = q_NA.max(-1, keepdims=True)
    tied = q_NA >= best - 1e-9 * (1.0 + np.abs(best))
    return np.argmax(np.where(tied, rng.random(q_NA.shape), -1.0), -1)


_SAMPLED_MDPS = 4096  # OPSRL plans its envs in chunks of at most this many sampled MDPs


# -- agents ----------------------------------------------------------------------------------
def _sizes(env: EnvSpec, name: str) -> tuple[int, int, int]:
    """States, actions and the first action's number (gymnasium's Discrete `start`)."""
    obs, act = env.observation_space, env.action_space
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        raise ConfigError(
            f"agent.name: {name} needs a one-hot Box(S,) observation (env tabular-mdp); "
            f"this env's is {obs}"
        )
    if not isinstance(act, gym.spaces.Discrete):
        raise ConfigError(f"agent.name: {name} needs a Discrete action space; this env's is {act}")
    return int(obs.shape[0]), int(act.n), int(act.start)


class _Baseline:
    """What all of them share: a seeded generator, evaluation that leaves no trace, no
    updates."""

    rng: np.random.Generator

    def metric_names(self) -> list[str]:
        return []

    def evaluating(self) -> AbstractContextManager[None]:
        """The per-env counts and the generator are put back afterwards."""
        return state_restored(self)


class MDPRandom(_Baseline):
    """Uniform actions, whatever happened so far."""

    def __init__(
        self, config: MDPRandomConfig, num_actions: int, seed: int, first_action: int = 0
    ) -> None:
        self.config = config
        self.num_actions, self.first_action = num_actions, first_action
        self.rng = np.random.default_rng(seed)

    def reset(self, env_mask: np.ndarray) -> None:
        del env_mask

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del obs, deterministic
        return self.first_action + self.rng.integers(self.num_actions, size=len(task_class))

    def observe(self, step: StepBatch) -> None:
        del step

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class MDPPlanner(_Baseline):
    """Counts per env, a plan per env made at each episode start by `plan` (subclasses)."""

    config: _PlannerConfig
    _ARRAYS = ("visits", "transitions", "reward_sum", "step", "stale", "q")

    def __init__(
        self,
        config: _PlannerConfig,
        num_states: int,
        num_actions: int,
        seed: int,
        first_action: int = 0,
    ) -> None:
        self.config = config
        self.first_action = first_action  # the action of index 0 (gymnasium's Discrete `start`)
        self.S, self.A, self.H = num_states, num_actions, config.horizon
        self.rng = np.random.default_rng(seed)
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        s, a = self.S, self.A
        self.visits = np.zeros((n, s, a), np.int64)  # n(s,a) this trial
        self.transitions = np.zeros((n, s, a, s), np.int64)  # n(s,a,s')
        self.reward_sum = np.zeros((n, s, a))  # Σ r over the visits of (s,a)
        self.step = np.zeros(n, np.int64)  # steps taken in the current episode
        self.stale = np.ones(n, bool)  # plan the episode at the next act
        self.q = np.zeros((n, self.H, s, a))  # the episode's plan, q[:, k]: k + 1 steps to go

    def plan(self, rows: np.ndarray) -> np.ndarray:
        """Q-values [len(rows), H, S, A] for the episode starting in envs `rows`."""
        raise NotImplementedError

    def reset(self, env_mask: np.ndarray) -> None:
        mask = np.asarray(env_mask, bool)
        if len(mask) != len(self.step):
            self._alloc(len(mask))  # a new set of envs (e.g. evaluation): all start
            return
        for name in ("visits", "transitions", "reward_sum", "step"):
            getattr(self, name)[mask] = 0
        self.stale[mask] = True

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del task_class, deterministic  # meta-RL: the MDP is learned, never told
        obs_NS = np.asarray(obs)
        if len(obs_NS) != len(self.step):
            self._alloc(len(obs_NS))
        if self.stale.any():
            rows = np.flatnonzero(self.stale)
            self.q[rows] = self.plan(rows)
            self.stale[rows] = False
        # Past the planned horizon (a longer env), act on the one-step-to-go values.
        to_go = np.clip(self.H - self.step, 1, self.H)
        n = len(obs_NS)
        action = self.choose(self.q[np.arange(n), to_go - 1, obs_NS.argmax(-1)])
        return action + self.first_action

    def choose(self, q_NA: np.ndarray) -> np.ndarray:
        return argmax_random_ties(self.rng, q_NA)

    def observe(self, step: StepBatch) -> None:
        rows = np.flatnonzero(step.valid)  # idle envs and autoreset dummies teach nothing
        s = np.asarray(step.obs)[rows].argmax(-1)
        s_next = np.asarray(step.next_obs)[rows].argmax(-1)
        a = np.asarray(step.action).reshape(-1)[rows].astype(np.int64) - self.first_action
        # One row per env, so no index repeats: plain fancy-index increments are exact.
        self.visits[rows, s, a] += 1
        self.transitions[rows, s, a, s_next] += 1
        self.reward_sum[rows, s, a] += step.reward[rows]
        self.step[rows] += 1
        ended = rows[step.done[rows]]
        self.step[ended] = 0
        self.stale[ended] = True

    def posterior_mean(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior-mean rewards [R, S, A] and transitions [R, S, A, S] of envs `rows`."""
        c = self.config
        mean, _ = reward_posterior(
            self.visits[rows],
            self.reward_sum[rows],
            c.reward_prior_mean,
            c.reward_prior_var,
            c.reward_noise_var,
        )
        return mean, transition_posterior_mean(self.transitions[rows], c.transition_prior)

    def sample_mdps(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k posterior MDPs per env: rewards [R, k, S, A], transitions [R, k, S, A, S]."""
        c = self.config
        mean, var = reward_posterior(
            self.visits[rows],
            self.reward_sum[rows],
            c.reward_prior_mean,
            c.reward_prior_var,
            c.reward_noise_var,
        )
        shape = (len(rows), k, self.S, self.A)
        reward = mean[:, None] + np.sqrt(var)[:, None] * self.rng.standard_normal(shape)
        alpha = np.broadcast_to(
            (self.transitions[rows] + c.transition_prior)[:, None], (*shape, self.S)
        )
        return reward, sample_dirichlet(self.rng, alpha)

    def state_dict(self) -> dict[str, Any]:
        """Plain arrays and the generator's state (JSON + npz in a checkpoint)."""
        state: dict[str, Any] = {name: getattr(self, name).copy() for name in self._ARRAYS}
        state["rng"] = self.rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._alloc(len(state["step"]))
        for name in self._ARRAYS:
            current = getattr(self, name)
            value = np.asarray(state[name], current.dtype)
            if value.shape != current.shape:
                raise ValueError(f"{name}: shape {value.shape} != {current.shape}")
            setattr(self, name, value.copy())
        self.rng.bit_generator.state = state["rng"]


class MDPGreedy(MDPPlanner):
    """Plans on the posterior-mean MDP (`mdp_greedy`)."""

    def plan(self, rows: np.ndarray) -> np.ndarray:
        return backward_induction(*self.posterior_mean(rows), self.H)


class MDPEpsilonGreedy(MDPGreedy):
    """Greedy, except a uniform action with probability ε at every step (`mdp_egreedy`)."""

    config: MDPEpsilonGreedyConfig

    def choose(self, q_NA: np.ndarray) -> np.ndarray:
        greedy = super().choose(q_NA)
        explore = self.rng.random(len(q_NA)) < self.config.epsilon
        return np.where(explore, self.rng.integers(self.A, size=len(q_NA)), greedy)


class PSRL(MDPPlanner):
    """Posterior sampling RL (Osband, Russo & Van Roy 2013, Algorithm 1): one MDP drawn from
    the posterior per episode, solved, and followed to the episode's end (`mdp_psrl`)."""

    def plan(self, rows: np.ndarray) -> np.ndarray:
        reward, transition = self.sample_mdps(rows, 1)
        return backward_induction(reward[:, 0], transition[:, 0], self.H)


class OPSRL(MDPPlanner):
    """Optimistic PSRL (`mdp_opsrl`): K = `samples` MDPs drawn per episode, each solved
    exactly; the agent acts on Q⁺_k(s,a) = max_i Q^(i)_k(s,a), the elementwise max over the
    samples of each one's own optimal Q-value with k steps to go (not a max inside the
    backups), as optimistic Thompson sampling (RL² Table 1's OTS) takes the max over posterior
    samples of each arm's mean."""

    config: OPSRLConfig

    def plan(self, rows: np.ndarray) -> np.ndarray:
        k = self.config.samples
        q = np.empty((len(rows), self.H, self.S, self.A))
        # At most _SAMPLED_MDPS MDPs in memory at once (k may be large, and so may N).
        chunks = -(-len(rows) * k // _SAMPLED_MDPS)
        for part in np.array_split(np.arange(len(rows)), max(1, chunks)):
            reward, transition = self.sample_mdps(rows[part], k)
            each = backward_induction(
                reward.reshape(-1, self.S, self.A),
                transition.reshape(-1, self.S, self.A, self.S),
                self.H,
            )
            q[part] = each.reshape(len(part), k, self.H, self.S, self.A).max(1)
        return q


class UCRL2(MDPPlanner):
    """UCRL2 (Jaksch et al. 2010) for finite-horizon episodes (`mdp_ucrl2`): plans by
    extended backward induction on rewards r̂ + radius_r and the L1 ball of radius radius_p
    around p̂. Deviations: r̂ and p̂ are the shared posterior means (UCRL2 uses empirical
    means, undefined before a visit), a new plan is made every episode rather than when a
    count doubles, and the radii (built for rewards in [0, 1]) are scaled by `scale`."""

    config: UCRL2Config

    def plan(self, rows: np.ndarray) -> np.ndarray:
        reward, p_hat = self.posterior_mean(rows)
        bonus, radius = ucrl2_radii(self.visits[rows], self.config.delta, self.config.scale)
        return extended_backward_induction(reward + bonus, p_hat, radius, self.H)


class BEB(MDPPlanner):
    """Bayesian exploration bonus (Kolter & Ng 2009) (`mdp_beb`): the posterior-mean MDP with
    rewards raised by β / (1 + n(s,a)) (`form: kolter_ng`; n counts visits, not the prior's
    pseudo-counts), or TabulaRL's variant (`form: tabula_rl`, `tabula_rl_beb_bonus`)."""

    config: BEBConfig

    def plan(self, rows: np.ndarray) -> np.ndarray:
        reward, transition = self.posterior_mean(rows)
        c = self.config
        if c.form == "kolter_ng":
            bonus = beb_bonus(self.visits[rows], c.beta)
            return backward_induction(reward + bonus, transition, self.H)
        visits = self.visits[rows]
        precision = 1.0 / c.reward_prior_var + visits / c.reward_noise_var
        dirichlet_total = self.S * c.transition_prior + visits
        reward_bonus, step_bonus = tabula_rl_beb_bonus(precision, dirichlet_total, self.H, c.beta)
        return backward_induction(reward + reward_bonus, transition, self.H, step_bonus)


_PLANNERS: dict[str, tuple[type[_PlannerConfig], type[MDPPlanner], str]] = {
    "mdp_greedy": (MDPGreedyConfig, MDPGreedy, "greedy on the posterior-mean MDP"),
    "mdp_egreedy": (MDPEpsilonGreedyConfig, MDPEpsilonGreedy, "ε-greedy on the posterior mean"),
    "mdp_psrl": (PSRLConfig, PSRL, "posterior sampling RL (Osband et al. 2013)"),
    "mdp_opsrl": (OPSRLConfig, OPSRL, "optimistic PSRL: max of several posterior samples' Q"),
    "mdp_ucrl2": (UCRL2Config, UCRL2, "UCRL2 (Jaksch et al. 2010), finite-horizon"),
    "mdp_beb": (BEBConfig, BEB, "Bayesian exploration bonus (Kolter & Ng 2009)"),
}


def build_mdp_baseline(
    config: _TrialConfig, env: EnvSpec, seed: int = 0, device: str = "cpu"
) -> MDPRandom | MDPPlanner:
    del device  # tabular: numpy only
    num_states, num_actions, first = _sizes(env, config.name)
    if isinstance(config, MDPRandomConfig):
        return MDPRandom(config, num_actions, seed, first)
    assert isinstance(config, _PlannerConfig)
    return _PLANNERS[config.name][1](config, num_states, num_actions, seed, first)


register_agent(
    AgentSpec(
        "mdp_random",
        "tabular MDP: uniform random actions (RL² Table 2)",
        "baseline",
        MDPRandomConfig,
        build_mdp_baseline,
    )
)
for _name, (_config, _, _what) in _PLANNERS.items():
    register_agent(
        AgentSpec(
            _name, f"tabular MDP: {_what} (RL² Table 2)", "baseline", _config, build_mdp_baseline
        )
    )
