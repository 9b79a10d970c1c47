"""Running statistics that scale a policy's inputs and rewards, as OpenAI baselines keeps them.

- `RunningMeanStd`: the mean and variance of an input (a state, a belief), merged batch by
  batch with the parallel-variance formula and kept as module buffers, so they travel with the
  network's `state_dict`;
- `ReturnNormalizer`: VecNormalize's reward scaling: each reward divided by the running std of
  the discounted return, clipped.

Suffixes: N = envs, B = batch, D = features.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Running mean/variance of a policy input (varibad utils/helpers.py:264-295); `forward`
    standardises with them."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def update(self, x_BD: torch.Tensor) -> None:
        n = len(x_BD)
        if n < 2:
            return
        count = float(self.count)
        delta = x_BD.mean(0) - self.mean
        total = count + n
        m2 = self.var * count + x_BD.var(0) * n + delta.pow(2) * count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count.fill_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.sqrt(self.var + 1e-8)


class ReturnNormalizer:
    """VecNormalize's reward scaling (baselines vec_normalize.py:46-65): per env the discounted
    return so far, restarted when its episode ends; the running variance of those returns over
    all envs; rewards divided by √(var + 1e-8) and clipped to ±`clip`.

    `episode_done` is whatever ends the return: for a meta-RL agent, the trial (the BAMDP
    episode), not the inner episode.
    """

    def __init__(self, gamma: float, clip: float = 10.0) -> None:
        self.gamma, self.clip = gamma, clip
        self.rms = np.array([0.0, 1.0, 1e-4])  # mean, var, count of the returns
        self.ret_N = np.zeros(0)  # discounted return so far, per env

    def resize(self, n: int) -> None:
        """Start over with `n` envs (every return at 0; the statistics are kept)."""
        self.ret_N = np.zeros(n)

    def reset(self, rows: np.ndarray) -> None:
        self.ret_N[rows] = 0.0

    def __call__(
        self, rows: np.ndarray, reward: np.ndarray, episode_done: np.ndarray, scale: bool = True
    ) -> np.ndarray:
        """Moves the statistics with envs `rows`' rewards; their scaled rewards (with `scale`
        false: the rewards unchanged, the statistics still moved)."""
        self.ret_N[rows] = self.ret_N[rows] * self.gamma + reward
        self.ret_N[rows[episode_done]] = 0.0
        mean, var, count = self.rms
        x = self.ret_N[rows]
        delta, n = x.mean() - mean, len(x)
        total = count + n
        m2 = var * count + x.var() * n + delta**2 * count * n / total
        self.rms = np.array([mean + delta * n / total, m2 / total, total])
        if not scale:
            return reward
        return np.clip(reward / np.sqrt(self.rms[1] + 1e-8), -self.clip, self.clip)
