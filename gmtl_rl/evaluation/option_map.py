"""The option picture of a tabular option-critic run on Four Rooms (Bacon et al. 2017, Fig. 3):
each free cell coloured by the option the policy over options picks there (greedy on Q_Ω),
an arrow for that option's most likely action, and an × where that option is most likely to
terminate (β above `threshold`; by default the top 15% of those cells); one small map per
option shows its termination probability everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from gmtl_rl import checkpoint
from gmtl_rl.config import parse_config, read_yaml
from gmtl_rl.envs.four_rooms import CELLS, DIRECTIONS, WALLS
from gmtl_rl.errors import UsageError
from gmtl_rl.run_dir import RunDir

_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def option_tables(state: dict, temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best option [S], its greedy action [S], termination β [O, S]) from the agent arrays:
    the option the agent values most by its learned Q_Ω (what it chooses options from)."""
    theta = np.asarray(state["theta"])  # [O, S, A]
    logits = theta / temperature
    pi = np.exp(logits - logits.max(-1, keepdims=True))
    pi /= pi.sum(-1, keepdims=True)
    best = np.asarray(state["q_omega"]).argmax(-1)  # q_omega [S, O]
    action = pi[best, np.arange(len(best))].argmax(-1)
    beta = 1.0 / (1.0 + np.exp(-np.asarray(state["vartheta"])))
    return best, action, beta


def plot_option_map(
    run_dir: str | Path, out_path: str | Path, threshold: float | None = None
) -> Path:
    run = RunDir(run_dir)
    run.require_run()
    config = parse_config(read_yaml(run.config))
    if config.env.name != "four-rooms" or config.agent.name not in (
        "option_critic",
        "actor_critic",
    ):
        raise UsageError(
            f"{run}: the option picture needs an option_critic run on four-rooms "
            f"(this one is {config.agent.name} on {config.env.name})"
        )
    found = run.checkpoint_dirs()
    if not found:
        raise UsageError(f"{run}: no complete checkpoint in {run.checkpoints} to draw options from")
    state = checkpoint.load(found[-1]).state["loop"]["agent"]  # the online loop's extras
    temperature = float(getattr(config.agent, "temperature", 1.0))
    best, action, beta = option_tables(state, temperature)
    n_options = beta.shape[0]
    chosen_beta = beta[best, np.arange(len(best))]
    if threshold is None:
        threshold = float(np.quantile(chosen_beta, 0.85))
    with open(run.episodes) as f:
        last = f.read().strip().splitlines()[-1].split(",")
    switched = last[3] == "1"
    dist = config.env.build()
    goal = int((dist.test_tasks()[0] if switched else dist.train_tasks()[0])["goal"])

    cols = (n_options + 1) // 2
    fig = Figure(figsize=(4.6 + 2.3 * cols, 5.4), layout="constrained")
    grid = fig.add_gridspec(2, 1 + cols, width_ratios=[2.0] + [1] * cols)
    ax = fig.add_subplot(grid[:, 0])
    canvas = np.full(WALLS.shape, -1.0)
    for i, (r, c) in enumerate(CELLS):
        canvas[r, c] = best[i]
    cmap = ListedColormap(["#222222", *_COLORS[:n_options]])
    ax.imshow(canvas + 1, cmap=cmap, vmin=0, vmax=n_options)
    for i, (r, c) in enumerate(CELLS):
        dr, dc = DIRECTIONS[action[i]]
        ax.arrow(c - 0.25 * dc, r - 0.25 * dr, 0.3 * dc, 0.3 * dr, head_width=0.18,
                 length_includes_head=True, color="white", alpha=0.8)  # fmt: skip
        if chosen_beta[i] > threshold:
            ax.plot(c, r, marker="x", color="black", markersize=9, markeredgewidth=2)
    gr, gc = CELLS[goal]
    ax.plot(gc, gr, marker="*", color="gold", markersize=18, markeredgecolor="black")
    ax.set_xticks([])
    ax.set_yticks([])
    handles = [
        ax.plot([], [], "s", color=_COLORS[k], label=f"option {k}")[0] for k in range(n_options)
    ]
    handles.append(ax.plot([], [], "x", color="black", label=f"β > {threshold:.2f}")[0])
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize="small"
    )
    ax.set_title(f"{run.name}: option chosen per cell (goal ★)")
    for k in range(n_options):
        small = fig.add_subplot(grid[k % 2, 1 + k // 2])
        heat = np.full(WALLS.shape, np.nan)
        for i, (r, c) in enumerate(CELLS):
            heat[r, c] = beta[k, i]
        small.imshow(heat, cmap="viridis", vmin=0, vmax=1)
        small.set_title(f"β of option {k}", fontsize="small", color=_COLORS[k])
        small.set_xticks([])
        small.set_yticks([])
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out
