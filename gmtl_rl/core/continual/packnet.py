"""PackNet (Mallya & Lazebnik 2018) as Continual World runs it (continualworld/methods/
packnet.py).

Every weight matrix entry ("kernel") of the managed network has an owner task. On task t only
the entries that t owns get gradients; biases and layer-norm parameters train on the first
task alone (frozen from its end on, `_set_freeze_biases_and_normalization`). At the end of
task t < N−1 the fraction (N−t−1)/(N−t) of t's entries with the smallest magnitude, per
matrix, is zeroed and handed to task t+1 (`_prune`; every task keeps an equal share), then
the network retrains for a while on t's data with the mask in force (the agent runs that). To
act on task k the entries owned by tasks after k are zeroed (`_set_view`).

Frozen entries get zero gradients and, since the agent zeroes Adam's moments whenever the mask
changes, do not move; `restore` also puts them back bit for bit after every step, so no
optimiser setting can move them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch


class PackNet:
    """Owners, gradient masks and views of one network's managed parameters."""

    def __init__(self, kernels: Sequence[torch.Tensor], others: Sequence[torch.Tensor]) -> None:
        self.kernels, self.others = list(kernels), list(others)
        self.owner = [torch.zeros_like(k, dtype=torch.int64) for k in self.kernels]
        self.freeze_others = False  # biases and layer norms, once the first task has ended
        self.task = 0
        self._refresh()

    def _refresh(self) -> None:
        """Masks of the entries task `self.task` trains, and the values of the rest."""
        self.trainable = [o == self.task for o in self.owner]
        self.grad_masks = [m.to(k.dtype) for m, k in zip(self.trainable, self.kernels, strict=True)]
        self.frozen_kernels = [k.detach().clone() for k in self.kernels]
        self.frozen_others = [p.detach().clone() for p in self.others] if self.freeze_others else []
        self.last = max((int(o.max()) for o in self.owner), default=0)  # the latest owner
        # The first task trains everything: no mask to apply until something is frozen.
        self.all_trainable = not self.freeze_others and all(bool(m.all()) for m in self.trainable)

    def set_task(self, task: int) -> None:
        self.task = task
        self._refresh()

    def mask_gradients(self) -> None:
        """Zero the gradients of every entry the current task does not own (packnet.py
        `_adjust_gradients_list`)."""
        if self.all_trainable:
            return
        grads = [k.grad for k in self.kernels]
        if all(g is not None for g in grads):
            torch._foreach_mul_(grads, self.grad_masks)  # type: ignore[arg-type]
        else:
            for g, m in zip(grads, self.grad_masks, strict=True):
                if g is not None:
                    g.mul_(m)
        if self.freeze_others:
            for p in self.others:
                if p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def restore(self) -> None:
        """Put every frozen entry back to its value (after an optimiser step)."""
        if self.all_trainable:
            return
        for k, m, saved in zip(self.kernels, self.trainable, self.frozen_kernels, strict=True):
            k.copy_(torch.where(m, k, saved))
        if self.freeze_others:
            for p, saved in zip(self.others, self.frozen_others, strict=True):
                p.copy_(saved)

    @torch.no_grad()
    def prune(self, task: int, fraction: float) -> None:
        """Zero the smallest-magnitude `fraction` of `task`'s entries of each matrix and give
        them to task+1. As packnet.py `_prune`: the threshold is the sorted magnitudes'
        element at index ⌊n·fraction⌋ and entries up to and including it go, so
        ⌊n·fraction⌋ + 1 of n entries are pruned when magnitudes are distinct."""
        for k, owner in zip(self.kernels, self.owner, strict=True):
            mine = owner == task
            values = k[mine].abs()
            if values.numel() == 0:
                continue
            index = int(values.numel() * fraction)
            threshold = values.kthvalue(min(index, values.numel() - 1) + 1).values
            pruned = mine & (k.abs() <= threshold)
            k.masked_fill_(pruned, 0.0)
            owner.masked_fill_(pruned, task + 1)
        self._refresh()

    def end_first_task(self) -> None:
        """Freeze biases and layer norms from now on."""
        self.freeze_others = True
        self._refresh()

    @contextmanager
    def view(self, task: int) -> Iterator[None]:
        """The network as task `task` sees it: entries owned by later tasks zeroed inside,
        put back bit for bit afterwards."""
        saved = [k.detach().clone() for k in self.kernels]
        with torch.no_grad():
            for k, owner in zip(self.kernels, self.owner, strict=True):
                k.masked_fill_(owner > task, 0.0)
        try:
            yield
        finally:
            with torch.no_grad():
                for k, s in zip(self.kernels, saved, strict=True):
                    k.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "freeze_others": self.freeze_others, "task": self.task}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load after the network's weights (the frozen values are read from them)."""
        for o, saved in zip(self.owner, state["owner"], strict=True):
            o.copy_(saved)
        self.freeze_others = bool(state["freeze_others"])
        self.set_task(int(state["task"]))
