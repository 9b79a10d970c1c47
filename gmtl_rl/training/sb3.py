"""The stable-baselines3 training loop: SB3's own `learn`, with our schedule around it.

One env per task class in a `DummyVecEnv`; each draws a uniformly random train task of its class
at every reset and appends the class one-hot to its observations. A callback keeps the counters
current and, at the start of every SB3 rollout (after the previous update, so the state is
whole), writes metrics, evaluates with our evaluator and checkpoints on the env-step schedule.

Checkpoints are ours, never SB3's zip (which pickles; see `agents.sb3_bridge`). Episodes in
flight at a checkpoint restart on resume (SB3 keeps no env state to restore), so a resumed run
is not bit-equal to an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from gmtl_rl.agents.sb3 import METRICS, SB3Config, SB3Policy, TaskClassOneHot
from gmtl_rl.agents.sb3_bridge import (
    ClassTaskEnv,
    EpisodeStats,
    PreservedRandomness,
    ReplaySnapshot,
    load_model_state,
    load_model_tensors,
    metric_tap,
    model_state,
    model_tensors,
)
from gmtl_rl.config import SamplerConfig
from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.envs.task import is_goal_env
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.base import EVAL_COLUMNS, STEP_COLUMNS, TrainingRun

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm


class SB3Run(TrainingRun):
    """One run of an SB3 algorithm: built from config, trained, checkpointed, evaluated."""

    def build(self) -> None:
        config, distribution = self.config, self.distribution
        assert isinstance(config.agent, SB3Config)
        if config.sampler.autoreset_mode != SamplerConfig().autoreset_mode:
            raise ConfigError(
                "sampler.autoreset_mode: SB3 resets its envs itself; remove the key "
                "(sampler.n_envs does apply: envs are spread evenly over the task classes)"
            )
        if config.sampler.backend not in ("auto", "sync"):
            raise ConfigError(
                f"sampler.backend: {config.sampler.backend!r} does not apply to sb3, which "
                "steps its envs in SB3's own DummyVecEnv; remove the key"
            )
        self.agent_config: SB3Config = config.agent
        train_tasks = distribution.train_tasks()
        classes = distribution.task_classes(train_tasks)
        n_classes = distribution.num_task_classes
        probe = distribution.make_env(train_tasks[0])  # spaces and GoalEnv-ness, before SB3
        try:
            goal_env = is_goal_env(probe)
            self.encoder = TaskClassOneHot(probe.observation_space, n_classes)
        finally:
            probe.close()
        self.finished_episodes: list[EpisodeStats] = []
        # At least one env per class, and an equal number per class (env i runs class
        # i % n_classes): n_envs rounded up to a multiple of the class count.
        n_envs = -(-max(config.sampler.n_envs, n_classes) // n_classes) * n_classes
        # One generator per env (SeedSequence spawning), so each env's task draws are its own.
        task_seeds = np.random.SeedSequence(self.seeds.tasks).spawn(n_envs)
        for i, task_seed in enumerate(task_seeds):
            self.generators[f"tasks.{i}"] = np.random.default_rng(task_seed)
        envs = [
            ClassTaskEnv(
                distribution,
                [t for t, k in zip(train_tasks, classes, strict=True) if k == i % n_classes],
                i % n_classes,
                self.encoder,
                self.generators[f"tasks.{i}"],
                self.finished_episodes,
            )
            for i in range(n_envs)
        ]
        from stable_baselines3.common.vec_env import DummyVecEnv

        self.vec = self.own(DummyVecEnv([lambda env=env: env for env in envs]))  # type: ignore[misc]
        env = EnvSpec(self.vec.observation_space, self.vec.action_space, n_classes, goal_env)
        self.model: BaseAlgorithm = self.build_agent(env.with_envs(self.vec))
        self.vec.seed(self.seeds.envs)  # SB3 seeded the envs with its own seed; use ours
        self.metric_names = [*METRICS[self.agent_config.algo], "learning_rate"]
        self.tap = metric_tap(self.metric_names)
        self.model.set_logger(self.tap)
        self.columns = [
            *STEP_COLUMNS, "updates", "train_return", "train_success", "train_length",
            *self.metric_names, *EVAL_COLUMNS,
        ]  # fmt: skip

    # -- state ----------------------------------------------------------------------------
    def agent_tensors(self) -> dict[str, Any]:
        return model_tensors(self.model)

    def load_agent_tensors(self, tree: dict[str, Any]) -> None:
        load_model_tensors(self.model, tree)

    def loop_state(self) -> dict[str, Any]:
        return model_state(self.model)

    def load_loop_state(self, state: dict[str, Any]) -> None:
        load_model_state(self.model, state)
        # Episodes in flight restart: seed their resets afresh, not with the run's first seeds.
        restart = np.random.SeedSequence([self.seeds.envs, self.counters.env_steps])
        self.vec.seed(int(restart.generate_state(1)[0]))

    def replay_store(self) -> ReplaySnapshot | None:
        buffer = getattr(self.model, "replay_buffer", None)  # on-policy algos have none
        return ReplaySnapshot(buffer) if buffer is not None else None

    def update_means(self) -> dict[str, float]:
        means: dict[str, float] = self.tap.pop_means()
        return means

    # -- loop -----------------------------------------------------------------------------
    def run_loop(self) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        run = self

        class Schedule(BaseCallback):
            def _on_step(self) -> bool:
                run._on_env_step()
                return True

            def _on_rollout_start(self) -> None:
                run._on_rollout_start()

        remaining = self.config.total_steps - self.model.num_timesteps
        if remaining > 0:
            # One learn call to the end, so SB3's schedules see the whole budget.
            self.model.learn(remaining, callback=Schedule(), reset_num_timesteps=False)
        self._on_env_step()
        self.periodic()  # the last rollout's row, as at every rollout start

    def _on_env_step(self) -> None:
        """After every vectorised env step: counters and the progress bar stay current."""
        c = self.counters
        c.env_steps = int(self.model.num_timesteps)
        c.updates = int(self.model._n_updates)
        self.record_episodes(self.finished_episodes)
        self.finished_episodes.clear()
        self.advance()

    def _on_rollout_start(self) -> None:
        """Between SB3 rollouts (the update is done, the state whole): the schedule, signals."""
        bad = [key for key, total in self.tap.sums.items() if not np.isfinite(total)]
        if bad:  # SB3 computes the losses anyway, so this check is free
            raise self.fault(f"{', '.join(bad)} became non-finite")
        self.periodic()
        self.stop_if_signalled()

    # -- evaluation -------------------------------------------------------------------------
    def eval_policy(self) -> SB3Policy:
        return SB3Policy(self.model, self.encoder)

    @contextmanager
    def evaluation_policy(self) -> Iterator[Policy]:
        with PreservedRandomness(self.model):
            yield SB3Policy(self.model, self.encoder)
