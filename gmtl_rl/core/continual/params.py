"""Continual World's networks and the parameter bookkeeping its methods share.

The body (continualworld/sac/models.py `mlp`, run with input_args.py's defaults
`--activation lrelu --use_layer_norm True --hidden_sizes 256 256 256 256`): Linear, LayerNorm,
tanh on the first layer (the layer norm always comes with a tanh there), then Linear and
leaky ReLU (TF's slope 0.2) on the others, then the output layer; Keras Dense initialisation
(Glorot-uniform weights, zero biases) and Keras LayerNormalization (ε 1e-3).

"Shared" parameters are what CW's `common_variables` are: the whole network with one head,
the body alone with a head per task (models.py `MlpActor.common_variables`). Regularisers and
PackNet act on those only: each task's head is trained by that task's rows alone.

Suffixes: E = ensemble members, B = rows, P = shared parameters flattened.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from gmtl_rl.core.networks import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    EnsembleLinear,
    EnsembleMLP,
    TanhGaussianActor,
    TaskEncoder,
    TwinQ,
)

LEAKY_SLOPE = 0.2  # tf.nn.leaky_relu's default alpha (CW utils.get_activation_from_str "lrelu")
LAYER_NORM_EPS = 1e-3  # tf.keras.layers.LayerNormalization's default epsilon


def _glorot_(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))  # Keras glorot_uniform
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def _dense(in_dim: int, out_dim: int, fan_out: int | None = None) -> nn.Linear:
    """nn.Linear initialised as a Keras Dense layer of `fan_out` units (default out_dim)."""
    layer = nn.Linear(in_dim, out_dim)
    _glorot_(layer.weight, in_dim, out_dim if fan_out is None else fan_out)
    nn.init.zeros_(layer.bias)
    return layer


def cw_mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int, fan_out: int | None = None
) -> nn.Sequential:
    """CW's body and an output layer. `fan_out`: the Keras width the output layer's init uses
    (CW's actor has two Dense heads, μ and log σ, of A·H units each; here they are one layer)."""
    layers: list[nn.Module] = [
        _dense(in_dim, hidden[0]),
        nn.LayerNorm(hidden[0], eps=LAYER_NORM_EPS),
        nn.Tanh(),
    ]
    for a, b in itertools.pairwise(hidden):
        layers += [_dense(a, b), nn.LeakyReLU(LEAKY_SLOPE)]
    layers.append(_dense(hidden[-1], out_dim, fan_out))
    return nn.Sequential(*layers)


class EnsembleLayerNorm(nn.Module):
    """E independent layer norms over the last dim of [E, B, D] (the twin critics' bodies)."""

    def __init__(self, ensemble: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, dim))
        self.dim = dim

    def forward(self, x_EBD: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x_EBD, (self.dim,), eps=LAYER_NORM_EPS)
        return normed * self.weight + self.bias


class CWEnsembleMLP(EnsembleMLP):
    """E copies of `cw_mlp` evaluated together: [B, D] -> [E, B, out]."""

    def __init__(self, ensemble: int, in_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        super().__init__(ensemble, in_dim, hidden, out_dim)
        for layer in self.layers:
            assert isinstance(layer, EnsembleLinear)
            _glorot_(layer.weight, *layer.weight.shape[1:])
            nn.init.zeros_(layer.bias)
        self.norm = EnsembleLayerNorm(ensemble, hidden[0])

    def forward(self, x_BD: torch.Tensor) -> torch.Tensor:
        h = x_BD.unsqueeze(0).expand(self.ensemble, -1, -1)
        h = torch.tanh(self.norm(self.layers[0](h)))
        for layer in self.layers[1:-1]:
            h = F.leaky_relu(layer(h), LEAKY_SLOPE)
        return self.layers[-1](h)


class CWActor(TanhGaussianActor):
    """The tanh-Gaussian actor on CW's body (sampling and log-probabilities unchanged); log σ
    clamped to [log_std_min, 2] (CW: [-20, 2])."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        encoder: TaskEncoder,
        heads: int,
        log_std_min: float = LOG_STD_MIN,
    ) -> None:
        nn.Module.__init__(self)  # TanhGaussianActor's MLP is replaced by CW's
        self.encode, self.heads, self.act_dim = encoder, heads, act_dim
        in_dim = obs_dim + encoder.out_dim
        self.net = cw_mlp(in_dim, hidden, 2 * act_dim * heads, fan_out=act_dim * heads)
        self.log_std_min = log_std_min

    def forward(
        self, obs_BD: torch.Tensor, task_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = super().forward(obs_BD, task_B)
        if self.log_std_min == LOG_STD_MIN:
            return mean, log_std
        return mean, log_std.clamp(self.log_std_min, LOG_STD_MAX)


class CWTwinQ(TwinQ):
    """Twin Q-functions on CW's body, one ensemble pass: [2, B]."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int], encoder: TaskEncoder, heads: int
    ) -> None:
        nn.Module.__init__(self)  # TwinQ's MLP is replaced by CW's
        self.encode, self.heads = encoder, heads
        self.net = CWEnsembleMLP(2, obs_dim + encoder.out_dim + act_dim, hidden, heads)


def output_layer(net: TanhGaussianActor | TwinQ) -> nn.Module:
    """The layer that holds the heads (the last Linear of the actor's or critic's MLP)."""
    body = net.net
    layer = body[-1] if isinstance(body, nn.Sequential) else body.layers[-1]
    assert isinstance(layer, nn.Linear | EnsembleLinear)
    return layer


def shared_parameters(net: TanhGaussianActor | TwinQ) -> list[tuple[str, nn.Parameter]]:
    """CW's `common_variables`: every parameter with one head; without the output layer with
    a head per task (models.py `MlpActor.common_variables`, `MlpCritic.common_variables`)."""
    heads = {id(p) for p in output_layer(net).parameters()} if net.heads > 1 else set()
    return [(n, p) for n, p in net.named_parameters() if id(p) not in heads]


def is_kernel(net: nn.Module, name: str) -> bool:
    """A weight matrix of a linear layer (PackNet assigns those to tasks; CW's "kernel"
    variables), as opposed to biases, layer-norm scales and embedding tables."""
    module_name, _, leaf = name.rpartition(".")
    module = net.get_submodule(module_name)
    return leaf == "weight" and isinstance(module, nn.Linear | EnsembleLinear)


class FlatParams:
    """A network's shared parameters as one flat vector [P], in a fixed order."""

    def __init__(self, net: nn.Module, named: Sequence[tuple[str, nn.Parameter]]) -> None:
        self.net = net
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.sizes = [p.numel() for p in self.params]
        self.numel = sum(self.sizes)

    def vector(self) -> torch.Tensor:
        """θ [P], differentiable (a penalty on it backpropagates into the parameters)."""
        return torch.cat([p.reshape(-1) for p in self.params])

    def unflatten(self, theta_P: torch.Tensor) -> dict[str, torch.Tensor]:
        """{name: tensor} views of a flat vector, for `torch.func.functional_call`."""
        pieces = torch.split(theta_P, self.sizes)
        return {n: v.view_as(p) for n, v, p in zip(self.names, pieces, self.params, strict=True)}


def reset_adam_moments(*optimizers: torch.optim.Optimizer) -> None:
    """Zero Adam's first and second moments and keep its step counts, as CW's
    utils.reset_optimizer does ("Skip the first variable, its step count")."""
    for opt in optimizers:
        for state in opt.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key].zero_()
