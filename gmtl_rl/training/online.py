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
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig
from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EpisodeRecord
from gmtl_rl.core.rollout import TaskSchedule, UniformTaskSchedule
from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.errors import CheckpointError
from gmtl_rl.evaluation.adaptation import AdaptationRow, run_adaptation
from gmtl_rl.progress import progress_bar
from gmtl_rl.training.common import (
    Counters,
    Interrupted,
    MetricsLog,
    Seeds,
    env_spec,
    install_signal_handlers,
    make_sampler,
    next_multiple,
    restore_signal_handlers,
    seed_everything,
    write_final_eval,
)

EPISODE_COLUMNS = ["episode", "env_step", "task", "goal_switched", "length", "return", "success"]


class OnlineAgent(Policy, Protocol):
    config: Any
    training: bool

    def metric_names(self) -> list[str]: ...

    def pop_metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GoalSwitchSchedule:
    """Task 0 for the first `switch_after` episodes started, task 1 from then on (None: never)."""

    def __init__(self, switch_after: int | None) -> None:
        self.switch_after = switch_after
        self.started = 0

    def next_task(self, env_index: int) -> int:
        del env_index
        self.started += 1
        if self.switch_after is None or self.started <= self.switch_after:
            return 0
        return 1

    def state_dict(self) -> dict[str, Any]:
        return {"started": self.started}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.started = int(state["started"])


class OnlineRun:
    """One run of an online agent (see the module docstring)."""

    def __init__(self, config: RunConfig, run_dir: Path, distribution: TaskDistribution) -> None:
        self.config = config
        self.run_dir = run_dir
        self.distribution = distribution
        self.seeds = Seeds.from_seed(config.seed)
        seed_everything(config.seed, self.seeds)
        switch = getattr(distribution, "goal_switch_episode", None)
        self.switch_after: int | None = int(switch) if switch else None
        schedule: TaskSchedule
        if self.switch_after is not None:  # Four Rooms: the train goal, then a moved goal
            self.tasks = [distribution.train_tasks()[0], distribution.test_tasks()[0]]
            schedule = GoalSwitchSchedule(self.switch_after)
        else:  # any other family: a uniformly drawn train task per episode
            self.tasks = distribution.train_tasks()
            rng = np.random.default_rng(self.seeds.tasks)
            schedule = UniformTaskSchedule(len(self.tasks), rng)
        self.sampler = make_sampler(
            config, distribution, self.tasks, schedule, seed=self.seeds.envs
        )
        env = env_spec(self.sampler, distribution)
        try:
            self.agent: OnlineAgent = agent_spec(config.agent.name).build(
                config.agent, env, self.seeds.torch
            )
        except BaseException:
            self.sampler.close()
            raise
        self.counters = Counters()
        self.finished = False
        self.columns = [
            "step", "time_s", "steps_per_s", "episodes", "train_return", "train_success",
            "train_length", *self.agent.metric_names(),
        ]  # fmt: skip
        self.log: MetricsLog | None = None
        self._resumed_rows: int | None = None
        self._window: list[EpisodeRecord] = []
        self._stop_signal: int | None = None

    def close(self) -> None:
        self.sampler.close()

    def eval_policy(self) -> Policy:
        return self.agent

    # -- state ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        py_version, py_state, py_gauss = random.getstate()
        state = {
            "agent": self.agent.state_dict(),  # arrays go to arrays.npz, the rest to JSON
            "counters": asdict(self.counters),
            "finished": self.finished,
            "sampler": self.sampler.state_dict(),
            "rng": {"python": [py_version, list(py_state), py_gauss]},
            "logger": {"metrics_rows": self.log.rows if self.log else 0},
        }
        return checkpoint.save(
            self.run_dir / "checkpoints",
            self.counters.env_steps,
            {},
            state,
            keep=self.config.checkpoint.keep,
        )

    def load_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None:
        try:
            s = ckpt.state
            self.agent.load_state_dict(s["agent"])
            self.counters = Counters(**s["counters"])
            self.finished = bool(s["finished"])
            self.sampler.load_state_dict(s["sampler"])
            py = s["rng"]["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
            self._resumed_rows = int(s["logger"]["metrics_rows"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"{ckpt.path}: checkpoint does not match this run ({type(err).__name__}: {err})"
            ) from None

    # -- loop -----------------------------------------------------------------------------
    def _budget_left(self) -> bool:
        c, cfg = self.counters, self.config
        episodes_left = cfg.total_episodes is None or c.episodes < cfg.total_episodes
        return c.env_steps < cfg.total_steps and episodes_left

    def train(self, resumed: bool = False) -> None:
        cfg, c = self.config, self.counters
        self.log = MetricsLog(
            self.run_dir, self.columns, cfg.logging.tensorboard,
            keep_rows=self._resumed_rows if resumed else None, step=c.env_steps,
        )  # fmt: skip
        episodes_file = self._open_episodes(resumed)
        writer = csv.writer(episodes_file)
        next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
        next_ckpt = next_multiple(c.env_steps, cfg.checkpoint.every_steps)
        start, last = time.perf_counter(), (c.env_steps, time.perf_counter())
        previous = install_signal_handlers(self._on_signal)
        self.agent.training = True
        total = cfg.total_steps if cfg.total_episodes is None else cfg.total_episodes
        unit = "steps" if cfg.total_episodes is None else "episodes"
        try:
            with progress_bar(total, c.env_steps, cfg.experiment, unit) as advance:
                while self._budget_left():
                    batch = self.sampler.step(self.agent)
                    c.env_steps += int(batch.valid.sum())
                    for episode in self.sampler.pop_finished():
                        c.episodes += 1
                        self._window.append(episode)
                        writer.writerow(self._episode_row(episode))
                    advance(c.env_steps if unit == "steps" else c.episodes)
                    if c.env_steps >= next_log:
                        now = time.perf_counter()
                        self._log(now - start, (c.env_steps - last[0]) / max(now - last[1], 1e-9))
                        last = (c.env_steps, now)
                        next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
                        episodes_file.flush()
                    if c.env_steps >= next_ckpt or self._stop_signal is not None:
                        episodes_file.flush()
                        self.save_checkpoint()
                        next_ckpt = next_multiple(c.env_steps, cfg.checkpoint.every_steps)
                        if self._stop_signal is not None:
                            raise Interrupted(self._stop_signal)
            episodes_file.flush()
            self._log(time.perf_counter() - start, 0.0)
            self._final_report()
            self.finished = True
            self.save_checkpoint()
        finally:
            restore_signal_handlers(previous)
            episodes_file.close()
            self.log.close()
            self.close()

    def _open_episodes(self, resumed: bool) -> Any:
        path = self.run_dir / "episodes.csv"
        if resumed and path.exists():  # keep exactly the episodes the checkpoint has seen
            lines = path.read_text().splitlines(keepends=True)[: self.counters.episodes + 1]
            path.write_text("".join(lines))
            return open(path, "a", newline="")
        f = open(path, "w", newline="")  # noqa: SIM115
        csv.writer(f).writerow(EPISODE_COLUMNS)
        return f

    def _episode_row(self, episode: EpisodeRecord) -> list[Any]:
        switched = int(episode.task_id == 1)
        return [self.counters.episodes, self.counters.env_steps, episode.task_id, switched,
                episode.length, f"{episode.episode_return:.6g}", int(episode.success)]  # fmt: skip

    def _log(self, elapsed: float, rate: float) -> None:
        assert self.log is not None
        values: dict[str, float] = {
            "time_s": elapsed,
            "steps_per_s": rate,
            "episodes": self.counters.episodes,
        }
        if self._window:
            values["train_return"] = float(np.mean([e.episode_return for e in self._window]))
            values["train_success"] = float(np.mean([e.success for e in self._window]))
            values["train_length"] = float(np.mean([e.length for e in self._window]))
            self._window = []
        values.update(self.agent.pop_metrics())
        self.log.write(self.counters.env_steps, values)

    # -- evaluation -----------------------------------------------------------------------
    def adaptation_rows(self) -> list[AdaptationRow]:
        """After a goal switch: the episodes on the new goal (k = 1, 2, ...). Otherwise (no
        switch, or the budget ended before it) the standard protocol on the eval split, with
        learning frozen."""
        if self.switch_after is not None:
            rows = self._recovery_rows()
            if rows:
                return rows
        cfg = self.config.eval
        # Evaluation must not change training: it draws from the agent's generators and
        # sets its options, so the whole agent state is put back afterwards.
        saved = self.agent.state_dict()
        self.agent.training = False
        try:
            return run_adaptation(
                self.agent, self.distribution, cfg.tasks(self.distribution),
                episodes=cfg.episodes, repeats=cfg.repeats, n_envs=cfg.n_envs,
                seed=self.seeds.eval, deterministic=cfg.deterministic,
                run=self.run_dir.name, run_seed=self.config.seed,
            )  # fmt: skip
        finally:
            self.agent.load_state_dict(saved)
            self.agent.training = True

    def _recovery_rows(self) -> list[AdaptationRow]:
        path = self.run_dir / "episodes.csv"
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

    def _final_report(self) -> None:
        rows = self.adaptation_rows()  # no scheduled evals here: episodes.csv is the curve
        write_final_eval(self.config, self.run_dir, self.counters.env_steps, rows, False)

    def _on_signal(self, signum: int) -> None:
        if self._stop_signal is not None:  # second signal: stop now; the last checkpoint is whole
            os._exit(128 + signum)
        self._stop_signal = signum
