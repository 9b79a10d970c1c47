"""A recorded trial drawn as one picture, for families without a renderer and for .png output.

- point robots: the K paths on the plane, coloured by episode, the hidden goal starred among
  the split's other goals (the sparse family's reward radius drawn around it);
- Four Rooms: the K paths through the grid;
- bandits: the arm pulled at every pull, and the arms' true means beside the agent's
  posterior means where it keeps them;
- bit flipping: the bit vector at every step of an episode under the goal vector;
- any other family: the return so far against the step, one line per episode.
Option-critic trials get one panel per episode with each step coloured by its active option.
A PEARL trial adds its posterior's spread after every episode: z has no decoder to the goal,
so the picture shows how sure the agent is, not where it thinks the goal is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from gmtl_rl.envs.bandit import Bandit
from gmtl_rl.envs.bit_flip import BitFlip
from gmtl_rl.envs.four_rooms import CELLS, WALLS, FourRooms
from gmtl_rl.envs.point_robot import PointRobot, SparsePointRobot
from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.visual.trial import ArmBelief, Belief, LatentBelief, StepRecord, TrialRecording
from gmtl_rl.visual.video import option_hex

_DPI = 120
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


def trial_figure(
    recording: TrialRecording, distribution: TaskDistribution, title: str, split: str = "test"
) -> Figure:
    """The trial drawn with the family's picture (see the module docstring)."""
    fig = _drawer(distribution)(recording, distribution, split)
    fig.suptitle(f"{title}\n{returns_text(recording)}", fontsize=10)
    return fig


def draw_trial(
    recording: TrialRecording,
    distribution: TaskDistribution,
    out: str | Path,
    title: str,
    split: str = "test",
) -> Path:
    """`trial_figure` written as a PNG (the parent directory is created)."""
    return _save(trial_figure(recording, distribution, title, split), out)


def returns_text(recording: TrialRecording, shown: int = 6) -> str:
    """'return by episode: k=1 -12.3 · k=2 -4.1 ...' (first and last few of a long trial)."""
    parts = [f"k={k} {r:.3g}" for k, r in enumerate(recording.returns, start=1)]
    if len(parts) > shown:
        parts = [*parts[: shown // 2], "…", *parts[-(shown // 2) :]]
    return "return by episode: " + " · ".join(parts)


Drawer = Callable[[TrialRecording, TaskDistribution, str], Figure]


def _drawer(distribution: TaskDistribution) -> Drawer:
    if isinstance(distribution, PointRobot | SparsePointRobot):
        return _plane
    if isinstance(distribution, FourRooms):
        return _grid
    if isinstance(distribution, Bandit):
        return _bandit
    if isinstance(distribution, BitFlip):
        return _bits
    return _returns


def _save(fig: Figure, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # attaches itself to fig: savefig renders with Agg, headless
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _episode_label(recording: TrialRecording, k: int) -> str:
    label = f"k={k}: return {recording.returns[k - 1]:.3g}"
    belief = _belief(recording, k)
    if isinstance(belief, LatentBelief):
        label += f" ({belief.z_source} z)"
    return label


def _belief(recording: TrialRecording, k: int) -> Belief | None:
    return next((b for b in recording.beliefs if b.episode == k), None)


def _option_legend(ax: Axes, options: Sequence[int]) -> None:
    handles = [
        Line2D([], [], color=option_hex(o), linewidth=3, label=f"option {o}")
        for o in sorted(set(options))
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.85)


def _segments(points: np.ndarray, steps: Sequence[StepRecord], ax: Axes) -> None:
    """The path `points` [T+1, 2] with segment t coloured by the option of step t."""
    pairs = np.stack([points[:-1], points[1:]], axis=1)
    colors = [option_hex(s.option if s.option is not None else 0) for s in steps]
    ax.add_collection(LineCollection(list(pairs), colors=colors, linewidths=2.2, zorder=3))


def _latent_panel(ax: Axes, recording: TrialRecording) -> None:
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


# -- point robots -------------------------------------------------------------------------------
def _xy(obs: Any) -> np.ndarray:
    if isinstance(obs, dict):
        obs = obs["observation"]
    return np.asarray(obs, np.float64).reshape(-1)[:2]


def _path(steps: Sequence[StepRecord]) -> np.ndarray:
    return np.array([_xy(steps[0].obs), *[_xy(s.next_obs) for s in steps]])


def _plane(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
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
                _segments(points, steps, ax)
                seen += [s.option for s in steps if s.option is not None]
                ax.set_title(_episode_label(recording, k), fontsize=9)
            else:
                ax.plot(
                    *points.T,
                    "-",
                    color=colors[k - 1],
                    linewidth=1.8,
                    alpha=0.9,
                    zorder=3,
                    label=_episode_label(recording, k),
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
            _option_legend(ax, seen)
        else:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    if latent:
        _latent_panel(axes[-1], recording)
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


def _grid(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
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
                _segments(points, steps, ax)
                seen += [s.option for s in steps if s.option is not None]
                ax.set_title(f"{_episode_label(recording, k)}, {_steps(steps)}", fontsize=9)
            else:
                ax.plot(
                    points[:, 0],
                    points[:, 1],
                    "-",
                    color=colors[k - 1],
                    linewidth=1.5,
                    alpha=0.8,
                    label=f"{_episode_label(recording, k)}, {_steps(steps)}",
                )
            start = "white" if options else colors[k - 1]  # option panels: colour is the option
            ax.plot(*points[0], "o", color=start, markersize=7, markeredgecolor="black")
        ax.set_xticks([])
        ax.set_yticks([])
        if options:
            _option_legend(ax, seen)
        else:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.01), framealpha=0.85)
    return fig


def _steps(steps: Sequence[StepRecord]) -> str:
    return f"{len(steps)} step{'s' if len(steps) != 1 else ''}"


# -- bandits ------------------------------------------------------------------------------------
def _bandit(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
    del distribution, split
    p = recording.task.array("p")
    arms = np.array([int(np.asarray(s.action).reshape(-1)[0]) for s in recording.steps])
    reward = np.array([s.reward for s in recording.steps])
    pulls = np.array([s.episode for s in recording.steps])
    fig = Figure(figsize=(10, 0.5 * len(p) + 2.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 1])
    won = reward >= 1.0
    left.scatter(pulls[won], arms[won], s=22, color="tab:green", label="reward 1")
    left.scatter(
        pulls[~won], arms[~won], s=22, facecolors="none", edgecolors="tab:red", label="reward 0"
    )
    left.set_xlabel("pull (episode k)")
    left.set_ylabel("arm pulled")
    left.set_yticks(range(len(p)))
    left.legend(fontsize=7, loc="upper right")
    best = int(np.argmax(p))
    right.barh(
        range(len(p)),
        p,
        color=["gold" if a == best else "0.75" for a in range(len(p))],
        edgecolor="black",
        label="true mean (gold: best)",
    )
    arm_beliefs = [b for b in recording.beliefs if isinstance(b, ArmBelief)]
    if arm_beliefs:
        right.scatter(
            arm_beliefs[-1].mean,
            range(len(p)),
            marker="|",
            s=300,
            color="black",
            label=f"agent's posterior mean after k={arm_beliefs[-1].episode}",
        )
    right.set_xlim(0, 1)
    right.set_xlabel("P(reward 1)")
    right.legend(fontsize=7, loc="lower right")
    return fig


# -- bit flipping -------------------------------------------------------------------------------
def _bits(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
    del distribution, split
    panels = panel_episodes(recording.episodes)
    fig = Figure(figsize=(max(6.4, 3.2 * len(panels)), 4.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, k in zip(axes, panels, strict=True):
        steps = recording.episode(k)
        states = np.array(
            [steps[0].obs["achieved_goal"], *[s.next_obs["achieved_goal"] for s in steps]]
        )
        goal = np.asarray(steps[0].obs["desired_goal"])
        blank = np.full_like(goal, np.nan, dtype=np.float64)
        image = np.vstack([goal, blank, states])  # the goal row on top, a gap, then t = 0..T
        ax.imshow(image, cmap="Greys", vmin=-0.2, vmax=1.2, aspect="auto", interpolation="none")
        solved = next((s.step for s in steps if s.success >= 1.0), None)
        ax.set_title(f"k={k}: " + (f"solved at t={solved}" if solved else "not solved"), fontsize=9)
        ax.set_yticks([0, 2, len(image) - 1], ["goal", "t=0", f"t={len(steps)}"])
        ax.set_xlabel("bit")
    return fig


# -- anything else ------------------------------------------------------------------------------
def _returns(recording: TrialRecording, distribution: TaskDistribution, split: str) -> Figure:
    del split
    latent = any(isinstance(b, LatentBelief) for b in recording.beliefs)
    fig = Figure(figsize=(7 + 3.8 * latent, 4.4), layout="constrained")
    axes = fig.subplots(1, 1 + int(latent), squeeze=False, width_ratios=[1.0] + [0.55] * latent)
    ax = axes[0][0]
    colors = episode_colors(recording.episodes)
    for k in range(1, recording.episodes + 1):
        steps = recording.episode(k)
        t = [0, *[s.step for s in steps]]
        ret = [0.0, *[s.return_so_far for s in steps]]
        ax.plot(t, ret, color=colors[k - 1], label=_episode_label(recording, k))
    ax.set_xlabel("step t")
    ax.set_ylabel("return so far")
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        f"{distribution.name} has no trajectory picture: return within each episode", fontsize=9
    )
    if latent:
        _latent_panel(axes[0][1], recording)
    return fig


__all__ = ["draw_trial", "episode_colors", "panel_episodes", "returns_text", "trial_figure"]
