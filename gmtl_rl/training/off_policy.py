"""The off-policy training loop (SAC, MT-SAC, SAC+HER, DQN, DQN+HER): collect with the
sampler, store in replay, update, and log / evaluate / checkpoint on a schedule derived from
the env step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from gmtl_rl.agents.sac import HERConfig
from gmtl_rl.core.her import HindsightRelabeler
from gmtl_rl.core.policy import Agent, Policy, RandomDiscretePolicy, RandomPolicy
from gmtl_rl.core.records import UpdateResult
from gmtl_rl.core.replay import SAMPLERS, ReplayBatch, ReplaySampler, ReplayStorage
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.base import EVAL_COLUMNS, STEP_COLUMNS, TrainingRun


class OffPolicyAgent(Agent, Protocol):
    """An agent updated from replay batches (SAC and its relatives, DQN). Its config has
    `buffer_size`, `batch_size`, `learning_starts`, `updates_per_step`, `replay_sampler` and
    `her` (a `HERConfig`)."""

    def update(self, batch: ReplayBatch) -> UpdateResult: ...

    # Optional `set_progress(env_steps, total_steps)`: where training stands, told before every
    # collection step (and so restored with the run's counters on resume); exploration
    # schedules (DQN's ε) follow it. Agents without one are not told.


class OffPolicyRun(TrainingRun):
    """One run of an off-policy agent: built from config, trained, checkpointed, evaluated."""

    def build(self) -> None:
        self.train_tasks = self.distribution.train_tasks()
        if not self.for_evaluation:
            schedule = UniformTaskSchedule(
                len(self.train_tasks), np.random.default_rng(self.seeds.tasks)
            )
            self.make_sampler(self.train_tasks, schedule)
        env = self.env_spec()
        self.agent: OffPolicyAgent = self.build_agent(env)
        # Optional: a plug-in off-policy agent without an exploration schedule need not have it.
        self.set_progress: Callable[[int, int], None] | None = getattr(
            self.agent, "set_progress", None
        )
        agent_cfg = self.agent.config
        self.relabel = self._hindsight_relabeler(agent_cfg.her, env.goal_env)
        self.replay: ReplayStorage | None = None
        if not self.for_evaluation:
            self.replay = ReplayStorage(
                agent_cfg.buffer_size, env.observation_space, env.action_space
            )
        self.replay_sampler: ReplaySampler = SAMPLERS[agent_cfg.replay_sampler]()
        self.replay_rng = self.generators["replay"] = np.random.default_rng(self.seeds.replay)
        self.warmup_policy = self.make_warmup_policy(env.action_space)
        self.columns = [
            *STEP_COLUMNS, "updates", "train_return", "train_success", "train_length",
            "env_instabilities", "env_worker_restarts", *self.agent.metric_names(), *EVAL_COLUMNS,
        ]  # fmt: skip

    def make_warmup_policy(self, space: gym.Space[Any]) -> Policy:
        """Uniform random actions for `learning_starts`, on the run's saved "warmup" stream."""
        warmup_rng = self.generators["warmup"] = np.random.default_rng(self.seeds.warmup)
        if isinstance(space, gym.spaces.Discrete):
            return RandomDiscretePolicy(int(space.n), int(space.start), warmup_rng)
        assert isinstance(space, gym.spaces.Box)
        return RandomPolicy(space.low, space.high, warmup_rng)

    def _hindsight_relabeler(self, her: HERConfig, goal_env: bool) -> HindsightRelabeler | None:
        """The agent's HER (strategy "none", off, unless a `*_her` preset or a config sets it)."""
        if her.strategy == "none":
            return None
        if not goal_env:
            raise ConfigError(
                f"agent.her.strategy: {her.strategy!r} needs a goal env (Dict observations with "
                f"observation/achieved_goal/desired_goal and compute_reward); "
                f"{self.distribution.name} is not one; set agent.her.strategy=none"
            )
        # A local env for the reward function (the sampler's envs may live in workers).
        reward_env = self.own(self.distribution.make_env(self.train_tasks[0]))
        try:
            compute_reward = reward_env.get_wrapper_attr("compute_reward")
        except AttributeError:
            raise ConfigError(
                f"agent.her.strategy: env {self.distribution.name} has no compute_reward, "
                "which HER needs to recompute relabelled rewards"
            ) from None
        # One env's reward function serves all tasks: goal families put the goal in the
        # observation, not in reward parameters.
        return HindsightRelabeler(compute_reward, her.strategy, her.relabel_ratio)

    def replay_store(self) -> ReplayStorage | None:
        return self.replay

    # -- loop -----------------------------------------------------------------------------
    def run_loop(self) -> None:
        assert self.sampler is not None and self.replay is not None
        agent_cfg, c = self.agent.config, self.counters
        while self.budget_left():
            if self.set_progress is not None:
                self.set_progress(c.env_steps, self.config.total_steps)
            warm = c.env_steps < agent_cfg.learning_starts
            batch = self.sampler.step(self.warmup_policy if warm else self.agent)
            self.replay.add(batch)
            n = int(batch.valid.sum())
            c.env_steps += n
            self.record_episodes(self.sampler.pop_finished())
            if c.env_steps >= agent_cfg.learning_starts and len(self.replay) > 0:
                c.update_debt += n * agent_cfg.updates_per_step
                for _ in range(c.take_whole_updates()):
                    self._update(agent_cfg.batch_size)
            self.advance()
            self.periodic()
            self.stop_if_signalled()

    def _update(self, batch_size: int) -> None:
        assert self.replay is not None
        rows = self.replay_sampler.rows(self.replay, batch_size, self.replay_rng)
        batch = self.replay.batch(rows)
        if self.relabel is not None:
            batch = self.relabel(self.replay, batch, self.replay_rng)
        self.record_update(self.agent.update(batch).metrics(), batch)
