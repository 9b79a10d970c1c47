"""L2, EWC and MAS as Continual World runs them (continualworld/methods/regularization.py,
l2.py, ewc.py, mas.py).

At the end of each task the network's shared parameters θ* become the anchor and the task's
importance w is added to the importance of the tasks before (`_merge_weights`: a sum, so L2's
weight after k tasks is k); every later update adds coef · Σ_i w_i (θ_i − θ*_i)² to that
network's loss (`_regularize`, no ½). Importances per method, averaged over rows of the task's
replay (CW: 10 batches of 256, `_update_reg_weights`):
  L2:  w = 1.
  EWC: the diagonal Fisher of the policy N(μ, σ) with μ = tanh(mean)·scale, σ = exp(log σ):
       F = Σ_j [(∂μ_j/∂θ)² + 2 (∂σ_j/∂θ)²] / (σ_j² + 1e-6), clipped below at 1e-5 per row
       (ewc.py, "Fisher information, see the derivation"); a critic's F = (∂Q/∂θ)².
  MAS: |∂/∂θ (Σ_j μ_j² + Σ_j log σ_j²)| for the policy, |∂Q²/∂θ| for a critic (mas.py).
Per-row gradients come from `torch.func` (vmap over rows); the twin critics' parameters are
stacked by member, and member m's Q depends only on member m's slice, so one gradient of the
members' sum gives both critics' rows.

Suffixes: B = rows, O = outputs per row, P = shared parameters flattened, A = action dims.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch.func import functional_call, grad, jacrev, vmap

from gmtl_rl.core.continual.params import FlatParams

Method = Literal["l2", "ewc", "mas"]
FISHER_STD_EPS = 1e-6  # ewc.py: 1 / (std ** 2 + 1e-6)
FISHER_MIN = 1e-5  # ewc.py: tf.clip_by_value(fisher, 1e-5, np.inf), per row
CHUNK_FLOATS = 1 << 24  # rows per vmap call are sized so one call holds ~64 MB of gradients


class Regularizer:
    """Anchor θ* [P] and summed importance w [P] of one network's shared parameters."""

    def __init__(self, flat: FlatParams, coef: float) -> None:
        self.flat, self.coef = flat, coef
        first = flat.params[0]
        self.anchor = torch.zeros(flat.numel, dtype=first.dtype, device=first.device)
        self.importance = torch.zeros_like(self.anchor)
        self.tasks = 0  # tasks consolidated so far

    def penalty(self) -> torch.Tensor | None:
        """coef · Σ w (θ − θ*)²; None before the first task has ended (CW: coefficient 0 on
        the first task, where w is 0 anyway)."""
        if self.tasks == 0:
            return None
        diff = self.flat.vector() - self.anchor
        return self.coef * (self.importance * diff * diff).sum()

    def consolidate(self, importance_P: torch.Tensor) -> None:
        """End of a task: θ* <- θ, w <- w + importance."""
        with torch.no_grad():
            self.anchor.copy_(self.flat.vector())
            self.importance.add_(importance_P)
        self.tasks += 1

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "importance": self.importance, "tasks": self.tasks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchor.copy_(state["anchor"])
        self.importance.copy_(state["importance"])
        self.tasks = int(state["tasks"])


def _row_chunks(task_B: torch.Tensor, outputs: int, numel: int) -> Iterator[torch.Tensor]:
    """Row indices in chunks of one task class each (the class is passed unbatched, so the
    network's one-hot encoder runs under vmap) sized to bound the [C, O, P] gradients."""
    size = max(1, CHUNK_FLOATS // max(1, outputs * numel))
    for cls in torch.unique(task_B):
        rows = torch.nonzero(task_B == cls).squeeze(1)
        yield from torch.split(rows, size)


def _per_row_sum(
    stat: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    flat: FlatParams,
    task_B: torch.Tensor,
    outputs: int,
) -> torch.Tensor:
    """Σ over rows of stat(θ, rows, class) [C, P], chunk by chunk."""
    theta = flat.vector().detach()
    total = torch.zeros_like(theta)
    # No autograd graph outside the transforms (torch.func differentiates inside regardless):
    # the other parameters (the heads) would otherwise tie every chunk's result to one graph.
    with torch.no_grad():
        for rows in _row_chunks(task_B, outputs, flat.numel):
            total += stat(theta, rows, task_B[rows[:1]]).sum(dim=0)
    return total


def policy_importance(
    method: Literal["ewc", "mas"],
    actor: torch.nn.Module,
    flat: FlatParams,
    obs_BD: torch.Tensor,
    task_B: torch.Tensor,
    action_scale_A: torch.Tensor,
) -> torch.Tensor:
    """EWC's Fisher or MAS's sensitivity of the policy [P], averaged over the B rows.
    `action_scale_A`: the env's action half-range (CW scales μ by `action_space.high[0]`)."""
    act_dim = action_scale_A.numel()

    def outputs(theta_P: torch.Tensor, obs_D: torch.Tensor, task_1: torch.Tensor) -> torch.Tensor:
        mean, log_std = functional_call(actor, flat.unflatten(theta_P), (obs_D[None], task_1))
        mu = torch.tanh(mean[0]) * action_scale_A  # models.py apply_squashing_func, scaled
        if method == "mas":
            return (mu * mu).sum() + (log_std[0] * log_std[0]).sum()
        return torch.cat([mu, log_std[0].exp()])  # [2A]: μ, then σ

    if method == "mas":
        per_row = vmap(grad(outputs), in_dims=(None, 0, None))

        def mas(theta: torch.Tensor, rows: torch.Tensor, task_1: torch.Tensor) -> torch.Tensor:
            return per_row(theta, obs_BD[rows], task_1).abs()  # [C, P]

        return _per_row_sum(mas, flat, task_B, 1) / len(task_B)

    jacobian = vmap(jacrev(outputs), in_dims=(None, 0, None))

    def fisher(theta: torch.Tensor, rows: torch.Tensor, task_1: torch.Tensor) -> torch.Tensor:
        jac = jacobian(theta, obs_BD[rows], task_1)  # [C, 2A, P]
        with torch.no_grad():
            _, log_std = actor(obs_BD[rows], task_1.expand(len(rows)))
        inv_var = 1.0 / (log_std.exp().pow(2) + FISHER_STD_EPS)  # [C, A]
        d_mu, d_std = jac[:, :act_dim], jac[:, act_dim:]
        f = ((d_mu.pow(2) + 2.0 * d_std.pow(2)) * inv_var.unsqueeze(-1)).sum(dim=1)
        return f.clamp(min=FISHER_MIN)

    return _per_row_sum(fisher, flat, task_B, 2 * act_dim) / len(task_B)


def critic_importance(
    method: Literal["ewc", "mas"],
    critic: torch.nn.Module,
    flat: FlatParams,
    obs_BD: torch.Tensor,
    action_BA: torch.Tensor,
    task_B: torch.Tensor,
) -> torch.Tensor:
    """EWC's (∂Q/∂θ)² or MAS's |∂Q²/∂θ| [P] of the twin critics, averaged over the rows."""

    def value(
        theta_P: torch.Tensor, obs_D: torch.Tensor, act_A: torch.Tensor, task_1: torch.Tensor
    ) -> torch.Tensor:
        q = functional_call(critic, flat.unflatten(theta_P), (obs_D[None], act_A[None], task_1))
        return (q * q).sum() if method == "mas" else q.sum()  # the members' sum; see above

    per_row = vmap(grad(value), in_dims=(None, 0, 0, None))

    def stat(theta: torch.Tensor, rows: torch.Tensor, task_1: torch.Tensor) -> torch.Tensor:
        g = per_row(theta, obs_BD[rows], action_BA[rows], task_1)
        return g.abs() if method == "mas" else g.pow(2)

    return _per_row_sum(stat, flat, task_B, 1) / len(task_B)
