"""Option-critic (Bacon, Harb & Precup 2017), tabular, for discrete states and actions.

Per option ω: an intra-option softmax policy π_ω(a|s) ∝ exp(θ[ω,s,a] / T), a termination
β_ω(s) = σ(ϑ[ω,s]), and a critic Q_U(s,ω,a) learned by intra-option Q-learning; the policy
over options is ε-greedy on Q_Ω(s,ω) = Σ_a π_ω(a|s) Q_U(s,ω,a). Learning is online, one
update per transition, inside `observe` (the rollout protocol's hook), in the paper's order
(Algorithm 1): critic, intra-option policy gradient (Theorem 1, baseline Q_Ω), termination
gradient (Theorem 2, with the termination regulariser ξ), then the option switch at s'.
The active option is agent state, per env; `reset(mask)` clears it at a trial start.
Every env is vectorised in numpy: one update is a handful of array ops over the envs.

With `num_options: 1` this is the flat actor-critic the paper compares against (an actor with
a Q critic and baseline V = Q_Ω; the single option never has to terminate).
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
    """Tabular option-critic; defaults: Four Rooms settings of REFERENCE.md (Bacon et al.)."""

    name: Literal["option_critic"] = "option_critic"
    num_options: int = Field(4, ge=1, description="options (1 = flat actor-critic)")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    lr_critic: float = Field(0.5, gt=0, description="step size of the Q_U critic")
    lr_intra: float = Field(0.25, gt=0, description="step size of the intra-option policies")
    lr_term: float = Field(0.25, ge=0, description="step size of the terminations (0: frozen)")
    temperature: float = Field(1e-2, gt=0, description="softmax temperature of π_ω")
    epsilon: float = Field(0.01, ge=0, le=1, description="ε-greedy choice among options")
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
    td_error: float  # mean |δ| of the critic update
    termination_prob: float  # mean β_ω(s') of the active options
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


class OptionCritic(OnlineLearner):
    """Tabular option-critic over N envs at once (see the module docstring)."""

    def __init__(self, config: OptionCriticConfig, env: EnvSpec, seed: int = 0) -> None:
        self.config = config
        self.n_states = _discrete_size(env.observation_space, "observation")
        self.n_actions = _discrete_size(env.action_space, "action")
        o, s, a = config.num_options, self.n_states, self.n_actions
        self.theta = np.zeros((o, s, a))  # intra-option preferences
        self.vartheta = np.zeros((o, s))  # termination logits
        self.q_u = np.zeros((s, o, a))  # critic Q_U(s, ω, a)
        self.rng = np.random.default_rng(seed + config.seed_offset)
        self.option = np.zeros(0, np.int64)  # active option per env; -1 = choose at next act
        self.training = True
        self.updates = 0
        self._last: OptionCriticUpdate | None = None

    # -- model --------------------------------------------------------------------------------
    def _states(self, obs: Obs) -> np.ndarray:
        arr = np.asarray(obs)
        return arr.argmax(-1).astype(np.int64) if arr.ndim == 2 else arr.astype(np.int64)

    def policy(self, option: np.ndarray, state: np.ndarray) -> np.ndarray:
        """π_ω(·|s) [N, A]: softmax of θ[ω, s] / T (max-shifted for stability)."""
        logits = self.theta[option, state] / self.config.temperature
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(-1, keepdims=True)

    def termination(self, option: np.ndarray, state: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.vartheta[option, state]))

    def option_values(self, state: np.ndarray) -> np.ndarray:
        """Q_Ω(s, ·) [N, O] = Σ_a π_ω(a|s) Q_U(s, ω, a)."""
        o = self.config.num_options
        n = len(state)
        options = np.broadcast_to(np.arange(o), (n, o)).reshape(-1)
        pi = self.policy(options, np.repeat(state, o)).reshape(n, o, -1)
        return (pi * self.q_u[state]).sum(-1)

    def _choose_options(self, state: np.ndarray) -> np.ndarray:
        """ε-greedy over Q_Ω (ties broken at random, so untrained options all get used)."""
        q = self.option_values(state)
        noise = self.rng.random(q.shape) * 1e-9
        greedy = (q + noise).argmax(-1)
        explore = self.rng.random(len(state)) < self.config.epsilon
        random = self.rng.integers(self.config.num_options, size=len(state))
        return np.where(explore, random, greedy)

    # -- Policy protocol ----------------------------------------------------------------------
    def reset(self, env_mask: np.ndarray) -> None:
        if len(self.option) != len(env_mask):
            self.option = np.full(len(env_mask), -1, np.int64)
        self.option[env_mask] = -1

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        state = self._states(obs)
        if len(self.option) != len(state):
            self.option = np.full(len(state), -1, np.int64)
        pick = self.option < 0
        if pick.any():
            self.option[pick] = self._choose_options(state[pick])
        pi = self.policy(self.option, state)
        if deterministic:
            return pi.argmax(-1)
        u = self.rng.random((len(state), 1))
        return np.minimum((pi.cumsum(-1) < u).sum(-1), self.n_actions - 1)

    def observe(self, step: StepBatch) -> None:
        """One online update per valid transition, then the option switch (Algorithm 1)."""
        rows = np.flatnonzero(step.valid)
        if len(rows) == 0:
            return
        c = self.config
        s, s_next = self._states(step.obs)[rows], self._states(step.next_obs)[rows]
        a = np.asarray(step.action)[rows].astype(np.int64)
        w = self.option[rows]
        r = step.reward[rows].astype(np.float64)
        terminated = step.terminated[rows]
        ended = step.done[rows]

        beta_next = self.termination(w, s_next)
        if self.training:
            q_next = self.option_values(s_next)  # [N, O]
            v_next = q_next.max(-1)
            # U(s', ω) = (1 - β_ω(s')) Q_Ω(s', ω) + β_ω(s') V_Ω(s')   (Bacon et al. eq. 2)
            u_next = (1 - beta_next) * q_next[np.arange(len(rows)), w] + beta_next * v_next
            target = r + c.gamma * np.where(terminated, 0.0, u_next)
            td = target - self.q_u[s, w, a]
            np.add.at(self.q_u, (s, w, a), c.lr_critic * td)
            # Intra-option policy gradient (Theorem 1) with baseline Q_Ω(s, ω):
            # ∂ log π / ∂θ[ω,s,·] = (onehot(a) - π) / T.
            pi = self.policy(w, s)
            advantage = self.q_u[s, w, a] - (pi * self.q_u[s, w]).sum(-1)
            grad = -pi
            grad[np.arange(len(rows)), a] += 1.0
            grad *= (c.lr_intra * advantage / c.temperature)[:, None]
            np.add.at(self.theta, (w, s), grad)
            # Termination gradient (Theorem 2): ∂β/∂ϑ = β(1-β); advantage A_Ω(s', ω) + ξ.
            if c.lr_term > 0 and c.num_options > 1:
                q_next = self.option_values(s_next)
                adv = q_next[np.arange(len(rows)), w] - q_next.max(-1) + c.termination_reg
                step_term = c.lr_term * beta_next * (1 - beta_next) * adv
                np.add.at(self.vartheta, (w, s_next), -np.where(ended, 0.0, step_term))
            self.updates += len(rows)
            self._last = OptionCriticUpdate(
                td_error=float(np.abs(td).mean()),
                termination_prob=float(beta_next.mean()),
                option_switches=0.0,
            )
        # Option switch at s': a new episode chooses afresh; otherwise ω ends with β_ω(s').
        switch = ended | (self.rng.random(len(rows)) < beta_next)
        self.option[rows[switch]] = -1
        if self._last is not None and self.training:
            self._last = OptionCriticUpdate(
                self._last.td_error, self._last.termination_prob, float(switch.mean())
            )

    # -- logs and state -----------------------------------------------------------------------
    @staticmethod
    def metric_names() -> list[str]:
        return OptionCriticUpdate.names()

    def state_dict(self) -> dict[str, Any]:
        return {
            "theta": self.theta.copy(),
            "vartheta": self.vartheta.copy(),
            "q_u": self.q_u.copy(),
            "option": self.option.copy(),
            "rng": self.rng.bit_generator.state,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("theta", "vartheta", "q_u"):
            value = np.asarray(state[name], np.float64)
            if value.shape != getattr(self, name).shape:
                raise ValueError(f"{name}: shape {value.shape} != {getattr(self, name).shape}")
            setattr(self, name, value.copy())
        self.option = np.asarray(state["option"], np.int64).copy()
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
