"""Network building blocks shared by the agents.

Suffixes: B = batch, E = ensemble members, D = input features, A = action dims.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gmtl_rl.core.records import Obs
from gmtl_rl.errors import ConfigError

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the usual SAC clamp (Haarnoja et al. 2018 code)


def flat_dim(space: gym.Space[Any]) -> int:
    """Feature count of `flatten_obs` for one observation of `space`."""
    sample = space.sample()
    if isinstance(sample, dict):
        return flatten_obs({k: np.asarray(v)[None] for k, v in sample.items()}).shape[1]
    return flatten_obs(np.asarray(sample)[None]).shape[1]


def _flat_keys(keys: Iterable[str]) -> list[str]:
    """GoalEnvs feed [observation, desired_goal] (HER, Andrychowicz et al. 2017); other Dict
    spaces feed every key, in sorted order."""
    names = list(keys)
    if {"observation", "desired_goal"} <= set(names):
        return ["observation", "desired_goal"]
    return sorted(names)


def flatten_obs(obs: Obs) -> np.ndarray:
    """[N, D] float32 features from an observation batch (arrays or GoalEnv dicts)."""
    if isinstance(obs, dict):
        parts = [np.asarray(obs[k]).reshape(len(obs[k]), -1) for k in _flat_keys(obs)]
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)
    arr = np.asarray(obs)
    return arr.reshape(len(arr), -1).astype(np.float32, copy=False)


def obs_tensor(obs: Obs, device: torch.device | str) -> torch.Tensor:
    """A batch of observations (a Dict flattened in key order) as one float tensor."""
    return torch.as_tensor(flatten_obs(obs), device=device)


def task_class_tensor(
    task_class: np.ndarray, num_task_classes: int, checked: bool, device: torch.device | str
) -> torch.Tensor:
    """Task classes as indices for a task-conditioned network. `checked` (the agent conditions
    on the task): a class it was not trained on is an error, not a silent wrong head."""
    if checked:
        unknown = (task_class < 0) | (task_class >= num_task_classes)
        if np.any(unknown):
            raise ValueError(
                f"task class {int(task_class[unknown][0])} is not one of the {num_task_classes} "
                "classes this agent was trained on (-1: a held-out task); evaluate on the train "
                "split"
            )
    return torch.as_tensor(np.asarray(task_class, np.int64), device=device)


@dataclass(frozen=True)
class ActionLayout:
    """How a policy's outputs map to an action space: a categorical over `dim` actions, or a
    Box in [-1, 1]^dim rescaled by `center + half * a` (RL², VariBAD, MAML)."""

    discrete: bool
    dim: int
    center: np.ndarray
    half: np.ndarray


def action_layout(space: gym.Space[Any], agent: str, discrete_ok: bool = True) -> ActionLayout:
    """The layout of a Discrete or bounded 1-d Box action space; anything else is a one-line
    config error naming the agent."""
    if discrete_ok and isinstance(space, gym.spaces.Discrete):
        empty = np.zeros(0, np.float32)
        return ActionLayout(True, int(space.n), empty, empty)
    if (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 1
        and np.isfinite(space.low).all()
        and np.isfinite(space.high).all()
    ):
        center = ((space.high + space.low) / 2).astype(np.float32)
        half = ((space.high - space.low) / 2).astype(np.float32)
        return ActionLayout(False, int(space.shape[0]), center, half)
    kinds = "Discrete or bounded 1-d Box" if discrete_ok else "bounded 1-d Box"
    raise ConfigError(f"agent.name: {agent} needs {kinds} actions, not {space}")


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """E independent linear layers applied as one batched matmul: [E, B, D] -> [E, B, out]."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_dim))
        # Same init as nn.Linear, per member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x_EBD: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x_EBD, self.weight)


class EnsembleMLP(nn.Module):
    """E MLPs with the same shape, evaluated together (twin critics in one pass)."""

    def __init__(self, ensemble: int, in_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(
            EnsembleLinear(ensemble, a, b) for a, b in itertools.pairwise(dims)
        )
        self.ensemble = ensemble

    def forward(self, x_BD: torch.Tensor) -> torch.Tensor:
        h = x_BD.unsqueeze(0).expand(self.ensemble, -1, -1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        return h  # [E, B, out]


def rlkit_init(module: nn.Module, last_bound: float) -> nn.Module:
    """rlkit's initialisation, as PEARL's authors ran it (oyster rlkit/torch/networks.py Mlp,
    pytorch_util.fanin_init): hidden weights U(±1/√size[0]), where size[0] of an nn.Linear
    weight is its OUTPUT width (so 1/√300 for every 300-wide layer, the first included),
    hidden biases 0.1, the last layer's weights and biases U(±last_bound) (3e-3 for Q, V and
    the encoder, 1e-3 for the policy heads). Works on `mlp` and `EnsembleMLP` stacks."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear | EnsembleLinear)]
    with torch.no_grad():
        for i, layer in enumerate(linears):
            weight, bias = layer.weight, layer.bias
            assert bias is not None
            if i == len(linears) - 1:
                weight.uniform_(-last_bound, last_bound)
                bias.uniform_(-last_bound, last_bound)
                continue
            # nn.Linear weight is [out, in]; EnsembleLinear's [E, in, out]: rlkit's size[0] is out.
            out_width = weight.shape[0] if isinstance(layer, nn.Linear) else weight.shape[-1]
            bound = 1.0 / math.sqrt(out_width)
            weight.uniform_(-bound, bound)
            bias.fill_(0.1)
    return module


TaskEncoding = Literal["none", "one_hot", "embedding"]


class TaskEncoder(nn.Module):
    """Appends an encoding of the explicit task class id to the features.

    "one_hot" is the Meta-World paper's MT-SAC input; "embedding" a learned table (mtrl);
    "none" passes the features through (single-task SAC, or heads alone select the task).
    """

    def __init__(self, num_classes: int, kind: TaskEncoding, embedding_dim: int) -> None:
        super().__init__()
        self.num_classes, self.kind = num_classes, kind
        self.table = nn.Embedding(num_classes, embedding_dim) if kind == "embedding" else None
        self.out_dim = {"none": 0, "one_hot": num_classes, "embedding": embedding_dim}[kind]

    def forward(self, x_BD: torch.Tensor, task_B: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return x_BD
        if self.table is not None:
            return torch.cat([x_BD, self.table(task_B)], dim=-1)
        return torch.cat([x_BD, F.one_hot(task_B, self.num_classes).to(x_BD.dtype)], dim=-1)


def select_head(out_BHX: torch.Tensor, task_B: torch.Tensor) -> torch.Tensor:
    """Row b's head task_B[b] from all heads [..., B, H, X] -> [..., B, X].

    Every head is computed by one matmul (the last layer has H times the outputs) and the
    rows then pick theirs: no Python loop over tasks, and the extra cost is only the last
    layer's (Meta-World paper's multi-head SAC; mtrl computes heads the same way).
    """
    index = task_B.view(-1, 1, 1).expand(-1, 1, out_BHX.shape[-1])  # [B, 1, X]
    index = index.expand(*out_BHX.shape[:-3], -1, -1, -1)  # leading dims (twin critics)
    return out_BHX.gather(-2, index).squeeze(-2)


class TanhGaussianActor(nn.Module):
    """Gaussian policy squashed by tanh (SAC, Haarnoja et al. 2018, appendix C).

    With `heads` > 1 the last layer has one output head per task class (multi-head SAC).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        encoder: TaskEncoder | None = None,
        heads: int = 1,
    ) -> None:
        super().__init__()
        self.encode = encoder or TaskEncoder(1, "none", 0)
        self.heads, self.act_dim = heads, act_dim
        self.net = mlp(obs_dim + self.encode.out_dim, hidden, 2 * act_dim * heads)

    def forward(
        self, obs_BD: torch.Tensor, task_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self.encode(obs_BD, task_B))
        if self.heads > 1:
            out = select_head(out.view(-1, self.heads, 2 * self.act_dim), task_B)
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(
        self, obs_BD: torch.Tensor, task_B: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Squashed action in [-1, 1] and its log-probability [B]."""
        mean, log_std = self(obs_BD, task_B)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        std = log_std.exp()
        noise = torch.randn_like(mean)
        u = mean + std * noise
        # log N(u; mean, std), written out: cheaper than torch.distributions.Normal.
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # Change of variables for tanh (SAC eq. 21), in the stable form
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact without an epsilon.
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), log_prob


class TwinQ(nn.Module):
    """Two Q-functions Q(s, a) evaluated in one ensemble pass; returns [2, B].

    With `heads` > 1 each critic has one output per task class (multi-head SAC).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        encoder: TaskEncoder | None = None,
        heads: int = 1,
    ) -> None:
        super().__init__()
        self.encode = encoder or TaskEncoder(1, "none", 0)
        self.heads = heads
        self.net = EnsembleMLP(2, obs_dim + self.encode.out_dim + act_dim, hidden, heads)

    def forward(
        self, obs_BD: torch.Tensor, act_BA: torch.Tensor, task_B: torch.Tensor
    ) -> torch.Tensor:
        out = self.net(torch.cat([self.encode(obs_BD, task_B), act_BA], dim=-1))  # [2, B, H]
        if self.heads > 1:
            return select_head(out.unsqueeze(-1), task_B).squeeze(-1)
        return out.squeeze(-1)
