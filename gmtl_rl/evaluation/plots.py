"""Curve plots with a bootstrap interval band: adaptation curves (statistic against episode
index k) and training curves (evaluation points against env steps)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    _draw(fig.add_subplot(), curves, ylabel, statistic, _colors(curves))
    if title:
        fig.suptitle(title)
    return _save(fig, out_path)


def plot_adaptation(
    curves_return: Curves,
    curves_success: Curves | None,
    out_path: str | Path,
    title: str = "",
    statistic: Literal["mean", "iqm"] = "mean",
    curves_length: Curves | None = None,
) -> Path:
    """Plot return and, when given, success rate (and episode length) against k; write a PNG."""
    return _return_and_success(
        curves_return,
        curves_success,
        out_path,
        title,
        statistic,
        "episode within trial (k)",
        curves_length,
    )


def plot_training(
    curves_return: Curves,
    curves_success: Curves | None,
    out_path: str | Path,
    title: str = "",
) -> Path:
    """Evaluation return and success against env steps (CurvePoint.episode holds the step)."""
    return _return_and_success(curves_return, curves_success, out_path, title, "mean", "env steps")


def _return_and_success(
    curves_return: Curves,
    curves_success: Curves | None,
    out_path: str | Path,
    title: str,
    statistic: str,
    xlabel: str,
    curves_length: Curves | None = None,
) -> Path:
    panels = 1 + (curves_success is not None) + (curves_length is not None)
    fig = Figure(figsize=(_PANEL_SIZE[0] * panels, _PANEL_SIZE[1]), layout="constrained")
    # One color per label across both panels, so a run reads the same in each.
    colors = _colors({**curves_return, **(curves_success or {})})
    _draw(fig.add_subplot(1, panels, 1), curves_return, "return", statistic, colors, xlabel)
    if curves_success is not None:
        ax = fig.add_subplot(1, panels, 2)
        _draw(ax, curves_success, "success rate", statistic, colors, xlabel)
        ax.set_ylim(-0.02, 1.02)
    if curves_length is not None:
        _draw(fig.add_subplot(1, panels, panels), curves_length, "steps", statistic, colors, xlabel)
    if title:
        fig.suptitle(title)
    return _save(fig, out_path)


def _colors(curves: Curves) -> dict[str, str]:
    """Matplotlib cycle color per label, in order."""
    return {label: f"C{i % 10}" for i, label in enumerate(curves)}


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


def _save(fig: Figure, out_path: str | Path) -> Path:
    """Write the figure as PNG, creating the parent directory."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # attaches itself to fig, so savefig renders with Agg
    fig.savefig(path, format="png", dpi=_DPI)
    return path
