"""The trials training loop (RL²): collect whole trials, then update on them.

A trial is K consecutive episodes on one task (`agent.episodes_per_trial`); the sampler
draws each trial's task uniformly from the train tasks and calls `agent.reset` when a trial
starts, so the agent's recurrent state spans the trial. `sampler.n_envs` envs step in
lockstep; the `TrialBuffer` records every step, and once `agent.trials_per_update` trials are
complete (the meta-batch) the agent updates on them. Trials still in flight stay in the buffer
(with envs whose episodes end early, trials differ in length and do not end together) and are
completed by the next iteration's steps.

Logging, scheduled evaluation and checkpoints happen between updates; a signal stops after the
current sampler step with a checkpoint that includes the buffer, so a resumed run continues
the trials in flight exactly.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from gmtl_rl.core.policy import Agent
from gmtl_rl.core.records import UpdateResult
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.core.trials import ActRecord, TrialBatch, TrialBuffer
from gmtl_rl.training.base import EVAL_COLUMNS, STEP_COLUMNS, TrainingRun


class TrialAgent(Agent, Protocol):
    """An agent updated from whole trials (RL²); its config has `trials_per_update`."""

    last_act: ActRecord | None  # what the last `act` drew, per env

    def update(self, batch: TrialBatch) -> UpdateResult: ...


class TrialRun(TrainingRun):
    """One run of a trial-learning agent (see the module docstring)."""

    def build(self) -> None:
        self.trial_length = self.config.agent.trial_episodes()
        train_tasks = self.distribution.train_tasks()
        if not self.for_evaluation:
            rng = np.random.default_rng(self.seeds.tasks)
            schedule = UniformTaskSchedule(len(train_tasks), rng)
            self.make_sampler(train_tasks, schedule, episodes_per_trial=self.trial_length)
        self.agent: TrialAgent = self.build_agent(self.env_spec())
        self.buffer = TrialBuffer(self.config.sampler.n_envs, self.trial_length)
        self.columns = [
            *STEP_COLUMNS, "updates", "train_return", "train_success", "train_length",
            "train_return_first", "train_return_last", "env_instabilities",
            *self.agent.metric_names(), *EVAL_COLUMNS,
        ]  # fmt: skip

    def loop_state(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict()}  # trials in flight continue after a resume

    def load_loop_state(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])

    def run_loop(self) -> None:
        assert self.sampler is not None
        c = self.counters
        while self.budget_left():
            step = self.sampler.step(self.agent)
            assert self.agent.last_act is not None
            self.buffer.add(step, self.agent.last_act)
            c.env_steps += int(step.valid.sum())
            self.record_episodes(self.sampler.pop_finished())
            self.advance()
            if len(self.buffer.complete) >= self.agent.config.trials_per_update:
                self.record_update(self.agent.update(self.buffer.pop_trials()).metrics())
                self.periodic()
            self.stop_if_signalled()

    def training_metrics(self) -> dict[str, float]:
        """The shared ones, and the adaptation seen in training: episode 1 vs episode K."""
        episodes = self._episode_window
        values = super().training_metrics()
        first = [e.episode_return for e in episodes if e.episode_in_trial == 0]
        last = [e.episode_return for e in episodes if e.episode_in_trial == self.trial_length - 1]
        if first:
            values["train_return_first"] = float(np.mean(first))
        if last:
            values["train_return_last"] = float(np.mean(last))
        return values
