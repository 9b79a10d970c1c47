"""Curve plots with a bootstrap interval band: adaptation curves (statistic against episode
index k), optionally with reference levels (a meta-learner's bounds), and training curves
(evaluation points against env steps)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The object API with an explicit Agg canvas never touches pyplot's global backend, so
# plotting works headless and does not change the backend of a caller's notebook.
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gmtl_rl.evaluation.stats import CurvePoint

Curves = Mapping[str, Sequence[CurvePoint]]


@dataclass(frozen=True)
class Reference:
    """A level drawn across the adaptation plot as a horizontal line over a light interval band:
    a bound such as an oracle's return, pooled over every episode k (so `episode` is unused)."""

    episode_return: CurvePoint
    success: CurvePoint | None = None


References = Mapping[str, Reference]  # legend label -> level

_DPI = 120
_PANEL_SIZE = (6.0, 4.0)  # inches per panel


def plot_curves(
    curves: Curves,
    out_path: str | Path,
    ylabel: str,
    title: str = "",
    statistic: Literal["mean", "iqm"] = "mean",
) -> Path:
    """Plot one curve per label with its interval band and write a PNG."""
    fig = Figure(figsize=_PANEL_SIZE, layout="constrained")
    _draw(fig.add_subplot(), curves, ylabel, statistic, curve_colors(curves))
    if title:
        fig.suptitle(title)
    return save_figure(fig, out_path)


def plot_adaptation(
    curves_return: Curves,
    curves_success: Curves | None,
    out_path: str | Path,
    title: str = "",
    statistic: Literal["mean", "iqm"] = "mean",
    curves_length: Curves | None = None,
    references: References | None = None,
) -> Path:
    """Plot return and, when given, success rate (and episode length) against k; write a PNG.

    `references` (label -> `Reference`) are drawn on the return and success panels as dashed
    horizontal lines at the level's `statistic` with its interval as a light band, e.g. the
    oracle and non-adaptive bounds of a meta-learner's curve.
    """
    fig = adaptation_figure(
        curves_return, curves_success, title, statistic, curves_length, references
    )
    return save_figure(fig, out_path)


def adaptation_figure(
    curves_return: Curves,
    curves_success: Curves | None,
    title: str = "",
    statistic: Literal["mean", "iqm"] = "mean",
    curves_length: Curves | None = None,
    references: References | None = None,
) -> Figure:
    """The figure `plot_adaptation` writes (axes in panel order: return, success, length)."""
    return _figure(
        curves_return,
        curves_success,
        title,
        statistic,
        "episode within trial (k)",
        curves_length,
        references or {},
    )


def plot_training(
    curves_return: Curves,
    curves_success: Curves | None,
    out_path: str | Path,
    title: str = "",
) -> Path:
    """Evaluation return and success against env steps (CurvePoint.episode holds the step)."""
    fig = _figure(curves_return, curves_success, title, "mean", "env steps")
    return save_figure(fig, out_path)


def _figure(
    curves_return: Curves,
    curves_success: Curves | None,
    title: str,
    statistic: str,
    xlabel: str,
    curves_length: Curves | None = None,
    references: References | None = None,
) -> Figure:
    panels = 1 + (curves_success is not None) + (curves_length is not None)
    fig = Figure(figsize=(_PANEL_SIZE[0] * panels, _PANEL_SIZE[1]), layout="constrained")
    references = references or {}
    # One color per label across all panels, so a run (or a bound) reads the same in each.
    colors = curve_colors([*curves_return, *(curves_success or {}), *references])
    ax = fig.add_subplot(1, panels, 1)
    _draw_references(ax, {k: r.episode_return for k, r in references.items()}, statistic, colors)
    _draw(ax, curves_return, "return", statistic, colors, xlabel)
    if curves_success is not None:
        ax = fig.add_subplot(1, panels, 2)
        levels = {k: r.success for k, r in references.items() if r.success is not None}
        _draw_references(ax, levels, statistic, colors)
        _draw(ax, curves_success, "success rate", statistic, colors, xlabel)
        ax.set_ylim(-0.02, 1.02)
    if curves_length is not None:
        _draw(fig.add_subplot(1, panels, panels), curves_length, "steps", statistic, colors, xlabel)
    if title:
        fig.suptitle(title)
    return fig


def curve_colors(labels: Iterable[str]) -> dict[str, str]:
    """Matplotlib cycle color per distinct label, in order of first appearance."""
    return {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}


def _draw(
    ax: Axes,
    curves: Curves,
    ylabel: str,
    statistic: str,
    colors: Mapping[str, str],
    xlabel: str = "episode within trial (k)",
) -> None:
    """Draw each curve's statistic as a marked line over its shaded interval."""
    if not curves:
        raise ValueError(f"no curves to plot for {ylabel!r}; pass at least one label.")
    for label, points in curves.items():
        if not points:
            raise ValueError(f"curve {label!r} has no points; was the run evaluated?")
        points = sorted(points, key=lambda p: p.episode)
        k = [p.episode for p in points]
        if statistic == "mean":
            y, ci = [p.mean for p in points], [p.mean_ci for p in points]
        elif statistic == "iqm":
            y, ci = [p.iqm for p in points], [p.iqm_ci for p in points]
        else:
            raise ValueError(f"statistic must be 'mean' or 'iqm', got {statistic!r}.")
        color = colors[label]
        ax.fill_between(k, [lo for lo, _ in ci], [hi for _, hi in ci], color=color, alpha=0.2)
        ax.plot(k, y, marker="o" if len(k) <= 50 else None, color=color, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} ({statistic})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(title="shaded: bootstrap CI", fontsize="small", title_fontsize="small")


def _draw_references(
    ax: Axes, levels: Mapping[str, CurvePoint], statistic: str, colors: Mapping[str, str]
) -> None:
    """Each level as a dashed horizontal line (labelled) over its interval as a light band
    (labelled `_band <label>`, which keeps it out of the legend)."""
    for label, level in levels.items():
        if statistic == "mean":
            y, (lo, hi) = level.mean, level.mean_ci
        elif statistic == "iqm":
            y, (lo, hi) = level.iqm, level.iqm_ci
        else:
            raise ValueError(f"statistic must be 'mean' or 'iqm', got {statistic!r}.")
        color = colors[label]
        ax.axhspan(lo, hi, color=color, alpha=0.12, linewidth=0, label=f"_band {label}")
        ax.axhline(y, color=color, linestyle="--", linewidth=1.5, label=label)


def save_figure(fig: Figure, out_path: str | Path) -> Path:
    """Write the figure as PNG, creating the parent directory."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # attaches itself to fig, so savefig renders with Agg
    fig.savefig(path, format="png", dpi=_DPI)
    return path
