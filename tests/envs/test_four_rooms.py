"""Option-critic Four Rooms and the MiniGrid FourRooms family."""

from __future__ import annotations

import numpy as np
import pytest

from gmtl_rl.envs import four_rooms, make
from gmtl_rl.envs.four_rooms import CELLS, TRANSITIONS, WALLS, FourRoomsEnv


def test_layout_has_104_free_cells_and_walls_block_moves():
    assert WALLS.shape == (13, 13) and len(CELLS) == 104 == int((~WALLS).sum())
    corner = four_rooms.CELL_INDEX[(1, 1)]
    assert TRANSITIONS[corner, 0] == corner and TRANSITIONS[corner, 2] == corner  # up, left
    assert tuple(CELLS[TRANSITIONS[corner, 1]]) == (2, 1)  # down
    assert tuple(CELLS[TRANSITIONS[corner, 3]]) == (1, 2)  # right
    for cell, nxt in zip(CELLS, CELLS[TRANSITIONS], strict=True):  # moves are at most one cell
        assert np.abs(nxt - cell).sum(axis=1).max() <= 1 and not WALLS[nxt[:, 0], nxt[:, 1]].any()


def test_intended_move_is_taken_about_two_thirds_of_the_time():
    env = FourRoomsEnv(horizon=10**6)
    env.reset(seed=0)
    intended = [env.step(i % 4)[4]["intended"] for i in range(6000)]
    assert np.mean(intended) == pytest.approx(2 / 3, abs=0.03)


def test_slipped_moves_go_uniformly_to_the_other_three_directions():
    env = FourRoomsEnv(slip=1.0, horizon=10**6)
    env.reset(seed=0)
    center = four_rooms.CELL_INDEX[(3, 3)]
    moves = []
    for _ in range(3000):
        env.set_state({**env.get_state(), "cell": center})
        moves.append(int(env.step(0)[0]) - center)  # up never happens with slip = 1
    _, counts = np.unique(moves, return_counts=True)
    assert len(counts) == 3 and np.all(np.abs(counts / 3000 - 1 / 3) < 0.04)


def test_reaching_the_goal_gives_reward_one_and_terminates():
    env = FourRoomsEnv(slip=0.0)
    env.reset(seed=0)
    env.set_state({**env.get_state(), "cell": four_rooms.CELL_INDEX[(6, 9)]})
    obs, reward, terminated, truncated, info = env.step(1)  # down into the east doorway
    assert obs == four_rooms.EAST_DOORWAY == 62
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, 1.0)


def test_start_is_never_the_goal_and_horizon_truncates():
    env = FourRoomsEnv(slip=0.0, horizon=3)
    starts = {int(env.reset(seed=s)[0]) for s in range(300)}
    assert env.goal not in starts and len(starts) > 90
    env.reset(seed=0)
    env.set_state({**env.get_state(), "cell": four_rooms.CELL_INDEX[(1, 1)]})
    assert [env.step(0)[2:4] for _ in range(3)] == [(False, False)] * 2 + [(False, True)]


def test_train_task_is_the_east_doorway_and_test_tasks_the_lower_right_room():
    dist = make("four-rooms")
    assert [t["goal"] for t in dist.train_tasks()] == [62]
    assert dist.train_tasks()[0]["goal_rc"] == (7, 9)
    cells = {t["goal_rc"] for t in dist.test_tasks()}
    assert cells == {(r, c) for r in range(8, 12) for c in range(7, 12)}
    assert dist.goal_switch_episode == 1000 and dist.horizon == 1000


def test_test_task_order_is_seeded():
    assert make("four-rooms").test_tasks() == make("four-rooms").test_tasks()
    assert make("four-rooms", split_seed=1).test_tasks() != make("four-rooms").test_tasks()


def test_onehot_observation_matches_the_index_observation():
    index_env = make("four-rooms").make_env()
    onehot_env = make("four-rooms", observation="onehot").make_env()
    i, _ = index_env.reset(seed=3)
    x, _ = onehot_env.reset(seed=3)
    assert x.dtype == np.float32 and x.shape == (104,) and x.sum() == 1.0 and x[i] == 1.0
    for a in [0, 1, 2, 3, 3, 1]:
        i, x = index_env.step(a)[0], onehot_env.step(a)[0]
        assert int(np.argmax(x)) == int(i)


def test_set_task_moves_the_goal():
    dist = make("four-rooms")
    env = dist.make_env()
    dist.set_task(env, dist.test_tasks()[0])
    assert env.unwrapped.goal == dist.test_tasks()[0]["goal"]


def test_state_round_trip_continues_identically():
    env = make("four-rooms").make_env()
    env.reset(seed=1)
    for a in range(5):
        env.step(a % 4)
    state = env.get_state()
    first = [env.step(a % 4)[:4] for a in range(30)]
    env.set_state(state)
    assert [env.step(a % 4)[:4] for a in range(30)] == first


def test_minigrid_family_builds_and_steps_with_flat_float_observations():
    dist = make("minigrid-four-rooms", horizon=5)
    env = dist.make_env(dist.train_tasks()[0])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (147,) and obs.dtype == np.float32 and obs in env.observation_space
    flags = [env.step(2)[2:4] for _ in range(5)]  # action 2 = forward
    assert flags[-1][0] or flags[-1][1]


def _layout(env):
    env.reset()
    inner = env.unwrapped
    return inner.grid.encode().tobytes(), tuple(inner.agent_pos), inner.agent_dir


def test_minigrid_tasks_change_the_layout_deterministically():
    dist = make("minigrid-four-rooms")
    a, b = dist.train_tasks()[:2]
    env = dist.make_env(a)
    first = _layout(env)
    assert _layout(env) == first == _layout(dist.make_env(a))
    dist.set_task(env, b)
    assert _layout(env) != first
    assert make("minigrid-four-rooms").train_tasks() == dist.train_tasks()


def test_minigrid_trains_through_the_loop(tmp_path):
    """The sampler wraps each env (NumericalGuard): set_task must find the layout layer inside
    the chain, as a whole `gmtl train` on the family shows."""
    from gmtl_rl.cli import main

    config = tmp_path / "dqn_minigrid.yaml"
    config.write_text(
        "total_steps: 60\nthreads: 1\n"
        "env: {name: minigrid-four-rooms, horizon: 10, n_train: 3, n_test: 2}\n"
        "agent: {name: dqn, hidden: [16], learning_starts: 20}\n"
        "sampler: {n_envs: 2}\neval: {n_envs: 2}\n"
        "checkpoint: {every_steps: 0}\nlogging: {every_steps: 20, tensorboard: false}\n"
    )
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "eval" / "summary.json").is_file()
