"""One adaptation trial, recorded step by step: the very trial the evaluator runs.

`record_trial` runs the evaluator's own loop (`run_adaptation`) with its usual tasks,
repeats, envs and seed, and films one trial in it: the first trial (repeat 0) of the chosen
task. The agent's belief is reset once at that trial's start, K episodes follow on its task,
actions are deterministic unless asked otherwise, and env starts and the policy's draws are
the evaluation's own, since every env and trial before and beside it runs as in `gmtl eval`.
So the trial's returns are the (task, repeat 0) rows of an evaluation of the same checkpoint
with the same protocol (`eval/adaptation.csv` for the run's final checkpoint). The evaluation
is stopped as soon as the filmed trial ends. Two thin stand-ins sit between the evaluator and
the run's pieces without changing what happens:
- the policy stand-in passes every call through and notes the filmed trial's steps (and asks
  for a frame of each state its agent acts in and of each episode's final state);
- the family stand-in hands the sampler single envs (a frame needs the env object; a
  family's batched env gives the same transitions, which the batched-env tests hold) and
  tells which env the filmed task is set on.

What an agent exposes is recorded too (`visual.beliefs`): option-critic's active option at
every step; PEARL's posterior q(z | c) after every episode; a bandit baseline's posterior mean
of each arm; VariBAD's belief over goal cells at the trial's start and after every episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import Obs, StepBatch, obs_copy, obs_index
from gmtl_rl.envs.task import Task, TaskDistribution
from gmtl_rl.evaluation.adaptation import run_adaptation
from gmtl_rl.visual.beliefs import Belief, active_option, probe
from gmtl_rl.visual.frames import FrameSource


@dataclass(frozen=True)
class StepRecord:
    """One transition of the trial; `episode` (k) and `step` (t, the step just taken) are
    1-based. Observations are one env's: an array, or a dict of arrays (GoalEnv)."""

    episode: int
    step: int
    obs: Obs  # the observation acted on
    action: np.ndarray
    reward: float
    next_obs: Obs  # the true successor (the final observation at an episode end)
    return_so_far: float  # episode k's return, this step's reward included
    terminated: bool
    truncated: bool
    success: float  # info["success"] of this step (0 where the family defines none)
    option: int | None  # the option in force for this step (option-critic agents)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass(frozen=True)
class FrameInfo:
    """What a frame shows: the state after `step` steps of episode k (0: after the reset)."""

    episode: int
    episodes: int  # K
    step: int
    return_so_far: float
    success: bool  # the episode has reported success at some step so far
    option: int | None
    z_source: str | None  # PEARL: "prior" or "posterior" for this episode


FrameSink = Callable[[np.ndarray, FrameInfo], None]
FrameFactory = Callable[[gym.Env], FrameSource]


@dataclass(frozen=True)
class TrialRecording:
    """A recorded trial: every step of its K episodes, and the beliefs the agent exposed."""

    task: Task
    episodes: int  # K
    steps: list[StepRecord]
    beliefs: list[Belief]
    frames: int = 0  # frames handed to the sink
    alone: bool = False  # the task is not among the evaluated ones: its trial ran by itself

    def episode(self, k: int) -> list[StepRecord]:
        """The steps of episode k (1-based)."""
        return [s for s in self.steps if s.episode == k]

    @property
    def returns(self) -> list[float]:
        """Return of each episode k = 1..K (accumulated as the sampler does)."""
        return [s.return_so_far for s in self.steps if s.done]

    @property
    def successes(self) -> list[bool]:
        """Whether episode k reported success at any step (the Meta-World protocol)."""
        return [any(s.success >= 1.0 for s in self.episode(k)) for k in range(1, self.episodes + 1)]


# Task parameters that only index or key a task, not what it asks of the agent.
_BOOKKEEPING = frozenset({"class_index", "goal_seed", "split", "goal"})


def task_text(task: Task, width: int = 80) -> str:
    """The task's parameters in one short line: `velocity=1.23`, `goal=(0.31, -0.52)`,
    `push-v3 goal #3`, `goal=0110` (bits); long vectors by their length."""
    params = dict(task.params)
    if "env_name" in params:  # Meta-World: the class and which of its goal variations
        return f"{params['env_name']} goal #{params.get('variation', '?')}"
    skip = _BOOKKEEPING if "goal_rc" in params else _BOOKKEEPING - {"goal"}
    # Physics families name MuJoCo arrays (`model.body_mass`): the array's name is enough.
    text = ", ".join(
        f"{k.removeprefix('model.')}={_value_text(v)}" for k, v in params.items() if k not in skip
    )
    return text if len(text) <= width else text[: width - 1] + "…"


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if not isinstance(value, tuple):
        return str(value)
    flat = np.asarray(value, dtype=np.float64).reshape(-1) if _numeric(value) else None
    if flat is None:
        return f"[{len(value)} values]"
    if len(flat) > 3 and np.isin(flat, (0, 1)).all() and np.asarray(value).dtype.kind == "i":
        return "".join(str(int(v)) for v in flat)  # a bit vector
    if len(flat) <= 6 and all(not isinstance(v, tuple) for v in value):
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    return f"[{flat.min():.2g}..{flat.max():.2g}]"  # a long or nested array: its range


def _numeric(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_numeric(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- the stand-ins ------------------------------------------------------------------------------
class _Watch:
    """Which env runs the filmed trial: set when the filmed task is first set on an env."""

    def __init__(self, target: Task) -> None:
        self.target = target
        self.env: int | None = None  # index into the family stand-in's envs
        self.started = False


class _SingleEnvFamily(TaskDistribution):
    """The run's family, handing out single envs; tells `watch` where the filmed task runs."""

    def __init__(self, inner: TaskDistribution, watch: _Watch) -> None:
        super().__init__(inner.options)
        self.inner = inner
        self.watch = watch
        self.name = inner.name  # type: ignore[misc]  # the instance speaks for its family
        self._train, self._test = inner.train_tasks(), inner.test_tasks()
        self.envs: list[gym.Env] = []

    def make_env(self, task: Task | None = None) -> gym.Env:
        env = self.inner.make_env(task)
        self.envs.append(env)
        return env

    def set_task(self, env: gym.Env, task: Task) -> None:
        # The sampler sets an env's task at the reset that starts each trial, in queue order:
        # the first time the filmed task is set, its repeat-0 trial starts in that env.
        self.inner.set_task(env, task)
        if task == self.watch.target and not self.watch.started:
            self.watch.started = True
            self.watch.env = next(
                i for i, e in enumerate(self.envs) if e.unwrapped is env.unwrapped
            )

    # make_batched_env: the base class's None, so the sampler steps `make_env`'s envs.
    @property
    def horizon(self) -> int | None:
        return self.inner.horizon

    @property
    def observes_task(self) -> bool:
        return self.inner.observes_task

    @property
    def num_task_classes(self) -> int:
        return self.inner.num_task_classes

    def task_classes(self, tasks: Sequence[Task]) -> np.ndarray:
        return self.inner.task_classes(tasks)


class _TrialOver(Exception):
    """Raised from `observe` when the filmed trial has ended: the evaluation stops there."""


@dataclass
class _Episode:
    k: int = 1
    step: int = 0
    ret: float = 0.0
    success: bool = False


@dataclass
class _Recorder:
    """The Policy the evaluator drives: the agent's, with the filmed trial's steps noted."""

    policy: Policy
    episodes: int
    family: _SingleEnvFamily
    frames: FrameFactory | None
    sink: FrameSink | None
    every: int
    steps: list[StepRecord] = field(default_factory=list)
    beliefs: list[Belief] = field(default_factory=list)
    frame_count: int = 0
    _episode: _Episode = field(default_factory=_Episode)
    _option: int | None = None  # chosen for the filmed env by the last `act`
    _source: FrameSource | None = None

    def __post_init__(self) -> None:
        self.probe = probe(self.policy)

    @property
    def row(self) -> int | None:
        return self.family.watch.env

    def reset(self, env_mask: np.ndarray) -> None:
        self.policy.reset(env_mask)

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        actions = self.policy.act(obs, task_class, deterministic)
        if self.row is not None:
            self._option = active_option(self.policy, self.row)
            if self._episode.step % self.every == 0:
                self._frame()  # the state this action is taken in
        return actions

    def observe(self, step: StepBatch) -> None:
        self.policy.observe(step)
        i = self.row
        if i is None or not bool(step.valid[i]):  # not filming yet; a NEXT_STEP dummy row
            return
        e = self._episode
        if not self.steps:
            self._note(self.probe.trial_start())  # the belief the trial starts from
        reward = float(step.reward[i])
        e.step += 1
        e.ret += reward  # as the sampler sums it: float32 reward into a float64 return
        e.success |= bool(step.success[i] >= 1.0)
        self.steps.append(
            StepRecord(
                episode=e.k,
                step=e.step,
                obs=obs_copy(obs_index(step.obs, i)),
                action=np.array(step.action[i], copy=True),
                reward=reward,
                next_obs=obs_copy(obs_index(step.next_obs, i)),
                return_so_far=e.ret,
                terminated=bool(step.terminated[i]),
                truncated=bool(step.truncated[i]),
                success=float(step.success[i]),
                option=self._option,
            )
        )
        self.probe.observe(step, i)
        if bool(step.done[i]):
            self._frame()  # the final state, before the sampler resets the env
            self._note(self.probe.episode_end(e.k, i))
            if e.k == self.episodes:
                raise _TrialOver
            self._episode = _Episode(k=e.k + 1)

    def _note(self, belief: Belief | None) -> None:
        if belief is not None:
            self.beliefs.append(belief)

    def _frame(self) -> None:
        if self.sink is None or self.frames is None or self.row is None:
            return
        if self._source is None:
            self._source = self.frames(self.family.envs[self.row])
        e = self._episode
        z_source = self.probe.z_source(e.k)
        info = FrameInfo(e.k, self.episodes, e.step, e.ret, e.success, self._option, z_source)
        self.sink(self._source.render(), info)
        self.frame_count += 1

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def record_trial(
    policy: Policy,
    distribution: TaskDistribution,
    tasks: Sequence[Task],
    task: Task,
    episodes: int,
    seed: int,
    repeats: int = 1,
    n_envs: int = 1,
    deterministic: bool = True,
    frames: FrameFactory | None = None,
    sink: FrameSink | None = None,
    every: int = 1,
) -> TrialRecording:
    """The first trial of `task` in an evaluation of `tasks` (K `episodes` per trial,
    `repeats`, `n_envs`, `seed`: the run's eval settings), step by step.

    A `task` not in `tasks` runs alone (one env, one trial). `frames` makes the frame source
    of the env the trial runs in; `sink` receives each frame with what it shows: the state
    every `every` steps of an episode (its reset state first) and each episode's final state.
    `policy` is the agent in its evaluation mode (a run's `evaluation_policy()`).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    alone = task not in tasks
    if alone:
        tasks, repeats, n_envs = [task], 1, 1
    watch = _Watch(task)
    family = _SingleEnvFamily(distribution, watch)
    recorder = _Recorder(policy, episodes, family, frames, sink, every)
    try:
        run_adaptation(recorder, family, tasks, episodes, repeats, n_envs, seed, deterministic)
    except _TrialOver:
        pass  # the filmed trial is complete: the rest of the evaluation is not needed
    else:
        raise RuntimeError(f"the evaluation ended without a complete trial of task {task}")
    finally:
        recorder.close()
    return TrialRecording(
        task=task,
        episodes=episodes,
        steps=recorder.steps,
        beliefs=recorder.beliefs,
        frames=recorder.frame_count,
        alone=alone,
    )
