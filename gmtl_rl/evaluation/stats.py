"""Aggregate statistics over seeds and tasks: mean, IQM and stratified bootstrap intervals.

Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice": report the interquartile mean (robust to outlier runs, yet less noisy than the
median) with percentile intervals from a bootstrap that resamples within each stratum.
`pooled_units` is the one rule for what is resampled when curves are pooled over runs:
rliable's `StratifiedBootstrap`, i.e. tasks are the strata and the runs (seeds) are drawn
with replacement within each task, a run's value on a task being its mean over repeats.
Computed with numpy and scipy rather than `rliable`, which fails to import beside pandas 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.stats

Statistic = Literal["mean", "iqm"]

# Elements of resampled data per vectorized batch (~32 MiB of float64), so thousands of
# values per episode do not allocate an (n_resamples, n) array in one go.
_BATCH_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class CurvePoint:
    """Aggregate of the values of one episode index k of a curve; `n` counts the values the
    statistics are taken over (episodes of one run, or (run, task) scores, see `pooled_units`)."""

    episode: int
    n: int
    mean: float
    iqm: float
    mean_ci: tuple[float, float]
    iqm_ci: tuple[float, float]

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict, intervals as [lo, hi] lists."""
        return {
            "episode": self.episode,
            "n": self.n,
            "mean": self.mean,
            "iqm": self.iqm,
            "mean_ci": list(self.mean_ci),
            "iqm_ci": list(self.iqm_ci),
        }


def curve_from_json(points: Sequence[dict[str, Any]]) -> list[CurvePoint]:
    """Rebuild a curve written by `CurvePoint.to_json`."""
    curve = []
    for i, p in enumerate(points):
        try:
            curve.append(
                CurvePoint(
                    episode=int(p["episode"]),
                    n=int(p["n"]),
                    mean=float(p["mean"]),
                    iqm=float(p["iqm"]),
                    mean_ci=(float(p["mean_ci"][0]), float(p["mean_ci"][1])),
                    iqm_ci=(float(p["iqm_ci"][0]), float(p["iqm_ci"][1])),
                )
            )
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ValueError(
                f"curve point {i} is malformed ({e!r}); expected keys episode, n, mean, iqm, "
                "mean_ci=[lo, hi], iqm_ci=[lo, hi] as written by CurvePoint.to_json."
            ) from e
    return curve


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of values (rliable's definition)."""
    return float(scipy.stats.trim_mean(_as_values(values), 0.25))


def stratified_bootstrap_ci(
    values: np.ndarray,
    strata: np.ndarray,
    statistic: Statistic,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over all values together, resampling the
    values of each stratum with replacement, independently and keeping its size; with one value
    per (run, task) and tasks as strata this is rliable's `StratifiedBootstrap`
    (`pooled_units` builds such values)."""
    x = _as_values(values)
    keys = _as_strata(strata, x)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}.")
    fn = _statistic_fn(statistic)

    # Identical values give the same statistic in every resample; return the point estimate
    # computed exactly as the caller's estimate is, so the interval always contains it.
    if np.all(x == x[0]):
        point = float(fn(x, axis=-1))
        return point, point

    _, stratum_of = np.unique(keys, return_inverse=True)
    groups = [x[stratum_of == s] for s in range(int(stratum_of.max()) + 1)]
    # A one-element stratum resamples to itself every time, and scipy.stats.bootstrap rejects
    # samples with fewer than two observations, so such values ride along as constants.
    fixed = np.concatenate([g for g in groups if g.size == 1] or [np.empty(0)])
    varying = [g for g in groups if g.size > 1]
    if not varying:
        point = float(fn(x, axis=-1))
        return point, point

    def on_concatenation(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        # scipy passes each stratum's resamples with shape (batch, n_stratum) and axis=-1;
        # the statistic is taken over all strata together, as in rliable.
        batch_shape = np.broadcast_shapes(*(s.shape[:-1] for s in samples))
        parts = [np.broadcast_to(s, (*batch_shape, s.shape[-1])) for s in samples]
        parts.append(np.broadcast_to(fixed, (*batch_shape, fixed.size)))
        return np.asarray(fn(np.concatenate(parts, axis=-1), axis=-1))

    result = scipy.stats.bootstrap(
        varying,
        on_concatenation,
        n_resamples=n_resamples,
        batch=max(1, _BATCH_ELEMENTS // x.size),
        vectorized=True,
        paired=False,  # each stratum is resampled independently, keeping its size
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize_curve(
    episode: np.ndarray,
    values: np.ndarray,
    strata: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[CurvePoint]:
    """One `CurvePoint` per distinct episode index, in ascending order."""
    x = _as_values(values)
    keys = _as_strata(strata, x)
    k = np.asarray(episode)
    if k.shape != x.shape:
        raise ValueError(f"episode has shape {k.shape} but values has shape {x.shape}.")
    if not np.issubdtype(k.dtype, np.integer):
        raise ValueError(f"episode must hold integer indices, got dtype {k.dtype}.")

    curve = []
    for k_i in np.unique(k):
        at = k == k_i
        x_k, keys_k = x[at], keys[at]
        options = (confidence, n_resamples, seed)
        curve.append(
            CurvePoint(
                episode=int(k_i),
                n=int(x_k.size),
                mean=float(np.mean(x_k)),
                iqm=iqm(x_k),
                mean_ci=stratified_bootstrap_ci(x_k, keys_k, "mean", *options),
                iqm_ci=stratified_bootstrap_ci(x_k, keys_k, "iqm", *options),
            )
        )
    return curve


@dataclass(frozen=True)
class PooledUnits:
    """What the bootstrap of a curve pooled over runs resamples; built by `pooled_units`."""

    episode: np.ndarray  # episode index k of each unit
    strata: np.ndarray  # stratum of each unit: its task, or 0 where tasks are pooled
    unit_of: np.ndarray | None  # the unit of each input row; None where each row is a unit

    def values(self, values: np.ndarray) -> np.ndarray:
        """The value of each unit: the mean of `values` (one per input row) over its rows."""
        x = _as_values(values)
        if self.unit_of is None:
            if x.shape != self.episode.shape:
                raise ValueError(f"values has shape {x.shape}, expected {self.episode.shape}.")
            return x
        if x.shape != self.unit_of.shape:
            raise ValueError(f"values has shape {x.shape}, expected {self.unit_of.shape}.")
        return _unit_means(x, self.unit_of, self.episode.size)


def pooled_units(
    episode: np.ndarray, run: np.ndarray, task: np.ndarray, reference: np.ndarray
) -> PooledUnits:
    """The one rule for intervals over values pooled from runs (rliable's stratified bootstrap).

    With several runs, the unit is a run's score on a task at k, its mean over repeats, and
    the runs are resampled within each task stratum (Agarwal et al. 2021). With a single run,
    the unit is one repeat, resampled within its task. Where that would give a zero-width
    interval for want of spread (some task has a single unit at some k, e.g. one repeat of one
    run; or the units' `reference` values differ within no task at any k, e.g. a deterministic
    agent repeating itself exactly), all units of a k are resampled as one pool instead.

    `episode`, `run` (an integer id per run) and `task` hold one integer per row; `reference`
    (e.g. the return) decides the pooling once for every metric summarized with the result:
    pass each metric through `PooledUnits.values`, then to `summarize_curve` with the units'
    `episode` and `strata`.
    """
    ref = _as_values(reference)
    columns = [np.asarray(a) for a in (episode, run, task)]
    for name, a in zip(("episode", "run", "task"), columns, strict=True):
        if a.shape != ref.shape:
            raise ValueError(f"{name} has shape {a.shape} but reference has shape {ref.shape}.")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must hold integer ids, got dtype {a.dtype}.")
    k, runs, tasks = (a.astype(np.int64) for a in columns)
    unit_of: np.ndarray | None = None
    if np.unique(runs).size > 1:
        # Units in (k, run, task) order, so each task's runs keep the runs' order.
        cells, inverse = np.unique(np.stack([k, runs, tasks]), axis=1, return_inverse=True)
        unit_of = inverse.reshape(-1)
        k, tasks = cells[0], cells[2]
        ref = _unit_means(ref, unit_of, k.size)
    # Units of one task at one k that never differ anywhere carry no spread to resample.
    _, cell_of, per_cell = np.unique(
        np.stack([k, tasks]), axis=1, return_inverse=True, return_counts=True
    )
    cell_of = cell_of.reshape(-1)
    spread = np.zeros(per_cell.size)
    np.maximum.at(spread, cell_of, np.abs(ref - ref[_first_of_cell(cell_of)]))
    if per_cell.min() < 2 or not spread.any():
        tasks = np.zeros_like(tasks)
    return PooledUnits(episode=k, strata=tasks, unit_of=unit_of)


def _unit_means(x: np.ndarray, unit_of: np.ndarray, n_units: int) -> np.ndarray:
    """Mean of `x` over the rows of each unit."""
    sums = np.bincount(unit_of, weights=x, minlength=n_units)
    return np.asarray(sums / np.bincount(unit_of, minlength=n_units), dtype=np.float64)


def _first_of_cell(cell_of: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its cell."""
    first = np.full(int(cell_of.max()) + 1, len(cell_of))
    np.minimum.at(first, cell_of, np.arange(len(cell_of)))
    return first[cell_of]


def _statistic_fn(statistic: Statistic) -> Callable[..., Any]:
    """Vectorized statistic taking (x, axis)."""
    if statistic == "mean":
        return np.mean
    if statistic == "iqm":
        return lambda x, axis: scipy.stats.trim_mean(x, 0.25, axis=axis)
    raise ValueError(f"statistic must be 'mean' or 'iqm', got {statistic!r}.")


def _as_values(values: np.ndarray) -> np.ndarray:
    """Validated 1-D float array of finite values."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("values contain NaN or inf; drop or fill them before aggregating.")
    return x


def _as_strata(strata: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Stratum keys, one per value."""
    keys = np.asarray(strata)
    if keys.shape != x.shape:
        raise ValueError(
            f"strata has shape {keys.shape} but values has shape {x.shape}; give one stratum "
            "key (e.g. an int per (seed, task) pair) per value."
        )
    return keys
