"""Gradient surgery for multi-task learning: per-task gradients and PCGrad.

PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning", Algorithm 1): each task's
gradient is projected onto the normal plane of every other task's gradient it conflicts with
(negative inner product), the others taken in a random order per task, and the projected
gradients are summed into the update.

A "task" here is a task class (`ReplayBatch.task_class`): Meta-World MT10 has 10 classes of
50 goals each, and PCGrad, like the task-balanced sampler, treats each class as one task.

Suffixes: T = task classes present in the batch, B = batch rows, P = parameters (flattened).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

GradientSurgery = Literal["none", "pcgrad"]


def task_weights(task_B: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[T, B] row weights, one row per task class present (ascending): 1/B on that task's rows.

    With these weights the T per-task losses sum to the batch-mean loss, so PCGrad without a
    conflict steps on the gradient plain (MT-)SAC steps on.
    """
    tasks_T = torch.unique(task_B)
    return (task_B.unsqueeze(0) == tasks_T.unsqueeze(1)).to(dtype) / task_B.numel()


def per_task_gradients(
    loss_B: torch.Tensor, params: Sequence[torch.Tensor], task_B: torch.Tensor
) -> torch.Tensor:
    """[T, P]: row t is the gradient of task t's loss sum_b w[t, b] loss_B[b] (`task_weights`).

    One batched backward pass over the batch's one forward graph: autograd vmaps the backward
    over the T weight rows (`is_grads_batched`). Measured on the MT10 critic (2 CPU threads,
    10 tasks, batch 1280, 3x400): 3.0x one plain backward, against 7-11x for T separate
    backward passes. `torch.func.vmap(grad(...))` over task-grouped rows costs 1.45x (2.6x vs
    11.8x at 50 tasks) but cannot run our networks: `F.one_hot` in `TaskEncoder` reads values
    (`.item()`), which vmap forbids (docs/multitask_architectures.md).
    """
    weights_TB = task_weights(task_B, loss_B.dtype)
    grads = torch.autograd.grad(
        loss_B, list(params), grad_outputs=weights_TB, is_grads_batched=True, allow_unused=True
    )
    n_tasks = len(weights_TB)
    return torch.cat(
        [
            g.reshape(n_tasks, -1) if g is not None else p.new_zeros(n_tasks, p.numel())
            for g, p in zip(grads, params, strict=True)
        ],
        dim=1,
    )


def set_flat_grad(grad_P: torch.Tensor, params: Sequence[torch.Tensor]) -> None:
    """Write a flat gradient into the parameters' `.grad`, where the optimiser reads it."""
    pieces = torch.split(grad_P, [p.numel() for p in params])
    for p, g in zip(params, pieces, strict=True):
        p.grad = g.view_as(p)


def other_tasks_in_random_order(num_tasks: int, generator: torch.Generator) -> torch.Tensor:
    """[T, T-1]: row i holds every task but i, in an independent random order per row."""
    keys = torch.rand((num_tasks, num_tasks - 1), generator=generator, dtype=torch.float64)
    perm = keys.argsort(dim=1, stable=True)
    others = torch.arange(num_tasks - 1).expand(num_tasks, -1)
    others = others + (others >= torch.arange(num_tasks).unsqueeze(1)).long()  # skip i
    return others.gather(1, perm)


def pcgrad_coefficients(gram_TT: torch.Tensor, order_TK: torch.Tensor) -> torch.Tensor:
    """C [T, T] with projected g_i = sum_k C[i, k] g_k, computed from the Gram matrix alone.

    Exact, not an approximation: each projection subtracts a multiple of an original g_j
    (PCGrad projects onto the task gradients as computed, not as already projected), so g_i's
    projection stays in the span of the g_k with coefficients C[i], and its inner product with
    g_j is C[i] . G[:, j]. The order is sequential per task (step s projects task i onto task
    order[i, s]), but every step is one [T]-vector operation for all T tasks together.
    """
    num_tasks = len(gram_TT)
    rows = torch.arange(num_tasks)
    coef = torch.eye(num_tasks, dtype=gram_TT.dtype)
    sq_norm = gram_TT.diagonal()
    for step in range(order_TK.shape[1]):
        j = order_TK[:, step]
        dot = (coef * gram_TT[j]).sum(dim=1)  # projected g_i . g_j (G is symmetric)
        # Conflict: g_i <- g_i - (g_i . g_j / |g_j|^2) g_j. A zero g_j gives dot == 0 exactly.
        coef[rows, j] -= torch.where(dot < 0, dot / sq_norm[j], 0.0)
    return coef


class PCGrad:
    """Projecting conflicting gradients (Yu et al. 2020), with its own seeded order stream.

    The update is the SUM of the projected task gradients, as in the paper (Algorithm 1,
    "return update g = sum_i g_i^PC") and the authors' code (tianheyu927/PCGrad,
    PCGrad_tf.py: `proj_grads[idx] += proj_grad`). facebookresearch/mtrl
    (mtrl/agent/pcgrad.py: `modified_grad_vec.mean(dim=0)`) and WeiChengTseng/Pytorch-PCGrad
    (pcgrad.py: `.mean(dim=0)` over shared parameters) average instead; with our per-task
    losses weighted by their share of the batch (`task_weights`) and balanced batches, our
    sum is the same update as mtrl's mean.
    Two deliberate deviations from PCGrad_tf.py, both following the paper: there
    `tf.random.shuffle(loss)` discards its result, so the order is fixed, and each gradient is
    also "projected" on itself (a no-op); here every task draws its own order of the others.
    """

    def __init__(self, seed: int) -> None:
        # A stream of its own, derived from the agent's seed (the run's torch stream is apart).
        stream = np.random.SeedSequence([seed, 19]).generate_state(1)[0]  # 19: issue number
        self.generator = torch.Generator().manual_seed(int(stream))

    def combine(self, grads_TP: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The PCGrad update [P] from T task gradients, and the share of task pairs in conflict."""
        num_tasks = len(grads_TP)
        gram = (grads_TP @ grads_TP.T).to("cpu", torch.float64)
        order = other_tasks_in_random_order(num_tasks, self.generator)
        weights_T = pcgrad_coefficients(gram, order).sum(dim=0)  # sum_i g_i^PC = w . g
        pairs = num_tasks * (num_tasks - 1)
        conflicts = float((gram < 0).sum()) / pairs if pairs else 0.0
        return weights_T.to(grads_TP.device, grads_TP.dtype) @ grads_TP, conflicts

    def backward(
        self, loss_B: torch.Tensor, params: Sequence[torch.Tensor], task_B: torch.Tensor
    ) -> float:
        """Set `.grad` of `params` to the PCGrad update of the per-row losses `loss_B`, whose
        tasks are `task_B`; returns the share of task pairs whose gradients conflict."""
        grad_P, conflicts = self.combine(per_task_gradients(loss_B, params, task_B))
        set_flat_grad(grad_P, params)
        return conflicts

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
