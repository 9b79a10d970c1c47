import os

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.core.records import StepBatch
from gmtl_rl.core.replay import ReplayStorage, TaskBalancedSampler, UniformSampler
from gmtl_rl.errors import CheckpointError

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
GOAL_OBS = gym.spaces.Dict(
    {
        "observation": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
        "achieved_goal": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        "desired_goal": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
    }
)
ACTION = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def _obs(space: gym.Space, uid: np.ndarray, offset: float) -> np.ndarray | dict:
    """Observations whose every entry encodes the row's uid, so rows are identifiable."""
    if isinstance(space, gym.spaces.Dict):
        return {
            key: np.tile((uid + offset + 0.1 * i)[:, None], sub.shape).astype(np.float32)
            for i, (key, sub) in enumerate(space.spaces.items())
        }
    return np.tile((uid + offset)[:, None], space.shape).astype(np.float32)


def make_step(
    uids, tasks, valid=None, space: gym.Space = BOX_OBS, step_index=None, classes=None
) -> StepBatch:
    """A StepBatch whose row i is transition `uids[i]` (stored in episode_id and reward);
    task classes equal the task ids unless given."""
    uid = np.asarray(uids, np.int64)
    n = len(uid)
    return StepBatch(
        obs=_obs(space, uid, 0.0),
        action=np.tile((uid / 1000.0)[:, None], (1, 2)).astype(np.float32),
        reward=uid.astype(np.float32),
        next_obs=_obs(space, uid, 0.5),
        terminated=uid % 3 == 0,
        truncated=uid % 5 == 0,
        task_id=np.asarray(tasks, np.int64),
        task_class=np.asarray(tasks if classes is None else classes, np.int64),
        episode_id=uid,
        step_index=np.zeros(n, np.int64) if step_index is None else np.asarray(step_index),
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool) if valid is None else np.asarray(valid, bool),
    )


def insertion_order(storage: ReplayStorage) -> np.ndarray:
    """Storage rows, oldest first (computed from the public write position)."""
    if storage.size < storage.capacity:
        return np.arange(storage.size)
    return (storage.pos + np.arange(storage.capacity)) % storage.capacity


def fill_randomly(storage: ReplayStorage, rng: np.random.Generator, adds: int, n_tasks: int = 5):
    """Random adds of 1-6 envs with random tasks and validity; returns the last uid used."""
    uid = 0
    for _ in range(adds):
        n = int(rng.integers(1, 7))
        tasks = rng.integers(n_tasks, size=n)
        valid = rng.random(n) < 0.8
        storage.add(make_step(np.arange(uid, uid + n), tasks, valid, storage_space(storage)))
        uid += n
    return uid


def storage_space(storage: ReplayStorage) -> gym.Space:
    return BOX_OBS if storage.obs_keys is None else GOAL_OBS


def test_rows_with_valid_false_are_never_stored():
    storage = ReplayStorage(10, BOX_OBS, ACTION)
    storage.add(make_step([0, 1, 2, 3], [0, 1, 0, 1], valid=[True, False, True, False]))
    storage.add(make_step([4, 5], [0, 0], valid=[False, False]))

    assert storage.size == 2
    assert storage.columns["episode_id"][: storage.size].tolist() == [0, 2]
    assert storage.tasks() == [0]


def test_ring_overwrite_keeps_the_newest_capacity_rows_in_order():
    storage = ReplayStorage(5, BOX_OBS, ACTION)
    for start in range(0, 12, 3):
        storage.add(make_step(np.arange(start, start + 3), [0, 0, 0]))

    order = insertion_order(storage)
    assert storage.size == 5
    assert storage.columns["episode_id"][order].tolist() == [7, 8, 9, 10, 11]
    np.testing.assert_array_equal(storage.columns["obs"][order][:, 0], [7, 8, 9, 10, 11])


def test_add_that_wraps_past_capacity_drops_overwritten_rows_from_task_index():
    storage = ReplayStorage(4, BOX_OBS, ACTION)
    storage.add(make_step([0, 1, 2], [0, 0, 0]))
    storage.add(make_step([3, 4], [1, 1]))  # fills row 3, then overwrites row 0 (task 0)

    assert sorted(storage.task_index.ordered(0).tolist()) == [1, 2]
    assert storage.task_index.ordered(1).tolist() == [3, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_task_index_matches_brute_force_after_random_overwrites(seed):
    rng = np.random.default_rng(seed)
    storage = ReplayStorage(37, BOX_OBS, ACTION)
    for _ in range(200):
        fill_randomly(storage, rng, adds=1)
        task_id = storage.columns["task_id"][: storage.size]
        assert storage.tasks() == sorted(np.unique(task_id).tolist())
        for t in range(5):
            indexed = storage.task_index.ordered(t) if t in storage.tasks() else []
            assert sorted(indexed) == np.flatnonzero(task_id == t).tolist()


def test_recent_rows_are_the_tasks_newest_rows_oldest_first():
    rng = np.random.default_rng(1)
    storage = ReplayStorage(29, BOX_OBS, ACTION)
    fill_randomly(storage, rng, adds=100)
    order = insertion_order(storage)

    for t in storage.tasks():
        task_rows = order[storage.columns["task_id"][order] == t]
        for n in (1, 3, len(task_rows), len(task_rows) + 10):
            assert storage.recent_rows(t, n).tolist() == task_rows[-n:].tolist()


@pytest.mark.parametrize("batch_size", [7, 12, 64])
def test_task_balanced_batch_has_an_equal_share_of_each_stored_task(batch_size):
    rng = np.random.default_rng(2)
    storage = ReplayStorage(41, BOX_OBS, ACTION)
    fill_randomly(storage, rng, adds=80, n_tasks=5)
    tasks = storage.tasks()

    rows = TaskBalancedSampler().rows(storage, batch_size, rng)

    assert len(rows) == batch_size
    assert np.all((rows >= 0) & (rows < storage.size))
    counts = np.array([np.sum(storage.columns["task_id"][rows] == t) for t in tasks])
    assert counts.sum() == batch_size
    assert set(counts.tolist()) <= {batch_size // len(tasks), batch_size // len(tasks) + 1}


def test_task_balanced_batch_gives_a_rare_task_its_full_share():
    storage = ReplayStorage(100, BOX_OBS, ACTION)
    storage.add(make_step(np.arange(60), np.zeros(60)))
    storage.add(make_step([60], [1]))

    rows = TaskBalancedSampler().rows(storage, 10, np.random.default_rng(0))

    assert np.sum(storage.columns["task_id"][rows] == 1) == 5
    assert np.all(rows[storage.columns["task_id"][rows] == 1] == 60)


def test_task_balanced_batch_balances_task_classes_not_tasks():
    # Meta-World shape: class 0 has three goal tasks, class 1 one; the classes get equal
    # shares, and within class 0 rows come from all of its tasks.
    storage = ReplayStorage(200, BOX_OBS, ACTION)
    tasks = np.repeat([0, 1, 2, 3], 30)
    storage.add(make_step(np.arange(120), tasks, classes=np.where(tasks < 3, 0, 1)))

    rows = TaskBalancedSampler().rows(storage, 600, np.random.default_rng(0))

    classes = storage.columns["task_class"][rows]
    assert np.sum(classes == 0) == np.sum(classes == 1) == 300
    assert set(storage.columns["task_id"][rows[classes == 0]].tolist()) == {0, 1, 2}


def test_class_index_matches_brute_force_after_random_overwrites():
    rng = np.random.default_rng(3)
    storage = ReplayStorage(23, BOX_OBS, ACTION)
    for uid in range(0, 400, 4):
        tasks = rng.integers(6, size=4)
        storage.add(make_step(np.arange(uid, uid + 4), tasks, classes=tasks // 2))
        task_class = storage.columns["task_class"][: storage.size]
        for c in range(3):
            indexed = storage.class_index.ordered(c) if c in storage.class_index.tasks() else []
            assert sorted(indexed) == np.flatnonzero(task_class == c).tolist()


def test_uniform_sampling_from_an_empty_replay_raises_value_error():
    storage = ReplayStorage(8, BOX_OBS, ACTION)
    with pytest.raises(ValueError, match="empty"):
        UniformSampler().rows(storage, 4, np.random.default_rng(0))


def test_task_balanced_sampling_from_an_empty_replay_raises_value_error():
    storage = ReplayStorage(8, BOX_OBS, ACTION)
    with pytest.raises(ValueError, match="empty"):
        TaskBalancedSampler().rows(storage, 4, np.random.default_rng(0))


def test_uniform_sampler_draws_only_filled_rows():
    storage = ReplayStorage(50, BOX_OBS, ACTION)
    storage.add(make_step(np.arange(7), np.zeros(7)))

    rows = UniformSampler().rows(storage, 500, np.random.default_rng(0))

    assert len(rows) == 500
    assert set(rows.tolist()) == set(range(7))


def test_dict_observations_round_trip_through_batch():
    storage = ReplayStorage(10, GOAL_OBS, ACTION)
    step = make_step([3, 4, 5], [0, 1, 2], space=GOAL_OBS)
    storage.add(step)

    batch = storage.batch(np.array([2, 0]))

    assert isinstance(batch.obs, dict) and isinstance(batch.next_obs, dict)
    assert set(batch.obs) == set(batch.next_obs) == set(GOAL_OBS.spaces)
    for key in GOAL_OBS.spaces:
        np.testing.assert_array_equal(batch.obs[key], step.obs[key][[2, 0]])
        np.testing.assert_array_equal(batch.next_obs[key], step.next_obs[key][[2, 0]])
    np.testing.assert_array_equal(batch.task_id, [2, 0])
    np.testing.assert_array_equal(batch.reward, [5.0, 3.0])


def assert_batches_equal(a, b):
    for field in ("action", "reward", "terminated", "task_id"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for field in ("obs", "next_obs"):
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, dict):
            assert set(x) == set(y)
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
        else:
            np.testing.assert_array_equal(x, y)


@pytest.fixture(params=["box", "dict"])
def saved_replay(request, tmp_path):
    """A wrapped-around replay (Box or Dict observations) and the .npz it was saved to."""
    space = BOX_OBS if request.param == "box" else GOAL_OBS
    storage = ReplayStorage(23, space, ACTION)
    next_uid = fill_randomly(storage, np.random.default_rng(3), adds=40)
    path = tmp_path / "replay.npz"
    storage.save(path)
    return storage, path, next_uid


def test_save_then_load_reproduces_every_column_and_the_size(saved_replay):
    original, path, _ = saved_replay
    loaded = ReplayStorage(original.capacity, storage_space(original), ACTION)
    loaded.load(path)

    assert loaded.size == original.size
    for key, column in original.columns.items():
        np.testing.assert_array_equal(
            loaded.columns[key][insertion_order(loaded)], column[insertion_order(original)]
        )


def test_adding_after_load_matches_adding_to_the_original(saved_replay):
    original, path, uid = saved_replay
    space = storage_space(original)
    loaded = ReplayStorage(original.capacity, space, ACTION)
    loaded.load(path)

    for storage in (original, loaded):
        rng = np.random.default_rng(4)
        for start in range(uid, uid + 15, 3):
            storage.add(
                make_step(np.arange(start, start + 3), rng.integers(5, size=3), space=space)
            )

    newest = original.capacity
    assert_batches_equal(
        loaded.batch(insertion_order(loaded)[-newest:]),
        original.batch(insertion_order(original)[-newest:]),
    )


def test_load_rebuilds_the_task_index(saved_replay):
    original, path, _ = saved_replay
    loaded = ReplayStorage(original.capacity, storage_space(original), ACTION)
    loaded.load(path)

    assert loaded.tasks() == original.tasks()
    for t in original.tasks():
        # Same transitions (identified by episode_id) in the same order; rows differ.
        assert (
            loaded.columns["episode_id"][loaded.recent_rows(t, original.capacity)].tolist()
            == original.columns["episode_id"][original.recent_rows(t, original.capacity)].tolist()
        )


def test_load_into_smaller_capacity_raises_checkpoint_error(saved_replay):
    original, path, _ = saved_replay
    smaller = ReplayStorage(original.size - 1, storage_space(original), ACTION)
    with pytest.raises(CheckpointError, match="capacity"):
        smaller.load(path)


def test_load_with_other_observation_columns_raises_checkpoint_error(tmp_path):
    box = ReplayStorage(8, BOX_OBS, ACTION)
    box.add(make_step([0, 1], [0, 0]))
    box.save(tmp_path / "replay.npz")

    with pytest.raises(CheckpointError, match="columns"):
        ReplayStorage(8, GOAL_OBS, ACTION).load(tmp_path / "replay.npz")


def test_load_with_other_observation_shape_raises_checkpoint_error(tmp_path):
    box = ReplayStorage(8, BOX_OBS, ACTION)
    box.add(make_step([0, 1], [0, 0]))
    box.save(tmp_path / "replay.npz")

    wider = ReplayStorage(8, gym.spaces.Box(-1, 1, (4,), np.float32), ACTION)
    with pytest.raises(CheckpointError, match="'obs'"):
        wider.load(tmp_path / "replay.npz")


def test_load_with_wrong_column_dtype_raises_checkpoint_error(tmp_path):
    box = ReplayStorage(8, BOX_OBS, ACTION)
    box.add(make_step([0, 1], [0, 0]))
    box.save(tmp_path / "replay.npz")
    with np.load(tmp_path / "replay.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["col.reward"] = arrays["col.reward"].astype(np.float64)
    np.savez(tmp_path / "replay.npz", **arrays)

    with pytest.raises(CheckpointError, match="'reward'"):
        ReplayStorage(8, BOX_OBS, ACTION).load(tmp_path / "replay.npz")


def test_load_of_a_file_that_is_not_npz_raises_checkpoint_error(tmp_path):
    (tmp_path / "replay.npz").write_bytes(b"not a replay file")
    with pytest.raises(CheckpointError, match="not a readable replay file"):
        ReplayStorage(8, BOX_OBS, ACTION).load(tmp_path / "replay.npz")


class _RunsShellOnUnpickle:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_load_refuses_a_pickled_object_array_without_running_it(tmp_path):
    box = ReplayStorage(8, BOX_OBS, ACTION)
    box.add(make_step([0, 1], [0, 0]))
    box.save(tmp_path / "replay.npz")
    with np.load(tmp_path / "replay.npz") as data:
        arrays = {k: data[k] for k in data.files}
    marker = tmp_path / "pwned"
    evil = np.empty(2, dtype=object)
    evil[:] = [_RunsShellOnUnpickle(marker), _RunsShellOnUnpickle(marker)]
    arrays["col.reward"] = evil
    np.savez(tmp_path / "replay.npz", **arrays)  # object arrays are pickled inside the .npz

    with pytest.raises(CheckpointError):
        ReplayStorage(8, BOX_OBS, ACTION).load(tmp_path / "replay.npz")
    assert not marker.exists()
