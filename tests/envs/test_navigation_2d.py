"""MAML's 2-D navigation as the `2d-navigation` family: the authors' dynamics bit for bit, the
done rule, the horizon, seeded splits (and the authors' own 40 test goals), option errors, and
the batched env against the single envs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from batched_equality import ActPolicy, assert_same_batches, run, sampler, step_both_paths
from gymnasium.vector import AutoresetMode

from gmtl_rl.core.rollout import AUTORESET_MODES
from gmtl_rl.envs import build, families, make
from gmtl_rl.envs.navigation_2d import (
    BatchedNavigation2D,
    Navigation2D,
    Navigation2DEnv,
    Navigation2DOptions,
)
from gmtl_rl.envs.task import Task
from gmtl_rl.errors import ConfigError

MODES = ["disabled", "next_step", "same_step"]
SMALL = {"n_train": 12, "n_test": 6, "horizon": 6}


class MamlPointEnvRandGoal:
    """The authors' env behind rllab's `normalize`, transcribed (cbfinn/maml_rl @9c8e2eb):
    maml_examples/point_env_randgoal.py reset L22-35 and step L37-45, the policy's action in
    [-1, 1] rescaled and clipped as rllab/envs/normalized_env.py:79-83."""

    LB, UB = np.array([-0.1, -0.1]), np.array([0.1, 0.1])  # point_env_randgoal.py:16-17

    def __init__(self, goal: np.ndarray) -> None:
        self._goal = goal

    @classmethod
    def rescale(cls, action: np.ndarray) -> np.ndarray:
        """normalized_env.py:82: the action in the env's own bounds, before the clip."""
        return cls.LB + (action + 1.0) * 0.5 * (cls.UB - cls.LB)

    def reset(self) -> np.ndarray:
        self._state = (0, 0)
        return np.copy(self._state)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        scaled_action = np.clip(self.rescale(action), self.LB, self.UB)
        self._state = self._state + scaled_action
        x, y = self._state
        x -= self._goal[0]
        y -= self._goal[1]
        reward = -((x**2 + y**2) ** 0.5)
        done = abs(x) < 0.01 and abs(y) < 0.01
        return np.copy(self._state), reward, done


def drifting(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Actions that depend on the observed position (so a wrong observation changes what
    follows) plus noise, past the ±0.1 bounds now and then (the clip is compared too)."""
    return (-0.3 * obs + rng.normal(0.0, 0.08, size=obs.shape)).astype(np.float32)


def test_positions_rewards_and_done_are_the_authors_bit_for_bit():
    dist = make("2d-navigation")
    rng = np.random.default_rng(0)
    for task in dist.test_tasks()[:5]:
        goal = task.array("goal")
        ours, theirs = dist.make_env(task), MamlPointEnvRandGoal(goal)
        for seeking in (False, True):  # a random walk, then straight to the goal
            obs, _ = ours.reset(seed=0)
            np.testing.assert_array_equal(obs, theirs.reset())
            done = False
            for _ in range(100):
                # The authors' policy acts in [-1, 1], ours in [-0.1, 0.1]: the same step,
                # rescaled by rllab's formula. Some actions lie outside and are clipped.
                wide = np.where(rng.random(2) < 0.2, 3.0, 1.0)
                normalised = (
                    np.clip((goal - theirs._state) / 0.1, -1.0, 1.0)
                    if seeking
                    else rng.uniform(-1.0, 1.0, size=2) * wide
                )
                obs, reward, terminated, _, info = ours.step(
                    MamlPointEnvRandGoal.rescale(normalised)
                )
                state, their_reward, done = theirs.step(normalised)
                np.testing.assert_array_equal(obs, state.astype(np.float32))
                np.testing.assert_array_equal(ours.unwrapped.get_state()["pos"], state)
                assert reward == their_reward and terminated == done
                assert info["distance"] == -reward and info["success"] == float(done)
                if done:
                    break
            assert done == seeking  # the goal is at most 0.5 a side: 5 full steps or fewer


def test_the_reward_is_the_plain_distance_not_its_square():
    env = Navigation2DEnv(goal=(0.3, -0.4))
    env.reset(seed=0)
    assert env.step(np.zeros(2))[1] == -0.5  # 3-4-5: the squared distance would be -0.25


def test_actions_are_clipped_to_a_tenth_per_axis():
    env = Navigation2DEnv(goal=(0.5, 0.5))
    assert env.action_space.low.tolist() == pytest.approx([-0.1, -0.1])
    assert env.action_space.high.tolist() == pytest.approx([0.1, 0.1])
    env.reset(seed=0)
    obs, *_ = env.step(np.array([3.0, -0.05]))
    assert obs.tolist() == pytest.approx([0.1, -0.05])
    obs, *_ = env.step(np.array([-7.0, -1.0]))
    assert obs.tolist() == pytest.approx([0.0, -0.15])


@pytest.mark.parametrize(
    ("offset", "done"),
    [((0.0, 0.0), True), ((0.0099, -0.0099), True), ((0.0101, 0.0), False),
     ((0.0, -0.0101), False), ((0.02, 0.02), False)],
)  # fmt: skip
def test_the_episode_terminates_within_a_hundredth_of_the_goal_on_both_axes(offset, done):
    goal = np.array([0.05, -0.03])
    env = Navigation2DEnv(goal=goal)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(goal + np.asarray(offset))
    assert (terminated, truncated, info["success"]) == (done, False, float(done))


def test_episodes_start_at_the_origin_and_are_truncated_after_100_steps():
    dist = make("2d-navigation")
    env = dist.make_env(dist.train_tasks()[3])
    assert dist.horizon == 100 and make("2d-navigation", horizon=5).horizon == 5
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        assert obs.tolist() == [0.0, 0.0] and obs.dtype == np.float32
        flags = []
        for _ in range(100):
            _, _, terminated, truncated, _ = env.step(np.array([-0.1, 0.1]))  # away from it
            flags.append((terminated, truncated))
        assert flags == [(False, False)] * 99 + [(False, True)]


def test_the_split_is_seeded_disjoint_and_uniform_in_the_half_square():
    a, b = make("2d-navigation"), make("2d-navigation")
    assert (len(a.train_tasks()), len(a.test_tasks())) == (1000, 40)  # MAML evaluates 40
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    train = np.array([t["goal"] for t in a.train_tasks()])
    test = np.array([t["goal"] for t in a.test_tasks()])
    assert not {tuple(g) for g in train} & {tuple(g) for g in test}
    assert np.abs(np.concatenate([train, test])).max() <= 0.5
    # U[-0.5, 0.5]: mean 0 (SE 0.009 over 1000), variance 1/12, both axes.
    assert np.abs(train.mean(axis=0)).max() < 0.04
    assert np.abs(train.var(axis=0) - 1 / 12).max() < 0.01
    assert make("2d-navigation", split_seed=1).test_tasks() != a.test_tasks()
    # Independent streams: the test goals do not move when n_train does.
    assert make("2d-navigation", n_train=7).test_tasks() == a.test_tasks()


def test_maml_test_goals_are_the_authors_forty():
    dist = make("2d-navigation", test_goals="maml")
    goals = np.array([t["goal"] for t in dist.test_tasks()])
    # test_maml_point.py:26-28, the authors' own calls (the global generator put back after)
    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(1)  # noqa: NPY002
        theirs = np.random.uniform(-0.5, 0.5, size=(40, 2))  # noqa: NPY002
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    np.testing.assert_array_equal(goals, theirs)
    np.testing.assert_allclose(goals[0], [-0.0829780, 0.2203245], atol=1e-7)
    assert dist.train_tasks() == make("2d-navigation").train_tasks()


def test_the_goal_known_optimum_on_mamls_test_goals():
    """The oracle bound of docs/gridworld_navigation.md: after t steps the point is in the box
    [-0.1 t, 0.1 t]², so clipping the goal into it, as a full step along each axis does, is
    the closest reachable point at every step and ends the episode first."""
    dist = make("2d-navigation", test_goals="maml")
    returns = []
    for task in dist.test_tasks():
        env, goal = dist.make_env(task), task.array("goal")
        obs, _ = env.reset(seed=0)
        total, terminated = 0.0, False
        while not terminated:
            obs, reward, terminated, truncated, _ = env.step(goal - obs)
            total += reward
            assert not truncated
        returns.append(total)
    assert np.mean(returns) == pytest.approx(-0.5441, abs=1e-4)  # MAML's learned oracle: -2.29


@pytest.mark.parametrize(
    ("options", "key", "valid"),
    [({"n_train": 0}, "n_train", "greater than or equal to 1"),
     ({"n_test": 0}, "n_test", "greater than or equal to 1"),
     ({"horizon": 0}, "horizon", "greater than or equal to 1"),
     ({"test_goals": "paper"}, "test_goals", "'seeded' or 'maml'"),
     ({"split_seed": -1}, "split_seed", "greater than or equal to 0"),
     ({"goal_range": 1.0}, "goal_range", "unknown key")],
)  # fmt: skip
def test_bad_options_are_one_line_errors_naming_the_option_and_what_is_valid(options, key, valid):
    with pytest.raises(ConfigError, match=rf"^env\.{key}: .*{valid}") as err:
        build("2d-navigation", options)
    assert "\n" not in str(err.value)


def test_set_task_moves_the_goal():
    dist = make("2d-navigation", **SMALL)
    env = dist.make_env(dist.train_tasks()[0])
    task = dist.test_tasks()[2]
    dist.set_task(env, task)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(2))
    assert reward == -float(np.hypot(*task.array("goal")))


def test_the_family_is_registered_and_listed():
    from gmtl_rl.cli import _space

    assert "2d-navigation" in families() and "MAML" in families()["2d-navigation"].description
    env = build("2d-navigation", {}).make_env()
    assert (_space(env.observation_space), _space(env.action_space)) == ("Box(2,)", "Box(2,)")


@pytest.mark.parametrize("mode", MODES)
def test_the_batched_env_gives_the_single_envs_transitions(mode):
    dist = make("2d-navigation", **SMALL)
    assert step_both_paths(dist, drifting, AUTORESET_MODES[mode], n=4, steps=60) >= 30


class LineGoals(Navigation2D):
    """Train goals on the x axis a whole number of full steps from the start (a walk along it
    lands on them, so episodes terminate) and test goals off it (they run to the horizon)."""

    def __init__(self) -> None:
        super().__init__(Navigation2DOptions(horizon=7))
        self._train = [Task.create(self.name, i, goal=(0.1 * (i + 1), 0.0)) for i in range(4)]
        self._test = [Task.create(self.name, i, goal=(0.1 * i, 0.3)) for i in range(3)]


def walking(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A full step along +x (clipped to exactly 0.1) or, one time in four, a pause."""
    step = np.where(rng.random(len(obs)) < 0.75, 1.0, 0.0)
    return np.stack([step, np.zeros(len(obs))], axis=1).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_the_batched_env_terminates_where_the_single_envs_do(mode):
    dist = LineGoals()
    assert step_both_paths(dist, walking, AUTORESET_MODES[mode], n=4, steps=60) >= 20
    s = sampler(dist, "batched", mode)
    episodes = run(s, ActPolicy(walking, 0), 60)[1]
    assert {e.terminated for e in episodes} == {True, False}
    assert all(e.success == e.terminated for e in episodes)


@pytest.mark.parametrize("mode", MODES)
def test_the_sampler_records_the_same_trials_on_either_backend(mode):
    dist = make("2d-navigation", **SMALL)
    a, b = (sampler(dist, backend, mode, trial=3) for backend in ("sync", "batched"))
    assert isinstance(b.vec, BatchedNavigation2D)
    (steps_a, ep_a), (steps_b, ep_b) = (run(s, ActPolicy(drifting, 0), 100) for s in (a, b))
    assert_same_batches(steps_a, steps_b)
    assert ep_a == ep_b and len(ep_a) >= 60 and len({e.task_id for e in ep_a}) > 5


def test_a_checkpoint_of_either_path_resumes_on_the_other():
    dist = make("2d-navigation", **SMALL)
    batched = sampler(dist, "batched", "disabled")
    run(batched, ActPolicy(drifting, 1), 13)  # mid-episode: t = 13 % 6
    state = copy.deepcopy(batched.state_dict())
    rest = run(batched, ActPolicy(drifting, 2), 30)[0]
    for backend in ("sync", "batched"):
        other = sampler(dist, backend, "disabled")
        other.load_state_dict(copy.deepcopy(state))
        assert_same_batches(run(other, ActPolicy(drifting, 2), 30)[0], rest)


def test_a_nan_action_truncates_the_row_as_numerical_guard_does():
    dist = make("2d-navigation", **SMALL)
    batched = dist.make_batched_env(2, dist.train_tasks()[0], AutoresetMode.DISABLED)
    batched.reset(seed=0)
    obs, reward, terminated, truncated, info = batched.step(
        np.array([[np.nan, 0.0], [0.05, 0.05]], np.float32)
    )
    assert truncated.tolist() == [True, False] and not terminated.any()
    assert np.isfinite(obs).all() and reward[0] == 0.0
    assert info["numerical_instability"][0] == 1.0
