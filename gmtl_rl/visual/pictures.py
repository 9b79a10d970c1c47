"""A recorded trial drawn as one picture, for families without a renderer and for .png output.

- point robots, Four Rooms, varibad's gridworld: the paths on the family's map (`visual.maps`;
  with VariBAD on the gridworld, its belief over goal cells under each episode's path);
- bandits: the arm pulled at every pull, and the arms' true means beside the agent's
  posterior means where it keeps them;
- bit flipping: the bit vector at every step of an episode under the goal vector;
- any other family: the return so far against the step, one line per episode.
Option-critic trials get one panel per episode with each step coloured by its active option.
A PEARL trial adds its posterior's spread after every episode: z has no decoder to the goal,
so the picture shows how sure the agent is, not where it thinks the goal is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gmtl_rl.envs.bandit import Bandit
from gmtl_rl.envs.bit_flip import BitFlip
from gmtl_rl.envs.four_rooms import FourRooms
from gmtl_rl.envs.gridworld import Gridworld
from gmtl_rl.envs.point_robot import PointRobot, SparsePointRobot
from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.visual import maps
from gmtl_rl.visual.beliefs import ArmBelief, LatentBelief
from gmtl_rl.visual.panels import episode_colors, episode_label, latent_panel, panel_episodes
from gmtl_rl.visual.trial import TrialRecording

_DPI = 120


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
        return maps.plane
    if isinstance(distribution, FourRooms):
        return maps.four_rooms
    if isinstance(distribution, Gridworld):
        return maps.gridworld
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
        ax.plot(t, ret, color=colors[k - 1], label=episode_label(recording, k))
    ax.set_xlabel("step t")
    ax.set_ylabel("return so far")
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        f"{distribution.name} has no trajectory picture: return within each episode", fontsize=9
    )
    if latent:
        latent_panel(axes[0][1], recording)
    return fig


__all__ = ["draw_trial", "episode_colors", "panel_episodes", "returns_text", "trial_figure"]
