"""Batched bit flipping and Four Rooms (issue 15): the same transitions as the per-env path for
the same seeds, in every autoreset mode, across task switches (the Four Rooms goal switch too),
checkpoints and info columns. tests/envs/test_batched.py holds the point robots to the same."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytest
from batched_equality import assert_same_info, assert_same_obs
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.records import Obs, StepBatch
from gmtl_rl.core.rollout import AUTORESET_MODES, RolloutSampler, make_task_env
from gmtl_rl.core.schedules import GoalSwitchSchedule, TaskSchedule, UniformTaskSchedule
from gmtl_rl.envs import make
from gmtl_rl.envs.batched import BatchedTaskEnv
from gmtl_rl.envs.bit_flip import BatchedBitFlip
from gmtl_rl.envs.four_rooms import CELLS, BatchedFourRooms

# family, options: small bit vectors (with and without termination at the goal) and Four Rooms
# with both observations and slips (0: the draws still happen; 1: every move slips).
TERMINATING: dict[str, Any] = {"horizon": 6, "terminate_on_success": True}
CASES: list[tuple[str, dict[str, Any]]] = [
    ("bit-flip", {"n_bits": 4, "n_train": 6, "n_test": 3}),
    ("bit-flip", {"n_bits": 3, "n_train": 5, "n_test": 3, **TERMINATING}),
    ("four-rooms", {"horizon": 9}),
    ("four-rooms", {"horizon": 7, "observation": "onehot", "slip": 0.5}),
    ("four-rooms", {"horizon": 6, "slip": 0.0}),
    ("four-rooms", {"horizon": 6, "slip": 1.0, "observation": "onehot"}),
    # HER's task: a uniform goal drawn by each env's generator at every reset, after the start
    ("bit-flip", {"n_bits": 4, "n_train": 6, "n_test": 3, "goal_sampling": "uniform"}),
]
IDS = [
    "bits", "bits-terminate", "rooms", "rooms-onehot", "rooms-no-slip", "rooms-all-slip",
    "bits-uniform",
]  # fmt: skip
MODES = ["disabled", "next_step", "same_step"]


class SeekingPolicy(StatelessPolicy):
    """Discrete actions that depend on the observation (so a wrong observation changes what
    follows), plus noise from its own seeded generator: bit flip flips the first wrong bit;
    Four Rooms heads for the lower-right room (where the test goals are) through the east
    doorway (the train goal), then wanders in it."""

    def __init__(self, seed: int, noise: float = 0.3) -> None:
        self.rng = np.random.default_rng(seed)
        self.noise = noise

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        n = len(task_class)
        if isinstance(obs, dict):  # bit flip
            wrong = obs["observation"] != obs["desired_goal"]
            action = np.where(wrong.any(axis=1), wrong.argmax(axis=1), 0)
            random = self.rng.integers(wrong.shape[1], size=n)
        else:  # four rooms: the cell index or its one-hot
            cell = obs if obs.ndim == 1 else obs.argmax(axis=1)
            row, col = CELLS[cell, 0], CELLS[cell, 1]
            # 0 up, 1 down, 2 left, 3 right: east, down to the doorway row, through it, up
            ways = [(row < 7) & (col < 6), row < 7, row == 7, col < 7]
            action = np.select(ways, [3, 1, 1, 3], 0)
            random = self.rng.integers(4, size=n)
            inside = (row >= 8) & (col >= 7)
            action = np.where(inside, random, action)
        return np.where(self.rng.random(n) < self.noise, random, action).astype(np.int64)


def sampler(
    family: str,
    options: dict[str, Any],
    backend: str,
    mode: str,
    schedule: TaskSchedule | None = None,
    tasks: list | None = None,
) -> RolloutSampler:
    dist = make(family, **options)
    tasks = tasks or dist.train_tasks() + dist.test_tasks()
    schedule = schedule or UniformTaskSchedule(len(tasks), np.random.default_rng(11))
    return RolloutSampler(
        dist, tasks, 5, schedule, seed=3, episodes_per_trial=2, autoreset_mode=mode,
        backend=backend,
    )  # fmt: skip


def run(s: RolloutSampler, policy: SeekingPolicy, steps: int) -> tuple[list[StepBatch], list]:
    batches = [s.step(policy) for _ in range(steps)]
    return batches, s.pop_finished()


def assert_same(a: list[StepBatch], b: list[StepBatch]) -> None:
    assert len(a) == len(b)
    for step, (x, y) in enumerate(zip(a, b, strict=True)):
        for f in dataclasses.fields(StepBatch):
            left, right = getattr(x, f.name), getattr(y, f.name)
            if isinstance(left, dict):
                assert left.keys() == right.keys()
                for k in left:
                    assert left[k].dtype == right[k].dtype, f"{step} {f.name}.{k}"
                    np.testing.assert_array_equal(left[k], right[k], err_msg=f"{step} {f.name}.{k}")
            else:
                assert np.asarray(left).dtype == np.asarray(right).dtype, f"{step} {f.name}"
                np.testing.assert_array_equal(left, right, err_msg=f"step {step}: {f.name}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
def test_batched_env_gives_the_per_env_transitions(
    family: str, options: dict[str, Any], mode: str
) -> None:
    sync, batched = (sampler(family, options, b, mode) for b in ("sync", "batched"))
    assert isinstance(batched.vec, BatchedTaskEnv) and isinstance(sync.vec, SyncVectorEnv)
    (a, ep_a), (b, ep_b) = run(sync, SeekingPolicy(0), 250), run(batched, SeekingPolicy(0), 250)
    assert_same(a, b)
    assert ep_a == ep_b and len(ep_a) >= 80  # whole episodes, trials and task switches
    assert len({e.task_id for e in ep_a}) > 3
    assert sum(e.success for e in ep_a) >= 3  # the goal is reached: the reward, success (info)
    if family == "four-rooms" or options.get("terminate_on_success"):
        assert sum(bool(x.terminated.any()) for x in a) >= 3  # episodes end at the goal
    assert any(x.truncated.any() for x in a)


def _vector_envs(
    family: str, options: dict[str, Any], mode: AutoresetMode, n: int
) -> tuple[Any, SyncVectorEnv, BatchedTaskEnv]:
    dist = make(family, **options)
    task = dist.train_tasks()[0]
    sync = SyncVectorEnv([lambda: make_task_env(dist, task)] * n, autoreset_mode=mode)
    batched = dist.make_batched_env(n, task, mode)
    assert batched is not None
    return dist, sync, batched


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
def test_vector_steps_and_info_columns_equal_the_single_envs(
    family: str, options: dict[str, Any], mode: str
) -> None:
    """The vector env itself against a SyncVectorEnv of single envs: observations, rewards,
    flags and every info column (`success`, four rooms' `intended`, SAME_STEP's final_obs and
    final_info) with their masks; tasks queued at resets."""
    n, autoreset = 4, AUTORESET_MODES[mode]
    dist, sync, batched = _vector_envs(family, options, autoreset, n)
    tasks = dist.train_tasks() + dist.test_tasks()
    pick = np.random.default_rng(5)

    def queue(rows: np.ndarray) -> None:
        for i in rows:
            pending = (0, tasks[int(pick.integers(len(tasks)))])
            sync.envs[i].pending = pending
            batched.set_pending(int(i), pending)

    queue(np.arange(n))
    seeds: list[int | None] = [7, 8, 9, 10]
    obs_a, _ = sync.reset(seed=seeds)
    obs_b, _ = batched.reset(seed=seeds)
    assert_same_obs(obs_a, obs_b, "reset")
    policy_a, policy_b = SeekingPolicy(4), SeekingPolicy(4)
    ends = 0
    for t in range(60):
        actions = policy_a.act(obs_a, np.zeros(n, np.int64))
        np.testing.assert_array_equal(actions, policy_b.act(obs_b, np.zeros(n, np.int64)))
        obs_a, rew_a, term_a, trunc_a, info_a = sync.step(actions)
        obs_b, rew_b, term_b, trunc_b, info_b = batched.step(actions)
        assert_same_obs(obs_a, obs_b, f"step {t}")
        for x, y, name in [(rew_a, rew_b, "reward"), (term_a, term_b, "terminated")]:
            np.testing.assert_array_equal(x, y, err_msg=f"step {t} {name}")
        np.testing.assert_array_equal(trunc_a, trunc_b, err_msg=f"step {t} truncated")
        assert rew_a.dtype == rew_b.dtype and term_a.dtype == term_b.dtype
        assert_same_info(info_a, info_b, f"step {t}")
        ended = np.flatnonzero(term_a | trunc_a)
        ends += len(ended)
        queue(ended)  # applied at each env's next reset, whichever mode makes it
        if autoreset == AutoresetMode.DISABLED and len(ended):
            mask = np.isin(np.arange(n), ended)
            reset_a, _ = sync.reset(options={"reset_mask": mask})
            reset_b, _ = batched.reset(options={"reset_mask": mask})
            assert_same_obs(reset_a, reset_b, f"reset at {t}")
            obs_a, obs_b = reset_a, reset_b
        for i in range(n):
            assert sync.envs[i].unwrapped.get_state() == batched.get_state(i)  # type: ignore[attr-defined]
    assert ends >= 10


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
def test_a_checkpoint_of_either_path_resumes_on_the_other(
    family: str, options: dict[str, Any]
) -> None:
    batched = sampler(family, options, "batched", "disabled")
    run(batched, SeekingPolicy(1), 13)
    state = copy.deepcopy(batched.state_dict())  # a checkpoint: not the live arrays
    rest = run(batched, SeekingPolicy(2), 40)
    for backend in ("sync", "batched"):
        other = sampler(family, options, backend, "disabled")
        other.load_state_dict(copy.deepcopy(state))
        assert_same(run(other, SeekingPolicy(2), 40)[0], rest[0])
    sync = sampler(family, options, "sync", "disabled")
    run(sync, SeekingPolicy(1), 13)
    resumed = sampler(family, options, "batched", "disabled")
    resumed.load_state_dict(copy.deepcopy(sync.state_dict()))
    assert_same(run(resumed, SeekingPolicy(2), 40)[0], run(sync, SeekingPolicy(2), 40)[0])


@pytest.mark.parametrize("mode", MODES)
def test_the_four_rooms_goal_switch_moves_the_goal_in_both_paths(mode: str) -> None:
    """OnlineRun's goal switch (Bacon et al. 2017): task 0 (the east doorway) for the first
    episodes, then task 1 (a lower-right room cell), queued by the schedule at a reset."""
    options = {"horizon": 8, "goal_switch_episode": 12}
    dist = make("four-rooms", **options)
    tasks = [dist.train_tasks()[0], dist.test_tasks()[0]]
    a, b = (
        sampler("four-rooms", options, backend, mode, GoalSwitchSchedule(12), tasks)
        for backend in ("sync", "batched")
    )
    (steps_a, ep_a), (steps_b, ep_b) = run(a, SeekingPolicy(6), 60), run(b, SeekingPolicy(6), 60)
    assert_same(steps_a, steps_b)
    assert ep_a == ep_b and {e.task_id for e in ep_a} == {0, 1}
    assert isinstance(b.vec, BatchedFourRooms)
    goals = {b.vec.get_state(i)["goal"] for i in range(b.num_envs)}
    assert goals == {tasks[1]["goal"]} == {env.unwrapped.goal for env in a.vec.envs}


@pytest.mark.parametrize(
    ("family", "options", "cls"),
    [
        ("bit-flip", {"n_bits": 5, "n_train": 4, "n_test": 2}, BatchedBitFlip),
        ("four-rooms", {"horizon": 5}, BatchedFourRooms),
        ("four-rooms", {"horizon": 5, "observation": "onehot"}, BatchedFourRooms),
    ],
)
def test_the_batched_backend_works_for_the_discrete_families(
    family: str, options: dict[str, Any], cls: type[BatchedTaskEnv]
) -> None:
    dist = make(family, **options)
    schedule = UniformTaskSchedule(len(dist.train_tasks()), np.random.default_rng(0))
    for backend in ("batched", "auto"):
        s = RolloutSampler(dist, dist.train_tasks(), 3, schedule, seed=0, backend=backend)
        assert isinstance(s.vec, cls) and s.vec.num_envs == 3
        assert s.single_observation_space == dist.make_env().observation_space
        assert s.single_action_space == dist.make_env().action_space
        for _ in range(12):
            batch = s.step(SeekingPolicy(0))
            assert s.vec.observation_space.contains(batch.next_obs)
        assert len(s.pop_finished()) >= 3


def test_the_comparison_sees_a_one_row_difference() -> None:
    """The checks above are sharp: one extra draw in one row's generator (a slip drawn out of
    turn) makes the transitions differ."""
    family, options = CASES[2]
    sync, batched = (sampler(family, options, b, "disabled") for b in ("sync", "batched"))
    assert isinstance(batched.vec, BatchedFourRooms)
    batched.vec.rng(3).random()
    with pytest.raises(AssertionError):
        assert_same(run(sync, SeekingPolicy(0), 40)[0], run(batched, SeekingPolicy(0), 40)[0])
