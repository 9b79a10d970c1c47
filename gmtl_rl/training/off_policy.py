"""The off-policy training loop (SAC, MT-SAC, SAC+HER): collect with the sampler, store in
replay, update, and log / evaluate / checkpoint on a schedule derived from the env step."""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig
from gmtl_rl.core.her import HindsightRelabeler
from gmtl_rl.core.policy import Policy, RandomPolicy
from gmtl_rl.core.records import EpisodeRecord
from gmtl_rl.core.replay import SAMPLERS, ReplayBatch, ReplaySampler, ReplayStorage
from gmtl_rl.core.rollout import UniformTaskSchedule
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


class OffPolicyAgent(Policy, Protocol):
    """What the off-policy loop needs from an agent (SAC and its relatives)."""

    config: Any

    def update(self, batch: ReplayBatch) -> Any: ...

    def metric_names(self) -> list[str]: ...

    def metrics(self, update: Any) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class OffPolicyRun:
    """One run of an off-policy agent: built from config, trained, checkpointed, evaluated."""

    def __init__(self, config: RunConfig, run_dir: Path, distribution: TaskDistribution) -> None:
        self.config = config
        self.run_dir = run_dir
        self.distribution = distribution
        self.train_tasks = distribution.train_tasks()
        self.seeds = Seeds.from_seed(config.seed)
        seed_everything(config.seed, self.seeds)
        self.sampler = make_sampler(
            config,
            distribution,
            self.train_tasks,
            UniformTaskSchedule(len(self.train_tasks), np.random.default_rng(self.seeds.tasks)),
            seed=self.seeds.envs,
        )
        env = env_spec(self.sampler, distribution)
        spec = agent_spec(config.agent.name)
        self._reward_env: gym.Env | None = None
        try:  # a config the agent rejects must not leave env workers behind
            self.agent: OffPolicyAgent = spec.build(
                config.agent, env, resolve_device(config.device)
            )
            self.relabel = self._hindsight_relabeler(self.agent.config)
        except BaseException:
            self.close()
            raise
        agent_cfg = self.agent.config
        self.replay = ReplayStorage(agent_cfg.buffer_size, env.observation_space, env.action_space)
        self.replay_sampler: ReplaySampler = SAMPLERS[agent_cfg.replay_sampler]()
        self.replay_rng = np.random.default_rng(self.seeds.replay)
        space = env.action_space
        self.warmup_policy = RandomPolicy(
            space.low, space.high, np.random.default_rng(self.seeds.warmup)
        )
        self.counters = Counters()
        self._reset_schedule()
        self.columns = [
            "step", "time_s", "steps_per_s", "episodes", "updates",
            "train_return", "train_success", "train_length", "env_instabilities",
            "env_worker_restarts",
            *self.agent.metric_names(),
            "eval_return_first", "eval_return_last", "eval_success_last",
        ]  # fmt: skip
        self._stop_signal: int | None = None
        self._episode_window: list[EpisodeRecord] = []
        self._update_sums: dict[str, float] = {}
        self._update_count = 0
        self.finished = False
        self.log: MetricsLog | None = None
        self._resumed_rows: int | None = None
        self._start_wall = time.perf_counter()
        self._last_log = (0, self._start_wall)

    def close(self) -> None:
        self.sampler.close()
        if self._reward_env is not None:
            self._reward_env.close()

    def eval_policy(self) -> Policy:
        return self.agent

    def _hindsight_relabeler(self, agent_cfg: Any) -> HindsightRelabeler | None:
        her = getattr(agent_cfg, "her", None)
        if her is None or her.strategy == "none":
            return None
        space = self.sampler.single_observation_space
        keys = set(space.spaces) if isinstance(space, gym.spaces.Dict) else set()
        if not {"observation", "achieved_goal", "desired_goal"} <= keys:
            raise ConfigError(
                f"agent.her.strategy: {her.strategy!r} needs a goal env (Dict observations with "
                f"observation/achieved_goal/desired_goal and compute_reward); "
                f"{self.distribution.name} is not one; set agent.her.strategy=none"
            )
        # A local env for the reward function (the sampler's envs may live in workers).
        self._reward_env = self.distribution.make_env(self.train_tasks[0])
        try:
            compute_reward = self._reward_env.get_wrapper_attr("compute_reward")
        except AttributeError:
            raise ConfigError(
                f"agent.her.strategy: env {self.distribution.name} has no compute_reward, "
                "which HER needs to recompute relabelled rewards"
            ) from None
        # One env's reward function serves all tasks: goal families put the goal in the
        # observation, not in reward parameters.
        return HindsightRelabeler(compute_reward, her.strategy, her.relabel_ratio)

    # -- state ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        c = self.counters
        agent_state = {"agent": self.agent.state_dict(), "torch_rng": torch.get_rng_state()}
        bad = non_finite_tensors(agent_state["agent"])
        if bad:  # never replace a good checkpoint with a broken one
            raise self._fault(f"non-finite values in {', '.join(bad[:3])}")
        py_version, py_state, py_gauss = random.getstate()
        state = {
            "counters": asdict(c),
            "finished": self.finished,
            "sampler": self.sampler.state_dict(),
            "rng": {
                "replay": self.replay_rng.bit_generator.state,
                "warmup": self.warmup_policy.rng.bit_generator.state,
                "python": [py_version, list(py_state), py_gauss],
            },
            "logger": {"metrics_rows": self.log.rows if self.log else 0},
        }
        return checkpoint.save(
            self.run_dir / "checkpoints",
            c.env_steps,
            agent_state,
            state,
            replay=self.replay if self.config.checkpoint.replay else None,
            keep=self.config.checkpoint.keep,
        )

    def load_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None:
        try:
            self.agent.load_state_dict(ckpt.agent["agent"])
            torch.set_rng_state(ckpt.agent["torch_rng"])
            s = ckpt.state
            self.counters = Counters(**s["counters"])
            self._reset_schedule()
            self.finished = bool(s["finished"])
            self.sampler.load_state_dict(s["sampler"])
            self.replay_rng.bit_generator.state = s["rng"]["replay"]
            self.warmup_policy.rng.bit_generator.state = s["rng"]["warmup"]
            py = s["rng"]["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{ckpt.path}: checkpoint does not match this run ({type(err).__name__}: {err})"
            ) from None
        if ckpt.replay_path is not None:
            self.replay.load(ckpt.replay_path)
        self._resumed_rows = int(ckpt.state["logger"]["metrics_rows"])

    # -- loop -----------------------------------------------------------------------------
    def train(self, resumed: bool = False) -> None:
        cfg = self.config
        self.log = MetricsLog(
            self.run_dir,
            self.columns,
            cfg.logging.tensorboard,
            keep_rows=self._resumed_rows if resumed else None,
            step=self.counters.env_steps,
        )
        agent_cfg = self.agent.config
        c = self.counters
        self._start_wall = time.perf_counter()
        self._last_log = (c.env_steps, self._start_wall)
        previous = install_signal_handlers(self._on_signal)
        try:
            with progress_bar(cfg.total_steps, c.env_steps, cfg.experiment, "steps") as advance:
                while c.env_steps < cfg.total_steps:
                    warm = c.env_steps < agent_cfg.learning_starts
                    batch = self.sampler.step(self.warmup_policy if warm else self.agent)
                    self.replay.add(batch)
                    n = int(batch.valid.sum())
                    c.env_steps += n
                    finished = self.sampler.pop_finished()
                    c.episodes += len(finished)
                    self._episode_window.extend(finished)
                    if c.env_steps >= agent_cfg.learning_starts and len(self.replay) > 0:
                        c.update_debt += n * agent_cfg.updates_per_step
                        while c.update_debt >= 1.0:
                            self._update(agent_cfg.batch_size)
                            c.update_debt -= 1.0
                    advance(c.env_steps)
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

    def _update(self, batch_size: int) -> None:
        rows = self.replay_sampler.rows(self.replay, batch_size, self.replay_rng)
        batch = self.replay.batch(rows)
        if self.relabel is not None:
            batch = self.relabel(self.replay, batch, self.replay_rng)
        result = self.agent.update(batch)
        self.counters.updates += 1
        metrics = self.agent.metrics(result)
        bad = [key for key, value in metrics.items() if not np.isfinite(value)]
        if bad:  # the losses are computed anyway, so this check is free on every update
            raise self._fault(f"{', '.join(bad)} became non-finite", batch)
        for key, value in metrics.items():
            self._update_sums[key] = self._update_sums.get(key, 0.0) + value
        self._update_count += 1

    def _fault(self, what: str, batch: ReplayBatch | None = None) -> NumericalFault:
        """Stop: save the offending batch beside the run; checkpoints stay the last good ones."""
        c = self.counters
        where = f" (batch saved to {self._save_batch(batch)})" if batch is not None else ""
        latest = checkpoint.list_checkpoints(self.run_dir / "checkpoints")
        kept = f"last good checkpoint: {latest[-1]}" if latest else "no checkpoint was written"
        return NumericalFault(
            f"training stopped at env step {c.env_steps}, update {c.updates}: {what}{where}; {kept}"
        )

    def _save_batch(self, batch: ReplayBatch) -> Path:
        path = self.run_dir / "faults" / f"batch-update-{self.counters.updates}.npz"
        path.parent.mkdir(exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for name, value in batch._asdict().items():
            if isinstance(value, dict):
                arrays.update({f"{name}.{k}": v for k, v in value.items()})
            else:
                arrays[name] = value
        np.savez(path, **arrays)  # type: ignore[arg-type]
        return path

    def _reset_schedule(self) -> None:
        """Next env step at which to log, evaluate, checkpoint (derived, so never saved)."""
        cfg, step = self.config, self.counters.env_steps
        self._next_log = next_multiple(step, cfg.logging.every_steps)
        self._next_eval = next_multiple(step, cfg.eval.every_steps)
        self._next_checkpoint = next_multiple(step, cfg.checkpoint.every_steps)

    def _periodic(self) -> None:
        c, cfg = self.counters, self.config
        if c.env_steps >= self._next_log:
            self._write_metrics({})
            self._next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
        if c.env_steps >= self._next_eval and c.env_steps < cfg.total_steps:  # final eval follows
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
            "env_worker_restarts": self.sampler.worker_restarts,
        }
        self._last_log = (c.env_steps, now)
        if self._episode_window:
            eps = self._episode_window
            values["train_return"] = float(np.mean([e.episode_return for e in eps]))
            values["train_success"] = float(np.mean([e.success for e in eps]))
            values["train_length"] = float(np.mean([e.length for e in eps]))
            self._episode_window = []
        if self._update_count:
            for key, total in self._update_sums.items():
                values[key] = total / self._update_count
            self._update_sums, self._update_count = {}, 0
        values.update(extra)
        self.log.write(c.env_steps, values)

    def adaptation_rows(self) -> list[AdaptationRow]:
        """The agent's adaptation curve under the config's eval protocol (own envs and seed)."""
        cfg = self.config.eval
        return run_adaptation(
            self.agent,
            self.distribution,
            cfg.tasks(self.distribution),
            episodes=cfg.episodes,
            repeats=cfg.repeats,
            n_envs=cfg.n_envs,
            seed=self.seeds.eval,
            deterministic=cfg.deterministic,
            run=self.run_dir.name,
            run_seed=self.config.seed,
        )

    def _evaluate(self, final: bool) -> None:
        rows = self.adaptation_rows()
        self._write_metrics(eval_metrics(rows, self.config.eval.episodes))
        if final:
            write_final_eval(self.config, self.run_dir, self.counters.env_steps, rows)

    def _on_signal(self, signum: int) -> None:
        if self._stop_signal is not None:  # second signal: stop now; the last checkpoint is whole
            os._exit(128 + signum)
        self._stop_signal = signum
