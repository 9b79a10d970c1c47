"""The Bayes-optimal agent of varibad's gridworld (family `gridworld`), computed exactly.

The agent knows the prior (the goal is uniform over the G goal cells, `goal_cells`) and the
dynamics; its belief is uniform over the goal cells not yet ruled out: a cell entered with
reward -0.1 is not the goal, reward +1 reveals it. Until the goal is found every observation
is certain, so a policy is, until then, one fixed sequence of moves over the whole trial (a
plan); once the goal is known the best is plain: stay on it for the rest of the episode (+1
a step, the most there is) and in later episodes walk a shortest path to it and stay. The
Bayes-optimal policy of a trial of E episodes of H steps is therefore the plan that maximises
the expected trial return (undiscounted: the BAMDP return of varibad's H⁺ = E·H steps).

Every episode returns -0.1·H, plus 1.1·(H + 1 - s) if the agent reaches the goal at step s
of it (s - 1 steps at -0.1, then +1 for the rest). With goal g first entered at step s_g of
episode k_g (0-based) and d_g its distance from the start, the expected trial return is

    -0.1·H·E + (1.1 / G) · J,   J = Σ_{g found} (H + 1 - s_g) + (E - 1 - k_g)·(H + 1 - d_g),

an integer objective over plans. `solve` maximises J exactly: forward dynamic programming
over (episode, step, cell, goal cells not yet ruled out), all five actions, one best value
per state, with branch and bound (`_upper_bound`; a state is dropped only if even its bound
cannot reach a value some plan achieves). tests/agents/test_gridworld_bayes.py holds the
result to a plain expectimax over beliefs (no assumption about the policy's form) on small
grids, and the agent's evaluated returns to the enumeration of every goal (`plan_returns`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.policy import state_restored
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch
from gmtl_rl.envs.gridworld import GOAL_REWARD, MOVES, START, goal_cells, grid_step
from gmtl_rl.errors import ConfigError

NOOP, UP, RIGHT, DOWN, LEFT = range(5)  # gmtl_rl.envs.gridworld.MOVES
# Search states kept in one layer before `solve` gives up: the default 5×5 grid needs ~12k;
# a layer of 2M takes minutes in pure Python.
MAX_LAYER_STATES = 2_000_000


@dataclass(frozen=True)
class BayesOptimalSolution:
    """The Bayes-optimal plan of a trial and its exact expected returns."""

    size: int
    horizon: int
    episodes: int
    plan_EH: np.ndarray  # [E, H] actions followed until the goal is found
    objective: int  # J of the module docstring
    episode_returns: tuple[Fraction, ...]  # expected return of episode k = 1..E (prior mean)
    oracle_return: Fraction  # expected return of an episode with the goal known

    @property
    def trial_return(self) -> Fraction:
        return sum(self.episode_returns, Fraction(0))


class _Grid:
    """The grid's tables: cells are x·size + y, goals are bits of an int (the belief set)."""

    def __init__(self, size: int, horizon: int, episodes: int) -> None:
        self.size, self.H, self.E = size, horizon, episodes
        coords = [(x, y) for x in range(size) for y in range(size)]
        self.goals = goal_cells(size)
        self.start = START[0] * size + START[1]
        self.next_cell = [
            [
                min(max(x + int(dx), 0), size - 1) * size + min(max(y + int(dy), 0), size - 1)
                for dx, dy in MOVES
            ]
            for x, y in coords
        ]
        index = {g: j for j, g in enumerate(self.goals)}
        self.goal_bit = [1 << index[c] if c in index else 0 for c in coords]
        self.start_dist = [x + y for x, y in self.goals]  # no inner walls: Manhattan
        # Per cell, the goals by distance: (distance, goal index), nearest first.
        self.by_distance = [
            sorted((abs(x - gx) + abs(y - gy), j) for j, (gx, gy) in enumerate(self.goals))
            for x, y in coords
        ]

    def gain(self, episode: int, step: int, goal: int) -> int:
        """J's term of a goal first entered at `step` (1-based) of `episode` (0-based)."""
        later = max(0, self.H + 1 - self.start_dist[goal])  # 0: unreachable in an episode
        return self.H + 1 - step + (self.E - 1 - episode) * later

    def upper_bound(self, episode: int, steps: int, cell: int, left: int) -> int:
        """At most the J that goals in `left` can still add, `steps` steps into `episode`.

        The i-th goal entered from here on comes no earlier than the i-th of these slots:
        in this episode, step steps + max(i, d_i) with d_i the i-th smallest distance from
        `cell` to a goal left (one new cell per step, and the i-th goal is at least d_i away);
        in each later episode, the j-th at step max(j, d⁰_j) (d⁰: distances from the start).
        A goal's gain only falls as it is entered later, so matching goals to slots, the
        largest (H + 1 - d⁰) with the earliest episodes (rearrangement), bounds J's rest.
        """
        H, E = self.H, self.E
        near = [d for d, j in self.by_distance[cell] if left >> j & 1]
        if not near:
            return 0
        from_start = [d for d, j in self.by_distance[self.start] if left >> j & 1]
        slots: list[tuple[int, int]] = []  # (episode, step)
        for i, d in enumerate(near, 1):
            if steps + max(i, d) > H:
                break
            slots.append((episode, steps + max(i, d)))
        for later in range(episode + 1, E):
            for j, d in enumerate(from_start, 1):
                if max(j, d) > H or len(slots) == len(near):
                    break
                slots.append((later, max(j, d)))
        return sum(
            H + 1 - step + (E - 1 - k) * max(0, H + 1 - d)
            for (k, step), d in zip(slots, from_start, strict=False)
        )


def _search(grid: _Grid, incumbent: int, beam: int | None) -> tuple[int, list[int]]:
    """The best J over plans (and a plan reaching it) among states whose bound reaches
    `incumbent`; `beam` keeps only that many best-bounded states a layer (a fast heuristic
    whose result is a valid incumbent for the exact pass)."""
    H, E = grid.H, grid.E
    layer: dict[tuple[int, int], int] = {(grid.start, (1 << len(grid.goals)) - 1): 0}
    parents: list[dict[tuple[int, int], tuple[tuple[int, int], int]]] = []
    for k in range(E):
        for s in range(1, H + 1):
            values: dict[tuple[int, int], int] = {}
            parent: dict[tuple[int, int], tuple[tuple[int, int], int]] = {}
            for (cell, left), value in layer.items():
                for action, after in enumerate(grid.next_cell[cell]):
                    bit = grid.goal_bit[after] & left
                    key = (after, left & ~bit)
                    new = value + (grid.gain(k, s, bit.bit_length() - 1) if bit else 0)
                    if values.get(key, -1) < new:  # ties: the first found (action order)
                        values[key], parent[key] = new, ((cell, left), action)
            if len(values) > MAX_LAYER_STATES:
                raise ValueError(
                    f"the Bayes-optimal search of a {grid.size}x{grid.size} gridworld with "
                    f"{H}-step episodes has over {MAX_LAYER_STATES} states at episode {k + 1}, "
                    f"step {s}: too large to solve exactly here"
                )
            bounded = {}
            for (cell, left), value in values.items():
                if s < H:
                    bound = value + grid.upper_bound(k, s, cell, left)
                else:  # the next episode starts from the start cell
                    bound = value + (
                        grid.upper_bound(k + 1, 0, grid.start, left) if k + 1 < E else 0
                    )
                if bound >= incumbent:
                    bounded[(cell, left)] = bound
            if beam is not None and len(bounded) > beam:
                kept = sorted(bounded, key=bounded.__getitem__, reverse=True)[:beam]
                bounded = dict.fromkeys(kept, 0)
            layer = {key: values[key] for key in bounded}
            if s == H:  # episode end: every cell returns to the start, the belief stays
                restart: dict[tuple[int, int], int] = {}
                restart_parent: dict[tuple[int, int], tuple[tuple[int, int], int]] = {}
                for (cell, left), value in layer.items():
                    key = (grid.start, left)
                    if restart.get(key, -1) < value:
                        restart[key], restart_parent[key] = value, parent[(cell, left)]
                layer, parent = restart, restart_parent
            parents.append(parent)
    best_key = max(layer, key=layer.__getitem__)
    actions: list[int] = []
    key = best_key
    for parent in reversed(parents):
        key, action = parent[key]
        actions.append(action)
    return layer[best_key], actions[::-1]


def goal_returns(plan_EH: np.ndarray, size: int) -> dict[tuple[int, int], tuple[Fraction, ...]]:
    """Return of each episode of a trial on each goal cell: the plan followed until the goal
    is entered, then stay, and in later episodes a shortest path to it (`toward`), stepped
    through the env's own `grid_step`."""
    episodes, horizon = plan_EH.shape
    returns = {}
    for goal in goal_cells(size):
        target = np.array([goal], np.int64)
        found, tenths = False, [0] * episodes
        for k in range(episodes):
            pos = np.array([START], np.int64)
            for s in range(horizon):
                action = toward(pos, target) if found else plan_EH[k, s : s + 1]
                pos, reward, on_goal = grid_step(pos, target, action, size)
                tenths[k] += round(float(reward[0]) * 10)  # +1 and -0.1: whole tenths
                found = found or bool(on_goal[0])
        returns[goal] = tuple(Fraction(t, 10) for t in tenths)
    return returns


def plan_returns(plan_EH: np.ndarray, size: int) -> tuple[Fraction, ...]:
    """Expected return of each episode of a trial over the uniform goal prior: the mean of
    `goal_returns` over every goal cell."""
    per_goal = list(goal_returns(plan_EH, size).values())
    return tuple(sum(r, Fraction(0)) / len(per_goal) for r in zip(*per_goal, strict=True))


def toward(pos_N2: np.ndarray, goal_N2: np.ndarray) -> np.ndarray:
    """A shortest-path action [N] to a known goal (x first, then y; noop on it)."""
    dx, dy = (goal_N2 - pos_N2).T
    return np.select([dx > 0, dx < 0, dy > 0, dy < 0], [RIGHT, LEFT, UP, DOWN], NOOP)


def oracle_return(size: int, horizon: int) -> Fraction:
    """Expected return of an episode whose goal is known: a shortest path, then stay."""
    goals = goal_cells(size)
    tenths = sum(11 * max(0, horizon + 1 - (x + y)) - horizon for x, y in goals)
    return Fraction(tenths, 10 * len(goals))


def solve(size: int = 5, horizon: int = 15, episodes: int = 4) -> BayesOptimalSolution:
    """The Bayes-optimal plan and its expected returns (under a second for varibad's 5×5
    grid, 15 steps, 4 episodes; kept for the process)."""
    return _solve(size, horizon, episodes)


@lru_cache(maxsize=8)
def _solve(size: int, horizon: int, episodes: int) -> BayesOptimalSolution:
    grid = _Grid(size, horizon, episodes)
    incumbent, _ = _search(grid, 0, beam=300)  # a good plan fast: the exact pass prunes by it
    objective, actions = _search(grid, incumbent, beam=None)
    plan = np.asarray(actions, np.int64).reshape(episodes, horizon)
    returns = plan_returns(plan, size)
    expected = Fraction(-horizon * episodes, 10) + Fraction(11 * objective, 10 * len(grid.goals))
    assert sum(returns, Fraction(0)) == expected, "the plan's enumeration disagrees with J"
    return BayesOptimalSolution(
        size, horizon, episodes, plan, objective, returns, oracle_return(size, horizon)
    )


# -- the agent ----------------------------------------------------------------------------------
class BayesOptimalGridworldConfig(AgentConfig):
    """The Bayes-optimal agent of the `gridworld` family (nothing is trained)."""

    name: Literal["bayes_optimal_gridworld"] = "bayes_optimal_gridworld"
    episodes_per_trial: int = Field(
        4, ge=1, le=50, description="E: episodes per trial it plans for (varibad: 4)"
    )
    horizon: int = Field(
        15, ge=1, le=100, description="steps per episode it plans for (the env's; varibad: 15)"
    )

    def trial_episodes(self) -> int:
        return self.episodes_per_trial


class BayesOptimalGridworld:
    """Follows `solve`'s plan until reward +1 reveals the goal, then stays on it and, in later
    episodes, walks a shortest path to it. Per env: the episode and step of its trial, and
    the goal once found. Past the planned trial (eval.episodes > episodes_per_trial) a goal
    still unknown gets noops (the default plan finds every goal in its first two episodes).
    Deterministic: no generator; `deterministic` changes nothing."""

    def __init__(self, config: BayesOptimalGridworldConfig, size: int) -> None:
        self.config = config
        self.solution = solve(size, config.horizon, config.episodes_per_trial)
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        self.episode_N = np.zeros(n, np.int64)  # episodes of the trial finished
        self.step_N = np.zeros(n, np.int64)  # steps of the current episode taken
        self.found_N = np.zeros(n, bool)
        self.goal_N2 = np.zeros((n, 2), np.int64)

    # -- the Policy protocol --------------------------------------------------------------------
    def reset(self, env_mask: np.ndarray) -> None:
        mask = np.asarray(env_mask, bool)
        if len(mask) != len(self.step_N):
            self._alloc(len(mask))  # a new set of envs (e.g. evaluation): all start
            return
        self.episode_N[mask], self.step_N[mask], self.found_N[mask] = 0, 0, False

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del task_class, deterministic  # meta-RL: the goal is found, never told
        pos_N2 = np.rint(np.asarray(obs)).astype(np.int64)
        if len(pos_N2) != len(self.step_N):
            self._alloc(len(pos_N2))
        plan = self.solution.plan_EH
        episodes, horizon = plan.shape
        planned = plan[
            np.minimum(self.episode_N, episodes - 1), np.minimum(self.step_N, horizon - 1)
        ]
        planned = np.where(self.episode_N < episodes, planned, NOOP)
        return np.where(self.found_N, toward(pos_N2, self.goal_N2), planned)

    def observe(self, step: StepBatch) -> None:
        rows = np.flatnonzero(step.valid)  # autoreset dummies and idle envs: no step taken
        hit = rows[np.asarray(step.reward)[rows] == GOAL_REWARD]
        self.goal_N2[hit] = np.rint(np.asarray(step.next_obs)[hit]).astype(np.int64)
        self.found_N[hit] = True
        self.step_N[rows] += 1
        ended = rows[step.done[rows]]
        self.step_N[ended] = 0
        self.episode_N[ended] += 1

    # -- the Agent protocol ---------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        return []  # nothing is learned

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """The per-env trial state is put back afterwards."""
        with state_restored(self):
            yield

    def state_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode_N.copy(),
            "step": self.step_N.copy(),
            "found": self.found_N.copy(),
            "goal": self.goal_N2.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._alloc(len(state["step"]))
        self.episode_N = np.asarray(state["episode"], np.int64).copy()
        self.step_N = np.asarray(state["step"], np.int64).copy()
        self.found_N = np.asarray(state["found"], bool).copy()
        self.goal_N2 = np.asarray(state["goal"], np.int64).reshape(-1, 2).copy()


def build_bayes_optimal_gridworld(
    config: BayesOptimalGridworldConfig, env: EnvSpec, seed: int = 0, device: str = "cpu"
) -> BayesOptimalGridworld:
    del seed, device  # deterministic, numpy only
    obs, act = env.observation_space, env.action_space
    gridworld = (
        isinstance(obs, gym.spaces.Box)
        and obs.shape == (2,)
        and np.all(obs.low == 0)
        and np.all(obs.high == obs.high[0])
        and isinstance(act, gym.spaces.Discrete)
        and act.n == len(MOVES)
    )
    if not gridworld:
        raise ConfigError(
            f"agent.name: {config.name} plans on varibad's gridworld (env.name: gridworld: "
            f"Box(2,) cell coordinates, Discrete(5)); this env has {obs} and {act}"
        )
    try:
        return BayesOptimalGridworld(config, int(obs.high[0]) + 1)
    except ValueError as err:
        raise ConfigError(f"agent: {err}") from None


register_agent(
    AgentSpec(
        "bayes_optimal_gridworld",
        "varibad gridworld: the exact Bayes-optimal agent (plan searched, goal prior known)",
        "baseline",
        BayesOptimalGridworldConfig,
        build_bayes_optimal_gridworld,
    )
)
