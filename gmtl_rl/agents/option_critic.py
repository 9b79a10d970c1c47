"""Option-critic (Bacon, Harb & Precup 2017), tabular, for discrete states and actions.

The update is the authors' Four Rooms code, jeanharb/option_critic@5d6c81a
fourrooms/transfer.py (Pierre-Luc Bacon, "Transfer experiment", 099763b), run there as
`transfer.py --baseline --discount=0.99 --epsilon=0.01 --noptions=4 --lr_critic=0.5
--lr_intra=0.25 --lr_term=0.25` (its README); comments below cite it as "ref" with the class.
Per option ω: a softmax intra-option policy π_ω(a|s) ∝ exp(θ[ω,s,a] / T) (ref SoftmaxPolicy)
and a sigmoid termination β_ω(s) = σ(ϑ[ω,s]) (ref SigmoidTermination). Two critics, both
tables learned by intra-option Q-learning with the same step size: Q_Ω(s,ω) (ref
IntraOptionQLearning, whose table is also the policy over options) and Q_U(s,ω,a) (ref
IntraOptionActionQLearning, its target built from Q_Ω). The policy over options is a softmax
of Q_Ω(s,·) / T (ref: `policy = SoftmaxPolicy(..., args.temperature)`; its EgreedyPolicy is
commented out, so `--epsilon` is unused there); `option_choice: epsilon_greedy` is the
paper's Algorithm 1 ε-soft choice instead, with the ref EgreedyPolicy's argmax (first option
on ties). Learning is online, one update per transition, inside `observe`.

Order, as in the ref's episode loop: on arriving in s', the option ω may terminate (β_ω(s'))
and a new one is drawn from Q_Ω *before* any update; then Q_Ω(s,ω), then Q_U(s,ω,a); then the
intra-option gradient (Theorem 1) at (s', ω', a') and the termination gradient (Theorem 2) at
(s', ω') for the option and action that will run next. Here a' is drawn in the next `act`, so
those two updates are made at the start of the next `observe`, where (s', ω', a') is its
(s, ω, a), before its critic step: the tables are then exactly as the ref reads them. Like
the ref, an episode's first state-action gets no actor or termination update. Deviation: the
ref also makes them at the state where the episode ends (π and β there are never used again:
the goal, or the 1000th state); we make none there.

With `num_options: 1` this is the flat actor-critic (the paper's AC-PG): Q_Ω is then the state
value V, the actor follows Q_U(s,a) - V(s), and a lone option's termination never matters.
The active option and the Q_Ω value read on arriving in s (the ref's `last_value`) are agent
state, per env; `reset(mask)` clears them at a trial start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.policy import OnlineLearner
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch, UpdateResult
from gmtl_rl.errors import ConfigError


class OptionCriticConfig(AgentConfig):
    """Tabular option-critic; defaults: the authors' Four Rooms command (module docstring)."""

    name: Literal["option_critic"] = "option_critic"
    num_options: int = Field(4, ge=1, description="options (1 = flat actor-critic)")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    lr_critic: float = Field(0.5, gt=0, description="step size of both critics, Q_Ω and Q_U")
    lr_intra: float = Field(0.25, gt=0, description="step size of the intra-option policies")
    lr_term: float = Field(0.25, ge=0, description="step size of the terminations (0: frozen)")
    temperature: float = Field(
        1e-2, gt=0, description="softmax temperature of π_ω and of the softmax option choice"
    )
    option_choice: Literal["softmax", "epsilon_greedy"] = Field(
        "softmax",
        description="policy over options: softmax of Q_Ω / temperature (the authors' code), "
        "or ε-greedy on Q_Ω, first option on ties (the paper's Algorithm 1)",
    )
    epsilon: float = Field(0.01, ge=0, le=1, description="ε of option_choice epsilon_greedy")
    baseline: bool = Field(
        True, description="intra-option gradient on Q_U - Q_Ω rather than Q_U (ref --baseline)"
    )
    termination_reg: float = Field(
        0.0, description="ξ added to the termination advantage: favours longer options"
    )
    seed_offset: int = Field(0, ge=0, description="extra seed for the agent's own sampling")


class ActorCriticConfig(OptionCriticConfig):
    """The flat baseline of the paper: option-critic's update with a single option."""

    name: Literal["actor_critic"] = "actor_critic"  # type: ignore[assignment]
    num_options: int = Field(1, ge=1, le=1, description="one option: a flat policy")


@dataclass(frozen=True)
class OptionCriticUpdate(UpdateResult):
    td_error: float  # mean |δ| of the Q_U critic update
    termination_prob: float  # mean β_ω(s') of the options that ran
    option_switches: float  # share of transitions after which a new option was chosen


def _discrete_size(space: gym.Space[Any], what: str) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if what == "observation" and isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return int(space.shape[0])  # a one-hot observation
    raise ConfigError(
        f"agent.name: tabular option_critic needs a discrete {what} space (Discrete, or a "
        f"one-hot Box for observations); this env's is {space}"
    )


def _softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    """exp(v/T - logsumexp(v/T)) along the last axis (ref SoftmaxPolicy.pmf)."""
    logits = values / temperature
    logits = logits - logits.max(-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(-1, keepdims=True)


class OptionCritic(OnlineLearner):
    """Tabular option-critic over N envs at once (see the module docstring)."""

    def __init__(self, config: OptionCriticConfig, env: EnvSpec, seed: int = 0) -> None:
        self.config = config
        self.n_states = _discrete_size(env.observation_space, "observation")
        self.n_actions = _discrete_size(env.action_space, "action")
        o, s, a = config.num_options, self.n_states, self.n_actions
        # All weights start at zero (paper: "All the weights were initialized to zero").
        self.theta = np.zeros((o, s, a))  # intra-option preferences
        self.vartheta = np.zeros((o, s))  # termination logits
        self.q_omega = np.zeros((s, o))  # critic Q_Ω(s, ω)
        self.q_u = np.zeros((s, o, a))  # critic Q_U(s, ω, a)
        self.rng = np.random.default_rng(seed + config.seed_offset)
        self.option = np.zeros(0, np.int64)  # active option per env; -1 = choose at next act
        self.q_arrival = np.zeros(0)  # Q_Ω(s, ω) read on arriving in s (ref `last_value`)
        self.training = True
        self.updates = 0
        self._last: OptionCriticUpdate | None = None

    # -- model --------------------------------------------------------------------------------
    def _states(self, obs: Obs) -> np.ndarray:
        arr = np.asarray(obs)
        return arr.argmax(-1).astype(np.int64) if arr.ndim == 2 else arr.astype(np.int64)

    def policy(self, option: np.ndarray, state: np.ndarray) -> np.ndarray:
        """π_ω(·|s) [N, A]: softmax of θ[ω, s] / T."""
        return _softmax(self.theta[option, state], self.config.temperature)

    def termination(self, option: np.ndarray, state: np.ndarray) -> np.ndarray:
        """β_ω(s) [N] = σ(ϑ[ω, s])."""
        return 1.0 / (1.0 + np.exp(-self.vartheta[option, state]))

    def option_values(self, state: np.ndarray) -> np.ndarray:
        """Q_Ω(s, ·) [N, O]: the critic's table."""
        return self.q_omega[state]

    def option_policy(self, state: np.ndarray) -> np.ndarray:
        """π_Ω(·|s) [N, O], the policy over options."""
        c = self.config
        q = self.q_omega[state]
        if c.option_choice == "softmax":  # ref: SoftmaxPolicy over Q_Ω, same temperature
            return _softmax(q, c.temperature)
        # ref EgreedyPolicy: ε uniform, else np.argmax (the first option on ties)
        p = np.full(q.shape, c.epsilon / c.num_options)
        p[np.arange(len(q)), q.argmax(-1)] += 1.0 - c.epsilon
        return p

    def _sample(self, p: np.ndarray) -> np.ndarray:
        u = self.rng.random((len(p), 1))
        return np.minimum((p.cumsum(-1) < u).sum(-1), p.shape[-1] - 1)

    def _ensure_envs(self, n: int) -> None:
        if len(self.option) != n:
            self.option = np.full(n, -1, np.int64)
            self.q_arrival = np.zeros(n)

    # -- Policy protocol ----------------------------------------------------------------------
    def reset(self, env_mask: np.ndarray) -> None:
        self._ensure_envs(len(env_mask))
        self.option[env_mask] = -1

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        state = self._states(obs)
        self._ensure_envs(len(state))
        pick = np.flatnonzero(self.option < 0)  # an episode's first state (ref: critic.start)
        if len(pick):
            self.option[pick] = self._sample(self.option_policy(state[pick]))
            self.q_arrival[pick] = self.q_omega[state[pick], self.option[pick]]
        pi = self.policy(self.option, state)
        if deterministic:
            return pi.argmax(-1)
        return self._sample(pi)

    def observe(self, step: StepBatch) -> None:
        """One online update per valid transition (see the module docstring for the order)."""
        rows = np.flatnonzero(step.valid)
        if len(rows) == 0:
            return
        c = self.config
        n = np.arange(len(rows))
        s, s_next = self._states(step.obs)[rows], self._states(step.next_obs)[rows]
        a = np.asarray(step.action)[rows].astype(np.int64)
        w = self.option[rows]
        r = step.reward[rows].astype(np.float64)
        terminated = step.terminated[rows]
        ended = step.done[rows]

        if self.training:
            self._actor_step(s, w, a, step.step_index[rows] > 0)

        # Option switch on arriving in s' (ref: sampled before the critic updates).
        beta_next = self.termination(w, s_next)
        switch = self.rng.random(len(rows)) < beta_next
        w_next = w.copy()
        if switch.any():
            w_next[switch] = self._sample(self.option_policy(s_next[switch]))

        if self.training:
            # Intra-option Q-learning (paper eq. 2 and its §"Learning Options"; ref
            # IntraOptionQLearning.update): U(s', ω) = (1 - β_ω(s')) Q_Ω(s', ω)
            # + β_ω(s') max_ω' Q_Ω(s', ω'); target r + γ U(s', ω), r alone at a terminal s'.
            q_next = self.q_omega[s_next]
            u_next = (1 - beta_next) * q_next[n, w] + beta_next * q_next.max(-1)
            target = r + c.gamma * np.where(terminated, 0.0, u_next)
            # ref: δ uses Q_Ω(s, ω) as read on arriving in s (`last_value`), not re-read now.
            arrival = q_next[n, w_next]  # read before this update, as the ref's cache is
            np.add.at(self.q_omega, (s, w), c.lr_critic * (target - self.q_arrival[rows]))
            # Q_U (ref IntraOptionActionQLearning.update): the same target, from Q_Ω as just
            # updated; δ on the current Q_U(s, ω, a).
            q_next = self.q_omega[s_next]
            u_next = (1 - beta_next) * q_next[n, w] + beta_next * q_next.max(-1)
            target = r + c.gamma * np.where(terminated, 0.0, u_next)
            td = target - self.q_u[s, w, a]
            np.add.at(self.q_u, (s, w, a), c.lr_critic * td)
            self.q_arrival[rows] = arrival
            self.updates += len(rows)
            self._last = OptionCriticUpdate(
                td_error=float(np.abs(td).mean()),
                termination_prob=float(beta_next.mean()),
                option_switches=float((switch & ~ended).mean()),
            )
        # A new episode chooses afresh in `act`; otherwise ω' runs on.
        self.option[rows] = np.where(ended, -1, w_next)

    def _actor_step(self, s: np.ndarray, w: np.ndarray, a: np.ndarray, due: np.ndarray) -> None:
        """The ref's end-of-step updates for (s, ω, a), made one call later (module docstring);
        `due` is False at an episode's first state-action, which the ref never updates."""
        c = self.config
        s, w, a = s[due], w[due], a[due]
        if len(s) == 0:
            return
        n = np.arange(len(s))
        # Intra-option policy gradient (Theorem 1; ref IntraOptionGradient.update):
        # θ[ω, s] += lr · (Q_U(s,ω,a) - Q_Ω(s,ω)) · (onehot(a) - π_ω(·|s)). The ref takes no
        # 1/T from ∂ log π / ∂θ: its step sizes were tuned without it.
        feedback = self.q_u[s, w, a] - (self.q_omega[s, w] if c.baseline else 0.0)
        grad = -self.policy(w, s)
        grad[n, a] += 1.0
        np.add.at(self.theta, (w, s), c.lr_intra * feedback[:, None] * grad)
        # Termination gradient (Theorem 2; ref TerminationGradient.update):
        # ϑ[ω, s] -= lr · β(1 - β) · (Q_Ω(s, ω) - max_ω' Q_Ω(s, ω') + ξ); the ref has ξ = 0.
        if c.lr_term > 0 and c.num_options > 1:
            beta = self.termination(w, s)
            q = self.q_omega[s]
            advantage = q[n, w] - q.max(-1) + c.termination_reg
            np.add.at(self.vartheta, (w, s), -c.lr_term * beta * (1 - beta) * advantage)

    # -- logs and state -----------------------------------------------------------------------
    @staticmethod
    def metric_names() -> list[str]:
        return OptionCriticUpdate.names()

    def state_dict(self) -> dict[str, Any]:
        return {
            "theta": self.theta.copy(),
            "vartheta": self.vartheta.copy(),
            "q_omega": self.q_omega.copy(),
            "q_u": self.q_u.copy(),
            "option": self.option.copy(),
            "q_arrival": self.q_arrival.copy(),
            "rng": self.rng.bit_generator.state,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("theta", "vartheta", "q_omega", "q_u"):
            value = np.asarray(state[name], np.float64)
            if value.shape != getattr(self, name).shape:
                raise ValueError(f"{name}: shape {value.shape} != {getattr(self, name).shape}")
            setattr(self, name, value.copy())
        self.option = np.asarray(state["option"], np.int64).copy()
        self.q_arrival = np.asarray(state["q_arrival"], np.float64).copy()
        self.rng.bit_generator.state = state["rng"]
        self.updates = int(state["updates"])


def build_option_critic(
    config: OptionCriticConfig, env: EnvSpec, seed: int = 0, device: str = "cpu"
) -> OptionCritic:
    del device  # tabular: numpy only
    return OptionCritic(config, env, seed)


register_agent(
    AgentSpec(
        "option_critic",
        "option-critic (Bacon et al. 2017), tabular: options, terminations, intra-option PG",
        "online",
        OptionCriticConfig,
        build_option_critic,
    )
)
register_agent(
    AgentSpec(
        "actor_critic",
        "flat actor-critic: option-critic's update with one option (the paper's baseline)",
        "online",
        ActorCriticConfig,
        build_option_critic,
    )
)
