"""The networks of a belief over tasks learned as a VAE (VariBAD, Zintgraf et al. 2020, §3.2),
as the authors' code builds them (lmzintgraf/varibad @57e1795; file:line references are of that
commit).

A recurrent encoder reads every transition (a_t, s_{t+1}, r_t) of a trial and outputs the
belief q(m | τ:t) = N(μ_t, diag σ²_t) over a task embedding m (models/encoder.py); GRU state
h = 0 gives the prior q(m | τ:0). Decoders reconstruct the rewards (and optionally the
transitions) of a trial from a sample m (models/decoder.py). The KL terms of the ELBO are here;
the ELBO itself, over whole trials, is `gmtl_rl.core.belief_vae`.

- `BeliefEncoder`, `RewardDecoder`, `StateDecoder`: the networks;
- `gaussian_kl`, `belief_kl`: the KL of diagonal Gaussians and of every belief of a trial to
  the one before it.

Settings come from any object with the fields of `BeliefSettings` (VariBAD's config documents
each). Suffixes: N = envs, B = trials, L = steps, T = beliefs, H = GRU units, Z = latent dims.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from gmtl_rl.core.networks import mlp

Tensor = torch.Tensor


class BeliefSettings(Protocol):
    """The settings the belief's networks and ELBO read (VariBADConfig documents each)."""

    @property
    def latent_dim(self) -> int: ...
    @property
    def gru_hidden(self) -> int: ...
    @property
    def state_embedding(self) -> int: ...
    @property
    def action_embedding(self) -> int: ...
    @property
    def reward_embedding(self) -> int: ...
    @property
    def encoder_layers_before_gru(self) -> list[int]: ...
    @property
    def encoder_layers_after_gru(self) -> list[int]: ...
    @property
    def decode_reward(self) -> bool: ...
    @property
    def reward_decoder_layers(self) -> list[int]: ...
    @property
    def multihead_reward(self) -> bool: ...
    @property
    def reward_prediction(self) -> Literal["bernoulli", "deterministic"]: ...
    @property
    def reward_input_prev_state(self) -> bool: ...
    @property
    def reward_input_action(self) -> bool: ...
    @property
    def reward_loss_coef(self) -> float: ...
    @property
    def decode_state(self) -> bool: ...
    @property
    def state_decoder_layers(self) -> list[int]: ...
    @property
    def state_loss_coef(self) -> float: ...
    @property
    def kl_weight(self) -> float: ...
    @property
    def kl_to_gauss_prior(self) -> bool: ...
    @property
    def decode_only_past(self) -> bool: ...
    @property
    def tbptt_steps(self) -> int | None: ...
    @property
    def subsample_elbos(self) -> int | None: ...
    @property
    def subsample_decodes(self) -> int | None: ...
    @property
    def avg_elbo_terms(self) -> bool: ...
    @property
    def avg_reconstruction_terms(self) -> bool: ...
    @property
    def vae_batch_trials(self) -> int: ...
    @property
    def encoder_max_grad_norm(self) -> float | None: ...
    @property
    def decoder_max_grad_norm(self) -> float | None: ...


def optional_linear(n_in: int, n_out: int | None) -> nn.Linear | None:
    """varibad utils/helpers.py FeatureExtractor's layer; size 0 (or None) is no layer."""
    return nn.Linear(n_in, n_out) if n_out else None


def embed(layer: nn.Linear | None, x: Tensor) -> list[Tensor]:
    """utils/helpers.py FeatureExtractor with ReLU; size 0 is no input at all."""
    return [] if layer is None else [F.relu(layer(x))]


# -- networks ---------------------------------------------------------------------------------
class BeliefEncoder(nn.Module):
    """q(m | τ:t): embeddings of (a, s', r) -> GRU -> μ, log σ² (models/encoder.py)."""

    def __init__(self, c: BeliefSettings, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.action_fc = optional_linear(action_dim, c.action_embedding)
        self.state_fc = optional_linear(state_dim, c.state_embedding)
        self.reward_fc = optional_linear(1, c.reward_embedding)
        dim = c.action_embedding + c.state_embedding + c.reward_embedding
        self.before = nn.ModuleList()
        for h in c.encoder_layers_before_gru:
            self.before.append(nn.Linear(dim, h))
            dim = h
        self.gru = nn.GRU(dim, c.gru_hidden, batch_first=True)
        for name, p in self.gru.named_parameters():  # encoder.py:54-58
            nn.init.zeros_(p) if "bias" in name else nn.init.orthogonal_(p)
        self.after = nn.ModuleList()
        dim = c.gru_hidden
        for h in c.encoder_layers_after_gru:
            self.after.append(nn.Linear(dim, h))
            dim = h
        self.fc_mu = nn.Linear(dim, c.latent_dim)
        self.fc_logvar = nn.Linear(dim, c.latent_dim)

    def features(self, action: Tensor, state: Tensor, reward: Tensor) -> Tensor:
        x = torch.cat(
            [
                *embed(self.action_fc, action),
                *embed(self.state_fc, state),
                *embed(self.reward_fc, reward[..., None]),
            ],
            -1,
        )
        for layer in self.before:
            x = F.relu(layer(x))
        return x

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) of the belief with GRU state h; h = 0 is the prior (encoder.py:93-113)."""
        for layer in self.after:
            h = F.relu(layer(h))
        return self.fc_mu(h), self.fc_logvar(h)

    def step(self, h_NH: Tensor, action: Tensor, state: Tensor, reward: Tensor) -> Tensor:
        x = self.features(action, state, reward)[:, None]
        return self.gru(x, h_NH[None].contiguous())[1][0]

    def sequence(
        self, action_BLA: Tensor, state_BLD: Tensor, reward_BL: Tensor, tbptt: int | None = None
    ) -> Tensor:
        """GRU states [B, L + 1, H] of whole trials from the prior's h = 0 (index 0); with
        `tbptt` the state is detached every so many steps (encoder.py:149-160)."""
        x = self.features(action_BLA, state_BLD, reward_BL)
        h = torch.zeros(1, len(x), self.gru.hidden_size)
        outs = [h[0][:, None]]
        step = tbptt or max(x.shape[1], 1)
        for start in range(0, x.shape[1], step):
            out, h = self.gru(x[:, start : start + step], h)
            outs.append(out)
            if tbptt:
                h = h.detach()
        return torch.cat(outs, 1)


class RewardDecoder(nn.Module):
    """p(r | m, s'): one logit per grid cell (multi-head) or an MLP on [m, s' (, a, s)]
    (models/decoder.py:55-130)."""

    def __init__(self, c: BeliefSettings, state_dim: int, action_dim: int, cells: int) -> None:
        super().__init__()
        self.multihead = c.multihead_reward
        if self.multihead:
            self.net = mlp(c.latent_dim, c.reward_decoder_layers, cells)
            return
        e = c.state_embedding
        self.state_fc = optional_linear(state_dim, e)
        action_embedding = c.action_embedding if c.reward_input_action else 0
        self.action_fc = optional_linear(action_dim, action_embedding)
        self.prev_state = c.reward_input_prev_state
        dim = (
            c.latent_dim + e * (1 + self.prev_state) + (c.action_embedding if self.action_fc else 0)
        )
        self.net = mlp(dim, c.reward_decoder_layers, 1)

    def forward(self, z: Tensor, next_state: Tensor, prev_state: Tensor, action: Tensor) -> Tensor:
        if self.multihead:
            return self.net(z)
        parts = [z, *embed(self.state_fc, next_state), *embed(self.action_fc, action)]
        if self.prev_state:
            parts += embed(self.state_fc, prev_state)
        return self.net(torch.cat(parts, -1)).squeeze(-1)


class StateDecoder(nn.Module):
    """p(s' | m, s, a), deterministic (MSE) prediction (models/decoder.py:10-52)."""

    def __init__(self, c: BeliefSettings, state_dim: int, action_dim: int) -> None:
        super().__init__()
        e, ea = c.state_embedding, c.action_embedding
        self.state_fc = optional_linear(state_dim, e)
        self.action_fc = optional_linear(action_dim, ea)
        self.net = mlp(c.latent_dim + e + ea, c.state_decoder_layers, state_dim)

    def forward(self, z: Tensor, prev_state: Tensor, action: Tensor) -> Tensor:
        parts = [z, *embed(self.state_fc, prev_state), *embed(self.action_fc, action)]
        return self.net(torch.cat(parts, -1))


def gaussian_kl(mean: Tensor, logvar: Tensor, prior_mean: Tensor, prior_logvar: Tensor) -> Tensor:
    """KL(N(μ, E) || N(m, S)) for diagonal Gaussians, summed over the last dim (vae.py:231-238)."""
    return 0.5 * (
        prior_logvar.sum(-1) - logvar.sum(-1) - mean.shape[-1]
        + (logvar.exp() / prior_logvar.exp()).sum(-1)
        + ((prior_mean - mean).pow(2) / prior_logvar.exp()).sum(-1)
    )  # fmt: skip


def belief_kl(mean_BTZ: Tensor, logvar_BTZ: Tensor, to_gauss_prior: bool) -> Tensor:
    """[B, T] KL of every belief t = 0..L: to the previous belief, and of the prior (t = 0) to
    N(0, I) (§3.2; vae.py:222-246); `to_gauss_prior`: every belief to N(0, I)."""
    zeros = torch.zeros_like(mean_BTZ[:, :1])
    if to_gauss_prior:
        return gaussian_kl(
            mean_BTZ, logvar_BTZ, torch.zeros_like(mean_BTZ), zeros.expand_as(mean_BTZ)
        )
    prev_mean = torch.cat([zeros, mean_BTZ[:, :-1]], 1)
    prev_logvar = torch.cat([zeros, logvar_BTZ[:, :-1]], 1)
    return gaussian_kl(mean_BTZ, logvar_BTZ, prev_mean, prev_logvar)
