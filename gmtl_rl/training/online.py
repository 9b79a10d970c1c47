"""The online training loop (option-critic, flat actor-critic): the agent learns inside
`observe`, one update per transition, so the loop only steps the sampler, records every
episode, moves the goal when the family says so, logs and checkpoints.

Four Rooms (Bacon et al. 2017): the first `goal_switch_episode` episodes run on the train
task (the east doorway), every later one on the first test task (a lower-right room cell).
Families without a goal switch draw a train task uniformly per episode.
Episodes are written to `episodes.csv`; the episodes after the switch are the run's
adaptation curve (`eval/`): the new goal is a new task, and episode k after the switch is
point k of the curve, so recovery is measured like any other adaptation.
"""

from __future__ import annotations

import csv
from typing import Any, Protocol

import numpy as np

from gmtl_rl.core.policy import Agent
from gmtl_rl.core.records import EpisodeRecord
from gmtl_rl.core.schedules import GoalSwitchSchedule, TaskSchedule, UniformTaskSchedule
from gmtl_rl.evaluation.adaptation import AdaptationRow
from gmtl_rl.training.base import STEP_COLUMNS, TrainingRun

EPISODE_COLUMNS = ["episode", "env_step", "task", "goal_switched", "length", "return", "success"]


class OnlineAgent(Agent, Protocol):
    """An agent that learns inside `observe`, one update per transition (option-critic)."""

    training: bool

    def pop_metrics(self) -> dict[str, float]:
        """The metrics of its latest update (for the next metrics row)."""
        ...


class OnlineRun(TrainingRun):
    """One run of an online agent (see the module docstring)."""

    logs_evaluations = False  # the curve is the episodes after the goal switch

    def build(self) -> None:
        switch = self.distribution.goal_switch_episode
        self.switch_after: int | None = int(switch) if switch else None
        schedule: TaskSchedule
        if self.switch_after is not None:  # Four Rooms: the train goal, then a moved goal
            self.tasks = [self.distribution.train_tasks()[0], self.distribution.test_tasks()[0]]
            schedule = GoalSwitchSchedule(self.switch_after)
        else:  # any other family: a uniformly drawn train task per episode
            self.tasks = self.distribution.train_tasks()
            schedule = UniformTaskSchedule(len(self.tasks), np.random.default_rng(self.seeds.tasks))
        if not self.for_evaluation:
            self.make_sampler(self.tasks, schedule)
        self.agent: OnlineAgent = self.build_agent(self.env_spec())
        self.columns = [
            *STEP_COLUMNS, "train_return", "train_success", "train_length",
            *self.agent.metric_names(),
        ]  # fmt: skip
        self._episodes_file: Any = None

    @property
    def progress_unit(self) -> str:
        return "steps" if self.config.total_episodes is None else "episodes"

    @property
    def progress_total(self) -> int:
        cfg = self.config
        return cfg.total_steps if cfg.total_episodes is None else cfg.total_episodes

    def progress_count(self) -> int:
        c = self.counters
        return c.env_steps if self.config.total_episodes is None else c.episodes

    # -- state: tabular agents keep numpy arrays, so the agent goes to the JSON/array side ----
    def agent_tensors(self) -> dict[str, Any]:
        return {}

    def load_agent_tensors(self, tree: dict[str, Any]) -> None:
        del tree

    def loop_state(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict()}

    def load_loop_state(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])

    def update_means(self) -> dict[str, float]:
        return self.agent.pop_metrics()

    def flush(self) -> None:
        if self._episodes_file is not None:
            self._episodes_file.flush()

    # -- loop -----------------------------------------------------------------------------
    def run_loop(self) -> None:
        assert self.sampler is not None
        c = self.counters
        self._episodes_file = self._open_episodes()
        writer = csv.writer(self._episodes_file)
        self.agent.training = True
        try:
            while self.budget_left():
                batch = self.sampler.step(self.agent)
                c.env_steps += int(batch.valid.sum())
                for episode in self.sampler.pop_finished():
                    self.record_episodes([episode])
                    writer.writerow(self._episode_row(episode))
                self.advance()
                self.periodic()
                self.stop_if_signalled()
            self.write_metrics()
        finally:
            self._episodes_file.close()
            self._episodes_file = None

    def _open_episodes(self) -> Any:
        path = self.run_dir.episodes
        if self.resumed and path.exists():
            # Keep exactly the episodes the checkpoint has seen.
            lines = path.read_text().splitlines(keepends=True)[: self.counters.episodes + 1]
            path.write_text("".join(lines))
            return open(path, "a", newline="")
        f = open(path, "w", newline="")  # noqa: SIM115 (kept open for the run)
        csv.writer(f).writerow(EPISODE_COLUMNS)
        return f

    def _episode_row(self, episode: EpisodeRecord) -> list[Any]:
        switched = int(episode.task_id == 1)
        return [self.counters.episodes, self.counters.env_steps, episode.task_id, switched,
                episode.length, f"{episode.episode_return:.6g}", int(episode.success)]  # fmt: skip

    # -- evaluation -----------------------------------------------------------------------
    def adaptation_rows(self) -> list[AdaptationRow]:
        """After a goal switch: the episodes on the new goal (k = 1, 2, ...). Otherwise (no
        switch, or the budget ended before it) the standard protocol on the eval split, with
        learning frozen."""
        if self.switch_after is not None:
            rows = self._recovery_rows()
            if rows:
                return rows
        return super().adaptation_rows()

    def _recovery_rows(self) -> list[AdaptationRow]:
        path = self.run_dir.episodes
        if not path.exists():
            return []
        with open(path, newline="") as f:
            after = [r for r in csv.DictReader(f) if r["goal_switched"] == "1"]
        task = self.tasks[-1]
        return [
            AdaptationRow(
                run=self.run_dir.name,
                seed=self.config.seed,
                task=0,
                task_index=task.index,
                repeat=0,
                episode=k,
                episode_return=float(r["return"]),
                success=float(r["success"]),
                length=int(r["length"]),
            )
            for k, r in enumerate(after, start=1)
        ]
