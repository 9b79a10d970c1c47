"""The PEARL point robots and the Task record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gmtl_rl.envs import Task, make, tasks_from_json, tasks_to_json
from gmtl_rl.errors import ConfigError


def test_task_is_hashable_and_round_trips_through_json():
    task = Task.create("point-robot", 3, goal=np.array([0.5, -0.25]), scale=2)
    again = tasks_from_json(tasks_to_json({"train": [task]}))["train"][0]
    assert again == task and hash(again) == hash(task)
    assert task["goal"] == (0.5, -0.25) and task.array("goal").tolist() == [0.5, -0.25]
    json.dumps(task.to_json())


def test_unknown_task_parameter_names_the_ones_that_exist():
    with pytest.raises(KeyError, match=r"has no parameter 'speed' \(has: goal\)"):
        Task.create("point-robot", 0, goal=(0, 0))["speed"]


def test_point_robot_split_sizes_and_seeded_goals():
    a, b = make("point-robot"), make("point-robot")
    assert (len(a.train_tasks()), len(a.test_tasks())) == (80, 20)
    assert a.train_tasks() == b.train_tasks() and a.test_tasks() == b.test_tasks()
    goals = np.stack([t.array("goal") for t in a.train_tasks() + a.test_tasks()])
    assert np.all(np.abs(goals) <= 1.0) and len(np.unique(goals, axis=0)) == 100
    assert make("point-robot", split_seed=1).train_tasks() != a.train_tasks()


def test_point_robot_reward_is_negative_distance_after_the_clipped_move():
    dist = make("point-robot")
    env = dist.make_env(dist.train_tasks()[0])
    pos, _ = env.reset(seed=0)
    goal = dist.train_tasks()[0].array("goal")
    obs, reward, terminated, truncated, info = env.step(np.array([5.0, -5.0]))
    expected = pos.astype(np.float64) + np.array([0.1, -0.1])
    np.testing.assert_allclose(obs, expected, atol=1e-6)
    assert reward == pytest.approx(-np.linalg.norm(expected - goal), abs=1e-6)
    assert not terminated and not truncated and info["distance"] == pytest.approx(-reward)


def test_point_robot_truncates_at_the_horizon_and_never_terminates():
    env = make("point-robot", horizon=5).make_env()
    env.reset(seed=0)
    flags = [env.step(np.zeros(2))[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_set_task_changes_the_goal_at_once():
    dist = make("point-robot", observe_goal=True)
    env = dist.make_env(dist.train_tasks()[0])
    dist.set_task(env, dist.test_tasks()[1])
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["desired_goal"], dist.test_tasks()[1].array("goal"), atol=1e-6)


def oyster_point_goals(n_tasks: int) -> np.ndarray:
    """oyster PointEnv.__init__ (randomize_tasks), with its global RNG as a RandomState."""
    rng = np.random.RandomState(1337)
    return np.array([[rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)] for _ in range(n_tasks)])


def oyster_sparse_goals(n_tasks: int) -> np.ndarray:
    """oyster SparsePointEnv.__init__: reseeds 1337, then shuffles the half-circle goals."""
    rng = np.random.RandomState(1337)
    angles = np.linspace(0, np.pi, num=n_tasks)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    rng.shuffle(goals)
    return goals


@pytest.mark.parametrize(
    ("family", "oyster_goals", "first_test_goal"),
    [
        # The first test goal (index 80 of 100) printed by oyster's own env class at 44e20fd.
        ("point-robot", oyster_point_goals, [0.79663784, -0.47519509]),
        ("sparse-point-robot", oyster_sparse_goals, [-0.5, 0.8660254]),
    ],
)
def test_oyster_goal_draw_gives_the_authors_train_and_test_goals(
    family, oyster_goals, first_test_goal
):
    dist = make(family, goal_draw="oyster")
    goals = oyster_goals(100)  # oyster: n_tasks 100, train = first 80, test = last 20
    train = np.stack([t.array("goal") for t in dist.train_tasks()])
    test = np.stack([t.array("goal") for t in dist.test_tasks()])
    np.testing.assert_array_equal(train, goals[:80])
    np.testing.assert_array_equal(test, goals[80:])
    np.testing.assert_allclose(test[0], first_test_goal, atol=1e-8)
    assert make(family, goal_draw="oyster", split_seed=5).test_tasks() == dist.test_tasks()
    assert make(family).test_tasks() != dist.test_tasks()


def test_sparse_point_robot_goals_lie_on_the_upper_half_circle():
    dist = make("sparse-point-robot")
    goals = np.stack([t.array("goal") for t in dist.train_tasks() + dist.test_tasks()])
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0)
    assert np.all(goals[:, 1] >= -1e-12) and len(goals) == 100


def test_sparse_reward_is_zero_outside_the_radius_and_dense_plus_one_inside():
    env = make("sparse-point-robot", reward="sparse").make_env()  # starts at the origin
    rewards = []
    for distance in (0.5, 0.2, 0.1, 0.0):
        env.reset(seed=0)
        env.unwrapped.goal = np.array([distance, 0.0])  # type: ignore[attr-defined]
        rewards.append(env.step(np.zeros(2))[1])
    np.testing.assert_allclose(rewards, [0.0, 0.8, 0.9, 1.0])


def test_goal_env_reward_matches_compute_reward_in_batch():
    dist = make("point-robot", observe_goal=True)
    env = dist.make_env()
    obs, _ = env.reset(seed=1)
    obs, reward, *_ = env.step(np.array([0.05, 0.05]))
    batch = env.unwrapped.compute_reward(  # type: ignore[attr-defined]
        np.stack([obs["achieved_goal"]] * 3), np.stack([obs["desired_goal"]] * 3), None
    )
    assert batch.shape == (3,) and np.all(batch == reward)


def test_point_robot_state_round_trip_continues_identically():
    env_a, env_b = make("point-robot").make_env(), make("point-robot").make_env()
    env_a.reset(seed=3)
    env_a.step(np.array([0.1, 0.0]))
    env_b.reset(seed=99)
    env_b.unwrapped.set_state(env_a.unwrapped.get_state())  # type: ignore[attr-defined]
    for _ in range(3):
        a, b = env_a.step(np.array([0.0, 0.1])), env_b.step(np.array([0.0, 0.1]))
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
    np.testing.assert_array_equal(env_a.reset()[0], env_b.reset()[0])  # same RNG stream


def test_bad_options_name_the_key_and_unknown_families_list_valid_names():
    with pytest.raises(ConfigError, match=r"env\.n_train: Input should be greater than or equal"):
        make("point-robot", n_train=0)
    with pytest.raises(ConfigError, match=r"env\.colour: unknown key"):
        make("point-robot", colour="red")
    with pytest.raises(ConfigError, match="valid: sparse-point-robot, point-robot"):
        make("sparse-point-robt")
