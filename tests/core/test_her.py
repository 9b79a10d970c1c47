"""HER relabel arithmetic on hand-built episodes, and the episode index it relies on."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.core.her import HindsightRelabeler
from gmtl_rl.core.records import StepBatch
from gmtl_rl.core.replay import ReplayStorage, UniformSampler

GOAL_SPACE = gym.spaces.Dict(
    {
        "observation": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        "achieved_goal": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        "desired_goal": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
    }
)
ACTION = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
ORIGINAL_GOAL = -1000.0


def step_of(episode: np.ndarray, step: np.ndarray, lengths: dict[int, int]) -> StepBatch:
    """Transitions of several envs at once: env i is at `step[i]` of episode `episode[i]`.

    The achieved goal after step t of episode e is 100 e + t + 1, so a relabelled goal
    tells which step it came from; the original goal is far from every achieved goal.
    """
    n = len(episode)
    achieved = (100 * episode + step).astype(np.float32)[:, None]
    obs = {
        "observation": achieved.copy(),
        "achieved_goal": achieved.copy(),
        "desired_goal": np.full((n, 1), ORIGINAL_GOAL, np.float32),
    }
    next_obs = {**obs, "achieved_goal": achieved + 1, "observation": achieved + 1}
    last = np.array([step[i] == lengths[int(e)] - 1 for i, e in enumerate(episode)])
    return StepBatch(
        obs=obs,
        action=np.zeros((n, 1), np.float32),
        reward=np.full(n, -1.0, np.float32),
        next_obs=next_obs,
        terminated=np.zeros(n, bool),
        truncated=last,
        task_id=np.zeros(n, np.int64),
        task_class=np.zeros(n, np.int64),
        episode_id=np.asarray(episode, np.int64),
        step_index=np.asarray(step, np.int64),
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool),
    )


def reached(achieved: np.ndarray, goal: np.ndarray, info: object) -> np.ndarray:
    """Sparse GoalEnv reward: 0 where the goal is reached, -1 elsewhere."""
    return np.where(np.abs(achieved - goal)[..., 0] < 0.5, 0.0, -1.0)


def interleaved_storage(capacity: int = 100) -> ReplayStorage:
    """Env 0 runs episode 1 (4 steps) then episode 3 (3 steps, unfinished: 2 stored);
    env 1 runs episode 2 (5 steps). Rows interleave as a vector sampler writes them."""
    lengths = {1: 4, 2: 5, 3: 3}
    storage = ReplayStorage(capacity, GOAL_SPACE, ACTION)
    env0 = [(1, 0), (1, 1), (1, 2), (1, 3), (3, 0), (3, 1)]
    env1 = [(2, 0), (2, 1), (2, 2), (2, 3), (2, 4), None]
    for a, b in zip(env0, env1, strict=True):
        pairs = [p for p in (a, b) if p is not None]
        ep, st = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        batch = step_of(ep, st, lengths)
        if b is None:  # env 1 idle this step
            batch = _only_first(batch)
        storage.add(batch)
    return storage


def _only_first(batch: StepBatch) -> StepBatch:
    valid = np.zeros(batch.num_envs, bool)
    valid[0] = True
    return StepBatch(**{**batch.__dict__, "valid": valid})


def rows_of(storage: ReplayStorage, episode: int) -> np.ndarray:
    ids = storage.columns["episode_id"][: storage.size]
    rows = np.flatnonzero(ids == episode)
    return rows[np.argsort(storage.columns["step_index"][rows])]


def test_episode_index_finds_every_step_of_finished_interleaved_episodes():
    storage = interleaved_storage()
    for episode, length in ((1, 4), (2, 5)):
        rows = rows_of(storage, episode)
        assert storage.episodes.length[rows].tolist() == [length] * length
        for t in range(length):
            found = storage.episodes.step_rows(rows, np.full(length, t))
            assert found.tolist() == [rows[t]] * length
    assert storage.episodes.length[rows_of(storage, 3)].tolist() == [0, 0]  # still running


def _relabel_all(storage: ReplayStorage, strategy: str, seed: int = 0, ratio: float = 1.0):
    rows = np.arange(storage.size)
    relabeler = HindsightRelabeler(reached, strategy, ratio)  # type: ignore[arg-type]
    return relabeler(storage, storage.batch(rows), np.random.default_rng(seed))


def test_final_strategy_uses_the_last_achieved_goal_and_recomputes_the_reward():
    storage = interleaved_storage()
    batch = _relabel_all(storage, "final")
    ep = storage.columns["episode_id"][batch.rows]
    goal = batch.obs["desired_goal"][:, 0]
    expected = {1: 100 * 1 + 3 + 1, 2: 100 * 2 + 4 + 1}  # achieved after the last step
    for e, g in expected.items():
        assert np.all(goal[ep == e] == g)
        assert np.all(batch.next_obs["desired_goal"][ep == e, 0] == g)
    # Only the last transition actually reaches the final goal: reward 0 there, -1 before.
    last = storage.columns["step_index"][batch.rows] == np.where(ep == 1, 3, 4)
    finished = ep != 3
    assert batch.reward[finished & last].tolist() == [0.0, 0.0]
    assert np.all(batch.reward[finished & ~last] == -1.0)
    # The running episode is left alone.
    assert np.all(goal[ep == 3] == ORIGINAL_GOAL)


@pytest.mark.parametrize("strategy", ["future", "episode"])
def test_future_and_episode_goals_come_from_the_allowed_steps_of_the_same_episode(strategy):
    storage = interleaved_storage()
    seen: dict[tuple[int, int], set[int]] = {}
    for seed in range(200):
        batch = _relabel_all(storage, strategy, seed)
        ep = storage.columns["episode_id"][batch.rows]
        t = storage.columns["step_index"][batch.rows]
        for e, step, g, r in zip(ep, t, batch.obs["desired_goal"][:, 0], batch.reward, strict=True):
            if e == 3:
                assert g == ORIGINAL_GOAL
                continue
            goal_step = int(g) - 100 * int(e) - 1  # decode which step's achieved goal it is
            seen.setdefault((int(e), int(step)), set()).add(goal_step)
            assert r == (0.0 if goal_step == step else -1.0)
    lengths = {1: 4, 2: 5}
    for (e, step), goal_steps in seen.items():
        low = step if strategy == "future" else 0
        assert goal_steps == set(range(low, lengths[e])), (e, step, goal_steps)


def test_relabel_ratio_sets_the_share_of_relabelled_finished_transitions():
    storage = interleaved_storage()
    finished = np.isin(storage.columns["episode_id"][: storage.size], [1, 2])
    shares = []
    for seed in range(400):
        batch = _relabel_all(storage, "final", seed, ratio=0.8)
        shares.append(np.mean(batch.obs["desired_goal"][finished, 0] != ORIGINAL_GOAL))
    assert abs(np.mean(shares) - 0.8) < 0.02
    untouched = _relabel_all(storage, "future", ratio=0.0)
    assert np.all(untouched.obs["desired_goal"] == ORIGINAL_GOAL)


def test_goals_of_a_partly_overwritten_episode_are_never_taken_from_other_episodes():
    # Capacity 8: the ring has overwritten episode 1's first steps by the end.
    storage = interleaved_storage(capacity=8)
    for seed in range(100):
        batch = _relabel_all(storage, "episode", seed)
        ep = storage.columns["episode_id"][batch.rows]
        g = batch.obs["desired_goal"][:, 0]
        relabelled = g != ORIGINAL_GOAL
        assert np.all((g[relabelled] - 1) // 100 == ep[relabelled])


def test_relabelling_after_save_and_load_matches_the_original(tmp_path: Path):
    storage = interleaved_storage()
    storage.save(tmp_path / "replay.npz")
    loaded = ReplayStorage(100, GOAL_SPACE, ACTION)
    loaded.load(tmp_path / "replay.npz")
    # Add the rest of episode 3 to both: the running episode must finish the same way.
    rest = step_of(np.array([3]), np.array([2]), {3: 3})
    storage.add(rest)
    loaded.add(rest)
    relabeler = HindsightRelabeler(reached, "future", 0.8)
    for seed in range(5):
        rows = UniformSampler().rows(storage, 32, np.random.default_rng(seed))
        a = relabeler(storage, storage.batch(rows), np.random.default_rng(seed))
        b = relabeler(loaded, loaded.batch(rows), np.random.default_rng(seed))
        for key in ("desired_goal", "achieved_goal"):
            np.testing.assert_array_equal(a.obs[key], b.obs[key])
        np.testing.assert_array_equal(a.reward, b.reward)
