"""The Bayes-optimal gridworld agent: the searched plan against a plain expectimax over beliefs,
its returns on every goal, the oracle bound, and the agent through the library's evaluator."""

from __future__ import annotations

import json
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from gmtl_rl import runner
from gmtl_rl.agents import gridworld_bayes
from gmtl_rl.agents.gridworld_bayes import (
    BayesOptimalGridworld,
    BayesOptimalGridworldConfig,
    build_bayes_optimal_gridworld,
    goal_returns,
    oracle_return,
    solve,
    toward,
)
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import load_config
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.envs import make
from gmtl_rl.envs.gridworld import MOVES, goal_cells
from gmtl_rl.errors import ConfigError
from gmtl_rl.evaluation.adaptation import run_adaptation

CONFIG = Path(__file__).parents[2] / "configs" / "bayes_optimal_gridworld.yaml"


def expectimax(size: int, horizon: int, episodes: int) -> Fraction:
    """The Bayes-optimal expected trial return by brute force over beliefs: the belief is the
    set of goals consistent with what was seen (uniform over it), every action is tried at
    every step, the reward +1 / -0.1 splits the belief, and nothing is assumed about the
    policy's form (what to do once the goal is known is searched too)."""
    last = size - 1

    def move(cell: tuple[int, int], action: int) -> tuple[int, int]:
        dx, dy = (int(v) for v in MOVES[action])
        return min(max(cell[0] + dx, 0), last), min(max(cell[1] + dy, 0), last)

    @cache
    def value(cell: tuple[int, int], belief: frozenset, t: int, episode: int) -> Fraction:
        if t == horizon:  # the next episode starts at (0, 0), the belief carries over
            return value((0, 0), belief, 0, episode + 1) if episode + 1 < episodes else Fraction(0)
        best = None
        for action in range(len(MOVES)):
            after = move(cell, action)
            here, elsewhere = belief & {after}, belief - {after}
            v = Fraction(0)
            if here:
                v += Fraction(1, len(belief)) * (1 + value(after, here, t + 1, episode))
            if elsewhere:
                v += Fraction(len(elsewhere), len(belief)) * (
                    Fraction(-1, 10) + value(after, elsewhere, t + 1, episode)
                )
            best = v if best is None or v > best else best
        assert best is not None
        return best

    return value((0, 0), frozenset(goal_cells(size)), 0, 0)


@pytest.mark.parametrize(
    ("size", "horizon", "episodes"),
    [(3, 1, 3), (3, 3, 2), (3, 4, 3), (4, 4, 2), (4, 6, 2), (4, 5, 3), (5, 3, 4), (5, 4, 3),
     (5, 5, 2)],
)  # fmt: skip
def test_the_search_finds_the_expectimax_value_on_small_grids(size, horizon, episodes):
    assert solve(size, horizon, episodes).trial_return == expectimax(size, horizon, episodes)


def test_the_bayes_optimal_returns_of_varibads_gridworld():
    """5×5, 15 steps, 4 episodes: 14 goals searched in episode 1 (steps 2-15), the other 7
    on one monotone path in episode 2, so episodes 2-4 earn the oracle's return."""
    solution = solve(5, 15, 4)
    assert solution.episode_returns == (Fraction(4), *[Fraction(155, 14)] * 3)
    assert solution.oracle_return == Fraction(155, 14)  # 11.0714...
    assert solution.trial_return == Fraction(521, 14)  # 37.2142...
    assert solution.objective == 825
    # Episode 1 by hand: goals entered at steps 2..15 earn 1.1 (16 - s) - 1.5, the other 7
    # earn -1.5: (Σ_{s=2}^{15} (16.1 - 1.1 s) - 7 · 1.5) / 21 = (94.5 - 10.5) / 21 = 4.
    first = sum(Fraction(161 - 11 * s, 10) for s in range(2, 16)) - 7 * Fraction(3, 2)
    assert first / 21 == solution.episode_returns[0]


def test_the_plan_visits_every_goal_within_two_episodes():
    plan = solve().plan_EH
    per_goal = goal_returns(plan, 5)
    assert len(per_goal) == 21 and (plan[2:] == 0).all()  # noops: never reached unfound
    for goal, returns in per_goal.items():
        # Found in episode 1 or 2; from the next episode on, the oracle's return on that goal.
        oracle = Fraction(11 * (16 - sum(goal)) - 15, 10)
        assert returns[2] == returns[3] == oracle
        assert returns[0] == -Fraction(3, 2) or returns[1] == oracle


def test_the_oracle_walks_a_shortest_path_and_stays():
    """The bound of any agent: the goal known, a shortest path (d steps at -0.1 but the last)
    then +1; by the env itself on every goal."""
    dist = make("gridworld")
    total = 0.0
    for task in dist.test_tasks():
        env = dist.make_env(task)
        obs, _ = env.reset(seed=0)
        goal = np.array([task["goal"]])
        for _ in range(15):
            obs, reward, *_ = env.step(int(toward(obs[None].astype(np.int64), goal)[0]))
            total += reward
    assert total / 21 == pytest.approx(float(oracle_return(5, 15)), abs=1e-12)
    assert oracle_return(5, 15) == Fraction(155, 14)


def test_the_agent_earns_the_computed_returns_on_every_goal():
    dist = make("gridworld")
    agent = BayesOptimalGridworld(BayesOptimalGridworldConfig(), size=5)
    tasks = dist.test_tasks()
    rows = run_adaptation(agent, dist, tasks, episodes=4, n_envs=8)
    per_goal = goal_returns(agent.solution.plan_EH, 5)
    assert len(rows) == 21 * 4
    for row in rows:
        expected = per_goal[tasks[row.task]["goal"]][row.episode - 1]
        assert row.episode_return == pytest.approx(float(expected), abs=1e-5)
        assert row.length == 15
    for k in range(4):
        mean = np.mean([r.episode_return for r in rows if r.episode == k + 1])
        assert mean == pytest.approx(float(agent.solution.episode_returns[k]), abs=1e-5)


def test_gmtl_train_writes_the_bayes_optimal_adaptation_curve(tmp_path):
    run = runner.train(load_config(CONFIG), tmp_path / "run")
    summary = json.loads((run / "eval" / "summary.json").read_text())
    means = [point["mean"] for point in summary["return"]]
    assert means == pytest.approx([4.0, 155 / 14, 155 / 14, 155 / 14], abs=1e-5)
    assert summary["num_tasks"] == 21 and (run / "eval" / "adaptation.png").is_file()


def test_a_horizon_other_than_the_envs_is_a_config_error(tmp_path):
    config = load_config(CONFIG, ["env.horizon=10"])
    with pytest.raises(ConfigError, match=r"agent\.horizon: 15 differs .* set agent\.horizon=10"):
        runner.train(config, tmp_path / "run")


def test_another_env_is_a_config_error():
    dist = make("point-robot")
    env = dist.make_env()
    spec = EnvSpec(env.observation_space, env.action_space, 1)
    with pytest.raises(ConfigError, match=r"agent\.name: bayes_optimal_gridworld .*gridworld"):
        build_bayes_optimal_gridworld(BayesOptimalGridworldConfig(), spec)


def test_a_grid_too_large_to_solve_is_a_config_error(monkeypatch):
    monkeypatch.setattr(gridworld_bayes, "MAX_LAYER_STATES", 100)
    env = make("gridworld", size=4).make_env()
    spec = EnvSpec(env.observation_space, env.action_space, 1)
    config = BayesOptimalGridworldConfig(horizon=9, episodes_per_trial=3)  # not cached
    with pytest.raises(ConfigError, match="too large to solve exactly"):
        build_bayes_optimal_gridworld(config, spec)


def _step(obs, action, reward, next_obs, done, valid=None) -> StepBatch:
    n = len(action)
    return StepBatch(
        obs=np.asarray(obs, np.float32), action=np.asarray(action),
        reward=np.asarray(reward, np.float32), next_obs=np.asarray(next_obs, np.float32),
        terminated=np.zeros(n, bool), truncated=np.asarray(done, bool),
        task_id=np.zeros(n, np.int64), task_class=np.zeros(n, np.int64),
        episode_id=np.zeros(n, np.int64), step_index=np.zeros(n, np.int64),
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool) if valid is None else np.asarray(valid, bool),
    )  # fmt: skip


def test_reward_one_reveals_the_goal_and_a_trial_reset_forgets_it():
    agent = BayesOptimalGridworld(BayesOptimalGridworldConfig(), size=5)
    agent.reset(np.ones(2, bool))
    start = np.zeros((2, 2))
    first = agent.act(start, np.zeros(2, np.int64))
    assert first.tolist() == [agent.solution.plan_EH[0, 0]] * 2
    # Env 0 is rewarded at (2, 3); env 1 steps off the plan's track, unrewarded; an invalid
    # row (an autoreset dummy) teaches nothing.
    agent.observe(_step(start, first, [1.0, -0.1], [[2, 3], [0, 1]], [False, False]))
    assert agent.found_N.tolist() == [True, False] and agent.goal_N2[0].tolist() == [2, 3]
    assert agent.act(np.array([[0.0, 3.0], [0, 1]]), np.zeros(2, np.int64))[0] == 2  # right
    agent.observe(_step(start, first, [1.0, 1.0], [[2, 3], [4, 4]], [True, True], [True, False]))
    assert agent.step_N.tolist() == [0, 1] and agent.episode_N.tolist() == [1, 0]
    assert not agent.found_N[1]
    agent.reset(np.array([True, False]))
    assert agent.found_N.tolist() == [False, False] and agent.step_N.tolist() == [0, 1]


def test_state_dict_round_trip_and_evaluating_leave_no_trace():
    agent = BayesOptimalGridworld(BayesOptimalGridworldConfig(), size=5)
    agent.reset(np.ones(3, bool))
    agent.observe(_step(np.zeros((3, 2)), [1, 1, 1], [-0.1, 1.0, -0.1], [[0, 1], [0, 1], [0, 1]],
                        [False] * 3))  # fmt: skip
    saved = agent.state_dict()
    with agent.evaluating():
        agent.reset(np.ones(5, bool))
    restored = BayesOptimalGridworld(BayesOptimalGridworldConfig(), size=5)
    restored.load_state_dict(saved)
    for state in (agent.state_dict(), restored.state_dict()):
        for key, value in saved.items():
            np.testing.assert_array_equal(state[key], value)


def test_registered_as_a_baseline_over_trials_of_four_episodes():
    spec = agent_spec("bayes_optimal_gridworld")
    assert spec.family == "baseline" and "Bayes-optimal" in spec.description
    assert BayesOptimalGridworldConfig().trial_episodes() == 4
    with pytest.raises(ValueError, match="episodes_per_trial"):
        BayesOptimalGridworldConfig(episodes_per_trial=0)
