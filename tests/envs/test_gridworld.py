"""varibad's gridworld (GridNavi-v0) as the `gridworld` family: the authors' dynamics, the goal
set, seeded splits, option errors, and the batched env against the single envs."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from batched_equality import ActPolicy, assert_same_batches, run, sampler, step_both_paths

from gmtl_rl.core.rollout import AUTORESET_MODES
from gmtl_rl.envs import build, families, make
from gmtl_rl.envs.gridworld import BatchedGridNavi, GridNaviEnv, goal_cells
from gmtl_rl.errors import ConfigError

MODES = ["disabled", "next_step", "same_step"]


class VaribadGridNavi:
    """The authors' env, transcribed (lmzintgraf/varibad @57e1795,
    environments/navigation/gridworld.py): reset L96-99, state_transition L101-115, step
    L117-147 (the belief bookkeeping left out: it changes no state, reward or done)."""

    def __init__(self, goal: tuple[int, int], num_cells: int = 5, num_steps: int = 15) -> None:
        self.num_cells, self._max_episode_steps = num_cells, num_steps
        self._goal = np.array(goal)

    def reset(self) -> np.ndarray:
        self.step_count = 0
        self._env_state = np.array((0.0, 0.0))
        return self._env_state.copy()

    def state_transition(self, action: int) -> np.ndarray:
        if action == 1:  # up
            self._env_state[1] = min([self._env_state[1] + 1, self.num_cells - 1])
        elif action == 2:  # right
            self._env_state[0] = min([self._env_state[0] + 1, self.num_cells - 1])
        elif action == 3:  # down
            self._env_state[1] = max([self._env_state[1] - 1, 0])
        elif action == 4:  # left
            self._env_state[0] = max([self._env_state[0] - 1, 0])
        return self._env_state

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        done = False
        state = self.state_transition(action)
        self.step_count += 1
        if self.step_count >= self._max_episode_steps:
            done = True
        if self._env_state[0] == self._goal[0] and self._env_state[1] == self._goal[1]:
            reward = 1.0
        else:
            reward = -0.1
        return state.copy(), reward, done


def roaming(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Actions that depend on the observed cell (so a wrong observation changes what follows):
    right along the bottom row, up elsewhere, each replaced by a random one half the time."""
    n = len(obs)
    seeking = np.where(obs[:, 0] < 4, 2, 1)
    return np.where(rng.random(n) < 0.5, rng.integers(5, size=n), seeking).astype(np.int64)


@pytest.mark.parametrize("goal", [(4, 4), (2, 0), (0, 4), (3, 2)])
def test_transitions_rewards_and_episode_end_are_the_authors(goal):
    ours, theirs = make("gridworld").make_env(), VaribadGridNavi(goal)
    ours.unwrapped.goal = np.array(goal)
    rng = np.random.default_rng(sum(goal))
    for episode in range(4):
        obs = ours.reset(seed=episode)[0]
        np.testing.assert_array_equal(obs, theirs.reset())
        for _ in range(15):
            action = int(rng.integers(5))
            obs, reward, terminated, truncated, info = ours.step(action)
            state, their_reward, done = theirs.step(action)
            assert obs.dtype == np.float32
            np.testing.assert_array_equal(obs, state)
            assert reward == their_reward and truncated == done and not terminated
            assert info == {"success": float(reward == 1.0)}
        assert truncated  # 15 steps, then the episode is over (a time limit)


def test_walls_leave_the_agent_where_it_is():
    env = GridNaviEnv(goal=(4, 4))
    env.reset(seed=0)
    for action in (3, 4, 0):  # down and left at the start corner, and noop, stay at (0, 0)
        assert env.step(action)[0].tolist() == [0.0, 0.0]
    env.set_state({"pos": [4, 4], "t": 0, "goal": [2, 2]})
    for action in (1, 2):  # up and right at the far corner
        assert env.step(action)[0].tolist() == [4.0, 4.0]
    assert env.step(3)[0].tolist() == [4.0, 3.0]


def test_the_goal_pays_one_every_step_and_the_episode_runs_on():
    env = GridNaviEnv(goal=(2, 0))
    env.reset(seed=0)
    rewards, flags = [], []
    for action in [2, 2] + [0] * 11 + [4, 2]:  # reach (2, 0), stay, step off and back
        _, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        flags.append((terminated, truncated))
    assert rewards == [-0.1] + [1.0] * 12 + [-0.1, 1.0]
    assert flags == [(False, False)] * 14 + [(False, True)]
    # The oracle walks straight there and stays: -0.1 + 14 = 13.9 = 1.1 (15 + 1 - 2) - 1.5.
    env.reset()
    assert sum(env.step(a)[1] for a in [2, 2] + [0] * 13) == pytest.approx(13.9)


def test_goals_are_the_21_cells_outside_the_start_corner_in_varibads_order():
    # gridworld.py:38-42: itertools.product(range(5), repeat=2) less the 2x2 corner.
    theirs = list(itertools.product(range(5), repeat=2))
    for corner in [(0, 0), (0, 1), (1, 1), (1, 0)]:
        theirs.remove(corner)
    assert goal_cells(5) == theirs and len(theirs) == 21
    dist = make("gridworld")
    assert [t["goal"] for t in dist.train_tasks()] == theirs


def test_the_observation_is_the_cell_as_float_coordinates():
    dist = make("gridworld")
    env = dist.make_env()
    space = env.observation_space
    assert space.shape == (2,) and space.dtype == np.float32
    assert space.low.tolist() == [0.0, 0.0] and space.high.tolist() == [4.0, 4.0]
    assert env.action_space.n == 5 and dist.horizon == 15
    obs, _ = env.reset(seed=0)
    for action in [1, 1, 2, 1, 2, 2, 3]:
        obs, *_ = env.step(action)
        assert space.contains(obs)
    assert obs.tolist() == [3.0, 2.0]


def test_by_default_both_splits_are_every_goal_as_in_varibad():
    dist = make("gridworld")
    assert dist.train_tasks() == dist.test_tasks() and len(dist.train_tasks()) == 21
    assert [t.index for t in dist.train_tasks()] == list(range(21))


def test_a_holdout_split_is_seeded_and_disjoint():
    a, b = make("gridworld", holdout=6), make("gridworld", holdout=6)
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    train = {t["goal"] for t in a.train_tasks()}
    test = {t["goal"] for t in a.test_tasks()}
    assert len(train) == 15 and len(test) == 6 and not train & test
    assert train | test == set(goal_cells(5))
    assert {t["goal"] for t in make("gridworld", holdout=6, split_seed=1).test_tasks()} != test


@pytest.mark.parametrize(
    ("options", "key", "valid"),
    [({"size": 2}, "size", "greater than or equal to 3"),
     ({"size": 11}, "size", "less than or equal to 10"),
     ({"horizon": 0}, "horizon", "greater than or equal to 1"),
     ({"holdout": 21}, "holdout", r"valid: 0\.\.20"),
     ({"size": 3, "holdout": 5}, "holdout", r"valid: 0\.\.4"),
     ({"holdout": -1}, "holdout", "greater than or equal to 0"),
     ({"goal": [1, 1]}, "goal", "unknown key")],
)  # fmt: skip
def test_bad_options_are_one_line_errors_naming_the_option_and_what_is_valid(options, key, valid):
    with pytest.raises(ConfigError, match=rf"^env\.{key}: .*{valid}") as err:
        build("gridworld", options)
    assert "\n" not in str(err.value)


def test_an_action_out_of_range_names_the_valid_ones():
    env = make("gridworld").make_env()
    env.reset(seed=0)
    for bad in (-1, 5):
        with pytest.raises(IndexError, match="0 noop, 1 up, 2 right, 3 down, 4 left"):
            env.step(bad)


def test_set_task_moves_the_goal():
    dist = make("gridworld")
    env = dist.make_env(dist.train_tasks()[0])
    task = next(t for t in dist.train_tasks() if t["goal"] == (0, 2))
    dist.set_task(env, task)
    env.reset(seed=0)
    assert [env.step(1)[1] for _ in range(3)] == [-0.1, 1.0, -0.1]  # (0, 1), (0, 2), (0, 3)


def test_the_family_is_registered_and_listed():
    from gmtl_rl.cli import _space

    assert "gridworld" in families() and "varibad" in families()["gridworld"].description
    env = build("gridworld", {}).make_env()
    assert (_space(env.observation_space), _space(env.action_space)) == ("Box(2,)", "Discrete(5)")


@pytest.mark.parametrize("mode", MODES)
def test_the_batched_env_gives_the_single_envs_transitions(mode):
    dist = make("gridworld", horizon=6, holdout=5)
    assert step_both_paths(dist, roaming, AUTORESET_MODES[mode], n=4, steps=60) >= 30


@pytest.mark.parametrize("mode", MODES)
def test_the_sampler_records_the_same_trials_on_either_backend(mode):
    dist = make("gridworld", horizon=6, holdout=5)
    a, b = (sampler(dist, backend, mode, trial=3) for backend in ("sync", "batched"))
    assert isinstance(b.vec, BatchedGridNavi)
    (steps_a, ep_a), (steps_b, ep_b) = (run(s, ActPolicy(roaming, 0), 100) for s in (a, b))
    assert_same_batches(steps_a, steps_b)
    assert ep_a == ep_b and len(ep_a) >= 60 and len({e.task_id for e in ep_a}) > 5
    assert any(e.success for e in ep_a)  # some goals are found: the +1 rows compared too


def test_a_checkpoint_of_either_path_resumes_on_the_other():
    dist = make("gridworld", horizon=6, holdout=5)
    batched = sampler(dist, "batched", "disabled")
    run(batched, ActPolicy(roaming, 1), 13)  # mid-episode: t = 13 % 6
    state = copy.deepcopy(batched.state_dict())
    rest = run(batched, ActPolicy(roaming, 2), 30)[0]
    for backend in ("sync", "batched"):
        other = sampler(dist, backend, "disabled")
        other.load_state_dict(copy.deepcopy(state))
        assert_same_batches(run(other, ActPolicy(roaming, 2), 30)[0], rest)
