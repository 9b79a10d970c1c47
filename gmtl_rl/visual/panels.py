"""Pieces every trial picture shares: episode colours, which episodes get a panel, episode
labels, the option-critic colouring of a path, the goal marker, and PEARL's posterior panel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D

from gmtl_rl.visual.beliefs import Belief, LatentBelief
from gmtl_rl.visual.trial import StepRecord, TrialRecording
from gmtl_rl.visual.video import option_hex

MAX_PANELS = 6  # per-episode panels; longer trials show their first and last three episodes
GOAL_STYLE: dict[str, Any] = {
    "marker": "*",
    "s": 320,
    "color": "gold",
    "edgecolor": "black",
    "linewidth": 1.0,
    "zorder": 6,
}


def episode_colors(episodes: int) -> list[str]:
    """One colour per episode k = 1..K: distinct hues up to 10, else light to dark."""
    if episodes <= 10:
        return [to_hex(colormaps["tab10"](i)) for i in range(episodes)]
    cmap = colormaps["viridis"]
    return [to_hex(cmap(0.9 - 0.8 * i / (episodes - 1))) for i in range(episodes)]


def panel_episodes(episodes: int, limit: int = MAX_PANELS) -> list[int]:
    """The episodes that get a panel: all, or the first and last limit/2."""
    if episodes <= limit:
        return list(range(1, episodes + 1))
    half = limit // 2
    return [*range(1, half + 1), *range(episodes - half + 1, episodes + 1)]


def has_options(recording: TrialRecording) -> bool:
    return any(s.option is not None and s.option >= 0 for s in recording.steps)


def episode_label(recording: TrialRecording, k: int) -> str:
    label = f"k={k}: return {recording.returns[k - 1]:.3g}"
    belief = belief_of(recording, k)
    if isinstance(belief, LatentBelief):
        label += f" ({belief.z_source} z)"
    return label


def belief_of(recording: TrialRecording, k: int) -> Belief | None:
    return next((b for b in recording.beliefs if b.episode == k), None)


def option_legend(ax: Axes, options: Sequence[int]) -> None:
    handles = [
        Line2D([], [], color=option_hex(o), linewidth=3, label=f"option {o}")
        for o in sorted(set(options))
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.85)


def option_segments(points: np.ndarray, steps: Sequence[StepRecord], ax: Axes) -> None:
    """The path `points` [T+1, 2] with segment t coloured by the option of step t."""
    pairs = np.stack([points[:-1], points[1:]], axis=1)
    colors = [option_hex(s.option if s.option is not None else 0) for s in steps]
    ax.add_collection(LineCollection(list(pairs), colors=colors, linewidths=2.2, zorder=3))


def latent_panel(ax: Axes, recording: TrialRecording) -> None:
    """PEARL's posterior spread σ of each z dimension after each episode (k=0: the prior),
    on a log scale: the product of Gaussian factors narrows by orders of magnitude."""
    beliefs = [b for b in recording.beliefs if isinstance(b, LatentBelief)]
    k = np.arange(len(beliefs) + 1)
    dims = len(beliefs[0].std)
    std = np.vstack([np.ones(dims), *[b.std for b in beliefs]])  # [K+1, L]
    if not std[1:].any():  # no information bottleneck: z is a point, there is no spread
        ax.text(
            0.5,
            0.5,
            "deterministic z\n(no information bottleneck)",
            ha="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    floor = max(float(std[std > 0].min()) / 2, 1e-6)
    for d in range(dims):
        ax.plot(k, np.maximum(std[:, d], floor), color="0.65", linewidth=0.8)
    ax.plot(
        k,
        np.maximum(std.mean(1), floor),
        color="black",
        linewidth=2,
        marker="o",
        label="mean over z dims (grey: each)",
    )
    for b in beliefs:
        if b.z_source == "prior":
            ax.axvspan(b.episode - 1, b.episode, color="0.9", zorder=0)
    ax.set_yscale("log")
    ax.set_xticks(k)
    ax.set_xlabel("after episode k (0: the prior)")
    ax.set_ylabel("posterior σ of z")
    ax.set_title(
        "PEARL's belief q(z | context)\nshaded: episodes acting on a prior z\n"
        "(z has no decoder to the goal)",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper right")


def steps_text(steps: Sequence[StepRecord]) -> str:
    return f"{len(steps)} step{'s' if len(steps) != 1 else ''}"
