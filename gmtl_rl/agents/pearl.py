"""PEARL (Rakelly et al. 2019, "Efficient Off-Policy Meta-RL via Probabilistic Context
Variables"), after the authors' code (oyster).

A permutation-invariant encoder maps each context transition c_n = (s, a, r[, s']) to a
Gaussian factor Ψ(z | c_n); the posterior is their product (eq. 5), regularised towards the
unit Gaussian prior by a KL term (the information bottleneck, eq. 4). SAC acts and learns on
[s, z]; the encoder is trained through the critic's Bellman error plus the KL (Alg. 1), the
actor and value function see z detached. SAC is oyster's: twin Q, a state-value function with
a Polyak target, α fixed at 1 with rewards scaled instead.

Acting (the Policy protocol) has three modes, set by the training loop; z is drawn afresh
for every episode in all of them (oyster's sampler calls `sample_z` after every trajectory):
- `prior`: z from the prior (data for the context: exploration),
- `posterior`: the collection's first episode takes z from the prior (oyster's `collect_data`
  starts with `clear_z`); every other episode takes z from the posterior of a context batch
  the loop supplies, drawn anew (Alg. 1 "posterior" collection). With parallel envs only one
  episode starts on the prior, so posterior-z data is collected however many envs run,
- `adapt` (evaluation, the default): a trial starts with z from the prior, and each of the
  first `eval_exploration_episodes` episodes draws a new prior z (oyster's `collect_paths`);
  transitions are gathered as the env's own context, and after the exploration episodes the
  posterior is re-inferred from it and sampled after every episode (paper §6, oyster).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.networks import (
    TanhGaussianActor,
    TwinQ,
    flat_dim,
    flatten_obs,
    mlp,
    rlkit_init,
)
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch, UpdateResult
from gmtl_rl.errors import ConfigError

ActingMode = Literal["prior", "posterior", "adapt"]
VAR_MIN = 1e-7  # oyster clamps the factors' variances from below


class PEARLConfig(AgentConfig):
    """PEARL hyperparameters; defaults are oyster's (REFERENCE.md "PEARL"), per-family values
    live in the configs."""

    name: Literal["pearl"] = "pearl"
    latent_dim: int = Field(5, ge=1, description="size of the task variable z")
    hidden: list[PositiveInt] = Field([300, 300, 300], min_length=1, description="SAC MLP sizes")
    encoder_hidden: list[PositiveInt] = Field(
        [200, 200, 200], min_length=1, description="context encoder MLP sizes"
    )
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of actor, critics, value")
    context_lr: float = Field(3e-4, gt=0, description="Adam learning rate of the encoder")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    tau: float = Field(0.005, gt=0, le=1, description="Polyak factor of the target value net")
    reward_scale: float = Field(5.0, gt=0, description="SAC reward scale (α is fixed at 1)")
    kl_lambda: float = Field(0.1, ge=0, description="weight of KL(q(z|c) || N(0, I))")
    information_bottleneck: bool = Field(
        True, description="probabilistic z (else a deterministic mean embedding)"
    )
    next_obs_in_context: bool = Field(False, description="context rows include s'")
    sparse_context: bool = Field(
        False,
        description="context rewards from the family's sparse reward (sparse-point-robot)",
    )
    batch_size: int = Field(256, ge=1, description="RL transitions per task per update")
    meta_batch: int = Field(16, ge=1, description="tasks per update")
    context_batch: int = Field(
        64, ge=1, description="context transitions per task (oyster's embedding_batch_size)"
    )
    buffer_size: int = Field(1_000_000, ge=1, description="replay capacity (transitions)")
    initial_steps: int = Field(2000, ge=1, description="prior-z steps per train task at start")
    tasks_per_iteration: int = Field(5, ge=1, description="tasks collected per iteration")
    steps_prior: int = Field(400, ge=0, description="steps per task with z from the prior")
    steps_posterior: int = Field(
        0, ge=0, description="steps per task with z from the posterior, kept as context too"
    )
    steps_extra_posterior: int = Field(
        400, ge=0, description="steps per task with posterior z for the RL replay only"
    )
    updates_per_iteration: int = Field(2000, ge=1, description="gradient steps per iteration")
    eval_exploration_episodes: int = Field(
        1,
        ge=0,
        description="evaluation episodes with a fresh prior z each before the first posterior "
        "(oyster's num_exp_traj_eval)",
    )
    init: Literal["torch", "rlkit"] = Field(
        "rlkit",
        description="weight initialisation: torch's nn.Linear default, or rlkit's as oyster "
        "runs it (fan-in on the output width, hidden biases 0.1, last layers U(±3e-3) / ±1e-3)",
    )
    policy_mean_reg: float = Field(1e-3, ge=0, description="L2 on the policy mean (oyster)")
    policy_std_reg: float = Field(1e-3, ge=0, description="L2 on the policy log-std (oyster)")

    def default_eval_episodes(self) -> int:
        # Its exploration episodes and at least two with the posterior (oyster reports the
        # posterior episodes; two show whether the posterior keeps improving).
        return self.eval_exploration_episodes + 2

    def exploration_episodes(self) -> int:
        return self.eval_exploration_episodes

    @model_validator(mode="after")
    def _posterior_needs_a_context(self) -> PEARLConfig:
        # Posterior z is inferred from the context just collected with prior z (Alg. 1).
        if self.steps_prior == 0 and self.steps_posterior + self.steps_extra_posterior > 0:
            raise ValueError(
                "steps_prior must be > 0 when steps_posterior or steps_extra_posterior is: "
                "posterior z is inferred from the prior-z context collected just before"
            )
        return self


@dataclass(frozen=True)
class PEARLUpdate(UpdateResult):
    """Diagnostics of one meta-batch gradient step."""

    critic_loss: float
    value_loss: float
    policy_loss: float
    kl: float
    q_mean: float
    entropy: float
    z_mean_abs: float  # mean |μ| of the posteriors: 0 means the encoder ignores the task
    z_var: float  # mean posterior variance: 1 = prior, small = confident


@dataclass
class MetaBatch:
    """One update's data, grouped by task: T tasks × B transitions, T × C context rows."""

    obs: np.ndarray  # [T, B, D]
    action: np.ndarray  # [T, B, A] in the env's units
    reward: np.ndarray  # [T, B]
    next_obs: np.ndarray  # [T, B, D]
    terminated: np.ndarray  # [T, B] float
    context: np.ndarray  # [T, C, context_dim] (from `PEARL.context_rows`)


class PEARL:
    """The agent: networks, the posterior, the SAC update, and per-env acting state."""

    def __init__(self, config: PEARLConfig, env: EnvSpec, device: str = "cpu") -> None:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ConfigError(
                f"agent.name: pearl needs a continuous (Box) action space; this env's is "
                f"{env.action_space}"
            )
        c = config
        self.config = c
        self.device = torch.device(device)
        self.obs_dim = flat_dim(env.observation_space)
        self.act_dim = int(np.prod(env.action_space.shape))
        low = np.asarray(env.action_space.low, np.float32)
        high = np.asarray(env.action_space.high, np.float32)
        self.action_center, self.action_half_range = (high + low) / 2, (high - low) / 2
        self.context_dim = self.obs_dim + self.act_dim + 1
        if c.next_obs_in_context:
            self.context_dim += self.obs_dim
        latent = c.latent_dim
        factor_out = 2 * latent if c.information_bottleneck else latent
        self.encoder = mlp(self.context_dim, c.encoder_hidden, factor_out)
        in_dim = self.obs_dim + latent
        self.actor = TanhGaussianActor(in_dim, self.act_dim, c.hidden)
        self.critic = TwinQ(in_dim, self.act_dim, c.hidden)
        self.value = mlp(in_dim, c.hidden, 1)
        if c.init == "rlkit":
            rlkit_init(self.encoder, 3e-3)
            rlkit_init(self.actor, 1e-3)  # oyster's TanhGaussianPolicy: init_w 1e-3 on both heads
            rlkit_init(self.critic, 3e-3)
            rlkit_init(self.value, 3e-3)
        self.value_target = copy.deepcopy(self.value).requires_grad_(False)
        for module in (self.encoder, self.actor, self.critic, self.value, self.value_target):
            module.to(self.device)
        fused = True if self.device.type in ("cpu", "cuda") else None
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr, fused=fused)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr, fused=fused)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=c.lr, fused=fused)
        self.encoder_opt = torch.optim.Adam(self.encoder.parameters(), lr=c.context_lr, fused=fused)
        self._value_params: list[torch.Tensor] = list(self.value.parameters())
        self._target_params: list[torch.Tensor] = list(self.value_target.parameters())
        self.updates = 0
        # Acting state, one row per env of whichever sampler drives the agent.
        self.mode: ActingMode = "adapt"
        self.context_source: Callable[[], np.ndarray] | None = None  # posterior mode
        self.reward_to_context: Callable[[np.ndarray], np.ndarray] | None = None
        self._n = 0
        self.z = np.zeros((0, latent), np.float32)
        self._ctx = np.zeros((0, 0, self.context_dim), np.float32)  # [N, rows, context_dim]
        self._ctx_len = np.zeros(0, np.int64)
        self._episodes = np.zeros(0, np.int64)
        self._prior_episodes_left = 1

    # -- the posterior (eq. 4-5) -------------------------------------------------------------
    def posterior(
        self, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | c) for context [T, C, dim] (rows where `mask` [T, C] is False are ignored):
        mean and variance [T, L]. With the bottleneck, the product of the per-row Gaussian
        factors: σ² = 1 / Σ 1/σ_n², μ = σ² Σ μ_n/σ_n² (eq. 5); without it, the mean row."""
        out = self.encoder(context)
        latent = self.config.latent_dim
        weight = torch.ones(context.shape[:2], device=context.device)
        if mask is not None:
            weight = mask.to(context.dtype)
        if not self.config.information_bottleneck:
            mean = (out * weight[..., None]).sum(1) / weight.sum(1, keepdim=True).clamp_min(1)
            return mean, torch.zeros_like(mean)
        mu, var = out[..., :latent], F.softplus(out[..., latent:]).clamp_min(VAR_MIN)
        precision = weight[..., None] / var
        # An empty context has zero total precision: that is the prior N(0, I).
        post_var = 1.0 / precision.sum(1).clamp_min(1e-12)
        post_mu = post_var * (precision * mu).sum(1)
        empty = weight.sum(1) == 0
        if bool(empty.any()):
            post_var = torch.where(empty[:, None], torch.ones_like(post_var), post_var)
            post_mu = torch.where(empty[:, None], torch.zeros_like(post_mu), post_mu)
        return post_mu, post_var

    @staticmethod
    def kl_to_prior(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, σ²) || N(0, I)) summed over dims and tasks (oyster's compute_kl_div)."""
        return 0.5 * (var + mu.pow(2) - 1.0 - var.log()).sum()

    def _sample_z(self, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        if not self.config.information_bottleneck:
            return mu
        return mu + var.sqrt() * torch.randn_like(mu)

    # -- context rows ------------------------------------------------------------------------
    def context_rows(
        self, obs: Obs, action: np.ndarray, reward: np.ndarray, next_obs: Obs
    ) -> np.ndarray:
        """Context transitions [n, context_dim]: flat s, a in [-1, 1], r (unscaled)[, s']."""
        parts = [
            flatten_obs(obs),
            ((np.asarray(action, np.float32) - self.action_center) / self.action_half_range),
            np.asarray(reward, np.float32).reshape(-1, 1),
        ]
        if self.config.next_obs_in_context:
            parts.append(flatten_obs(next_obs))
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    # -- acting (Policy protocol) --------------------------------------------------------------
    def _ensure_envs(self, n: int) -> None:
        if n != self._n:
            self._n = n
            self.z = np.zeros((n, self.config.latent_dim), np.float32)
            self._ctx = np.zeros((n, 64, self.context_dim), np.float32)
            self._ctx_len = np.zeros(n, np.int64)
            self._episodes = np.zeros(n, np.int64)

    def set_mode(
        self,
        mode: ActingMode,
        context_source: Callable[[], np.ndarray] | None = None,
    ) -> None:
        """`posterior` mode needs `context_source`: a context batch [C, dim] of the task the
        envs run, drawn anew for every episode (oyster resamples z per trajectory)."""
        if mode == "posterior" and context_source is None:
            raise ValueError("posterior mode needs a context source")
        self.mode = mode
        self.context_source = context_source
        self._prior_episodes_left = 1  # a collection's first episode acts on the prior

    @contextmanager
    def evaluating(
        self, reward_to_context: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> Iterator[None]:
        """Adapt mode (prior z, then the posterior of the trial's own context); the context
        sees `reward_to_context(reward)` inside, where the family asks for it."""
        self.set_mode("adapt")
        self.reward_to_context = reward_to_context
        try:
            yield
        finally:
            self.reward_to_context = None

    def reset(self, env_mask: np.ndarray) -> None:
        self._ensure_envs(len(env_mask))
        idx = np.flatnonzero(env_mask)
        self._ctx_len[idx] = 0
        self._episodes[idx] = 0
        self._draw_z(idx)

    def _draw_z(self, idx: np.ndarray) -> None:
        """z for envs `idx` as the mode says (prior in `adapt` until the posterior takes over,
        and in `posterior` for the collection's first episode)."""
        if self.mode == "posterior":
            first, idx = idx[: self._prior_episodes_left], idx[self._prior_episodes_left :]
            self._prior_episodes_left -= len(first)
            self.z[first] = self._prior_z(len(first))
            if len(idx):
                assert self.context_source is not None
                with torch.inference_mode():
                    ctx = torch.as_tensor(self.context_source(), device=self.device)[None]
                    mu, var = self.posterior(ctx)
                    z = self._sample_z(mu.expand(len(idx), -1), var.expand(len(idx), -1))
                self.z[idx] = z.cpu().numpy()
            return
        self.z[idx] = self._prior_z(len(idx))

    def _prior_z(self, n: int) -> np.ndarray:
        latent = self.config.latent_dim
        if not self.config.information_bottleneck:  # the empty context's embedding is 0
            return np.zeros((n, latent), np.float32)
        return torch.randn(n, latent).numpy()

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del task_class  # meta-RL: the task is inferred from the context, never told
        flat = flatten_obs(obs)
        self._ensure_envs(len(flat))
        x = torch.as_tensor(np.concatenate([flat, self.z], axis=1), device=self.device)
        dummy = torch.zeros(len(flat), dtype=torch.int64, device=self.device)
        with torch.inference_mode():
            action, _ = self.actor.sample(x, dummy, deterministic)
        return self.action_center + self.action_half_range * action.cpu().numpy()

    def observe(self, step: StepBatch) -> None:
        """`adapt` mode: gather each env's context; after each exploration episode draw a new
        prior z, after each later one re-infer the posterior and sample z from it. Training
        modes only count the collection's ended episodes."""
        if self.mode != "adapt":
            return
        self._ensure_envs(step.num_envs)
        idx = np.flatnonzero(step.valid)
        if len(idx) == 0:
            return
        reward = step.reward[idx]
        if self.reward_to_context is not None:
            reward = self.reward_to_context(reward)
        rows = self.context_rows(
            _rows(step.obs, idx), step.action[idx], reward, _rows(step.next_obs, idx)
        )
        if int(self._ctx_len[idx].max()) >= self._ctx.shape[1]:
            grown = np.zeros((self._n, 2 * self._ctx.shape[1], self.context_dim), np.float32)
            grown[:, : self._ctx.shape[1]] = self._ctx
            self._ctx = grown
        self._ctx[idx, self._ctx_len[idx]] = rows
        self._ctx_len[idx] += 1
        ended = idx[step.done[idx]]
        self._episodes[ended] += 1
        explored = self._episodes[ended] < self.config.eval_exploration_episodes
        if explored.any():  # a fresh prior z per exploration trajectory (posterior sampling)
            self._draw_z(ended[explored])
        if (~explored).any():
            self._infer_online(ended[~explored])

    def _infer_online(self, idx: np.ndarray) -> None:
        """Posterior from each env's own context so far, then a fresh z sample from it."""
        longest = int(self._ctx_len[idx].max())
        ctx = torch.as_tensor(self._ctx[idx, :longest], device=self.device)
        mask = torch.as_tensor(
            np.arange(longest)[None, :] < self._ctx_len[idx][:, None], device=self.device
        )
        with torch.inference_mode():
            mu, var = self.posterior(ctx, mask)
            self.z[idx] = self._sample_z(mu, var).cpu().numpy()

    # -- learning (Alg. 1, oyster's _take_step) -------------------------------------------------
    def update(self, batch: MetaBatch) -> PEARLUpdate:
        c, dev = self.config, self.device
        T, B = batch.reward.shape
        obs = torch.as_tensor(batch.obs, device=dev).reshape(T * B, -1)
        next_obs = torch.as_tensor(batch.next_obs, device=dev).reshape(T * B, -1)
        unit_action = (batch.action - self.action_center) / self.action_half_range
        action = torch.as_tensor(unit_action, device=dev, dtype=torch.float32).reshape(T * B, -1)
        reward = torch.as_tensor(batch.reward, device=dev).reshape(T * B) * c.reward_scale
        not_done = 1.0 - torch.as_tensor(batch.terminated, device=dev).reshape(T * B)
        dummy = torch.zeros(T * B, dtype=torch.int64, device=dev)

        mu, var = self.posterior(torch.as_tensor(batch.context, device=dev))
        z = self._sample_z(mu, var)  # one z per task, shared by its B rows
        z_rows = z[:, None, :].expand(T, B, -1).reshape(T * B, -1)
        obs_z, obs_zd = torch.cat([obs, z_rows], 1), torch.cat([obs, z_rows.detach()], 1)

        # Critic + encoder: Bellman error through z, plus the KL bottleneck (eq. 4 and Alg. 1).
        with torch.no_grad():
            target_v = self.value_target(torch.cat([next_obs, z_rows], 1)).squeeze(-1)
            q_target = reward + not_done * c.gamma * target_v
        q = self.critic(obs_z, action, dummy)  # [2, TB]
        critic_loss = (q - q_target).pow(2).mean(dim=1).sum()
        kl = self.kl_to_prior(mu, var) if c.information_bottleneck else torch.zeros((), device=dev)
        self.critic_opt.zero_grad(set_to_none=True)
        self.encoder_opt.zero_grad(set_to_none=True)
        (critic_loss + c.kl_lambda * kl).backward()
        self.critic_opt.step()
        self.encoder_opt.step()

        # Value and policy on detached z (oyster: the encoder learns from the critic only).
        mean, log_std = self.actor(obs_zd, dummy)
        std = log_std.exp()
        noise = torch.randn_like(mean)
        u = mean + std * noise
        log_pi = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_pi = log_pi - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        self.critic.requires_grad_(False)
        min_q = self.critic(obs_zd, torch.tanh(u), dummy).min(dim=0).values
        self.critic.requires_grad_(True)
        v_pred = self.value(obs_zd).squeeze(-1)
        value_loss = (v_pred - (min_q - log_pi).detach()).pow(2).mean()
        policy_loss = (log_pi - min_q).mean()
        policy_loss = (
            policy_loss
            + c.policy_mean_reg * mean.pow(2).mean()
            + c.policy_std_reg * log_std.pow(2).mean()
        )
        self.value_opt.zero_grad(set_to_none=True)
        self.actor_opt.zero_grad(set_to_none=True)
        (value_loss + policy_loss).backward()
        self.value_opt.step()
        self.actor_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._value_params, c.tau)
        self.updates += 1
        return PEARLUpdate(
            critic_loss=float(critic_loss.detach()),
            value_loss=float(value_loss.detach()),
            policy_loss=float(policy_loss.detach()),
            kl=float(kl.detach()),
            q_mean=float(q.detach().mean()),
            entropy=float(-log_pi.detach().mean()),
            z_mean_abs=float(mu.detach().abs().mean()),
            z_var=float(var.detach().mean()) if c.information_bottleneck else 0.0,
        )

    @staticmethod
    def metric_names() -> list[str]:
        return PEARLUpdate.names()

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "value": self.value.state_dict(),
            "value_target": self.value_target.state_dict(),
            "encoder_opt": self.encoder_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "value_opt": self.value_opt.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)  # optimisers keep loaded tensors: never share them
        for name in ("encoder", "actor", "critic", "value", "value_target"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("encoder_opt", "actor_opt", "critic_opt", "value_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])


def _rows(obs: Obs, idx: np.ndarray) -> Obs:
    if isinstance(obs, dict):
        return {k: v[idx] for k, v in obs.items()}
    return obs[idx]


def build_pearl(config: PEARLConfig, env: EnvSpec, seed: int = 0, device: str = "cpu") -> PEARL:
    del seed  # the run seeds torch before building (training.base), so weights follow it
    return PEARL(config, env, device)


register_agent(
    AgentSpec(
        "pearl",
        "PEARL (Rakelly et al. 2019): probabilistic context encoder + SAC on [s, z]",
        "pearl",
        PEARLConfig,
        build_pearl,
    )
)
