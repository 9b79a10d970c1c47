"""Deep option-critic (Bacon, Harb & Precup 2017, §4 and appendix), online over N envs.

One network: a shared MLP body, Q_Ω(s, ·) [O], termination logits [O], and intra-option
policies for every option at once — a softmax over discrete actions [O, A], or a Gaussian with
a state-dependent mean and a learned per-option log-std for `Box` actions (the continuous
version). Options are chosen ε-greedily on Q_Ω (ε decays linearly, REFERENCE: 1 → 0.1); the
active option is agent state, and learning happens in `observe`, one gradient step per
sampler step on the N transitions just taken (the A2OC-style batch of envs), in the paper's
terms:

- critic: Q_Ω(s, ω) → r + γ U(s', ω), U(s', ω) = (1 - β_ω(s')) Q_Ω(s', ω) + β_ω(s') max Q_Ω(s')
  (eq. 2; targets from the same network, not differentiated);
- intra-option policy gradient (Theorem 1) with advantage target - Q_Ω(s, ω) and an entropy
  bonus (`entropy_reg`);
- termination gradient (Theorem 2): β_ω(s') (Q_Ω(s', ω) - V_Ω(s') + ξ), ξ = `termination_reg`,
  not at episode ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn import functional as F

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.networks import flat_dim, flatten_obs, mlp
from gmtl_rl.core.policy import OnlineLearner
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch, UpdateResult
from gmtl_rl.errors import ConfigError


class DeepOptionCriticConfig(AgentConfig):
    """Deep option-critic; defaults: the deep settings of REFERENCE.md (Bacon et al.)."""

    name: Literal["deep_option_critic"] = "deep_option_critic"
    num_options: int = Field(4, ge=1, description="options (REFERENCE: 2-8)")
    hidden: list[PositiveInt] = Field([64, 64], min_length=1, description="MLP body sizes")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    lr: float = Field(5e-4, gt=0, description="RMSprop learning rate")
    termination_reg: float = Field(0.01, description="ξ: favours longer options")
    entropy_reg: float = Field(0.01, ge=0, description="entropy bonus of the intra-option policies")
    epsilon_start: float = Field(1.0, ge=0, le=1, description="ε over options at step 0")
    epsilon_end: float = Field(0.1, ge=0, le=1, description="ε after the decay")
    epsilon_decay_steps: int = Field(50_000, ge=1, description="env steps of linear ε decay")
    max_grad_norm: float = Field(10.0, gt=0, description="gradient clipping")


@dataclass(frozen=True)
class DeepOptionCriticUpdate(UpdateResult):
    critic_loss: float
    policy_loss: float
    termination_loss: float
    termination_prob: float
    entropy: float
    epsilon: float


class OptionCriticNet(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, options: int, hidden: list[int]):
        super().__init__()
        self.options, self.act_dim, self.discrete = options, act_dim, discrete
        self.body = mlp(obs_dim, hidden[:-1], hidden[-1])
        self.q = nn.Linear(hidden[-1], options)
        self.term = nn.Linear(hidden[-1], options)
        self.pi = nn.Linear(hidden[-1], options * act_dim)
        self.log_std = nn.Parameter(torch.full((options, act_dim), -0.5))

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(obs))

    def policy_params(self, feats: torch.Tensor, option: torch.Tensor) -> torch.Tensor:
        out = self.pi(feats).view(-1, self.options, self.act_dim)
        return out[torch.arange(len(option)), option]  # [B, A]: logits or Gaussian mean

    def log_prob_entropy(
        self, feats: torch.Tensor, option: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.policy_params(feats, option)
        if self.discrete:
            logp = F.log_softmax(params, -1)
            entropy = -(logp.exp() * logp).sum(-1)
            return logp.gather(-1, action.long().view(-1, 1)).squeeze(-1), entropy
        log_std = self.log_std[option]
        z = (action - params) / log_std.exp()
        logp = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
        return logp, entropy


class DeepOptionCritic(OnlineLearner):
    """Deep option-critic over N envs (see the module docstring)."""

    def __init__(self, config: DeepOptionCriticConfig, env: EnvSpec, seed: int = 0) -> None:
        self.config = config
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            self.discrete, act_dim = True, int(space.n)
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            self.discrete, act_dim = False, int(space.shape[0])
            self.low = np.asarray(space.low, np.float32)
            self.high = np.asarray(space.high, np.float32)
        else:
            raise ConfigError(
                f"agent.name: deep_option_critic needs Discrete or 1-d Box actions, not {space}"
            )
        self.net = OptionCriticNet(
            flat_dim(env.observation_space), act_dim, self.discrete, config.num_options,
            list(config.hidden),
        )  # fmt: skip
        self.opt = torch.optim.RMSprop(self.net.parameters(), lr=config.lr)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.option = np.zeros(0, np.int64)
        self.raw_action: np.ndarray | None = None  # unclipped Gaussian sample of the last act
        self.steps = 0
        self.training = True
        self._last: DeepOptionCriticUpdate | None = None

    @property
    def epsilon(self) -> float:
        c = self.config
        frac = min(1.0, self.steps / c.epsilon_decay_steps)
        return c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)

    def _obs(self, obs: Obs) -> torch.Tensor:
        return torch.as_tensor(flatten_obs(obs))

    # -- Policy protocol ----------------------------------------------------------------------
    def reset(self, env_mask: np.ndarray) -> None:
        if len(self.option) != len(env_mask):
            self.option = np.full(len(env_mask), -1, np.int64)
        self.option[env_mask] = -1

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        x = self._obs(obs)
        n = len(x)
        if len(self.option) != n:
            self.option = np.full(n, -1, np.int64)
        with torch.no_grad():
            feats = self.net.features(x)
            pick = self.option < 0
            if pick.any():
                q = self.net.q(feats).numpy()[pick]
                eps = 0.0 if deterministic else self.epsilon
                explore = self.rng.random(len(q)) < eps
                choice = np.where(explore, self.rng.integers(q.shape[1], size=len(q)), q.argmax(1))
                self.option[pick] = choice
            params = self.net.policy_params(feats, torch.as_tensor(self.option))
            if self.discrete:
                if deterministic:
                    return params.argmax(-1).numpy()
                return (
                    torch.multinomial(params.softmax(-1), 1, generator=self.generator)
                    .view(-1)
                    .numpy()
                )
            std = self.net.log_std[torch.as_tensor(self.option)].exp()
            noise = torch.randn(params.shape, generator=self.generator)
            raw = params if deterministic else params + std * noise
        self.raw_action = raw.numpy()
        return np.clip(self.raw_action, self.low, self.high).astype(np.float32)

    def observe(self, step: StepBatch) -> None:
        rows = np.flatnonzero(step.valid)
        if len(rows) == 0:
            return
        c = self.config
        w_np = self.option[rows]
        w = torch.as_tensor(w_np)
        idx = torch.arange(len(rows))
        obs = self._obs(step.obs)[rows]
        next_obs = self._obs(step.next_obs)[rows]
        ended = step.done[rows]
        feats_next = self.net.features(next_obs)
        beta_next = torch.sigmoid(self.net.term(feats_next))[idx, w]
        if self.training:
            feats = self.net.features(obs)
            q = self.net.q(feats)[idx, w]
            with torch.no_grad():
                q_next = self.net.q(feats_next)
                b = beta_next.detach()
                u = (1 - b) * q_next[idx, w] + b * q_next.max(-1).values
                not_term = torch.as_tensor(~step.terminated[rows], dtype=torch.float32)
                target = torch.as_tensor(step.reward[rows]) + c.gamma * not_term * u
                advantage = target - q
                term_adv = q_next[idx, w] - q_next.max(-1).values + c.termination_reg
            if self.discrete:
                action = torch.as_tensor(np.asarray(step.action)[rows])
            else:
                assert self.raw_action is not None
                action = torch.as_tensor(self.raw_action[rows])
            logp, entropy = self.net.log_prob_entropy(feats, w, action)
            critic_loss = 0.5 * (q - target).pow(2).mean()
            policy_loss = -(logp * advantage).mean() - c.entropy_reg * entropy.mean()
            alive = torch.as_tensor(~ended, dtype=torch.float32)
            term_loss = (beta_next * term_adv * alive).mean()
            self.opt.zero_grad(set_to_none=True)
            (critic_loss + policy_loss + term_loss).backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
            self.opt.step()
            self._last = DeepOptionCriticUpdate(
                critic_loss.item(), policy_loss.item(), term_loss.item(),
                beta_next.mean().item(), entropy.mean().item(), self.epsilon,
            )  # fmt: skip
            self.steps += len(rows)
        # Option switch at s': a new episode chooses afresh; otherwise ω ends with β_ω(s').
        switch = ended | (self.rng.random(len(rows)) < beta_next.detach().numpy())
        self.option[rows[switch]] = -1

    # -- logs and state -----------------------------------------------------------------------
    @staticmethod
    def metric_names() -> list[str]:
        return DeepOptionCriticUpdate.names()

    def state_dict(self) -> dict[str, Any]:
        """Arrays and plain values only (the online loop stores them without pickle)."""
        net = {f"net.{k}": v.detach().numpy().copy() for k, v in self.net.state_dict().items()}
        opt_state = self.opt.state_dict()
        moments = {
            f"opt.{i}.{k}": v.numpy().copy()
            for i, s in opt_state["state"].items()
            for k, v in s.items()
            if isinstance(v, torch.Tensor)
        }
        return {
            **net,
            **moments,
            "option": self.option.copy(),
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state().numpy().copy(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        net = {
            k[4:]: torch.as_tensor(np.asarray(v)) for k, v in state.items() if k.startswith("net.")
        }
        self.net.load_state_dict(net)
        opt_state = self.opt.state_dict()
        for key, value in state.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                opt_state["state"].setdefault(int(i), {})[name] = torch.as_tensor(np.asarray(value))
        self.opt.load_state_dict(opt_state)
        self.option = np.asarray(state["option"], np.int64).copy()
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(torch.as_tensor(np.asarray(state["generator"]), dtype=torch.uint8))
        self.steps = int(state["steps"])


def build_deep_option_critic(
    config: DeepOptionCriticConfig, env: EnvSpec, seed: int = 0, device: str = "cpu"
) -> DeepOptionCritic:
    del device  # small MLPs stepped once per env step: the CPU
    torch.manual_seed(seed)
    return DeepOptionCritic(config, env, seed)


register_agent(
    AgentSpec(
        "deep_option_critic",
        "option-critic with an MLP: discrete (softmax) or continuous (Gaussian) options",
        "online",
        DeepOptionCriticConfig,
        build_deep_option_critic,
    )
)
