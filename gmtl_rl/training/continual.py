"""The continual training loop (Continual World, Wołczyk et al. 2021): the elements of a task
sequence trained one after another, `sequence.steps_per_task` env steps each, on the
off-policy machinery (sampler, replay, updates).

For element k (continualworld/sac/sac.py, `run` and `_handle_task_change`): the agent's
`start_task(k)` (optimiser reset), an empty replay where its config says (`reset_buffer`),
every env restarted on element k's tasks (CW's ContinualLearningEnv ends the running episode
at a task change), `steps_per_task` env steps of acting, storing and updating with the task
class rewritten to k, then `end_task(k, replay, rng)` (importances, memories, masks) and an
evaluation of every element. With `agent.method: multitask` every element is trained at once
(an element drawn uniformly per episode) for the whole budget, with no task changes.

Files beside the usual ones: sequence.json (the elements and their step windows) and
continual.csv (success and return of every element at every evaluation), which
`gmtl_rl.evaluation.continual` reads.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from gmtl_rl.config import EvalConfig, SequenceConfig
from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import Obs, StepBatch
from gmtl_rl.core.replay import SAMPLERS, ReplaySampler, ReplayStorage
from gmtl_rl.core.schedules import SequenceTaskSchedule
from gmtl_rl.envs.task import Task, TaskDistribution
from gmtl_rl.errors import ConfigError
from gmtl_rl.evaluation.adaptation import AdaptationRow
from gmtl_rl.resources import continual_replay_capacity
from gmtl_rl.training.base import EVAL_COLUMNS, STEP_COLUMNS
from gmtl_rl.training.common import eval_metrics, write_final_eval
from gmtl_rl.training.off_policy import OffPolicyAgent, OffPolicyRun

# Beside the run's other files (gmtl_rl.run_dir does not name them yet).


class ContinualAgent(OffPolicyAgent, Protocol):
    """An off-policy agent that learns a task sequence (cl_sac). Its config has the
    OffPolicyAgent fields plus `method` ("multitask": every element at once), `reset_buffer`
    (an empty replay at each task change), `random_steps_every_task` (`learning_starts`
    random steps at the start of every element, CW's start_steps; else of the run only) and,
    optionally, `update_after` / `update_every` (CW's update timing: from `update_after` steps
    into each element, `update_every` updates every `update_every` steps)."""

    def start_task(self, position: int) -> None:
        """Before the first env step of element `position` (also 0)."""

    def end_task(self, position: int, replay: ReplayStorage, rng: np.random.Generator) -> None:
        """After the element's last env step and update; `replay` holds its transitions."""

    def set_task_progress(self, position: int, step_in_task: int, steps_per_task: int) -> None:
        """Before every collection step."""


@dataclass(frozen=True)
class SequenceElement:
    """One element of the sequence: which family class it trains, on which tasks."""

    position: int
    name: str  # the family's class name (hammer-v3, or "3")
    class_id: int  # the family's class id (the agent is told `position` instead)
    train_tasks: list[Task]
    eval_tasks: list[Task]


def sequence_elements(
    sequence: SequenceConfig, distribution: TaskDistribution, evaluation: EvalConfig
) -> list[SequenceElement]:
    """Each element's train tasks (the train split's tasks of its class) and evaluation tasks
    (those of `eval.split`, at most `eval.max_tasks` spread evenly)."""
    names = distribution.task_class_names()
    train = distribution.train_tasks()
    train_classes = distribution.task_classes(train)
    split = distribution.tasks(evaluation.split)
    split_classes = distribution.task_classes(split)
    elements = []
    for k, class_id in enumerate(sequence.class_ids(distribution)):
        evaluated = [t for t, c in zip(split, split_classes, strict=True) if c == class_id]
        if not evaluated:
            raise ConfigError(
                f"eval.split: {distribution.name}'s {evaluation.split} tasks include none of "
                f"class {names[class_id]} (sequence.tasks[{k}]); set eval.split=train"
            )
        if evaluation.max_tasks is not None and evaluation.max_tasks < len(evaluated):
            spread = np.linspace(0, len(evaluated), evaluation.max_tasks, endpoint=False)
            evaluated = [evaluated[i] for i in spread.astype(int)]
        elements.append(
            SequenceElement(
                position=k,
                name=names[class_id],
                class_id=class_id,
                train_tasks=[t for t, c in zip(train, train_classes, strict=True) if c == class_id],
                eval_tasks=evaluated,
            )
        )
    return elements


class TaskClassPolicy:
    """A policy told task class `position` whatever the sampler says: element `position`'s
    evaluation, on tasks whose family class is another number."""

    def __init__(self, policy: Policy, position: int) -> None:
        self.policy = policy
        self.position = position

    def reset(self, env_mask: np.ndarray) -> None:
        self.policy.reset(env_mask)

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.policy.act(obs, np.full_like(task_class, self.position), deterministic)

    def observe(self, step: StepBatch) -> None:
        self.policy.observe(replace(step, task_class=np.full_like(step.task_class, self.position)))


class ContinualRun(OffPolicyRun):
    """One run of a continual agent over its task sequence."""

    def build(self) -> None:
        sequence = self.config.sequence
        if sequence is None:
            raise ConfigError(f"sequence: missing; agent {self.config.agent.name} needs one")
        self.sequence = sequence
        self.elements = sequence_elements(sequence, self.distribution, self.config.eval)
        self.multitask = getattr(self.config.agent, "method", None) == "multitask"
        # The sampler's task list is every element's tasks in turn (an element repeated in
        # the sequence, CW20, appears twice), each told its element's position as class.
        self.train_tasks = [t for e in self.elements for t in e.train_tasks]
        ends = np.cumsum([len(e.train_tasks) for e in self.elements]).tolist()
        ranges = list(zip([0, *ends[:-1]], ends, strict=True))
        self.schedule = SequenceTaskSchedule(
            ranges,
            np.random.default_rng(self.seeds.tasks),
            element=None if self.multitask else 0,
        )
        if not self.for_evaluation:
            positions = [e.position for e in self.elements for _ in e.train_tasks]
            self.make_sampler(self.train_tasks, self.schedule, task_classes=positions)
        env = self.env_spec()
        self.agent: ContinualAgent = self.build_agent(env)
        missing = [
            m for m in ("start_task", "end_task", "set_task_progress")
            if not callable(getattr(self.agent, m, None))
        ]  # fmt: skip
        if missing:
            raise TypeError(
                f"agent {self.config.agent.name} is registered in the continual family but has "
                f"no {', '.join(missing)} (training.continual.ContinualAgent)"
            )
        self.set_progress = getattr(self.agent, "set_progress", None)
        agent_cfg = self.agent.config
        self.relabel = self._hindsight_relabeler(agent_cfg.her, env.goal_env)
        self.spaces = (env.observation_space, env.action_space)
        self.replay = None if self.for_evaluation else self._empty_replay()
        self.replay_sampler: ReplaySampler = SAMPLERS[agent_cfg.replay_sampler]()
        self.replay_rng = self.generators["replay"] = np.random.default_rng(self.seeds.replay)
        # The methods' own draws (A-GEM's episodic memory) on a stream of their own, so a
        # method never shifts the replay batches of another.
        method_seed = np.random.SeedSequence(self.seeds.replay).spawn(1)[0]
        self.method_rng = self.generators["continual"] = np.random.default_rng(method_seed)
        self.warmup_policy = self.make_warmup_policy(env.action_space)
        self.columns = [
            *STEP_COLUMNS, "updates", "task_position", "train_return", "train_success",
            "train_length", "env_instabilities", "env_worker_restarts",
            *self.agent.metric_names(), *EVAL_COLUMNS,
        ]  # fmt: skip
        # Where the sequence stands (checkpointed): element `position`, started or not yet.
        self.position = 0
        self.task_open = False
        self._last_eval_step = -1
        self._csv_rows = 0
        self._csv_file: Any = None
        self._csv: Any = None

    def num_task_classes(self) -> int:
        # One class per element, its position (CW: a head per element; CW20 has 20).
        return len(self.elements)

    def task_class_names(self) -> tuple[str, ...] | None:
        # Class k is element k (CW20 names each of CW10's classes twice).
        return tuple(e.name for e in self.elements)

    @property
    def task_span(self) -> int:
        """Env steps of one element (multitask: the whole run is one)."""
        return self.config.total_steps if self.multitask else self.sequence.steps_per_task

    def _empty_replay(self) -> ReplayStorage:
        return ReplayStorage(continual_replay_capacity(self.config), *self.spaces)

    def _element_seed(self, position: int) -> int:
        return int(np.random.SeedSequence([self.seeds.envs, position]).generate_state(1)[0])

    # -- loop -----------------------------------------------------------------------------
    def run_loop(self) -> None:
        assert self.sampler is not None and self.replay is not None
        self._open_files()
        c = self.counters
        while self.budget_left():
            if not self.task_open:
                self._start_task(self.position)
            k, span = self.position, self.task_span
            first = k * span
            step = c.env_steps - first  # env steps into element k
            self.agent.set_task_progress(k, step, span)
            if self.set_progress is not None:
                self.set_progress(c.env_steps, self.config.total_steps)
            agent_cfg = self.agent.config
            # CW's start_steps: random actions open every element (else only the run)
            per_task = getattr(agent_cfg, "random_steps_every_task", False)
            random_clock = step if per_task else c.env_steps
            warm = random_clock < agent_cfg.learning_starts
            batch = self.sampler.step(self.warmup_policy if warm else self.agent)
            self.replay.add(batch)
            n = int(batch.valid.sum())
            c.env_steps += n
            self.record_episodes(self.sampler.pop_finished())
            self._owe_updates(step, random_clock, n)
            for _ in range(c.take_whole_updates()):
                self._update(agent_cfg.batch_size)
            if c.env_steps >= first + span:
                self._end_task(k)
            self.advance()
            self.periodic()
            self.stop_if_signalled()

    def _start_task(self, position: int) -> None:
        """CW's `_handle_task_change`: the agent's hook, an empty replay, envs on the new
        element (the sampler began on element 0)."""
        assert self.sampler is not None
        if position > 0 and not self.multitask:
            if getattr(self.agent.config, "reset_buffer", True):
                self.replay = self._empty_replay()
            self.schedule.element = position
            self.sampler.restart(self.schedule, self._element_seed(position))
        self.agent.start_task(position)
        self.task_open = True

    def _end_task(self, position: int) -> None:
        assert self.replay is not None
        if not self.multitask:
            self.agent.end_task(position, self.replay, self.method_rng)
        self.task_open = False
        self.position = position + 1
        if self.counters.env_steps < self.config.total_steps:
            self.evaluate(final=False)  # at every task boundary (the final one follows the end)

    def _owe_updates(self, step: int, random_clock: int, n: int) -> None:
        """Updates owed for the `n` transitions just stored, whose indices on the update clock
        are [clock, clock + n). CW (sac.py, `run`): after storing transition t of a task,
        `update_every` updates if t >= update_after and t % update_every == 0; without
        `update_after`, updates start when the random steps end, one per step (times
        `updates_per_step`) without `update_every`."""
        cfg = self.agent.config
        every = getattr(cfg, "update_every", None) or 1
        after = getattr(cfg, "update_after", None)
        clock = step if after is not None else random_clock
        after = cfg.learning_starts if after is None else after
        low, high = max(clock, after), clock + n
        if high > low:
            bursts = (high - 1) // every - (low - 1) // every
            self.counters.update_debt += bursts * every * cfg.updates_per_step

    def trained_position(self) -> int:
        """The element of the latest env step (multitask: the window it falls in)."""
        steps = self.counters.env_steps
        return min(max(steps - 1, 0) // self.sequence.steps_per_task, len(self.elements) - 1)

    def training_metrics(self) -> dict[str, float]:
        return {**super().training_metrics(), "task_position": self.trained_position()}

    # -- evaluation -----------------------------------------------------------------------
    def element_rows(self) -> list[list[AdaptationRow]]:
        """Every element evaluated on its tasks, acting as its own class (its head)."""
        with self.evaluation_policy() as policy:
            return [
                self.protocol_rows(TaskClassPolicy(policy, e.position), e.eval_tasks)
                for e in self.elements
            ]

    def adaptation_rows(self) -> list[AdaptationRow]:
        return _joined(self.element_rows())

    def evaluate(self, final: bool) -> None:
        c = self.counters
        if not final and c.env_steps == self._last_eval_step:
            return  # the task boundary's evaluation was this step's
        groups = self.element_rows()
        rows = _joined(groups)
        if c.env_steps != self._last_eval_step:
            self._write_csv_row(groups)
        self._last_eval_step = c.env_steps
        self.write_metrics(eval_metrics(rows, self.config.eval.episodes))
        if final:
            write_final_eval(self.config, self.run_dir, c.env_steps, rows)

    # -- files ----------------------------------------------------------------------------
    def _open_files(self) -> None:
        """sequence.json, and continual.csv (cut back to the checkpoint's rows on resume)."""
        span = self.sequence.steps_per_task
        record = {
            "tasks": [
                {
                    "position": e.position,
                    "name": e.name,
                    "class_id": e.class_id,
                    "start_step": e.position * span,
                    "end_step": (e.position + 1) * span,
                }
                for e in self.elements
            ],
            "steps_per_task": span,
            "task_identity": self.sequence.task_identity,
            "method": str(getattr(self.config.agent, "method", self.config.agent.name)),
            "family": self.distribution.name,
        }
        (self.run_dir.sequence).write_text(json.dumps(record, indent=2))
        path = self.run_dir.continual_csv
        header = ["step", "position"]
        for k in range(len(self.elements)):
            header += [f"success_{k}", f"return_{k}"]
        if self.resumed and path.exists():
            with open(path, newline="") as f:
                lines = f.readlines()[: self._csv_rows + 1]
            path.write_text("".join(lines))
            self._csv_rows = max(0, len(lines) - 1)
            self._csv_file = open(path, "a", newline="")  # noqa: SIM115 (kept open for the run)
            self._csv = csv.writer(self._csv_file)
        else:
            self._csv_file = open(path, "w", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._csv_file)
            self._csv.writerow(header)
            self._csv_rows = 0
        self.own(self._csv_file)

    def _write_csv_row(self, groups: Sequence[Sequence[AdaptationRow]]) -> None:
        if self._csv is None:  # evaluating without training (`gmtl eval`)
            return
        k_last = self.config.eval.episodes
        row: list[Any] = [self.counters.env_steps, self.trained_position()]
        for rows in groups:
            last = [r for r in rows if r.episode == k_last]
            row += [
                f"{float(np.mean([r.success for r in last])):.6g}",
                f"{float(np.mean([r.episode_return for r in last])):.6g}",
            ]
        self._csv.writerow(row)
        self._csv_file.flush()
        self._csv_rows += 1

    def flush(self) -> None:
        if self._csv_file is not None and not self._csv_file.closed:
            self._csv_file.flush()

    # -- checkpoints ----------------------------------------------------------------------
    def loop_state(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "task_open": self.task_open,
            "last_eval_step": self._last_eval_step,
            "continual_rows": self._csv_rows,
        }

    def load_loop_state(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
        self.task_open = bool(state["task_open"])
        self._last_eval_step = int(state["last_eval_step"])
        self._csv_rows = int(state["continual_rows"])


def _joined(groups: Sequence[Sequence[AdaptationRow]]) -> list[AdaptationRow]:
    """The elements' rows as one evaluation: task numbers run on from element to element."""
    out: list[AdaptationRow] = []
    offset = 0
    for rows in groups:
        out += [replace(r, task=r.task + offset) for r in rows]
        offset += max((r.task for r in rows), default=-1) + 1
    return out
