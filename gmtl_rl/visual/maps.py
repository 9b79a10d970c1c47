"""Trials drawn on their family's map: the paths of the K episodes where the agent went.

- point robots: the paths on the plane, coloured by episode, the hidden goal starred among the
  split's other goals (the sparse family's reward radius drawn around it);
- Four Rooms: the paths through the grid, nudged apart so shared corridors stay visible;
- varibad's gridworld: one panel per episode with its path; with VariBAD each panel is a heat
  map of its belief over goal cells after that episode, beside a panel of its prior.
Option-critic trials get one panel per episode with each step coloured by its active option;
a PEARL trial adds its posterior's spread after every episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from gmtl_rl.envs.four_rooms import CELLS, WALLS
from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.visual.beliefs import CellBelief, LatentBelief
from gmtl_rl.visual.panels import (
    GOAL_STYLE,
    episode_colors,
    episode_label,
    has_options,
    latent_panel,
    option_legend,
    option_segments,
    panel_episodes,
    steps_text,
)
from gmtl_rl.visual.trial import StepRecord, TrialRecording


# -- point robots -------------------------------------------------------------------------------
def _xy(obs: Any) -> np.ndarray:
    if isinstance(obs, dict):
        obs = obs["observation"]
    return np.asarray(obs, np.float64).reshape(-1)[:2]


def _path(steps: Sequence[StepRecord]) -> np.ndarray:
    return np.array([_xy(steps[0].obs), *[_xy(s.next_obs) for s in steps]])


def plane(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
    options = has_options(recording)
    latent = any(isinstance(b, LatentBelief) for b in recording.beliefs)
    everything = list(range(1, recording.episodes + 1))
    panels = [[k] for k in panel_episodes(recording.episodes)] if options else [everything]
    ratios = [1.0] * len(panels) + ([0.8] if latent else [])
    fig = Figure(figsize=(4.8 * len(panels) + 3.8 * latent, 5.6), layout="constrained")
    axes = fig.subplots(1, len(ratios), squeeze=False, width_ratios=ratios)[0]
    colors = episode_colors(recording.episodes)
    for ax, episodes in zip(axes, panels, strict=False):
        _goals(ax, recording, distribution, split)
        seen: list[int] = []
        for k in episodes:
            steps = recording.episode(k)
            points = _path(steps)
            if options:
                option_segments(points, steps, ax)
                seen += [s.option for s in steps if s.option is not None]
                ax.set_title(episode_label(recording, k), fontsize=9)
            else:
                ax.plot(
                    *points.T,
                    "-",
                    color=colors[k - 1],
                    linewidth=1.8,
                    alpha=0.9,
                    zorder=3,
                    label=episode_label(recording, k),
                )
                ax.plot(*points.T, ".", color=colors[k - 1], markersize=4, zorder=3)
            # Option panels colour the path by option: their start and end markers stay white.
            marker = "white" if options else colors[k - 1]
            style = {"color": marker, "markeredgecolor": "black", "zorder": 4}
            ax.plot(*points[0], "o", markersize=7, **style)
            ax.plot(*points[-1], "s", markersize=6, **style)
        ax.autoscale_view()
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, linewidth=0.3)
        ax.set_xlabel("x   (● start, ■ end)")
        ax.set_ylabel("y")
        if options:
            option_legend(ax, seen)
        else:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    if latent:
        latent_panel(axes[-1], recording)
    return fig


def _goals(ax: Axes, recording: TrialRecording, distribution: TaskDistribution, split: str) -> None:
    """The hidden goal (with its success and, if any, sparse-reward radius) among the split's
    other goals."""
    goal = recording.task.array("goal")
    goals = np.array([t.array("goal") for t in distribution.tasks(split)])
    ax.scatter(
        goals[:, 0], goals[:, 1], s=12, color="0.7", zorder=1, label=f"the {split} split's goals"
    )
    o: Any = distribution.options  # a point family's: its radii
    if distribution.defines_sparse_reward:
        ax.add_patch(
            Circle(
                tuple(goal),
                o.goal_radius,
                fill=False,
                linestyle="--",
                color="goldenrod",
                label="sparse-reward radius",
            )
        )
    ax.add_patch(Circle(tuple(goal), o.success_radius, color="gold", alpha=0.35, zorder=2))
    ax.scatter(*goal, **GOAL_STYLE, label=f"hidden goal ({goal[0]:.2f}, {goal[1]:.2f})")


# -- Four Rooms ---------------------------------------------------------------------------------
def _cell(obs: Any) -> int:
    value = np.asarray(obs)
    return int(value) if value.ndim == 0 or value.size == 1 else int(np.argmax(value))


def four_rooms(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
    del distribution, split
    options = has_options(recording)
    panels = panel_episodes(recording.episodes) if options else [0]
    fig = Figure(figsize=(4.4 * len(panels), 4.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    goal_rc = CELLS[int(recording.task["goal"])]
    colors = episode_colors(recording.episodes)
    for ax, panel in zip(axes, panels, strict=True):
        ax.imshow(WALLS, cmap="Greys", vmin=0, vmax=1.6, origin="upper")
        ax.scatter(goal_rc[1], goal_rc[0], **GOAL_STYLE, label=f"goal cell {tuple(goal_rc)}")
        episodes = [panel] if options else list(range(1, recording.episodes + 1))
        seen: list[int] = []
        for k in episodes:
            steps = recording.episode(k)
            cells = [_cell(steps[0].obs), *[_cell(s.next_obs) for s in steps]]
            # (x, y) = (column, row), nudged per episode so that shared corridors stay visible.
            nudge = 0.0 if len(episodes) == 1 else 0.3 * ((k - 1) / (len(episodes) - 1) - 0.5)
            points = CELLS[cells][:, ::-1].astype(np.float64) + nudge
            if options:
                option_segments(points, steps, ax)
                seen += [s.option for s in steps if s.option is not None]
                ax.set_title(f"{episode_label(recording, k)}, {steps_text(steps)}", fontsize=9)
            else:
                ax.plot(
                    points[:, 0],
                    points[:, 1],
                    "-",
                    color=colors[k - 1],
                    linewidth=1.5,
                    alpha=0.8,
                    label=f"{episode_label(recording, k)}, {steps_text(steps)}",
                )
            start = "white" if options else colors[k - 1]  # option panels: colour is the option
            ax.plot(*points[0], "o", color=start, markersize=7, markeredgecolor="black")
        ax.set_xticks([])
        ax.set_yticks([])
        if options:
            option_legend(ax, seen)
        else:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.01), framealpha=0.85)
    return fig


# -- varibad's gridworld -----------------------------------------------------------------------
def gridworld(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
    """Each episode's path on the grid ((0, 0) bottom left, as the env's (x, y)); with cell
    beliefs (VariBAD), under it the belief after that episode, and the prior in a first panel."""
    del split
    size = int(getattr(distribution.options, "size", 5))
    cells = {b.episode: b for b in recording.beliefs if isinstance(b, CellBelief)}
    prior = [0] if 0 in cells else []
    panels = prior + panel_episodes(recording.episodes)
    fig = Figure(figsize=(2.9 * len(panels) + 1.0 * bool(cells), 3.7), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    goal = np.asarray(recording.task["goal"], np.float64)
    vmax = max(float(b.p.max()) for b in cells.values()) if cells else 1.0
    image = None
    for ax, k in zip(axes, panels, strict=True):
        belief = cells.get(k)
        if belief is not None:
            image = _cell_map(ax, belief.p, vmax)
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(-0.5, size - 0.5)
        ax.set_xticks(range(size))
        ax.set_yticks(range(size))
        ax.set_xticks(np.arange(size + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(size + 1) - 0.5, minor=True)
        ax.grid(True, which="minor", color="0.6", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.scatter(*goal, **GOAL_STYLE, label=f"goal ({goal[0]:.0f}, {goal[1]:.0f})")
        if k == 0:
            ax.set_title("prior (before the trial)", fontsize=9)
            continue
        steps = recording.episode(k)
        points = np.array([_xy(steps[0].obs), *[_xy(s.next_obs) for s in steps]])
        ax.plot(*points.T, "-", color="tab:blue", linewidth=2, alpha=0.85, label=f"k={k}")
        ax.plot(*points[0], "o", color="white", markeredgecolor="black", markersize=7)
        end = {"color": "tab:blue", "markeredgecolor": "black", "zorder": 7}  # over the goal
        ax.plot(*points[-1], "s", markersize=5, **end)
        title = f"{episode_label(recording, k)}, {steps_text(steps)}"
        ax.set_title(title + ("\nbelief after it" if belief is not None else ""), fontsize=9)
    axes[0].set_ylabel("y   (● start, ■ end)")
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), shrink=0.85)
        bar.set_label(
            "VariBAD's belief over goal cells\n(decoder at the belief's mean)", fontsize=8
        )
    return fig


def _cell_map(ax: Axes, p: np.ndarray, vmax: float) -> Any:
    """A belief over cells [x, y] as a heat map, each cell's share written in it (percent)."""
    image = ax.imshow(p.T, origin="lower", cmap="YlOrRd", vmin=0.0, vmax=vmax, interpolation="none")
    if max(p.shape) <= 7:
        for (x, y), value in np.ndenumerate(p):
            dark = value > 0.6 * vmax
            ax.text(x + 0.3, y - 0.3, f"{100 * value:.0f}", ha="right", va="bottom",
                    fontsize=6, color="white" if dark else "0.3")  # fmt: skip
    return image
