"""The belief VAE (VariBAD, Zintgraf et al. 2020, §3.2; lmzintgraf/varibad @57e1795, vae.py):
the encoder and decoders of `gmtl_rl.core.belief` trained together on whole trials.

The VAE maximises Σ_t ELBO_t with ELBO_t = E_q(m|τ:t)[log p(τ:H+ | m)] - KL(q(m|τ:t) ||
q(m|τ:t-1)): every belief of a trial, the prior first, decodes every step of the trial, past
and future (vae.py:222-398).

- `CellGrid`: the cells of a grid observation, one reward head each (the gridworld);
- `BeliefVAE`: the networks, the ELBO, an update on trials drawn from a `TrialStore`, and the
  reward decoder's reading of a belief as a distribution over goal cells.

Suffixes: N = envs, B = trials, L = steps of the longest trial, T = ELBO terms (beliefs),
J = decoded steps per term, Z = latent dims, D = state features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gmtl_rl.core.belief import (
    BeliefEncoder,
    BeliefSettings,
    RewardDecoder,
    StateDecoder,
    belief_kl,
)
from gmtl_rl.core.trial_store import TrialStore

Tensor = torch.Tensor


@dataclass(frozen=True)
class CellGrid:
    """The cells of a Box of integer grid coordinates, numbered in C order over the axes:
    x · size_y + y for a 2-d grid, as varibad's task_to_id (gridworld.py:149)."""

    shape: tuple[int, ...]  # cells per axis
    low: Tensor  # [G] float64: the coordinates of cell 0
    strides: Tensor  # [G] int64

    @property
    def cells(self) -> int:
        return int(np.prod(self.shape))

    @classmethod
    def of(cls, space: gym.Space[Any]) -> CellGrid | None:
        """The grid of a 1-d Box with finite integer bounds; None for any other space."""
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            return None
        low = np.asarray(space.low, np.float64)
        high = np.asarray(space.high, np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            return None
        if not ((low == np.round(low)).all() and (high == np.round(high)).all()):
            return None
        sizes = (high - low + 1).astype(np.int64)
        strides = np.cumprod(np.concatenate([sizes[1:], [1]])[::-1])[::-1].copy()
        return cls(tuple(int(s) for s in sizes), torch.as_tensor(low), torch.as_tensor(strides))

    def index(self, state: Tensor) -> Tensor:
        """The cell of states [..., D] (their first G coordinates; a done bit after them is
        not part of the cell)."""
        coords = state[..., : len(self.strides)].double() - self.low
        return (coords.round().long() * self.strides).sum(-1).clamp(0, self.cells - 1)


class BeliefVAE:
    """The encoder q(m | τ:t), the decoders p(r | m, s') and p(s' | m, s, a), and the ELBO
    over whole trials that trains them. `grid` (multi-head reward decoders): the cells."""

    def __init__(
        self, c: BeliefSettings, state_dim: int, action_dim: int, grid: CellGrid | None
    ) -> None:
        if c.decode_reward and c.multihead_reward and grid is None:
            raise ValueError("a multi-head reward decoder needs the observation's grid cells")
        self.settings, self.grid = c, grid
        self.encoder = BeliefEncoder(c, state_dim, action_dim)
        cells = grid.cells if grid is not None and c.multihead_reward else 1
        self.reward_decoder = (
            RewardDecoder(c, state_dim, action_dim, cells) if c.decode_reward else None
        )
        self.state_decoder = StateDecoder(c, state_dim, action_dim) if c.decode_state else None

    def parameters(self) -> list[nn.Parameter]:
        modules = [self.encoder, self.reward_decoder, self.state_decoder]
        return [p for m in modules if m is not None for p in m.parameters()]

    def decoders(self) -> list[nn.Module]:
        return [d for d in (self.reward_decoder, self.state_decoder) if d is not None]

    def goal_cells(self, mean_NZ: Tensor) -> Tensor | None:
        """[N, cells] the reward decoder's reading of beliefs with means μ: p(r = 1 | m = μ,
        cell) of every cell, normalised over the cells to a distribution. A reading of the
        mean belief, not the exact posterior over goals (which would average over q(m)).
        None unless the decoder is multi-head Bernoulli (one reward head per grid cell)."""
        dec = self.reward_decoder
        if dec is None or not dec.multihead or self.settings.reward_prediction != "bernoulli":
            return None
        p = torch.sigmoid(dec.net(mean_NZ).double())
        return p / p.sum(-1, keepdim=True).clamp_min(1e-300)

    def sampled_loss(
        self, store: TrialStore, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, float]]:
        """`loss` on `vae_batch_trials` trials drawn from `store` (0 while it is empty)."""
        if store.size == 0:
            return torch.zeros(()), {}
        data, length = store.sample(self.settings.vae_batch_trials, generator)
        loss, parts = self.loss(data, length, generator)
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    def update(
        self, optimizer: torch.optim.Optimizer, store: TrialStore, generator: torch.Generator
    ) -> dict[str, float]:
        """One VAE update on trials drawn from `store` (vae.py:519-596); its loss terms."""
        c = self.settings
        if store.size == 0:
            return {}
        loss, parts = self.sampled_loss(store, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.encoder_max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.encoder.parameters(), c.encoder_max_grad_norm)
        if c.decoder_max_grad_norm is not None:
            for dec in self.decoders():
                nn.utils.clip_grad_norm_(dec.parameters(), c.decoder_max_grad_norm)
        optimizer.step()
        return parts

    def loss(
        self, data: dict[str, Tensor], length_B: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """-Σ_t ELBO_t of whole trials (§3.2; vae.py:248-398): every belief t = 0..L (the prior
        first) decodes every step j of the trial, past and future (j < t only with
        `decode_only_past`), plus KL_t. Sums over t and j (or means), mean over trials for the
        reconstruction, but a SUM over trials for the KL: vae.py:394 sums where its comment
        says it averages, and this keeps the authors' weighting."""
        c = self.settings
        n_b, n_l = data["reward"].shape
        hidden = self.encoder.sequence(
            data["action"], data["next_state"], data["reward"], c.tbptt_steps
        )
        mean, logvar = self.encoder.heads(hidden)  # [B, L + 1, Z]
        noise = torch.randn(mean.shape, generator=generator)
        z = mean + (0.5 * logvar).exp() * noise  # one sample per ELBO term (vae.py:272-274)
        kl_bt = belief_kl(mean, logvar, c.kl_to_gauss_prior)
        t_idx, elbo_mask, j_idx, pair_mask = self._elbo_indices(length_B, n_l, generator)
        z_sel = z.gather(1, t_idx[..., None].expand(-1, -1, z.shape[-1]))  # [B, T, Z]
        parts: dict[str, Tensor] = {}
        zero = torch.zeros(())

        def reduce(term_BTJ: Tensor) -> Tensor:
            masked = term_BTJ * pair_mask
            per_t = masked.sum(-1)
            if c.avg_reconstruction_terms:
                per_t = per_t / pair_mask.sum(-1).clamp_min(1)
            total = per_t.sum(-1)
            if c.avg_elbo_terms:
                total = total / elbo_mask.sum(-1).clamp_min(1)
            return total.mean()

        def pick(x_BL: Tensor) -> Tensor:  # [B, L, ...] at j_idx -> [B, T, J, ...]
            flat = j_idx.reshape(n_b, -1)
            tail = x_BL.shape[2:]
            index = flat.reshape(n_b, -1, *([1] * len(tail))).expand(-1, -1, *tail)
            return x_BL.gather(1, index).reshape(*j_idx.shape, *tail)

        if self.reward_decoder is not None:
            target = pick(data["reward"])
            if self.reward_decoder.multihead:
                assert self.grid is not None
                cells = self.grid.index(data["next_state"])  # [B, L]
                logits = self.reward_decoder(
                    z_sel, data["next_state"], data["state"], data["action"]
                )
                pred = logits.gather(-1, pick(cells))  # [B, T, J]
            else:
                zz = z_sel[:, :, None].expand(-1, -1, j_idx.shape[-1], -1)
                pred = self.reward_decoder(
                    zz, pick(data["next_state"]), pick(data["state"]), pick(data["action"])
                )
            if c.reward_prediction == "bernoulli":  # vae.py:176-180: p(r = 1 | s')
                term = F.binary_cross_entropy_with_logits(
                    pred, (target == 1).float(), reduction="none"
                )
            else:
                term = (pred - target).pow(2)
            parts["reward_loss"] = reduce(term)
        if self.state_decoder is not None:
            zz = z_sel[:, :, None].expand(-1, -1, j_idx.shape[-1], -1)
            pred = self.state_decoder(zz, pick(data["state"]), pick(data["action"]))
            parts["state_loss"] = reduce((pred - pick(data["next_state"])).pow(2).mean(-1))
        kl_sel = kl_bt.gather(1, t_idx) * elbo_mask
        kl = kl_sel.sum(-1)
        if c.avg_elbo_terms:
            kl = kl / elbo_mask.sum(-1).clamp_min(1)
        parts["kl_loss"] = kl.sum()  # summed over trials (vae.py:394)
        loss = (
            c.reward_loss_coef * parts.get("reward_loss", zero)
            + c.state_loss_coef * parts.get("state_loss", zero)
            + c.kl_weight * parts["kl_loss"]
        )
        parts["vae_loss"] = loss.detach()
        return loss, parts

    def _elbo_indices(
        self, length_B: Tensor, n_l: int, g: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Which beliefs t [B, T] and which steps j [B, T, J] each decodes, with masks; all of
        them, or `subsample_elbos` / `subsample_decodes` drawn per trial (vae.py:285-325)."""
        c = self.settings
        n_b = len(length_B)
        if c.subsample_elbos:  # t ~ U{0..len}
            u = torch.rand(n_b, c.subsample_elbos, generator=g)
            t_idx = (u * (length_B[:, None] + 1)).long()
        else:
            t_idx = torch.arange(n_l + 1).expand(n_b, -1)
        elbo_mask = (t_idx <= length_B[:, None]).float()
        n_t = t_idx.shape[1]
        if c.subsample_decodes:  # j ~ U{0..len-1}
            u = torch.rand(n_b, n_t, c.subsample_decodes, generator=g)
            j_idx = (u * length_B[:, None, None]).long()
        else:
            j_idx = torch.arange(n_l).expand(n_b, n_t, -1)
        pair_mask = (j_idx < length_B[:, None, None]).float() * elbo_mask[..., None]
        if c.decode_only_past:
            pair_mask = pair_mask * (j_idx < t_idx[..., None]).float()
        return t_idx, elbo_mask, j_idx.contiguous(), pair_mask
