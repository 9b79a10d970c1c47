"""Multi-task network architectures for the shared SAC agent (issue 19).

Soft Modularization (Yang et al. 2020), CARE (Sodhani et al. 2021), MOORE (Hendawy et al.
2024) and PaCo (Sun et al. 2022), as Meta-World+'s JAX implementations run them on MT-SAC
(Farama-Foundation/metaworld-algorithms, mirrored as rainx0r/metaworld-algorithms @30c9991,
`metaworld_algorithms/nn/{soft_modules,care,moore,paco}.py`), with the authors' own code read
beside them (docs/multitask_architectures.md names files, commits and every deviation).

Every network here is an ensemble of E members evaluated together (E = 1 for the actor, 2 for
the twin critics), each member with its own parameters, as Meta-World+'s `Ensemble` vmaps the
whole Q-network: `net(x_BD, task_B) -> [E, B, out]`. Experts, modules and parameter sets are
one more batched dimension of the same matmul, never a Python loop; what depends on the task
class alone (CARE's context and attention, MOORE's and PaCo's task weights) is computed once
per class and gathered per row. `MTActor` and `MTTwinQ` wrap them behind the
`TanhGaussianActor` / `TwinQ` interfaces the SAC update uses.

Initialisation is Meta-World+'s: hidden kernels He-uniform (U(±√(6/fan_in))), biases 0, the
actor's output layer U(±1e-3) and the critic's U(±3e-3) (`rl/networks.py`).

Suffixes: E = ensemble members, B = batch rows, T = task classes, K = experts / modules /
parameter sets, D = features.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn
from torch.nn import functional as F

from gmtl_rl.core.networks import (
    LOG_STD_MAX,
    EnsembleLinear,
    TanhGaussianActor,
    TaskEncoder,
    TwinQ,
    select_head,
)
from gmtl_rl.errors import ConfigError

Architecture = Literal["mlp", "soft_modules", "care", "moore", "paco"]
ACTOR_HEAD_BOUND, CRITIC_HEAD_BOUND = 1e-3, 3e-3  # Meta-World+ rl/networks.py head inits
ROUTING_BOUND = 1e-3  # Meta-World+ soft_modules.py: the routing logits' kernel, uniform(1e-3)
PACKAGED_METADATA = "metaworld"


# -- options (one config model per architecture; `agent.<name>` in YAML) ----------------------
class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SoftModulesOptions(_Options):
    """Soft Modularization's module and routing networks (`agent.hidden` is the observation
    encoder f; its last size is the embedding D that the task embedding multiplies)."""

    num_layers: PositiveInt = Field(2, description="module layers L (2: MT10, 4: MT50)")
    num_modules: PositiveInt = Field(2, description="modules per layer m (2: MT10, 4: MT50)")
    module_width: PositiveInt = Field(256, description="units of each module d")
    routing_width: PositiveInt = Field(256, description="width of the routing network")


class CAREOptions(_Options):
    """CARE's context encoder, attention and mixture of encoders (`agent.hidden`: the torso)."""

    context: Literal["metadata", "learned"] = Field(
        "metadata",
        description="task context: metadata (the task descriptions' embeddings, CARE) or "
        "learned (a table per class, as Meta-World+ runs CARE)",
    )
    metadata: str = Field(
        PACKAGED_METADATA,
        description="'metaworld' (the CARE authors' RoBERTa embeddings, shipped) or a .json "
        "{task name: vector} / .npz (names, embeddings) file",
    )
    task_names: list[str] | None = Field(
        None, description="task name of each class in class order (default: the env's names)"
    )
    num_experts: PositiveInt = Field(6, description="encoders k in the mixture (6: MT10, 10: MT50)")
    encoder_width: PositiveInt = Field(50, description="width of context, attention, encoders")
    encoder_depth: PositiveInt = Field(2, description="hidden layers of those MLPs")
    embedding_dim: PositiveInt = Field(50, description="context and encoder output size")
    temperature: float = Field(1.0, gt=0, description="softmax temperature of the attention")


class MOOREOptions(_Options):
    """MOORE's orthogonal experts (`agent.hidden`: each expert; its last size is the width)."""

    num_experts: PositiveInt = Field(4, description="experts k (4: MT10, 6: MT50)")


class PaCoOptions(_Options):
    """PaCo's parameter sets and the authors' loss mask-out / w-reset for diverging tasks."""

    num_parameter_sets: PositiveInt = Field(5, description="parameter sets K (5: MT10, 20: MT50)")
    extreme_task_loss: float | None = Field(
        None,
        gt=0,
        description="mask a task out of the update when its mean critic loss exceeds this "
        "(authors: 3000); none = off (Meta-World+)",
    )
    reset_extreme_tasks: Literal["none", "interpolate", "copy"] = Field(
        "none", description="reset a masked task's w from the others (authors: interpolate)"
    )


class ArchitectureConfig(Protocol):
    """The SAC config fields the builders read."""

    @property
    def architecture(self) -> Architecture: ...
    @property
    def hidden(self) -> list[int]: ...
    @property
    def soft_modules(self) -> SoftModulesOptions: ...
    @property
    def care(self) -> CAREOptions: ...
    @property
    def moore(self) -> MOOREOptions: ...
    @property
    def paco(self) -> PaCoOptions: ...
    @property
    def log_std_min(self) -> float: ...
    @property
    def multi_head(self) -> bool: ...
    @property
    def task_encoding(self) -> str: ...
    @property
    def per_task_alpha(self) -> bool: ...
    @property
    def temperature_reweight(self) -> bool: ...


# -- batched building blocks ----------------------------------------------------------------
def _init_(weight: torch.Tensor, bound: float | None, fan_in: int) -> None:
    """U(±bound), or He-uniform U(±√(6 / fan_in)) (flax he_uniform) when bound is None."""
    b = math.sqrt(6.0 / fan_in) if bound is None else bound
    with torch.no_grad():
        weight.uniform_(-b, b)


class Linear(EnsembleLinear):
    """N independent linear layers as one batched matmul, [N, B, in] -> [N, B, out].

    Hidden layers: He-uniform kernel and zero bias; `bound` gives an output layer U(±bound)
    for both (Meta-World+'s heads).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int, bound: float | None = None) -> None:
        super().__init__(n, in_dim, out_dim)
        _init_(self.weight, bound, in_dim)
        if bound is None:
            nn.init.zeros_(self.bias)
        else:
            _init_(self.bias, bound, in_dim)


class MLP(nn.Module):
    """N MLPs of one shape in one pass (ReLU between layers): [N, B, in] or [B, in] ->
    [N, B, out]. `bound` initialises the last layer as an output head."""

    def __init__(
        self,
        n: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        bound: float | None = None,
        activate_last: bool = False,
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        last = len(dims) - 2
        self.layers = nn.ModuleList(
            Linear(n, a, b, bound if i == last else None)
            for i, (a, b) in enumerate(itertools.pairwise(dims))
        )
        self.n, self.activate_last = n, activate_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.expand(self.n, *x.shape[-2:]) if x.dim() == 2 else x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1 or self.activate_last:
                h = F.relu(h)
        return h


class TaskTable(nn.Module):
    """A linear layer on the task's one-hot, stored as its [E, T, out] rows (+ bias): a
    lookup, not a matmul. `table()` gives every class's row, `forward(task_B)` each row's."""

    def __init__(self, n: int, classes: int, out_dim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, classes, out_dim))
        _init_(self.weight, None, classes)  # He-uniform with fan_in = T (the one-hot's width)
        self.bias = nn.Parameter(torch.zeros(n, 1, out_dim)) if bias else None

    def table(self) -> torch.Tensor:
        return self.weight if self.bias is None else self.weight + self.bias

    def forward(self, task_B: torch.Tensor) -> torch.Tensor:
        return self.table()[:, task_B]


# -- Soft Modularization --------------------------------------------------------------------
class SoftModulesNet(nn.Module):
    """Soft Modularization (Yang et al. 2020): a base network of L layers of m modules whose
    connections are soft-routed per row by a routing network conditioned on the observation
    and the task (Meta-World+ `SoftModularizationNetwork`; authors' `ModularGatedCascadeCondNet`,
    RchalYang/Soft-Module torchrl/networks/nets.py).

    As the authors' code (not the paper's text): the task embedding z(task) multiplies the
    observation embedding f(s) and passes two more layers; routing layer l > 0 sees all earlier
    routing probabilities (p_<l, not p_{l-1}); ReLU comes after the weighted sum; a last
    routing vector p_L weighs the last layer's modules into the output layer.
    """

    def __init__(
        self,
        n: int,
        in_dim: int,
        classes: int,
        hidden: Sequence[int],
        out_dim: int,
        opts: SoftModulesOptions,
        head_bound: float,
    ) -> None:
        super().__init__()
        L, m, d, g = opts.num_layers, opts.num_modules, opts.module_width, opts.routing_width
        D = hidden[-1]
        self.n, self.L, self.m, self.d = n, L, m, d
        self.f = MLP(n, in_dim, hidden[:-1], D)  # observation embedding f(s)
        self.z = TaskTable(n, classes, D, bias=True)  # task embedding z(task), Dense on one-hot
        self.task_fc = MLP(n, D, [g], g)  # the two extra layers after f * z (authors' code)
        # W_d^l: routing logits, m×m per layer and m for the last (Meta-World+ uniform(1e-3)).
        route_out = [Linear(n, g, m if i == L - 1 else m * m, ROUTING_BOUND) for i in range(L)]
        for layer in route_out:
            nn.init.zeros_(layer.bias)
        self.route_out = nn.ModuleList(route_out)
        # W_u^l: all earlier routing probabilities (flattened) -> g, for layers 1..L-1.
        self.route_in = nn.ModuleList(Linear(n, i * m * m, g) for i in range(1, L))
        self.modules_ = nn.ModuleList(Linear(n * m, D if i == 0 else d, d) for i in range(L))
        self.head = Linear(n, d, out_dim, head_bound)

    def routing(self, x_BD: torch.Tensor, task_B: torch.Tensor) -> list[torch.Tensor]:
        """The routing probabilities of each row: L-1 tensors [E, B, m, m] (row j: how module
        j of the next layer weighs this layer's modules) and a last [E, B, m]."""
        return self._forward(x_BD, task_B)[1]

    def forward(self, x_BD: torch.Tensor, task_B: torch.Tensor) -> torch.Tensor:
        return self._forward(x_BD, task_B)[0]

    def _forward(
        self, x_BD: torch.Tensor, task_B: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        n, L, m, d = self.n, self.L, self.m, self.d
        obs = self.f(x_BD)  # [E, B, D]
        task_emb = self.task_fc(F.relu(self.z(task_B) * obs))  # [E, B, g]
        B = obs.shape[1]
        probs: list[torch.Tensor] = []
        for i in range(L):  # routing network (paper eq. 5-7, with the authors' cascade)
            e = task_emb
            if i > 0:
                flat = torch.cat([p.reshape(n, B, m * m) for p in probs], dim=-1)
                e = task_emb * self.route_in[i - 1](flat)
            logits = self.route_out[i](F.relu(e))
            shape = (n, B, m) if i == L - 1 else (n, B, m, m)
            probs.append(torch.softmax(logits.view(shape), dim=-1))
        # Base network: every module of layer 0 sees relu(f(s)) (eq. 8-9 as the code runs it).
        u = F.relu(obs).unsqueeze(1).expand(n, m, B, obs.shape[-1]).reshape(n * m, B, -1)
        for i in range(L):
            out = self.modules_[i](u).view(n, m, B, d)
            if i < L - 1:
                u = F.relu(torch.einsum("ebjk,ekbd->ejbd", probs[i], out)).reshape(n * m, B, d)
            else:
                u = F.relu(torch.einsum("ebk,ekbd->ebd", probs[i], out))
        return self.head(u), probs


# -- CARE -----------------------------------------------------------------------------------
class CARENet(nn.Module):
    """CARE (Sodhani et al. 2021): a context encoder turns the task's metadata into a context
    z; an attention over k observation encoders (softmax of an MLP of z) mixes their
    encodings; the torso reads [mixture, z] (Meta-World+ `CARENetwork`; mtrl
    `MixtureofExpertsEncoder` + `AttentionBasedExperts` + `TaskEncoder`).

    `metadata_TM` given: the context starts from the frozen metadata row of the task, projected
    as mtrl's pretrained TaskEncoder does (ReLU, Linear 2d, ReLU, Linear d, ReLU); none: from a
    learned table (Meta-World+, whose CARE has no metadata yet).
    """

    def __init__(
        self,
        n: int,
        in_dim: int,
        classes: int,
        hidden: Sequence[int],
        out_dim: int,
        opts: CAREOptions,
        head_bound: float,
        metadata_TM: torch.Tensor | None,
    ) -> None:
        super().__init__()
        k, w, d = opts.num_experts, opts.encoder_width, opts.embedding_dim
        enc = [w] * opts.encoder_depth
        self.n, self.k, self.temperature = n, k, opts.temperature
        self.metadata: torch.Tensor | None
        self.table: TaskTable | None
        self.project: MLP | None
        if metadata_TM is not None:
            self.register_buffer("metadata", metadata_TM.clone())
            self.project = MLP(n, metadata_TM.shape[1], [2 * d], d, activate_last=True)
            self.table = None
        else:
            self.metadata = None
            self.project = None
            self.table = TaskTable(n, classes, d, bias=False)
            with torch.no_grad():  # flax nn.Embed's default: variance_scaling(1, fan_in, normal)
                self.table.weight.normal_(0.0, 1.0 / math.sqrt(classes))
        self.context_mlp = MLP(n, d, enc, d)  # Meta-World+ task_embedding_mlp
        self.attention_mlp = MLP(n, d, enc, k)  # Meta-World+ task_embedding_attn_mlp
        self.experts = MLP(n * k, in_dim, enc, d)  # the mixture of k encoders
        self.torso = MLP(n, 2 * d, hidden, out_dim, head_bound)

    def context(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every class's context z [E, T, d] and attention weights over the encoders [E, T, k]
        (they depend on the task alone: computed per class, gathered per row)."""
        if self.metadata is not None and self.project is not None:
            start = self.project(F.relu(self.metadata))
        else:
            assert self.table is not None
            start = F.relu(self.table.table())
        z = self.context_mlp(start)
        attention = torch.softmax(self.attention_mlp(z) / self.temperature, dim=-1)
        return z, attention

    def forward(self, x_BD: torch.Tensor, task_B: torch.Tensor) -> torch.Tensor:
        z_T, attention_T = self.context()
        z, attention = z_T[:, task_B], attention_T[:, task_B]  # [E, B, d], [E, B, k]
        B = x_BD.shape[-2]
        encodings = self.experts(x_BD).view(self.n, self.k, B, -1)  # [E, k, B, d]
        mixed = torch.einsum("ekbd,ebk->ebd", encodings, attention)
        return self.torso(torch.cat([mixed, z], dim=-1))


# -- MOORE ----------------------------------------------------------------------------------
def gram_schmidt(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Orthonormalise the K vectors of v [..., K, D] in order (classical Gram-Schmidt as
    MOORE's `OrthogonalLayer1D` and Meta-World+'s `orthogonal_1d`; eps as Meta-World+).

    The K steps are sequential by definition (each vector is made orthogonal to the ones
    before it); every step is one batched operation over all leading dimensions.
    """
    first = v[..., :1, :]
    basis = first / (torch.linalg.vector_norm(first, dim=-1, keepdim=True) + eps)
    for i in range(1, v.shape[-2]):
        vi = v[..., i : i + 1, :]
        w = vi - (vi @ basis.mT) @ basis
        basis = torch.cat(
            [basis, w / (torch.linalg.vector_norm(w, dim=-1, keepdim=True) + eps)], -2
        )
    return basis


class MOORENet(nn.Module):
    """MOORE (Hendawy et al. 2024): k expert MLPs, their outputs made orthonormal per row by
    Gram-Schmidt, mixed by task-specific weights (a bias-free linear map of the task's
    one-hot), tanh, then one output head per task (Meta-World+ `MOORENetwork`; authors'
    `MetaworldSACMixtureMH{Actor,Critic}Network` with `--orthogonal --agg_activation Linear
    Tanh`, AhmedMagdyHendawy/MOORE moore/utils/networks_sac.py)."""

    def __init__(
        self,
        n: int,
        in_dim: int,
        classes: int,
        hidden: Sequence[int],
        out_dim: int,
        opts: MOOREOptions,
        head_bound: float,
    ) -> None:
        super().__init__()
        k, width = opts.num_experts, hidden[-1]
        self.n, self.k, self.classes, self.out_dim = n, k, classes, out_dim
        self.task_weights = TaskTable(n, classes, k, bias=False)
        self.experts = MLP(n * k, in_dim, hidden[:-1], width)  # last layer linear (authors)
        self.heads = Linear(n, width, classes * out_dim, head_bound)  # one head per task

    def representations(self, x_BD: torch.Tensor) -> torch.Tensor:
        """The experts' outputs after Gram-Schmidt, [E, B, k, width]: orthonormal per row."""
        B = x_BD.shape[-2]
        out = self.experts(x_BD).view(self.n, self.k, B, -1).transpose(1, 2)
        return gram_schmidt(out)

    def forward(self, x_BD: torch.Tensor, task_B: torch.Tensor) -> torch.Tensor:
        basis = self.representations(x_BD)
        features = torch.tanh(torch.einsum("ebkw,ebk->ebw", basis, self.task_weights(task_B)))
        heads = self.heads(features).view(self.n, -1, self.classes, self.out_dim)
        return select_head(heads, task_B)  # every head in one matmul, each row picks its own


# -- PaCo -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskGroups:
    """Rows grouped by task class for a per-class matmul: the P classes present, and each
    row's slot in a [P, M] grid (M = the largest group; balanced batches leave no padding)."""

    present: torch.Tensor  # [P] class ids, ascending
    slot: torch.Tensor  # [B] row b's position in the flattened [P * M] grid
    size: int  # M

    @staticmethod
    def of(task_B: torch.Tensor) -> TaskGroups:
        present, inverse, counts = torch.unique(task_B, return_inverse=True, return_counts=True)
        size = int(counts.max())
        order = torch.argsort(inverse, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(task_B), device=task_B.device) - starts[inverse[order]]
        slot = torch.empty_like(task_B)
        slot[order] = inverse[order] * size + rank
        return TaskGroups(present, slot, size)


class CompositionalLinear(nn.Module):
    """K parameter sets of one linear layer per member: weight [E, K, in, out], bias
    [E, K, out] (Meta-World+ `CompositionalDense`, independently initialised per set)."""

    def __init__(self, n: int, sets: int, in_dim: int, out_dim: int, bound: float | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, sets, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(n, sets, out_dim))
        _init_(self.weight, bound, in_dim)
        if bound is not None:
            _init_(self.bias, bound, in_dim)

    def compose(self, w_EPK: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each present task's parameters θ_τ = Φ w_τ (PaCo eq. 3): [E, P, in, out], [E, P, out]."""
        weight = torch.einsum("epk,ekio->epio", w_EPK, self.weight)
        return weight, torch.einsum("epk,eko->epo", w_EPK, self.bias)


class PaCoNet(nn.Module):
    """PaCo (Sun et al. 2022): every layer has K parameter sets Φ; task τ's network uses the
    parameters Φ w_τ, with w_τ a learned vector per task (a Dense layer on the one-hot, as
    Meta-World+'s `PaCoNetwork`; the authors' `TaskEncodingNetwork`, TToTMooN/paco-mtrl).

    Meta-World+ (and the authors' `CompositionalFC`) compute all K outputs of a layer and mix
    them with w_τ; Σ_k w_k (x W_k + b_k) = x (Σ_k w_k W_k) + Σ_k w_k b_k, so here each present
    task's parameters are composed first (the paper's θ_τ = Φ w_τ) and each task's rows pass
    through them once: the same function, at the cost of one MLP instead of K.
    """

    def __init__(
        self,
        n: int,
        in_dim: int,
        classes: int,
        hidden: Sequence[int],
        out_dim: int,
        opts: PaCoOptions,
        head_bound: float,
    ) -> None:
        super().__init__()
        K = opts.num_parameter_sets
        self.n = n
        self.w = TaskTable(n, classes, K, bias=True)  # w_τ, Meta-World+ Dense(K) on one-hot
        dims = [in_dim, *hidden, out_dim]
        last = len(dims) - 2
        self.layers = nn.ModuleList(
            CompositionalLinear(n, K, a, b, head_bound if i == last else None)
            for i, (a, b) in enumerate(itertools.pairwise(dims))
        )

    def forward(self, x_BD: torch.Tensor, task_B: torch.Tensor) -> torch.Tensor:
        n, groups = self.n, TaskGroups.of(task_B)
        P, M = len(groups.present), groups.size
        w = self.w.table()[:, groups.present]  # [E, P, K]
        if x_BD.dim() == 2:
            x_BD = x_BD.expand(n, *x_BD.shape)
        h = x_BD.new_zeros(n, P * M, x_BD.shape[-1]).index_copy(1, groups.slot, x_BD)
        h = h.view(n * P, M, -1)
        for i, layer in enumerate(self.layers):
            weight, bias = cast(CompositionalLinear, layer).compose(w)
            h = torch.baddbmm(
                bias.reshape(n * P, 1, -1), h, weight.reshape(n * P, *weight.shape[2:])
            )
            if i < len(self.layers) - 1:
                h = F.relu(h)
        return h.view(n, P * M, -1).index_select(1, groups.slot)


class ExtremeTasks:
    """PaCo's guard against diverging tasks (authors' `PaCoMTSacAlgorithm`, `mask_extreme_task`
    and `reset_task_while_extreme`): a task whose mean critic loss in a batch exceeds the
    threshold is masked out of that update's losses, and its w_τ is then replaced by a random
    convex combination ("interpolate") or a copy ("copy") of the other tasks' w.

    The random draws come from a generator seeded from the agent's seed; its state and the
    per-task counts of extreme updates are in `state_dict` (exact resume).
    """

    @staticmethod
    def of(c: ArchitectureConfig, num_tasks: int, seed: int) -> ExtremeTasks | None:
        """The guard a config asks for (PaCo with agent.paco.extreme_task_loss), or None."""
        if c.architecture != "paco" or c.paco.extreme_task_loss is None:
            return None
        return ExtremeTasks(c.paco.extreme_task_loss, c.paco.reset_extreme_tasks, num_tasks, seed)

    def __init__(self, threshold: float, reset: str, num_tasks: int, seed: int) -> None:
        self.threshold, self.reset_method = threshold, reset
        self.generator = torch.Generator().manual_seed(seed + 7919)  # apart from PCGrad's stream
        self.counts = torch.zeros(num_tasks, dtype=torch.int64)
        self.pending: torch.Tensor | None = None  # [T] bool: tasks to reset after the update

    def mask(
        self, critic_sq_B: torch.Tensor, task_B: torch.Tensor, num_tasks: int
    ) -> torch.Tensor | None:
        """Row mask [B] (0 on extreme tasks' rows), or None when no task is extreme. The
        per-task loss is the authors' critic loss: the twin critics' squared errors summed."""
        total = torch.zeros(num_tasks, dtype=critic_sq_B.dtype, device=critic_sq_B.device)
        total.index_add_(0, task_B, critic_sq_B)
        rows = torch.bincount(task_B, minlength=num_tasks).clamp_min(1)
        extreme = (total / rows) > self.threshold
        if not bool(extreme.any()):
            return None
        self.counts += extreme.cpu().long()
        self.pending = extreme.cpu() if self.reset_method != "none" else None
        return (~extreme[task_B]).to(critic_sq_B.dtype)

    def reset(self, nets: Sequence[PaCoNet]) -> None:
        """After the update: the extreme tasks' w rows := mixtures of the normal tasks' rows,
        the same mixture in every network (the authors share one w network)."""
        extreme, self.pending = self.pending, None
        if extreme is None or bool(extreme.all()):
            return
        normal = (~extreme).nonzero().squeeze(1)
        draw = torch.rand((int(extreme.sum()), len(normal)), generator=self.generator)
        if self.reset_method == "interpolate":
            mix = draw / draw.sum(dim=1, keepdim=True)  # L1-normalised: a convex combination
        else:
            mix = F.one_hot(draw.argmax(dim=1), len(normal)).to(draw.dtype)
        targets = extreme.nonzero().squeeze(1)
        with torch.no_grad():
            for net in nets:
                weight = net.w.weight  # [E, T, K]; the bias is shared, Σ mix = 1 keeps it
                new = torch.einsum(
                    "xn,enk->exk", mix.to(weight), weight[:, normal.to(weight.device)]
                )
                weight[:, targets.to(weight.device)] = new

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.counts = state["counts"].clone()


# -- actor and critic behind the SAC interfaces ---------------------------------------------
MTNet = SoftModulesNet | CARENet | MOORENet | PaCoNet


class MTActor(TanhGaussianActor):
    """A tanh-Gaussian policy on a multi-task network: mean and log σ are the network's two
    output halves (Meta-World+ `ContinuousActionPolicyTorso`), log σ clamped to
    [log_std_min, 2]. Sampling and log-probabilities are TanhGaussianActor's."""

    def __init__(self, body: MTNet, act_dim: int, log_std_min: float) -> None:
        nn.Module.__init__(self)  # TanhGaussianActor's MLP is replaced by `body`
        self.body, self.act_dim, self.heads = body, act_dim, 1
        self.encode = TaskEncoder(1, "none", 0)
        self.log_std_min = log_std_min

    def forward(
        self, obs_BD: torch.Tensor, task_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.body(obs_BD, task_B)[0].chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, LOG_STD_MAX)


class BoundedTanhGaussianActor(TanhGaussianActor):
    """The MLP actor with log σ clamped to [log_std_min, 2] (log_std_min ≥ -20)."""

    def __init__(self, *args: Any, log_std_min: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log_std_min = log_std_min

    def forward(
        self, obs_BD: torch.Tensor, task_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = super().forward(obs_BD, task_B)
        return mean, log_std.clamp(self.log_std_min, LOG_STD_MAX)


class MTTwinQ(TwinQ):
    """Twin Q-functions on one multi-task network ensemble of 2 members: [2, B]."""

    def __init__(self, body: MTNet) -> None:
        nn.Module.__init__(self)  # TwinQ's MLP is replaced by `body`
        self.body, self.heads = body, 1
        self.encode = TaskEncoder(1, "none", 0)

    def forward(
        self, obs_BD: torch.Tensor, act_BA: torch.Tensor, task_B: torch.Tensor
    ) -> torch.Tensor:
        return self.body(torch.cat([obs_BD, act_BA], dim=-1), task_B).squeeze(-1)


@dataclass(frozen=True)
class Shapes:
    obs_dim: int
    act_dim: int
    classes: int


def _net(
    c: ArchitectureConfig, n: int, in_dim: int, out_dim: int, classes: int, bound: float,
    metadata: torch.Tensor | None,
) -> MTNet:  # fmt: skip
    hidden = list(c.hidden)
    if c.architecture == "soft_modules":
        return SoftModulesNet(n, in_dim, classes, hidden, out_dim, c.soft_modules, bound)
    if c.architecture == "care":
        return CARENet(n, in_dim, classes, hidden, out_dim, c.care, bound, metadata)
    if c.architecture == "moore":
        return MOORENet(n, in_dim, classes, hidden, out_dim, c.moore, bound)
    if c.architecture == "paco":
        return PaCoNet(n, in_dim, classes, hidden, out_dim, c.paco, bound)
    raise ValueError(f"no multi-task network for architecture {c.architecture!r}")


def build_actor(c: ArchitectureConfig, s: Shapes, metadata: torch.Tensor | None) -> MTActor:
    body = _net(c, 1, s.obs_dim, 2 * s.act_dim, s.classes, ACTOR_HEAD_BOUND, metadata)
    return MTActor(body, s.act_dim, c.log_std_min)


def build_twin_q(c: ArchitectureConfig, s: Shapes, metadata: torch.Tensor | None) -> MTTwinQ:
    return MTTwinQ(_net(c, 2, s.obs_dim + s.act_dim, 1, s.classes, CRITIC_HEAD_BOUND, metadata))


def build_networks(
    c: ArchitectureConfig, env: Any, obs_dim: int, act_dim: int
) -> tuple[MTActor, MTTwinQ, MTTwinQ]:
    """Actor, critic and target critic of `agent.architecture` for an EnvSpec. CARE's task
    names come from the EnvSpec's `task_class_names` (or agent.care.task_names, which must
    equal them where the env names its classes)."""
    classes = env.num_task_classes
    metadata = None
    if c.architecture == "care" and c.care.context == "metadata":
        metadata = care_metadata(c.care, env.task_class_names, classes)
    shapes = Shapes(obs_dim, act_dim, classes)
    critic, target = build_twin_q(c, shapes, metadata), build_twin_q(c, shapes, metadata)
    return build_actor(c, shapes, metadata), critic, target


def row_weights(
    c: ArchitectureConfig,
    log_alpha_T: torch.Tensor,
    extreme: ExtremeTasks | None,
    critic_sq_EB: torch.Tensor,
    task_B: torch.Tensor,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-row weights [B] of the critic and actor losses (Soft-Module's temperature
    re-weighting times PaCo's mask-out) and PaCo's mask alone (for the temperature loss, as
    the authors mask every loss of an extreme task); None where neither applies."""
    weight = mask = None
    if c.temperature_reweight:
        weight = temperature_task_weights(log_alpha_T, task_B)
    if extreme is not None:
        mask = extreme.mask(critic_sq_EB.detach().sum(dim=0), task_B, log_alpha_T.numel())
        if mask is not None:
            weight = mask if weight is None else weight * mask
    return weight, mask


def paco_nets(*modules: nn.Module) -> list[PaCoNet]:
    """The PaCo networks inside these actors / critics (for ExtremeTasks.reset)."""
    bodies = [getattr(m, "body", None) for m in modules]
    return [b for b in bodies if isinstance(b, PaCoNet)]


def temperature_task_weights(log_alpha_T: torch.Tensor, task_B: torch.Tensor) -> torch.Tensor:
    """Soft-Module's loss re-weighting (`temp_reweight`; Meta-World+ `use_task_weights`): row
    weights T · softmax(-log α)[task], detached, so a task whose temperature is high (still
    exploring) weighs less in the critic and actor losses and the weights average to 1."""
    weights = torch.softmax(-log_alpha_T.detach(), dim=0) * log_alpha_T.numel()
    return weights[task_B]


# -- validation and CARE's metadata ---------------------------------------------------------
def check(c: ArchitectureConfig, classes: int) -> None:
    """One-line ConfigErrors for settings these networks cannot run (key path, valid values)."""
    arch = c.architecture
    if c.temperature_reweight and not c.per_task_alpha:
        raise ConfigError(
            "agent.temperature_reweight: weighs tasks by their own temperatures and this agent "
            "has one shared temperature; valid: false, or agent.per_task_alpha: true"
        )
    if arch == "mlp":
        return
    if classes < 2:
        raise ConfigError(
            f"agent.architecture: {arch} is a multi-task network and needs an env with at least "
            f"2 task classes; this env has {classes}, so valid: mlp"
        )
    if c.multi_head:
        raise ConfigError(
            f"agent.multi_head: the {arch} architecture builds its own output layer (MOORE: one "
            "head per class); valid with agent.architecture other than mlp: false"
        )
    if c.task_encoding == "embedding":
        raise ConfigError(
            f"agent.task_encoding: the {arch} architecture reads the task class itself; valid "
            "with agent.architecture other than mlp: none, one_hot"
        )
    if arch == "moore" and c.moore.num_experts > c.hidden[-1]:
        raise ConfigError(
            f"agent.moore.num_experts: {c.moore.num_experts} orthonormal experts do not fit in a "
            f"{c.hidden[-1]}-wide representation (agent.hidden[-1]); valid: 1 to {c.hidden[-1]}"
        )
    if arch == "paco" and c.paco.reset_extreme_tasks != "none" and c.paco.extreme_task_loss is None:
        raise ConfigError(
            "agent.paco.reset_extreme_tasks: resets tasks that agent.paco.extreme_task_loss "
            "marks as extreme, and that is not set; valid: none, or set the threshold too"
        )


def _version_free(name: str) -> str:
    return re.sub(r"-v\d+$", "", name)


def _read_metadata(source: str) -> dict[str, np.ndarray]:
    """{task name: vector} from the shipped file or a user's .json / .npz (no pickle)."""
    where = "agent.care.metadata"
    try:
        if source == PACKAGED_METADATA:
            ref = resources.files("gmtl_rl") / "data" / "care" / "metaworld_roberta_small.npz"
            with ref.open("rb") as f, np.load(f, allow_pickle=False) as data:
                return dict(zip(data["names"].tolist(), data["embeddings"], strict=True))
        path = Path(source)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return dict(zip(data["names"].tolist(), data["embeddings"], strict=True))
        if path.suffix == ".json":
            raw = Path(source).read_text()
            return {str(k): np.asarray(v, np.float32) for k, v in json.loads(raw).items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{where}: cannot read {source!r} ({err}); valid: metaworld, "
            "or a .json {name: vector} / .npz (names, embeddings) file"
        ) from None
    raise ConfigError(f"{where}: {source!r} is neither the shipped metadata nor a .json/.npz "
                      "file; valid: metaworld, or a path ending in .json or .npz")  # fmt: skip


def care_metadata(opts: CAREOptions, env_names: Sequence[str] | None, classes: int) -> torch.Tensor:
    """[T, M] metadata rows in class order. Names come from `agent.care.task_names` or the env;
    a name matches exactly or without its "-vN" suffix (reach-v3 -> reach)."""
    names = opts.task_names if opts.task_names is not None else env_names
    if names is None:
        raise ConfigError(
            "agent.care.task_names: CARE's metadata is looked up by task name and this env "
            f"does not name its {classes} task classes; valid: a list of {classes} task names "
            "in class order, or agent.care.context: learned"
        )
    names = list(names)
    if len(names) != classes:
        raise ConfigError(
            f"agent.care.task_names: {len(names)} names for {classes} task classes; valid: one "
            "name per class, in class order"
        )
    if opts.task_names is not None and env_names is not None and list(env_names) != names:
        raise ConfigError(
            f"agent.care.task_names: {names} differs from the env's class order "
            f"{list(env_names)}; valid: the env's order (or leave it unset)"
        )
    table = _read_metadata(opts.metadata)
    loose = {_version_free(k): v for k, v in table.items()}
    rows = []
    for name in names:
        row = table.get(name, loose.get(_version_free(name)))
        if row is None:
            known = ", ".join(sorted(table)[:8])
            raise ConfigError(
                f"agent.care.task_names: no metadata for task {name!r} in {opts.metadata!r}; "
                f"valid: its {len(table)} names ({known}, ...)"
            )
        rows.append(np.asarray(row, np.float32).reshape(-1))
    if len({len(r) for r in rows}) != 1:
        raise ConfigError(f"agent.care.metadata: {opts.metadata!r} vectors differ in length; "
                          "valid: one length for every task")  # fmt: skip
    return torch.as_tensor(np.stack(rows))


def shipped_task_names() -> list[str]:
    """The Meta-World task names the shipped CARE metadata covers (without "-vN")."""
    return sorted(_read_metadata(PACKAGED_METADATA))
