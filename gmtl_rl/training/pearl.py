"""PEARL's meta-training loop (Rakelly et al. 2019, Alg. 1; oyster's `MetaRLAlgorithm.train`).

Iteration 0 first collects `initial_steps` with z from the prior on every train task. Each
iteration then picks `tasks_per_iteration` train tasks and, for each, collects with prior z
(kept as that task's context), optionally with posterior z kept as context too, and with
posterior z for the RL replay only; then runs `updates_per_iteration` meta-batch updates.

Everything lives in one replay; a task's context is found in it by `core.context.TaskContexts`.
Each collection restarts the sampler's envs with a seed derived from the run seed and a
collection counter, so a checkpoint between collections or updates needs no env state (only
the sampler's counters) and a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from gmtl_rl.agents.pearl import PEARL, ActingMode, MetaBatch, PEARLConfig
from gmtl_rl.core.context import TaskContexts
from gmtl_rl.core.networks import flatten_obs
from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EpisodeRecord
from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.schedules import BudgetSchedule
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.base import EVAL_COLUMNS, STEP_COLUMNS, TrainingRun


class PEARLRun(TrainingRun):
    """One PEARL run: built from config, meta-trained, checkpointed, evaluated."""

    needs_replay = True

    def build(self) -> None:
        if not self.config.checkpoint.replay:
            raise ConfigError(
                "checkpoint.replay: pearl draws its context batches from the replay, so a "
                "checkpoint without it cannot resume; set checkpoint.replay=true"
            )
        self.train_tasks = self.distribution.train_tasks()
        if not self.for_evaluation:  # idle until the first collection restarts it
            self.make_sampler(self.train_tasks, BudgetSchedule(0, 0))
        env = self.env_spec()
        agent = self.build_agent(env)
        assert isinstance(agent, PEARL)
        self.agent: PEARL = agent
        cfg: PEARLConfig = agent.config
        self.agent_config = cfg
        self.sparse_reward = self._sparse_reward_fn(cfg)
        self.replay = ReplayStorage(
            cfg.buffer_size if not self.for_evaluation else 1,
            env.observation_space,
            env.action_space,
        )
        self.rng = self.generators["replay"] = np.random.default_rng(self.seeds.replay)
        self.task_rng = self.generators["tasks"] = np.random.default_rng(self.seeds.tasks)
        self.contexts = TaskContexts(
            self.replay, len(self.train_tasks), self.rng, self.sparse_reward
        )
        self.iteration = 0
        self.initial_tasks_done = 0
        self.collected = False  # this iteration's collection is done
        self.iteration_updates = 0
        self.collections = 0  # seeds each collection's env resets
        self._episodes: dict[str, list[EpisodeRecord]] = {"prior": [], "posterior": []}
        self.columns = [
            *STEP_COLUMNS, "updates", "iteration",
            "train_return_prior", "train_return_posterior", "train_success_posterior",
            "env_instabilities", *self.agent.metric_names(), *EVAL_COLUMNS,
        ]  # fmt: skip

    def _sparse_reward_fn(self, cfg: PEARLConfig) -> Any:
        if not cfg.sparse_context:
            return None
        if not self.distribution.defines_sparse_reward:
            raise ConfigError(
                f"agent.sparse_context: env {self.distribution.name} defines no sparse reward "
                "(sparse-point-robot does); set agent.sparse_context=false"
            )
        return self.distribution.sparse_reward

    # -- progress: iterations, each `updates_per_iteration` gradient steps and its collection,
    # so the ETA counts the updates (env steps alone put hours of updates at minutes) --------
    @property
    def progress_unit(self) -> str:
        return "iterations"

    @property
    def progress_total(self) -> int:
        """The initial collection (counted as one) and the iterations the step budget allows."""
        cfg = self.agent_config
        per_iteration = cfg.tasks_per_iteration * (
            cfg.steps_prior + cfg.steps_posterior + cfg.steps_extra_posterior
        )
        after_initial = self.config.total_steps - cfg.initial_steps * len(self.train_tasks)
        return 1 + max(1, -(-after_initial // per_iteration))

    def progress_count(self) -> int:
        started = self.initial_tasks_done == len(self.train_tasks)
        return int(started) + self.iteration

    # -- data (Alg. 1: the context batch c^i from S_c, the RL batch b^i from R) ----------------
    def _context_batch(self, task: int) -> np.ndarray:
        """`context_batch` transitions from the task's context [C, context_dim]."""
        b = self.contexts.sample(task, self.agent_config.context_batch)
        return self.agent.context_rows(b.obs, b.action, b.reward, b.next_obs)

    def _meta_batch(self) -> MetaBatch:
        cfg = self.agent_config
        tasks = self.contexts.draw_tasks(cfg.meta_batch)
        index = self.replay.task_index
        rows = np.concatenate(
            [index.pick(int(t), self.rng.integers(index.count[int(t)], size=cfg.batch_size))
             for t in tasks]
        )  # fmt: skip
        b = self.replay.batch(rows)
        T, B = cfg.meta_batch, cfg.batch_size
        return MetaBatch(
            obs=flatten_obs(b.obs).reshape(T, B, -1),
            action=b.action.reshape(T, B, -1),
            reward=b.reward.reshape(T, B),
            next_obs=flatten_obs(b.next_obs).reshape(T, B, -1),
            terminated=b.terminated.reshape(T, B),
            context=np.stack([self._context_batch(int(t)) for t in tasks]),
        )

    def _collect(self, task: int, steps: int, mode: ActingMode, as_context: bool) -> None:
        """Whole episodes on `task` until `steps` env steps, z as `mode` says, into replay."""
        if steps <= 0:
            return
        sampler = self.sampler
        assert sampler is not None
        schedule = BudgetSchedule(task, steps, sampler, self.distribution.horizon)
        sampler.pop_finished()  # `finished` counts this collection's episodes only
        source = (lambda: self._context_batch(task)) if mode == "posterior" else None
        self.agent.set_mode(mode, source)
        seed = np.random.SeedSequence([self.seeds.envs, self.collections]).generate_state(1)
        self.collections += 1
        sampler.restart(schedule, int(seed[0]))
        self.contexts.begin(task, as_context)
        added = 0
        try:
            while not sampler.all_idle:
                batch = sampler.step(self.agent)
                self.replay.add(batch)
                n = int(batch.valid.sum())
                self.contexts.collected(n)
                added += n
        finally:
            self.agent.set_mode("adapt")
            self.contexts.end()
        episodes = sampler.pop_finished()
        self.counters.env_steps += added
        self.counters.episodes += len(episodes)
        self._episodes["prior" if mode == "prior" else "posterior"].extend(episodes)

    def _collect_task(self, task: int, initial: bool) -> None:
        """One task's collection: its context is replaced by what is collected now."""
        cfg = self.agent_config
        self.contexts.clear(task)
        if initial:
            self._collect(task, cfg.initial_steps, "prior", as_context=True)
            return
        self._collect(task, cfg.steps_prior, "prior", as_context=True)
        self._collect(task, cfg.steps_posterior, "posterior", as_context=True)
        self._collect(task, cfg.steps_extra_posterior, "posterior", as_context=False)

    # -- state -------------------------------------------------------------------------------
    def replay_store(self) -> ReplayStorage:
        return self.replay

    def sampler_state(self) -> dict[str, Any]:
        assert self.sampler is not None
        return self.sampler.counters_state()  # envs restart at every collection

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        assert self.sampler is not None
        self.sampler.load_counters(state)

    def loop_state(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "initial_tasks_done": self.initial_tasks_done,
            "collected": self.collected,
            "iteration_updates": self.iteration_updates,
            "collections": self.collections,
            "contexts": self.contexts.state_dict(),
        }

    def load_loop_state(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.initial_tasks_done = int(state["initial_tasks_done"])
        self.collected = bool(state["collected"])
        self.iteration_updates = int(state["iteration_updates"])
        self.collections = int(state["collections"])
        self.contexts.load_state_dict(state["contexts"])

    # -- loop (Alg. 1) ------------------------------------------------------------------------
    def run_loop(self) -> None:
        acfg = self.agent_config
        while self.initial_tasks_done < len(self.train_tasks):
            self._collect_task(self.initial_tasks_done, initial=True)
            self.initial_tasks_done += 1
            self.advance()
            self.stop_if_signalled()
        # An iteration interrupted after its collection is finished first, even when that
        # collection already reached the budget.
        while self.collected or self.budget_left():
            if not self.collected:
                n = len(self.train_tasks)
                for task in self.task_rng.integers(n, size=acfg.tasks_per_iteration):
                    self._collect_task(int(task), initial=False)
                self.collected = True
                self.advance()
                self.stop_if_signalled()
            while self.iteration_updates < acfg.updates_per_iteration:
                self.record_update(self.agent.update(self._meta_batch()).metrics())
                self.iteration_updates += 1
                self.stop_if_signalled()
            self.iteration += 1
            self.collected, self.iteration_updates = False, 0
            self.advance()
            self.periodic()
        self.write_metrics()

    def training_metrics(self) -> dict[str, float]:
        values: dict[str, float] = {"iteration": self.iteration}
        prior, posterior = self._episodes["prior"], self._episodes["posterior"]
        if prior:
            values["train_return_prior"] = float(np.mean([e.episode_return for e in prior]))
        if posterior:
            values["train_return_posterior"] = float(np.mean([e.episode_return for e in posterior]))
            values["train_success_posterior"] = float(np.mean([e.success for e in posterior]))
        self._episodes = {"prior": [], "posterior": []}
        return values

    # -- evaluation --------------------------------------------------------------------------
    def eval_policy(self) -> Policy:
        self.agent.set_mode("adapt")
        return self.agent

    @contextmanager
    def evaluation_policy(self) -> Iterator[Policy]:
        """Per eval task, a trial of K episodes that starts from the prior and re-infers the
        posterior from its own context after each episode. Context rewards as in training:
        a sparse-context agent on dense-reward tasks (the sparse family's train split) sees
        them sparsified; test tasks emit sparse rewards."""
        tasks = self.config.eval.tasks(self.distribution)
        dense = any(t.params and dict(t.params).get("reward", "dense") == "dense" for t in tasks)
        with self.agent.evaluating(self.sparse_reward if dense else None):
            yield self.agent
