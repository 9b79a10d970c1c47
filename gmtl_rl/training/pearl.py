"""PEARL's meta-training loop (Rakelly et al. 2019, Alg. 1; oyster's `MetaRLAlgorithm.train`).

Iteration 0 first collects `initial_steps` with z from the prior on every train task. Each
iteration then picks `tasks_per_iteration` train tasks and, for each, collects with prior z
(kept as that task's context), optionally with posterior z kept as context too, and with
posterior z for the RL replay only; then runs `updates_per_iteration` meta-batch updates.

Everything lives in one replay (`ReplayStorage`, per-task FIFO): a task's context is the
context part of its latest collection, found with `recent_rows` (oyster clears the task's
encoder buffer before collecting, so its context is always the latest prior data). Each
collection restarts the sampler's envs with a seed derived from the run seed and a
collection counter, so a checkpoint between collections or updates needs no env state and a
resumed run continues exactly.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmtl_rl import checkpoint
from gmtl_rl.agents.pearl import PEARL, ActingMode, MetaBatch, PEARLConfig
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig
from gmtl_rl.core.networks import flatten_obs
from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EpisodeRecord
from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.errors import CheckpointError, ConfigError, NumericalFault
from gmtl_rl.evaluation.adaptation import AdaptationRow, run_adaptation
from gmtl_rl.progress import progress_bar
from gmtl_rl.training.common import (
    Counters,
    Interrupted,
    MetricsLog,
    Seeds,
    env_spec,
    eval_metrics,
    install_signal_handlers,
    make_sampler,
    next_multiple,
    non_finite_tensors,
    resolve_device,
    restore_signal_handlers,
    seed_everything,
    write_final_eval,
)


class BudgetSchedule:
    """Episodes on `task` until about `steps` transitions are collected, whole episodes only
    (oyster collects whole trajectories until it has `steps`).

    A new episode starts only while the steps taken plus a horizon for every episode still
    running stay under the budget, so parallel envs do not overshoot it: 400 steps of a
    200-step family are 2 episodes, not one per env. Without a horizon, episodes start while
    fewer than `steps` transitions are taken."""

    def __init__(
        self,
        task: int,
        steps: int,
        sampler: RolloutSampler | None = None,
        horizon: int | None = None,
    ) -> None:
        self.task, self.steps, self.sampler = task, steps, sampler
        self.horizon = horizon or 0
        self.start = sampler.transitions if sampler is not None else 0
        self.started = 0

    def next_task(self, env_index: int) -> int | None:
        del env_index
        if self.sampler is None:
            return None
        taken = self.sampler.transitions - self.start
        running = self.started - len(self.sampler.finished)
        if taken + running * self.horizon >= self.steps:
            return None
        self.started += 1
        return self.task

    def state_dict(self) -> dict[str, Any]:
        return {}  # lives within one collection; checkpoints fall between collections

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class PEARLRun:
    """One PEARL run: built from config, meta-trained, checkpointed, evaluated."""

    def __init__(self, config: RunConfig, run_dir: Path, distribution: TaskDistribution) -> None:
        self.config = config
        self.run_dir = run_dir
        self.distribution = distribution
        self.train_tasks = distribution.train_tasks()
        self.seeds = Seeds.from_seed(config.seed)
        seed_everything(config.seed, self.seeds)
        if not config.checkpoint.replay:
            raise ConfigError(
                "checkpoint.replay: pearl draws its context batches from the replay, so a "
                "checkpoint without it cannot resume; set checkpoint.replay=true"
            )
        self.sampler = make_sampler(
            config,
            distribution,
            self.train_tasks,
            BudgetSchedule(0, 0),  # idle until the first collection restarts it
            seed=self.seeds.envs,
        )
        env = env_spec(self.sampler, distribution)
        try:  # a config the agent rejects must not leave env workers behind
            agent = agent_spec(config.agent.name).build(
                config.agent, env, resolve_device(config.device)
            )
            assert isinstance(agent, PEARL)
            self.agent = agent
            self.sparse_reward = self._sparse_reward_fn(agent.config)
        except BaseException:
            self.close()
            raise
        cfg: PEARLConfig = agent.config
        self.agent_config = cfg
        self.replay = ReplayStorage(cfg.buffer_size, env.observation_space, env.action_space)
        self.rng = np.random.default_rng(self.seeds.replay)  # meta-batches, rows, contexts
        self.task_rng = np.random.default_rng(self.seeds.tasks)  # tasks to collect on
        n = len(self.train_tasks)
        # Per task: rows of its latest collection kept as context, and rows added after them.
        self.context_count = np.zeros(n, np.int64)
        self.context_tail = np.zeros(n, np.int64)
        self.counters = Counters()
        self.iteration = 0
        self.initial_tasks_done = 0
        self.collected = False  # this iteration's collection is done
        self.iteration_updates = 0
        self.collections = 0  # seeds each collection's env resets
        self.finished = False
        self.columns = [
            "step", "time_s", "steps_per_s", "episodes", "updates", "iteration",
            "train_return_prior", "train_return_posterior", "train_success_posterior",
            "env_instabilities", *self.agent.metric_names(),
            "eval_return_first", "eval_return_last", "eval_success_last",
        ]  # fmt: skip
        self.log: MetricsLog | None = None
        self._resumed_rows: int | None = None
        self._stop_signal: int | None = None
        self._episodes: dict[str, list[EpisodeRecord]] = {"prior": [], "posterior": []}
        self._update_sums: dict[str, float] = {}
        self._update_count = 0

    def close(self) -> None:
        self.sampler.close()

    def eval_policy(self) -> Policy:
        self.agent.set_mode("adapt")
        return self.agent

    def _sparse_reward_fn(self, cfg: PEARLConfig) -> Any:
        if not cfg.sparse_context:
            return None
        fn = getattr(self.distribution, "sparse_reward", None)
        if fn is None:
            raise ConfigError(
                f"agent.sparse_context: env {self.distribution.name} defines no sparse reward "
                "(sparse-point-robot does); set agent.sparse_context=false"
            )
        return fn

    # -- data --------------------------------------------------------------------------------
    def _context_rows(self, task: int) -> np.ndarray:
        """Replay rows of `task`'s current context (its latest prior collection), oldest first."""
        count, tail = int(self.context_count[task]), int(self.context_tail[task])
        rows = self.replay.recent_rows(task, count + tail)
        lost = count + tail - len(rows)  # overwritten by newer data in a full replay
        return rows[: max(0, count - lost)]

    def _context_batch(self, task: int) -> np.ndarray:
        """`context_batch` transitions drawn from the task's context [C, context_dim]."""
        rows = self._context_rows(task)
        if len(rows) == 0:
            raise RuntimeError(f"train task {task} has no context data in the replay")
        pick = rows[self.rng.integers(len(rows), size=self.agent_config.context_batch)]
        b = self.replay.batch(pick)
        reward = b.reward if self.sparse_reward is None else self.sparse_reward(b.reward)
        return self.agent.context_rows(b.obs, b.action, reward, b.next_obs)

    def _has_data(self, task: int) -> bool:
        return self.replay.task_index.count.get(task, 0) > 0 and len(self._context_rows(task)) > 0

    def _meta_batch_tasks(self) -> np.ndarray:
        """`meta_batch` train tasks, uniformly. One replay holds every task, oldest rows
        overwritten first, so a task left uncollected for long can lose all its data (oyster
        keeps one buffer per task); such draws are redrawn among the tasks that have data."""
        n = len(self.train_tasks)
        tasks = self.rng.integers(n, size=self.agent_config.meta_batch)
        usable = np.array([self._has_data(int(t)) for t in tasks])
        if usable.all():
            return tasks
        available = [t for t in range(n) if self._has_data(t)]
        if not available:
            raise RuntimeError("no train task has data in the replay")
        tasks[~usable] = self.rng.choice(available, size=int((~usable).sum()))
        return tasks

    def _meta_batch(self) -> MetaBatch:
        cfg = self.agent_config
        tasks = self._meta_batch_tasks()
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
        schedule = BudgetSchedule(task, steps, self.sampler, self.distribution.horizon)
        self.sampler.pop_finished()  # `finished` counts this collection's episodes only
        source = (lambda: self._context_batch(task)) if mode == "posterior" else None
        self.agent.set_mode(mode, source)
        seed = np.random.SeedSequence([self.seeds.envs, self.collections]).generate_state(1)
        self.collections += 1
        self.sampler.restart(schedule, int(seed[0]))
        added = 0
        try:
            while not self.sampler.all_idle:
                batch = self.sampler.step(self.agent)
                self.replay.add(batch)
                added += int(batch.valid.sum())
        finally:
            self.agent.set_mode("adapt")
        episodes = self.sampler.pop_finished()
        self.counters.env_steps += added
        self.counters.episodes += len(episodes)
        self._episodes["prior" if mode == "prior" else "posterior"].extend(episodes)
        if as_context:
            self.context_count[task] += added
        else:
            self.context_tail[task] += added

    def _collect_task(self, task: int, initial: bool) -> None:
        """One task's collection: its context is replaced by what is collected now."""
        cfg = self.agent_config
        self.context_count[task] = 0
        self.context_tail[task] = 0
        if initial:
            self._collect(task, cfg.initial_steps, "prior", as_context=True)
            return
        self._collect(task, cfg.steps_prior, "prior", as_context=True)
        self._collect(task, cfg.steps_posterior, "posterior", as_context=True)
        self._collect(task, cfg.steps_extra_posterior, "posterior", as_context=False)

    # -- state -------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        agent_state = {"agent": self.agent.state_dict(), "torch_rng": torch.get_rng_state()}
        bad = non_finite_tensors(agent_state["agent"])
        if bad:  # never replace a good checkpoint with a broken one
            raise self._fault(f"non-finite values in {', '.join(bad[:3])}")
        py_version, py_state, py_gauss = random.getstate()
        state = {
            "counters": asdict(self.counters),
            "finished": self.finished,
            "loop": {
                "iteration": self.iteration,
                "initial_tasks_done": self.initial_tasks_done,
                "collected": self.collected,
                "iteration_updates": self.iteration_updates,
                "collections": self.collections,
                "context_count": self.context_count.tolist(),
                "context_tail": self.context_tail.tolist(),
                "instabilities": self.sampler.instabilities,
            },
            "rng": {
                "replay": self.rng.bit_generator.state,
                "tasks": self.task_rng.bit_generator.state,
                "python": [py_version, list(py_state), py_gauss],
            },
            "logger": {"metrics_rows": self.log.rows if self.log else 0},
        }
        return checkpoint.save(
            self.run_dir / "checkpoints",
            self.counters.env_steps,
            agent_state,
            state,
            replay=self.replay,
            keep=self.config.checkpoint.keep,
        )

    def load_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None:
        try:
            self.agent.load_state_dict(ckpt.agent["agent"])
            torch.set_rng_state(ckpt.agent["torch_rng"])
            s = ckpt.state
            self.counters = Counters(**s["counters"])
            self.finished = bool(s["finished"])
            loop = s["loop"]
            self.iteration = int(loop["iteration"])
            self.initial_tasks_done = int(loop["initial_tasks_done"])
            self.collected = bool(loop["collected"])
            self.iteration_updates = int(loop["iteration_updates"])
            self.collections = int(loop["collections"])
            self.context_count[...] = loop["context_count"]
            self.context_tail[...] = loop["context_tail"]
            self.sampler.instabilities = int(loop["instabilities"])
            self.rng.bit_generator.state = s["rng"]["replay"]
            self.task_rng.bit_generator.state = s["rng"]["tasks"]
            py = s["rng"]["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
            self._resumed_rows = int(s["logger"]["metrics_rows"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{ckpt.path}: checkpoint does not match this run ({type(err).__name__}: {err})"
            ) from None
        if ckpt.replay_path is None:
            raise CheckpointError(f"{ckpt.path}: no replay.npz, which pearl needs to resume")
        self.replay.load(ckpt.replay_path)

    # -- loop --------------------------------------------------------------------------------
    def train(self, resumed: bool = False) -> None:
        cfg, c, acfg = self.config, self.counters, self.agent_config
        self.log = MetricsLog(
            self.run_dir, self.columns, cfg.logging.tensorboard,
            keep_rows=self._resumed_rows if resumed else None, step=c.env_steps,
        )  # fmt: skip
        self._start_wall = time.perf_counter()
        self._last_log = (c.env_steps, self._start_wall)
        next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
        next_eval = next_multiple(c.env_steps, cfg.eval.every_steps)
        next_ckpt = next_multiple(c.env_steps, cfg.checkpoint.every_steps)
        previous = install_signal_handlers(self._on_signal)
        try:
            with progress_bar(cfg.total_steps, c.env_steps, cfg.experiment, "steps") as advance:
                while self.initial_tasks_done < len(self.train_tasks):
                    self._collect_task(self.initial_tasks_done, initial=True)
                    self.initial_tasks_done += 1
                    advance(c.env_steps)
                    self._stop_if_signalled()
                # An iteration interrupted after its collection is finished first, even when
                # that collection already reached the budget.
                while self.collected or c.env_steps < cfg.total_steps:
                    if not self.collected:
                        tasks = self.task_rng.integers(
                            len(self.train_tasks), size=acfg.tasks_per_iteration
                        )
                        for task in tasks:
                            self._collect_task(int(task), initial=False)
                        self.collected = True
                        advance(c.env_steps)
                        self._stop_if_signalled()
                    while self.iteration_updates < acfg.updates_per_iteration:
                        self._update()
                        self._stop_if_signalled()
                    self.iteration += 1
                    self.collected, self.iteration_updates = False, 0
                    if c.env_steps >= next_log:
                        self._write_metrics({})
                        next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
                    if c.env_steps >= next_eval and c.env_steps < cfg.total_steps:
                        self._evaluate(final=False)
                        next_eval = next_multiple(c.env_steps, cfg.eval.every_steps)
                    if c.env_steps >= next_ckpt:
                        self.save_checkpoint()
                        next_ckpt = next_multiple(c.env_steps, cfg.checkpoint.every_steps)
            self._write_metrics({})
            self._evaluate(final=True)
            self.finished = True
            self.save_checkpoint()
        finally:
            restore_signal_handlers(previous)
            self.log.close()
            self.close()

    def _stop_if_signalled(self) -> None:
        if self._stop_signal is not None:
            self.save_checkpoint()
            raise Interrupted(self._stop_signal)

    def _update(self) -> None:
        result = self.agent.update(self._meta_batch())
        self.counters.updates += 1
        self.iteration_updates += 1
        metrics = self.agent.metrics(result)
        bad = [key for key, value in metrics.items() if not np.isfinite(value)]
        if bad:
            raise self._fault(f"{', '.join(bad)} became non-finite")
        for key, value in metrics.items():
            self._update_sums[key] = self._update_sums.get(key, 0.0) + value
        self._update_count += 1

    def _fault(self, what: str) -> NumericalFault:
        c = self.counters
        latest = checkpoint.list_checkpoints(self.run_dir / "checkpoints")
        kept = f"last good checkpoint: {latest[-1]}" if latest else "no checkpoint was written"
        return NumericalFault(
            f"training stopped at env step {c.env_steps}, update {c.updates}: {what}; {kept}"
        )

    def _write_metrics(self, extra: dict[str, float]) -> None:
        assert self.log is not None
        c = self.counters
        now = time.perf_counter()
        if extra:  # an evaluation row
            self.log.write(c.env_steps, {"time_s": now - self._start_wall, **extra})
            return
        last_steps, last_time = self._last_log
        values: dict[str, float] = {
            "time_s": now - self._start_wall,
            "steps_per_s": (c.env_steps - last_steps) / max(now - last_time, 1e-9),
            "episodes": c.episodes,
            "updates": c.updates,
            "iteration": self.iteration,
            "env_instabilities": self.sampler.instabilities,
        }
        self._last_log = (c.env_steps, now)
        prior, posterior = self._episodes["prior"], self._episodes["posterior"]
        if prior:
            values["train_return_prior"] = float(np.mean([e.episode_return for e in prior]))
        if posterior:
            values["train_return_posterior"] = float(np.mean([e.episode_return for e in posterior]))
            values["train_success_posterior"] = float(np.mean([e.success for e in posterior]))
        self._episodes = {"prior": [], "posterior": []}
        if self._update_count:
            for key, total in self._update_sums.items():
                values[key] = total / self._update_count
            self._update_sums, self._update_count = {}, 0
        self.log.write(c.env_steps, values)

    # -- evaluation --------------------------------------------------------------------------
    def adaptation_rows(self) -> list[AdaptationRow]:
        """The adaptation curve: per eval task, a trial of K episodes that starts from the
        prior and re-infers the posterior from its own context after each episode."""
        cfg = self.config.eval
        tasks = cfg.tasks(self.distribution)
        self.agent.set_mode("adapt")
        # Context rewards as in training: a sparse-context agent on dense-reward tasks (the
        # sparse family's train split) sees them sparsified; test tasks emit sparse rewards.
        dense = any(t.params and dict(t.params).get("reward", "dense") == "dense" for t in tasks)
        self.agent.reward_to_context = self.sparse_reward if dense else None
        try:
            return run_adaptation(
                self.agent, self.distribution, tasks,
                episodes=cfg.episodes, repeats=cfg.repeats, n_envs=cfg.n_envs,
                seed=self.seeds.eval, deterministic=cfg.deterministic,
                run=self.run_dir.name, run_seed=self.config.seed,
            )  # fmt: skip
        finally:
            self.agent.reward_to_context = None

    def _evaluate(self, final: bool) -> None:
        rows = self.adaptation_rows()
        self._write_metrics(eval_metrics(rows, self.config.eval.episodes))
        if final:
            write_final_eval(self.config, self.run_dir, self.counters.env_steps, rows)

    def _on_signal(self, signum: int) -> None:
        if self._stop_signal is not None:  # second signal: stop now; the last checkpoint is whole
            os._exit(128 + signum)
        self._stop_signal = signum
