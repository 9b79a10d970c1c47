"""The sampler: autoreset modes, trial structure, the policy protocol, exact resume."""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.records import StepBatch
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import FixedTaskSchedule, UniformTaskSchedule
from gmtl_rl.envs import make
from gmtl_rl.envs.task import FamilyOptions, Task, TaskDistribution


class CountdownEnv(gym.Env[np.ndarray, np.ndarray]):
    """obs = [task, t]; episode of task k lasts 3 + k steps; terminates on even tasks,
    truncates on odd ones; reward = t after the step."""

    def __init__(self, task: int = 0) -> None:
        self.task = task
        self.observation_space = gym.spaces.Box(-1e6, 1e6, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([self.task, 0], np.float32), {}

    def step(self, action: np.ndarray):
        self.t += 1
        end = self.t >= 3 + self.task
        obs = np.array([self.task, self.t], np.float32)
        info = {"success": float(end)}
        return obs, float(self.t), end and self.task % 2 == 0, end and self.task % 2 == 1, info


class CountdownFamily(TaskDistribution):
    name = "countdown-test"

    def __init__(self, num_tasks: int = 3) -> None:
        super().__init__(FamilyOptions())
        self._tasks = [Task.create(self.name, i, length=3 + i) for i in range(num_tasks)]

    def train_tasks(self) -> list[Task]:
        return list(self._tasks)

    def test_tasks(self) -> list[Task]:
        return list(self._tasks)

    def make_env(self, task: Task | None = None) -> gym.Env:
        return CountdownEnv((task or self._tasks[0]).index)

    def set_task(self, env: gym.Env, task: Task) -> None:
        env.unwrapped.task = task.index  # type: ignore[attr-defined]


class ZeroPolicy(StatelessPolicy):
    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return np.zeros((len(task_class), 1), np.float32)


def _valid_transitions(mode: str, steps: int = 40) -> list[tuple]:
    sampler = RolloutSampler(
        CountdownFamily(),
        CountdownFamily().train_tasks(),
        n_envs=2,
        schedule=UniformTaskSchedule(3, np.random.default_rng(0)),
        seed=0,
        episodes_per_trial=2,
        autoreset_mode=mode,
    )
    out = []
    for _ in range(steps):
        b = sampler.step(ZeroPolicy())
        for i in np.flatnonzero(b.valid):
            out.append(
                (
                    i,
                    tuple(b.obs[i]),
                    float(b.reward[i]),
                    tuple(b.next_obs[i]),
                    bool(b.terminated[i]),
                    bool(b.truncated[i]),
                    int(b.task_id[i]),
                    int(b.step_index[i]),
                    float(b.success[i]),
                )
            )
    return out


def test_next_obs_at_episode_end_is_the_final_observation_not_the_reset_one():
    for row in _valid_transitions("disabled"):
        _, obs, reward, next_obs, term, trunc, task, step, success = row
        assert next_obs[1] == obs[1] + 1 == step + 1  # successor of the same episode
        assert next_obs[0] == obs[0] == task
        assert reward == step + 1
        assert success == float(term or trunc)
        if term or trunc:
            assert next_obs[1] == 3 + task


def test_termination_and_truncation_are_reported_separately():
    rows = _valid_transitions("disabled")
    ends = [(r[6], r[4], r[5]) for r in rows if r[4] or r[5]]
    assert ends and all(
        term == (task % 2 == 0) and trunc == (task % 2 == 1) for task, term, trunc in ends
    )


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_gymnasium_autoreset_mode_yields_the_same_transitions_as_explicit_resets(mode):
    """NEXT_STEP's dummy reset step is dropped; SAME_STEP's final_obs is used as next_obs."""
    reference = _valid_transitions("disabled", steps=60)
    other = _valid_transitions(mode, steps=80)
    per_env = lambda rows, i: [r for r in rows if r[0] == i]  # noqa: E731
    for i in range(2):
        n = min(len(per_env(reference, i)), len(per_env(other, i)))
        assert n > 15
        assert per_env(other, i)[:n] == per_env(reference, i)[:n]


def test_next_step_mode_marks_the_dummy_reset_step_invalid():
    sampler = RolloutSampler(
        CountdownFamily(1),
        CountdownFamily(1).train_tasks(),
        n_envs=1,
        schedule=UniformTaskSchedule(1, np.random.default_rng(0)),
        seed=0,
        episodes_per_trial=5,
        autoreset_mode="next_step",
    )
    valid = [bool(sampler.step(ZeroPolicy()).valid[0]) for _ in range(8)]
    # Episode of 3 steps, then one dummy step, then the next episode.
    assert valid == [True, True, True, False, True, True, True, False]


class RecurrentProbe:
    """A scripted 'RNN': its hidden state counts the steps since the last trial reset."""

    def __init__(self, n: int) -> None:
        self.hidden = np.zeros(n, np.int64)
        self.resets: list[np.ndarray] = []
        self.seen: list[StepBatch] = []
        self.hidden_at_act: list[np.ndarray] = []

    def reset(self, env_mask: np.ndarray) -> None:
        self.resets.append(env_mask.copy())
        self.hidden[env_mask] = 0

    def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        self.hidden_at_act.append(self.hidden.copy())
        return np.zeros((len(task_class), 1), np.float32)

    def observe(self, step: StepBatch) -> None:
        self.seen.append(step)
        self.hidden[step.valid] += 1


def test_recurrent_state_survives_episodes_inside_a_trial_and_resets_between_trials():
    family = CountdownFamily(1)  # every episode lasts 3 steps
    probe = RecurrentProbe(1)
    sampler = RolloutSampler(
        family, family.train_tasks(), 1, UniformTaskSchedule(1, np.random.default_rng(0)), 0,
        episodes_per_trial=2,
    )  # fmt: skip
    for _ in range(12):
        sampler.step(probe)
    # Trial = 2 episodes x 3 steps: the hidden count runs 0..5 then restarts.
    assert [int(h[0]) for h in probe.hidden_at_act] == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]
    assert len(probe.resets) == 2


def test_observe_sees_every_transition_in_order_with_its_task_id():
    family = CountdownFamily(3)
    probe = RecurrentProbe(2)
    sampler = RolloutSampler(
        family, family.train_tasks(), 2, UniformTaskSchedule(3, np.random.default_rng(1)), 0
    )
    for _ in range(30):
        sampler.step(probe)
    for i in range(2):
        rows = [
            (int(b.episode_id[i]), int(b.step_index[i]), int(b.task_id[i]), b.obs[i])
            for b in probe.seen
        ]
        for (ep, step, task, obs), (ep2, step2, _, _) in itertools.pairwise(rows):
            assert obs[0] == task  # the env really runs the task the record names
            assert (ep2 == ep and step2 == step + 1) or (ep2 > ep and step2 == 0)


def test_fixed_schedule_runs_each_queued_trial_once_then_goes_idle():
    family = CountdownFamily(3)
    sampler = RolloutSampler(
        family, family.train_tasks(), 2, FixedTaskSchedule([0, 1, 2, 2]), 0, episodes_per_trial=2
    )
    while not sampler.all_idle:
        sampler.step(ZeroPolicy())
    episodes = sampler.pop_finished()
    assert sorted(e.task_id for e in episodes) == [0, 0, 1, 1, 2, 2, 2, 2]
    assert sorted(e.episode_in_trial for e in episodes) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(e.length == 3 + e.task_id for e in episodes)


def test_sampler_state_round_trip_continues_exactly():
    dist = make("point-robot", n_train=5, n_test=2)
    tasks = dist.train_tasks()

    def build() -> RolloutSampler:
        return RolloutSampler(dist, tasks, 3, UniformTaskSchedule(5, np.random.default_rng(3)), 7)

    class Fixed(StatelessPolicy):
        def act(self, obs: Any, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
            return np.tile(np.array([[0.05, -0.03]], np.float32), (len(task_class), 1))

    a = build()
    for _ in range(27):  # mid-episode (horizon 20)
        a.step(Fixed())
    state = a.state_dict()
    b = build()
    b.load_state_dict(state)
    for _ in range(30):
        x, y = a.step(Fixed()), b.step(Fixed())
        np.testing.assert_array_equal(x.next_obs, y.next_obs)
        np.testing.assert_array_equal(x.reward, y.reward)
        np.testing.assert_array_equal(x.task_id, y.task_id)
        np.testing.assert_array_equal(x.episode_id, y.episode_id)


@pytest.mark.parametrize("mode", ["disabled", "next_step", "same_step"])
@pytest.mark.parametrize("how", ["load_state_dict", "restart", "new"])
def test_first_transition_after_a_reset_starts_from_the_reset_observation(how, mode):
    """The sync vector env (copy=False) overwrites its observation buffer in place on every
    step: a sampler that kept the buffer its reset returned would store next_obs as obs."""
    family = CountdownFamily(3)  # CountdownEnv has no get_state: a resume resets the envs

    def build() -> RolloutSampler:
        schedule = UniformTaskSchedule(3, np.random.default_rng(0))
        return RolloutSampler(
            family, family.train_tasks(), 2, schedule, 0, episodes_per_trial=2,
            autoreset_mode=mode,
        )  # fmt: skip

    sampler = build()
    if how != "new":
        for _ in range(4):  # mid-episode
            sampler.step(ZeroPolicy())
    if how == "load_state_dict":
        state = sampler.state_dict()
        assert state["env_states"] is None
        sampler = build()
        sampler.load_state_dict(state)
    elif how == "restart":
        sampler.restart(UniformTaskSchedule(3, np.random.default_rng(1)), seed=1)
    batch = sampler.step(ZeroPolicy())
    assert batch.valid.all()
    # CountdownEnv: reset obs = [task, 0]; after one step [task, 1].
    np.testing.assert_array_equal(batch.obs, np.stack([batch.task_id, np.zeros(2)], 1))
    np.testing.assert_array_equal(batch.next_obs, np.stack([batch.task_id, np.ones(2)], 1))
    assert not np.shares_memory(batch.obs, batch.next_obs)
