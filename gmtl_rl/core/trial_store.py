"""The VAE's buffer of whole past trials (VariBAD; lmzintgraf/varibad @57e1795,
utils/storage_vae.py): a meta-learner that trains a belief on entire trials, past and future
steps alike, keeps the trials themselves, not transitions.

A trial is a dict of tensors [L, ...] with the fields `VAE_FIELDS`; a batch is [B, L, ...]
padded with zeros to the longest trial drawn, with the lengths [B].
"""

from __future__ import annotations

from typing import Any

import torch

Tensor = torch.Tensor
VAE_FIELDS = ("state", "next_state", "action", "reward")


class TrialStore:
    """The VAE's buffer of whole past trials (utils/storage_vae.py): a ring of at most
    `capacity` trials, zero-padded to the longest, sampled uniformly without replacement.
    Storage grows with what is held, so a checkpoint holds only filled rows."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: dict[str, Tensor] = {}
        self.length = torch.zeros(0, dtype=torch.int64)
        self.size = 0
        self.next = 0

    def add(self, trial: dict[str, Tensor]) -> None:
        n = len(trial["reward"])
        if not self.data:  # shapes from the first trial
            self.data = {k: torch.zeros(0, n, *trial[k].shape[1:]) for k in VAE_FIELDS}
        rows = len(self.length)
        if self.next >= rows:  # grow: double the rows, up to the capacity
            rows = min(self.capacity, max(64, 2 * rows))
            self._resize(rows, max(n, self._max_len()))
        elif n > self._max_len():
            self._resize(rows, n)
        for k in VAE_FIELDS:
            self.data[k][self.next].zero_()
            self.data[k][self.next, :n] = trial[k]
        self.length[self.next] = n
        self.next = (self.next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _max_len(self) -> int:
        return self.data["reward"].shape[1] if self.data else 0

    def _resize(self, rows: int, length: int) -> None:
        count = len(self.length)
        for k, old in self.data.items():
            grown = torch.zeros(rows, length, *old.shape[2:])
            grown[:count, : old.shape[1]] = old
            self.data[k] = grown
        length_t = torch.zeros(rows, dtype=torch.int64)
        length_t[:count] = self.length
        self.length = length_t

    def sample(self, n: int, generator: torch.Generator) -> tuple[dict[str, Tensor], Tensor]:
        """Up to n trials [B, L, ...] (L: the longest drawn) and their lengths [B]."""
        # Floyd's algorithm: n distinct rows, every subset equally likely, in O(n) (a
        # permutation of a 100k-trial buffer costs ~10 ms per draw).
        n = min(n, self.size)
        u = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
        chosen: list[int] = []
        for i, j in enumerate(range(self.size - n, self.size)):
            t = int(u[i] * (j + 1))
            chosen.append(j if t in chosen else t)
        idx = torch.tensor(chosen)
        length = self.length[idx]
        top = int(length.max())
        return {k: self.data[k].index_select(0, idx)[:, :top] for k in VAE_FIELDS}, length

    def state_dict(self) -> dict[str, Any]:
        held = {k: v[: self.size].clone() for k, v in self.data.items()}
        return {"data": held, "length": self.length[: self.size].clone(), "next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data = {k: v.clone() for k, v in state["data"].items()}
        self.length = state["length"].clone()
        self.size = len(self.length)
        self.next = int(state["next"])


class RunningTrials:
    """Per env, the trial in flight (storage_vae.py:41-51's running storage): one row per env
    and a column per step for each field of `dims` (its per-step shape), grown as needed."""

    def __init__(self, dims: dict[str, tuple[int, ...]]) -> None:
        self.dims = dims
        self.alloc(0)

    def alloc(self, n: int, length: int = 64) -> None:
        """Room for `n` envs, every trial empty."""
        self.data = {k: torch.zeros(n, length, *d) for k, d in self.dims.items()}
        self.length_N = torch.zeros(n, dtype=torch.int64)

    def append(self, idx: Tensor, values: dict[str, Tensor]) -> None:
        """One step [len(idx), ...] of each field for envs `idx`."""
        t = self.length_N[idx]
        self._grow(int(t.max()) + 1)
        for k, v in values.items():
            self.data[k][idx, t] = v
        self.length_N[idx] += 1

    def pop(self, i: int) -> dict[str, Tensor]:
        """Env i's trial [L, ...]; its row starts empty."""
        n = int(self.length_N[i])
        trial = {k: v[i, :n].clone() for k, v in self.data.items()}
        self.length_N[i] = 0
        return trial

    def _grow(self, needed: int) -> None:
        length = next(iter(self.data.values())).shape[1]
        if needed <= length:
            return
        for k, v in self.data.items():
            grown = torch.zeros(len(v), max(needed, 2 * length), *v.shape[2:])
            grown[:, :length] = v
            self.data[k] = grown


def pad_trials(trials: list[dict[str, Tensor]], length: int) -> dict[str, Tensor]:
    """Trials [L_b, ...] as one batch [B, length, ...], zero-padded."""
    out = {k: torch.zeros(len(trials), length, *v.shape[1:]) for k, v in trials[0].items()}
    for b, trial in enumerate(trials):
        for k, v in trial.items():
            out[k][b, : len(v)] = v
    return out
