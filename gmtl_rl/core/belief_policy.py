"""A policy that acts on the state and a belief, π(a | s, q) (VariBAD §3.1), and its PPO or A2C
update, as varibad's code runs them (lmzintgraf/varibad @57e1795: models/policy.py,
algorithms/ppo.py, a2c.py, utils/online_storage.py).

Given the belief the policy is feed-forward, so an update is one shuffled set of single steps
(state, belief, draw, advantage, return) from whole trials; the beliefs are stored inputs,
unless the RL loss is sent through the encoder (`ThroughEncoder`).

Settings come from any object with the fields of `PolicySettings` / `PPOSettings`
(VariBAD's config documents each). Suffixes: B = trials, L = steps, S = flattened steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gmtl_rl.core.belief import optional_linear
from gmtl_rl.core.normalization import RunningMeanStd
from gmtl_rl.core.trials import trial_gae

Tensor = torch.Tensor


class PolicySettings(Protocol):
    @property
    def latent_dim(self) -> int: ...
    @property
    def policy_layers(self) -> list[int]: ...
    @property
    def policy_activation(self) -> Literal["tanh", "relu"]: ...
    @property
    def policy_init(self) -> Literal["normc", "orthogonal"]: ...
    @property
    def policy_state_embedding(self) -> int | None: ...
    @property
    def policy_latent_embedding(self) -> int | None: ...
    @property
    def norm_state(self) -> bool: ...
    @property
    def norm_latent(self) -> bool: ...
    @property
    def tanh_action_mean(self) -> bool: ...
    @property
    def init_std(self) -> float: ...


class PPOSettings(Protocol):
    @property
    def algorithm(self) -> Literal["ppo", "a2c"]: ...
    @property
    def epochs(self) -> int: ...
    @property
    def minibatches(self) -> int: ...
    @property
    def clip(self) -> float: ...
    @property
    def huber_value_loss(self) -> bool: ...
    @property
    def clipped_value_loss(self) -> bool: ...
    @property
    def value_coef(self) -> float: ...
    @property
    def entropy_coef(self) -> float: ...
    @property
    def max_grad_norm(self) -> float: ...


def _normc_(weight: Tensor, gain: float) -> None:
    """OpenAI baselines' normc init: rows of unit norm × gain (models/policy.py:284-286)."""
    with torch.no_grad():
        weight.normal_(0, 1)
        weight *= gain / weight.pow(2).sum(1, keepdim=True).sqrt()


def _init(layer: nn.Linear, kind: str, gain: float) -> nn.Linear:
    if kind == "normc":
        _normc_(layer.weight, gain)
    else:
        nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class BeliefPolicy(nn.Module):
    """π(a | s, q) and V(s, q): state and belief each normalised and embedded (tanh), then
    separate actor and critic MLPs (models/policy.py:31-254). `latent`: the belief as the
    policy sees it, [μ, log σ²] (helpers.py get_latent_for_policy)."""

    def __init__(self, c: PolicySettings, state_dim: int, act_dim: int, discrete: bool) -> None:
        super().__init__()
        self.discrete = discrete
        self.act_fn = torch.tanh if c.policy_activation == "tanh" else F.relu
        gain = nn.init.calculate_gain(c.policy_activation)
        latent = 2 * c.latent_dim
        self.state_rms = RunningMeanStd(state_dim) if c.norm_state else None
        self.latent_rms = RunningMeanStd(latent) if c.norm_latent else None
        emb_s, emb_z = c.policy_state_embedding, c.policy_latent_embedding
        self.state_fc = optional_linear(state_dim, emb_s)
        self.latent_fc = optional_linear(latent, emb_z)
        dims = [(emb_s or state_dim) + (emb_z or latent), *c.policy_layers]
        pairs = list(itertools.pairwise(dims))
        self.actor = nn.ModuleList(_init(nn.Linear(a, b), c.policy_init, gain) for a, b in pairs)
        self.critic = nn.ModuleList(_init(nn.Linear(a, b), c.policy_init, gain) for a, b in pairs)
        self.value_head = nn.Linear(dims[-1], 1)
        self.tanh_mean = c.tanh_action_mean
        self.log_std: nn.Parameter | None = None
        if discrete:  # policy.py:289-302: orthogonal, gain 0.01
            self.out = _init(nn.Linear(dims[-1], act_dim), "orthogonal", 0.01)
        else:  # policy.py:305-326: normc, a state-independent log-std
            self.out = _init(nn.Linear(dims[-1], act_dim), "normc", 1.0)
            self.log_std = nn.Parameter(torch.full((act_dim,), math.log(c.init_std)))

    def forward(self, state: Tensor, latent: Tensor) -> tuple[Tensor, Tensor]:
        """Policy outputs (logits or Gaussian means) and values [..., 1] squeezed."""
        if self.state_rms is not None:
            state = self.state_rms(state)
        if self.latent_rms is not None:
            latent = self.latent_rms(latent)
        if self.state_fc is not None:
            state = self.act_fn(self.state_fc(state))
        if self.latent_fc is not None:
            latent = self.act_fn(self.latent_fc(latent))
        x = torch.cat([state, latent], -1)
        a, v = x, x
        for actor, critic in zip(self.actor, self.critic, strict=True):
            a, v = self.act_fn(actor(a)), self.act_fn(critic(v))
        out = self.out(a)
        return (torch.tanh(out) if self.tanh_mean else out), self.value_head(v).squeeze(-1)

    def std(self) -> Tensor:
        assert self.log_std is not None, "a Gaussian policy (Box actions)"
        return self.log_std.exp().clamp_min(1e-6)  # policy.py:323

    def draw(
        self, params: Tensor, deterministic: bool, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """A draw from the distributions `params` (their mode if `deterministic`) and its
        log-probability: [N, 1] indices as floats, or unclipped Gaussian draws [N, A]."""
        if self.discrete:
            logp_all = F.log_softmax(params, -1)
            if deterministic:
                index = params.argmax(-1)
            else:
                index = torch.multinomial(logp_all.exp(), 1, generator=generator)[:, 0]
            return index[:, None].float(), logp_all.gather(-1, index[:, None])[:, 0]
        std = self.std()
        noise = torch.randn(params.shape, generator=generator)
        sample = params if deterministic else params + std * noise
        return sample, torch.distributions.Normal(params, std).log_prob(sample).sum(-1)

    def log_prob_entropy(self, params: Tensor, sample: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities of draws `sample` ([S, 1] indices, or Gaussian draws) and the
        entropies of the distributions `params`."""
        if self.discrete:
            logp_all = F.log_softmax(params, -1)
            logp = logp_all.gather(-1, sample.long()).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)
        dist = torch.distributions.Normal(params, self.std())
        return dist.log_prob(sample).sum(-1), dist.entropy().sum(-1)


def varibad_gae(
    reward_BL: np.ndarray,
    value_BL: np.ndarray,
    mask_BL: np.ndarray,
    truncated_BL: np.ndarray,
    gamma: float,
    lam: float,
    proper_time_limits: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE over the trial as one BAMDP episode (`trial_gae`); with `proper_time_limits` the
    estimate is zeroed at every inner time-limit end and restarts before it, as varibad's
    `bad_masks` do (online_storage.py:179-187): there the advantage is 0, the return V."""
    if not proper_time_limits:
        return trial_gae(reward_BL, value_BL, mask_BL, gamma, lam)
    m = mask_BL.astype(np.float64)
    keep = 1.0 - truncated_BL.astype(np.float64)
    r, v = reward_BL * m, value_BL * m
    adv = np.zeros_like(r)
    running = np.zeros(len(r))
    next_value = np.zeros(len(r))
    for t in range(r.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * next_value - v[:, t]
        running = (delta + gamma * lam * running) * m[:, t] * keep[:, t]
        adv[:, t] = running
        next_value = v[:, t]
    return adv.astype(np.float32), ((adv + v) * m).astype(np.float32)


@dataclass(frozen=True)
class PolicySteps:
    """Every step of an update's trials, flattened: the policy's inputs, its draws (the
    behaviour values and draws of the rollout) and the GAE targets."""

    state_SD: Tensor
    latent_SZ: Tensor  # the belief the policy acted on
    sample_SA: Tensor
    old_value_S: Tensor
    adv_S: Tensor
    ret_S: Tensor


@dataclass(frozen=True)
class ThroughEncoder:
    """The RL loss sent through the encoder (ppo.py:70-176, helpers.py:169-221): for every
    minibatch the beliefs are recomputed with gradient and a fresh VAE loss is added; both
    optimisers step, the encoder's gradient clipped at `max_grad_norm`."""

    beliefs: Callable[[], Tensor]  # [S, 2Z] of every step, with gradient
    vae_loss: Callable[[], tuple[Tensor, dict[str, float]]]
    optimizer: torch.optim.Optimizer
    encoder: nn.Module
    coef: float
    max_grad_norm: float | None


def value_loss(value: Tensor, old: Tensor, ret: Tensor, c: PPOSettings) -> Tensor:
    """ppo.py:120-135: Huber and/or clipped around the behaviour values."""
    loss = F.smooth_l1_loss if c.huber_value_loss else F.mse_loss
    if not c.clipped_value_loss:
        plain = loss(value, ret)
        return plain if c.huber_value_loss else 0.5 * plain
    clipped = old + (value - old).clamp(-c.clip, c.clip)
    worst = torch.max(loss(value, ret, reduction="none"), loss(clipped, ret, reduction="none"))
    return 0.5 * worst.mean()


def ppo_update(
    policy: BeliefPolicy,
    opt: torch.optim.Optimizer,
    steps: PolicySteps,
    c: PPOSettings,
    generator: torch.Generator,
    joint: ThroughEncoder | None = None,
) -> dict[str, float]:
    """PPO (ppo.py:57-190) or A2C (a2c.py:48-125) on `steps`: the mean of each loss term over
    the minibatches (and of the VAE's terms with `joint`), and the explained variance of the
    returns by the behaviour values."""
    state, latent, sample = steps.state_SD, steps.latent_SZ, steps.sample_SA
    # The input statistics move first, then the old log-probs are recomputed with them
    # (ppo.py:76-81, online_storage.py:209-222).
    for rms, x in ((policy.state_rms, state), (policy.latent_rms, latent)):
        if rms is not None:
            rms.update(x)
    with torch.no_grad():
        old_logp = policy.log_prob_entropy(policy(state, latent)[0], sample)[0]
    ppo = c.algorithm == "ppo"
    adv = steps.adv_S
    if ppo:  # A2C uses the raw advantages (a2c.py:55)
        adv = (adv - adv.mean()) / (adv.std() + 1e-5)
    n = len(adv)
    epochs, minibatches = (c.epochs, c.minibatches) if ppo else (1, 1)
    size = max(n // minibatches, 1)
    stats: dict[str, list[float]] = {}
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for k in range(min(minibatches, n)):
            mb = order[k * size : (k + 1) * size]  # drop_last (online_storage.py:239-242)
            if joint is not None:  # helpers.py recompute_embeddings, with grad
                latent = joint.beliefs()
            params, value = policy(state[mb], latent[mb])
            logp, entropy = policy.log_prob_entropy(params, sample[mb])
            log_ratio = logp - old_logp[mb]
            ratio = log_ratio.exp()
            a, r, v_old = adv[mb], steps.ret_S[mb], steps.old_value_S[mb]
            if ppo:
                surrogate = torch.min(ratio * a, ratio.clamp(1 - c.clip, 1 + c.clip) * a)
                policy_loss = -surrogate.mean()
                v_loss = value_loss(value, v_old, r, c)
            else:
                policy_loss = -(a * logp).mean()
                v_loss = (r - value).pow(2).mean()
            loss = c.value_coef * v_loss + policy_loss - c.entropy_coef * entropy.mean()
            vae: dict[str, float] = {}
            if joint is not None:  # ppo.py:146-147: a fresh VAE batch each time
                vae_loss, vae = joint.vae_loss()
                loss = loss + joint.coef * vae_loss
                joint.optimizer.zero_grad(set_to_none=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
            if joint is not None:
                if joint.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(joint.encoder.parameters(), joint.max_grad_norm)
                joint.optimizer.step()
            opt.step()
            with torch.no_grad():
                kl = ((ratio - 1) - log_ratio).mean().item()  # the "k3" estimator
                clipped = ((ratio - 1).abs() > c.clip).float().mean().item()
            row = {
                "policy_loss": policy_loss.item(), "value_loss": v_loss.item(),
                "entropy": entropy.mean().item(), "approx_kl": kl, "clip_fraction": clipped,
                **vae,
            }  # fmt: skip
            for key, val in row.items():
                stats.setdefault(key, []).append(val)
    out = {k: float(np.mean(v)) for k, v in stats.items()}
    ret, old = steps.ret_S.numpy(), steps.old_value_S.numpy()
    var = float(np.var(ret))
    out["explained_variance"] = 1.0 - float(np.var(ret - old)) / var if var > 0 else 0.0
    return out
