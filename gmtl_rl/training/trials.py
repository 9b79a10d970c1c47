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

import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig
from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EpisodeRecord
from gmtl_rl.core.rollout import UniformTaskSchedule
from gmtl_rl.core.trials import ActRecord, TrialBatch, TrialBuffer
from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.errors import CheckpointError, NumericalFault
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
    restore_signal_handlers,
    seed_everything,
    write_final_eval,
)


class TrialAgent(Policy, Protocol):
    """What the trials loop needs from an agent (RL²)."""

    config: Any  # has episodes_per_trial and trials_per_update
    last_act: ActRecord | None  # what the last `act` drew, per env

    def update(self, batch: TrialBatch) -> Any: ...

    def metric_names(self) -> list[str]: ...

    def metrics(self, update: Any) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TrialRun:
    """One run of a trial-learning agent (see the module docstring)."""

    def __init__(self, config: RunConfig, run_dir: Path, distribution: TaskDistribution) -> None:
        self.config = config
        self.run_dir = run_dir
        self.distribution = distribution
        self.train_tasks = distribution.train_tasks()
        self.seeds = Seeds.from_seed(config.seed)
        seed_everything(config.seed, self.seeds)
        agent_cfg = config.agent
        self.sampler = make_sampler(
            config,
            distribution,
            self.train_tasks,
            UniformTaskSchedule(len(self.train_tasks), np.random.default_rng(self.seeds.tasks)),
            seed=self.seeds.envs,
            episodes_per_trial=int(getattr(agent_cfg, "episodes_per_trial", 1)),
        )
        env = env_spec(self.sampler, distribution)
        try:  # a config the agent rejects must not leave env workers behind
            self.agent: TrialAgent = agent_spec(agent_cfg.name).build(
                agent_cfg, env, self.seeds.torch
            )
        except BaseException:
            self.sampler.close()
            raise
        self.buffer = TrialBuffer(config.sampler.n_envs, self.agent.config.episodes_per_trial)
        self.counters = Counters()
        self.finished = False
        self.columns = [
            "step", "time_s", "steps_per_s", "episodes", "updates",
            "train_return", "train_success", "train_length",
            "train_return_first", "train_return_last", "env_instabilities",
            *self.agent.metric_names(),
            "eval_return_first", "eval_return_last", "eval_success_last",
        ]  # fmt: skip
        self.log: MetricsLog | None = None
        self._resumed_rows: int | None = None
        self._episode_window: list[EpisodeRecord] = []
        self._update_sums: dict[str, float] = {}
        self._update_count = 0
        self._stop_signal: int | None = None
        self._start_wall = time.perf_counter()
        self._last_log = (0, self._start_wall)

    def close(self) -> None:
        self.sampler.close()

    def eval_policy(self) -> Policy:
        return self.agent

    # -- state ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        py_version, py_state, py_gauss = random.getstate()
        agent_state = {"agent": self.agent.state_dict(), "torch_rng": torch.get_rng_state()}
        state = {
            "counters": asdict(self.counters),
            "finished": self.finished,
            "sampler": self.sampler.state_dict(),
            "buffer": self.buffer.state_dict(),  # trials in flight continue after a resume
            "rng": {"python": [py_version, list(py_state), py_gauss]},
            "logger": {"metrics_rows": self.log.rows if self.log else 0},
        }
        return checkpoint.save(
            self.run_dir / "checkpoints",
            self.counters.env_steps,
            agent_state,
            state,
            keep=self.config.checkpoint.keep,
        )

    def load_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None:
        try:
            self.agent.load_state_dict(ckpt.agent["agent"])
            torch.set_rng_state(ckpt.agent["torch_rng"])
            s = ckpt.state
            self.counters = Counters(**s["counters"])
            self.finished = bool(s["finished"])
            self.sampler.load_state_dict(s["sampler"])
            self.buffer.load_state_dict(s["buffer"])
            py = s["rng"]["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
            self._resumed_rows = int(s["logger"]["metrics_rows"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{ckpt.path}: checkpoint does not match this run ({type(err).__name__}: {err})"
            ) from None

    # -- loop -----------------------------------------------------------------------------
    def train(self, resumed: bool = False) -> None:
        cfg, c = self.config, self.counters
        self.log = MetricsLog(
            self.run_dir, self.columns, cfg.logging.tensorboard,
            keep_rows=self._resumed_rows if resumed else None, step=c.env_steps,
        )  # fmt: skip
        self._reset_schedule()
        self._start_wall = time.perf_counter()
        self._last_log = (c.env_steps, self._start_wall)
        trials_per_update = self.agent.config.trials_per_update
        previous = install_signal_handlers(self._on_signal)
        try:
            with progress_bar(cfg.total_steps, c.env_steps, cfg.experiment, "steps") as advance:
                while self._budget_left():
                    step = self.sampler.step(self.agent)
                    assert self.agent.last_act is not None
                    self.buffer.add(step, self.agent.last_act)
                    c.env_steps += int(step.valid.sum())
                    finished = self.sampler.pop_finished()
                    c.episodes += len(finished)
                    self._episode_window.extend(finished)
                    advance(c.env_steps)
                    if len(self.buffer.complete) >= trials_per_update:
                        self._update(self.buffer.pop_trials())
                        self._periodic()
                    if self._stop_signal is not None:
                        self.save_checkpoint()
                        raise Interrupted(self._stop_signal)
            self._evaluate(final=True)
            self.finished = True
            self.save_checkpoint()
        finally:
            restore_signal_handlers(previous)
            self.log.close()
            self.close()

    def _budget_left(self) -> bool:
        c, cfg = self.counters, self.config
        episodes_left = cfg.total_episodes is None or c.episodes < cfg.total_episodes
        return c.env_steps < cfg.total_steps and episodes_left

    def _update(self, batch: TrialBatch) -> None:
        metrics = self.agent.metrics(self.agent.update(batch))
        self.counters.updates += 1
        bad = [key for key, value in metrics.items() if not np.isfinite(value)]
        if bad:
            latest = checkpoint.list_checkpoints(self.run_dir / "checkpoints")
            kept = f"last good checkpoint: {latest[-1]}" if latest else "no checkpoint was written"
            raise NumericalFault(
                f"training stopped at env step {self.counters.env_steps}, update "
                f"{self.counters.updates}: {', '.join(bad)} became non-finite; {kept}"
            )
        for key, value in metrics.items():
            self._update_sums[key] = self._update_sums.get(key, 0.0) + value
        self._update_count += 1

    def _reset_schedule(self) -> None:
        """Next env step at which to log, evaluate, checkpoint (derived, so never saved)."""
        cfg, step = self.config, self.counters.env_steps
        self._next_log = next_multiple(step, cfg.logging.every_steps)
        self._next_eval = next_multiple(step, cfg.eval.every_steps)
        self._next_checkpoint = next_multiple(step, cfg.checkpoint.every_steps)

    def _periodic(self) -> None:
        """Between updates: log, evaluate (not at the end: the final evaluation follows),
        checkpoint."""
        c, cfg = self.counters, self.config
        if c.env_steps >= self._next_log:
            self._write_metrics({})
            self._next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
        if c.env_steps >= self._next_eval and c.env_steps < cfg.total_steps:
            self._evaluate(final=False)
            self._next_eval = next_multiple(c.env_steps, cfg.eval.every_steps)
        if c.env_steps >= self._next_checkpoint:
            self._next_checkpoint = next_multiple(c.env_steps, cfg.checkpoint.every_steps)
            self.save_checkpoint()

    def _write_metrics(self, extra: dict[str, float]) -> None:
        assert self.log is not None
        c = self.counters
        now = time.perf_counter()
        if extra:  # an evaluation row: its time is not training throughput
            self.log.write(c.env_steps, {"time_s": now - self._start_wall, **extra})
            return
        last_steps, last_time = self._last_log
        values: dict[str, float] = {
            "time_s": now - self._start_wall,
            "steps_per_s": (c.env_steps - last_steps) / max(now - last_time, 1e-9),
            "episodes": c.episodes,
            "updates": c.updates,
            "env_instabilities": self.sampler.instabilities,
        }
        self._last_log = (c.env_steps, now)
        eps = self._episode_window
        if eps:
            values["train_return"] = float(np.mean([e.episode_return for e in eps]))
            values["train_success"] = float(np.mean([e.success for e in eps]))
            values["train_length"] = float(np.mean([e.length for e in eps]))
            # The adaptation seen in training: episode 1 vs episode K of the trials.
            k = self.agent.config.episodes_per_trial
            first = [e.episode_return for e in eps if e.episode_in_trial == 0]
            last = [e.episode_return for e in eps if e.episode_in_trial == k - 1]
            if first:
                values["train_return_first"] = float(np.mean(first))
            if last:
                values["train_return_last"] = float(np.mean(last))
            self._episode_window = []
        if self._update_count:
            for key, total in self._update_sums.items():
                values[key] = total / self._update_count
            self._update_sums, self._update_count = {}, 0
        self.log.write(c.env_steps, values)

    # -- evaluation -----------------------------------------------------------------------
    def adaptation_rows(self) -> list[AdaptationRow]:
        """The standard protocol: K episodes per trial on the eval tasks, hidden state kept
        across a trial. Evaluation uses its own envs and seed, and puts the agent's state
        (recurrent state of the training envs, sampling generator) back afterwards."""
        cfg = self.config.eval
        saved = self.agent.state_dict()
        try:
            return run_adaptation(
                self.agent, self.distribution, cfg.tasks(self.distribution),
                episodes=cfg.episodes, repeats=cfg.repeats, n_envs=cfg.n_envs,
                seed=self.seeds.eval, deterministic=cfg.deterministic,
                run=self.run_dir.name, run_seed=self.config.seed,
            )  # fmt: skip
        finally:
            self.agent.load_state_dict(saved)

    def _evaluate(self, final: bool) -> None:
        rows = self.adaptation_rows()
        self._write_metrics(eval_metrics(rows, self.config.eval.episodes))
        if final:
            write_final_eval(self.config, self.run_dir, self.counters.env_steps, rows)

    def _on_signal(self, signum: int) -> None:
        if self._stop_signal is not None:  # second signal: stop now; the last checkpoint is whole
            os._exit(128 + signum)
        self._stop_signal = signum
