"""Aggregate statistics over seeds and tasks: mean, IQM and stratified bootstrap intervals.

Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice": report the interquartile mean (robust to outlier runs, yet less noisy than the
median) with percentile intervals from a bootstrap that resamples within each stratum
(e.g. each (seed, task) pair). Computed with numpy and scipy rather than `rliable`, which
fails to import beside pandas 3.
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
    """Aggregate of all values recorded for one episode index k of an adaptation curve."""

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
    """Percentile bootstrap interval of `statistic`, resampling within each stratum."""
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
