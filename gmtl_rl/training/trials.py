"""The trials training loop (RL²): collect whole trials, then update on them.

A trial is K consecutive episodes on one task (`agent.episodes_per_trial`); the sampler
draws each trial's task uniformly from the train tasks and calls `agent.reset` when a trial
starts, so the agent's recurrent state spans the trial. `sampler.n_envs` envs step in
lockstep; the `TrialBuffer` records every step, and once `agent.trials_per_update` trials are
complete (the meta-batch) the agent updates on them. Trials still in flight stay in the buffer
(with envs whose episodes end early, trials differ in length and do not end together) and are
completed by the next iteration's steps.

Agents whose config sets `synchronous_trials` (MAML: every trial of a meta-batch must be
sampled by the parameters it updates) collect in rounds instead: a round hands out exactly
`trials_per_update` trials (`core.trials.RoundSchedule`; envs that finish early idle), the
update follows the round, and the next round restarts every env with a seed derived from the
run seed and the round number (as PEARL's collections do), so no trial straddles an update.

Logging, scheduled evaluation and checkpoints happen between updates; a signal stops after the
current sampler step with a checkpoint that includes the buffer, so a resumed run continues
the trials in flight exactly.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from gmtl_rl.core.policy import Agent, Policy
from gmtl_rl.core.records import UpdateResult
from gmtl_rl.core.schedules import TaskSchedule, UniformTaskSchedule
from gmtl_rl.core.trials import ActRecord, RoundSchedule, TrialBatch, TrialBuffer
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.base import EVAL_COLUMNS, STEP_COLUMNS, TrainingRun


class TrialAgent(Agent, Protocol):
    """An agent updated from whole trials (RL², MAML); its config has `trials_per_update` and
    may set the class attribute `synchronous_trials` (collection in rounds)."""

    last_act: ActRecord | None  # what the last `act` drew, per env

    def update(self, batch: TrialBatch) -> UpdateResult: ...


class TrialRun(TrainingRun):
    """One run of a trial-learning agent (see the module docstring)."""

    def build(self) -> None:
        self.trial_length = self.config.agent.trial_episodes()
        train_tasks = self.distribution.train_tasks()
        agent_config: Any = self.config.agent  # a trial learner's config: trials_per_update
        self.synchronous = bool(getattr(agent_config, "synchronous_trials", False))
        self.rounds = 0  # rounds finished (synchronous collection)
        if not self.for_evaluation:
            rng = np.random.default_rng(self.seeds.tasks)
            self.task_schedule = UniformTaskSchedule(len(train_tasks), rng)
            schedule: TaskSchedule = self.task_schedule
            if self.synchronous:
                n_envs, trials = self.config.sampler.n_envs, agent_config.trials_per_update
                if n_envs > trials:
                    raise ConfigError(
                        f"sampler.n_envs: {n_envs} envs for {trials} trials per round "
                        f"(agent.trials_per_update): {agent_config.name} collects each "
                        f"meta-batch in one round, so at most {trials} envs can run; set "
                        f"sampler.n_envs <= {trials}"
                    )
                schedule = RoundSchedule(self.task_schedule, trials)
            self.make_sampler(train_tasks, schedule, episodes_per_trial=self.trial_length)
        self.agent: TrialAgent = self.build_agent(self.env_spec())
        self.buffer = TrialBuffer(self.config.sampler.n_envs, self.trial_length)
        self.columns = [
            *STEP_COLUMNS, "updates", "train_return", "train_success", "train_length",
            "train_return_first", "train_return_last", "env_instabilities",
            *self.agent.metric_names(), *EVAL_COLUMNS,
        ]  # fmt: skip

    def loop_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"buffer": self.buffer.state_dict()}  # trials in flight go on
        if self.synchronous:
            state["rounds"] = self.rounds
        return state

    def load_loop_state(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        if self.synchronous:
            self.rounds = int(state["rounds"])

    def next_round(self) -> None:
        """Synchronous collection: every env starts a trial of the next round."""
        assert self.sampler is not None
        self.rounds += 1
        seed = np.random.SeedSequence([self.seeds.envs, self.rounds]).generate_state(1)
        schedule = RoundSchedule(self.task_schedule, self.agent.config.trials_per_update)
        self.sampler.restart(schedule, int(seed[0]))

    def eval_policy(self) -> Policy:
        """The agent for Meta-World's protocol, in its evaluation mode where it has one
        (MAML's evaluation inner steps)."""
        enter = getattr(self.agent, "evaluation_mode", None)
        if enter is not None:
            enter()
        return self.agent

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
                if self.synchronous:
                    self.next_round()  # before `periodic`: a checkpoint holds the new round
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
