"""The run lifecycle every training loop shares.

A family's loop subclasses `TrainingRun` and writes only what is its own: `build` (its
sampler, agent and stores), `run_loop` (one pass of its algorithm until the budget is spent,
calling `advance`, `periodic` and `stop_if_signalled` at its safe points) and, where it keeps
more than the shared state, `loop_state` / `load_loop_state`. Everything else is here:

- construction that releases envs and workers when any part of it fails;
- `train()`: signals, the progress bar, the log / evaluate / checkpoint schedule on env steps,
  interrupt -> checkpoint -> `Interrupted`, the final evaluation and the final checkpoint;
- the checkpoint state every loop shares (counters, RNGs, sampler, metrics-log position)
  and its numerical checks (losses, metrics and agent state, the same in every loop);
- the adaptation rows of the evaluator, in the agent's evaluation mode;
- transfer (`init_from`): another run's networks, normalisers or replay copied into a fresh
  run before it trains.
"""

from __future__ import annotations

import json
import os
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import yaml
from torch import nn

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig
from gmtl_rl.core.normalization import RunningMeanStd
from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import TaskSchedule
from gmtl_rl.envs.task import Task, TaskDistribution, is_goal_space, named_classes
from gmtl_rl.errors import CheckpointError, ConfigError, NumericalFault, UsageError
from gmtl_rl.evaluation.adaptation import AdaptationRow, run_adaptation
from gmtl_rl.progress import progress_bar
from gmtl_rl.run_dir import MANIFEST, RunDir, checkpoint_label
from gmtl_rl.training.common import (
    Counters,
    Interrupted,
    MetricsLog,
    Seeds,
    eval_metrics,
    install_signal_handlers,
    next_multiple,
    non_finite,
    resolve_device,
    restore_signal_handlers,
    seed_everything,
    write_final_eval,
)

# Columns every loop's metrics.csv starts with, and the columns of a scheduled evaluation.
STEP_COLUMNS = ["step", "time_s", "steps_per_s", "episodes"]
EVAL_COLUMNS = ["eval_return_first", "eval_return_last", "eval_success_last"]
# What a checkpoint of another run or another version raises while being applied.
STATE_MISMATCH = (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError)


class TrainingRun(ABC):
    """One run of one agent family: built from config, trained, checkpointed, evaluated.

    `for_evaluation=True` builds only what evaluating a checkpoint needs (the agent, no
    training sampler, no replay), for `gmtl eval`.
    """

    # The family's metrics.csv columns (STEP_COLUMNS first, EVAL_COLUMNS last if it logs them).
    columns: list[str]
    # Whether evaluations are scheduled during training and logged (metrics.csv rows, the
    # training plot); a loop whose adaptation curve is its own training (online) says no.
    logs_evaluations: ClassVar[bool] = True
    # Resuming without the saved replay is an error (PEARL draws its contexts from it).
    needs_replay: ClassVar[bool] = False

    def __init__(
        self,
        config: RunConfig,
        run_dir: RunDir | Path,
        distribution: TaskDistribution,
        for_evaluation: bool = False,
    ) -> None:
        self.config = config
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.distribution = distribution
        self.for_evaluation = for_evaluation
        self.seeds = Seeds.from_seed(config.seed)
        seed_everything(config.seed, self.seeds)
        self.device = resolve_device(config.device)
        self.counters = Counters()
        self.finished = False
        self.sampler: RolloutSampler | None = None
        self.generators: dict[str, np.random.Generator] = {}  # saved with every checkpoint
        self.log: MetricsLog | None = None
        self.checkpoint_used: checkpoint.Checkpoint | None = None
        self._closers: list[Any] = []
        self._resumed_rows: int | None = None
        self.resumed = False  # train() continues a loaded checkpoint
        self._stop_signal: int | None = None
        self._episode_window: list[Any] = []  # finished episodes since the last metrics row
        self._update_sums: dict[str, float] = {}
        self._update_count = 0
        self._advance: Any = None
        self.init_record: dict[str, Any] | None = None  # what `initialize_from` copied
        self._start_wall = time.perf_counter()
        self._last_log = (0, self._start_wall)
        try:  # a config the agent rejects must not leave env workers behind
            self.build()
        except BaseException:
            self.close()
            raise
        self._reset_schedule()

    # -- what a family writes ------------------------------------------------------------------
    @abstractmethod
    def build(self) -> None:
        """Make the sampler (unless `for_evaluation`), the agent and the family's stores."""

    @abstractmethod
    def run_loop(self) -> None:
        """Train until the budget is spent (the final evaluation and checkpoint follow)."""

    def loop_state(self) -> dict[str, Any]:
        """The family's own checkpoint extras (JSON and numpy arrays)."""
        return {}

    def load_loop_state(self, state: dict[str, Any]) -> None:
        del state

    def agent_tensors(self) -> dict[str, Any]:
        """The agent's state for the checkpoint's torch file."""
        return {"agent": self.agent.state_dict()}

    def load_agent_tensors(self, tree: dict[str, Any]) -> None:
        self.agent.load_state_dict(tree["agent"])

    @contextmanager
    def evaluation_policy(self) -> Iterator[Policy]:
        """The agent as the evaluator runs it; training is unchanged by what happens inside."""
        with self.agent.evaluating():
            yield self.agent

    def replay_store(self) -> Any | None:
        """What to save as `replay.npz` (anything with save/load), if the family has one."""
        return None

    def sampler_state(self) -> dict[str, Any]:
        assert self.sampler is not None
        return self.sampler.state_dict()

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        assert self.sampler is not None
        self.sampler.load_state_dict(state)

    def training_metrics(self) -> dict[str, float]:
        """Metrics of the finished episodes since the last row (the window is then emptied)."""
        eps, self._episode_window = self._episode_window, []
        if not eps:
            return {}
        return {
            "train_return": float(np.mean([e.episode_return for e in eps])),
            "train_success": float(np.mean([e.success for e in eps])),
            "train_length": float(np.mean([e.length for e in eps])),
        }

    def update_means(self) -> dict[str, float]:
        """Means of the update metrics since the last row."""
        if not self._update_count:
            return {}
        means = {key: total / self._update_count for key, total in self._update_sums.items()}
        self._update_sums, self._update_count = {}, 0
        return means

    def flush(self) -> None:  # noqa: B027 (a hook: most loops keep no files of their own)
        """Files of the family's own to flush before a metrics row or a checkpoint."""

    # The progress bar: what it counts, so that its rate and ETA measure the run's real work.
    @property
    def progress_unit(self) -> str:
        return "steps"

    @property
    def progress_total(self) -> int:
        return self.config.total_steps

    def progress_count(self) -> int:
        return self.counters.env_steps

    # -- building blocks for `build` ----------------------------------------------------------
    def make_sampler(
        self,
        tasks: Sequence[Task],
        schedule: TaskSchedule,
        episodes_per_trial: int = 1,
        task_classes: Sequence[int] | None = None,
    ) -> RolloutSampler:
        """The run's sampler as its `sampler:` section says; closed with the run.
        `task_classes` (one per task) replaces the family's class ids in what the agent is
        told and what replay keeps (a task sequence: the element's position)."""
        s = self.config.sampler
        sampler = RolloutSampler(
            self.distribution,
            tasks,
            s.n_envs,
            schedule,
            seed=self.seeds.envs,
            episodes_per_trial=episodes_per_trial,
            autoreset_mode=s.autoreset_mode,
            backend=s.backend,
            worker_timeout_s=s.worker_timeout_s,
            max_restarts=s.max_restarts,
        )
        self.own(sampler)
        if task_classes is not None:
            sampler.task_classes = np.asarray(task_classes, np.int64)
        self.sampler = sampler
        return sampler

    def env_spec(self) -> EnvSpec:
        """What the agent is built for: the sampler's spaces (or, when evaluating, one env's)
        and the family's task classes."""
        if self.sampler is not None:
            obs_space = self.sampler.single_observation_space
            action_space = self.sampler.single_action_space
        else:
            probe = self.distribution.make_env(self.distribution.train_tasks()[0])
            obs_space, action_space = probe.observation_space, probe.action_space
            probe.close()
        return EnvSpec(
            obs_space,
            action_space,
            self.num_task_classes(),
            goal_env=is_goal_space(obs_space),
            task_class_names=self.task_class_names(),
        )

    def num_task_classes(self) -> int:
        """The class ids the agent may be told (a task sequence: one per element)."""
        return self.distribution.num_task_classes

    def task_class_names(self) -> tuple[str, ...] | None:
        """The names of those classes, in id order, where the family names them."""
        return named_classes(self.distribution)

    def build_agent(self, env: EnvSpec) -> Any:
        """The config's agent, through the one build signature of the agent registry."""
        spec = agent_spec(self.config.agent.name)
        self.agent = spec.build(self.config.agent, env, self.seeds.torch, self.device)
        return self.agent

    def own(self, resource: Any) -> Any:
        """Close `resource` (anything with `close()`) when the run closes."""
        self._closers.append(resource)
        return resource

    def close(self) -> None:
        """Release envs and workers (also of a run that never trained)."""
        while self._closers:
            self._closers.pop().close()

    # -- the loop skeleton ----------------------------------------------------------------------
    def train(self, resumed: bool = False) -> None:
        cfg, c = self.config, self.counters
        self.resumed = resumed
        self.log = MetricsLog(
            self.run_dir,
            self.columns,
            cfg.logging.tensorboard,
            keep_rows=self._resumed_rows if resumed else None,
            step=c.env_steps,
        )
        self._start_wall = time.perf_counter()
        self._last_log = (c.env_steps, self._start_wall)
        self._reset_schedule()
        if not resumed and self.init_record is not None:
            self.run_dir.init_record.write_text(json.dumps(self.init_record, indent=2))
        previous = install_signal_handlers(self._on_signal)
        try:
            with progress_bar(
                self.progress_total, self.progress_count(), cfg.experiment, self.progress_unit
            ) as advance:
                self._advance = advance
                self.run_loop()
            self.evaluate(final=True)
            self.finished = True
            self.save_checkpoint()
        finally:
            restore_signal_handlers(previous)
            self.log.close()
            self.close()

    def budget_left(self) -> bool:
        c, cfg = self.counters, self.config
        episodes_left = cfg.total_episodes is None or c.episodes < cfg.total_episodes
        return c.env_steps < cfg.total_steps and episodes_left

    def advance(self) -> None:
        """Move the progress bar to the current count."""
        self._advance(self.progress_count())

    def record_episodes(self, episodes: Sequence[Any]) -> None:
        self.counters.episodes += len(episodes)
        self._episode_window.extend(episodes)

    def record_update(self, metrics: dict[str, float], batch: Any = None) -> None:
        """One gradient update's metrics: checked (the losses are computed anyway, so the
        check is free), then summed for the next metrics row."""
        self.counters.updates += 1
        bad = [key for key, value in metrics.items() if not np.isfinite(value)]
        if bad:
            raise self.fault(f"{', '.join(bad)} became non-finite", batch)
        for key, value in metrics.items():
            self._update_sums[key] = self._update_sums.get(key, 0.0) + value
        self._update_count += 1

    def _reset_schedule(self) -> None:
        """Next env step at which to log, evaluate, checkpoint (derived, so never saved)."""
        cfg, step = self.config, self.counters.env_steps
        self._next_log = next_multiple(step, cfg.logging.every_steps)
        self._next_eval = next_multiple(step, cfg.eval.every_steps)
        self._next_checkpoint = next_multiple(step, cfg.checkpoint.every_steps)

    def periodic(self) -> None:
        """At a safe point: log, evaluate (not at the end: the final evaluation follows) and
        checkpoint when the env step says so."""
        c, cfg = self.counters, self.config
        if c.env_steps >= self._next_log:
            self.write_metrics()
            self._next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
        if self.logs_evaluations and self._next_eval <= c.env_steps < cfg.total_steps:
            self.evaluate(final=False)
            self._next_eval = next_multiple(c.env_steps, cfg.eval.every_steps)
        if c.env_steps >= self._next_checkpoint:
            self._next_checkpoint = next_multiple(c.env_steps, cfg.checkpoint.every_steps)
            self.save_checkpoint()

    def stop_if_signalled(self) -> None:
        """After SIGINT/SIGTERM: checkpoint at this safe point and stop."""
        if self._stop_signal is not None:
            self.save_checkpoint()
            raise Interrupted(self._stop_signal)

    def _on_signal(self, signum: int) -> None:
        if self._stop_signal is not None:  # second signal: stop now; the last checkpoint is whole
            os._exit(128 + signum)
        self._stop_signal = signum

    # -- metrics --------------------------------------------------------------------------------
    def write_metrics(self, evaluation: dict[str, float] | None = None) -> None:
        """A metrics row: training throughput, episodes and update means, or (given) the
        row of a scheduled evaluation, whose time is not training throughput."""
        assert self.log is not None
        self.flush()
        c = self.counters
        now = time.perf_counter()
        if evaluation:
            self.log.write(c.env_steps, {"time_s": now - self._start_wall, **evaluation})
            return
        last_steps, last_time = self._last_log
        values: dict[str, float] = {
            "time_s": now - self._start_wall,
            "steps_per_s": (c.env_steps - last_steps) / max(now - last_time, 1e-9),
            "episodes": c.episodes,
            "updates": c.updates,
        }
        if self.sampler is not None:
            values["env_instabilities"] = self.sampler.instabilities
            values["env_worker_restarts"] = self.sampler.worker_restarts
        self._last_log = (c.env_steps, now)
        values.update(self.training_metrics())
        means = self.update_means()
        bad = [key for key, value in means.items() if not np.isfinite(value)]
        if bad:
            raise self.fault(f"{', '.join(bad)} became non-finite")
        values.update(means)
        self.log.write(c.env_steps, values)

    # -- evaluation -----------------------------------------------------------------------------
    def adaptation_rows(self) -> list[AdaptationRow]:
        """The agent's adaptation curve under the config's eval protocol (own envs and seed)."""
        with self.evaluation_policy() as policy:
            return self.protocol_rows(policy, self.config.eval.tasks(self.distribution))

    def protocol_rows(self, policy: Policy, tasks: Sequence[Task]) -> list[AdaptationRow]:
        """`policy` on `tasks` under the config's eval protocol (episodes, repeats, envs,
        evaluation seed, deterministic or not)."""
        cfg = self.config.eval
        return run_adaptation(
            policy,
            self.distribution,
            tasks,
            episodes=cfg.episodes,
            repeats=cfg.repeats,
            n_envs=cfg.n_envs,
            seed=self.seeds.eval,
            deterministic=cfg.deterministic,
            run=self.run_dir.name,
            run_seed=self.config.seed,
        )

    def evaluate(self, final: bool) -> None:
        rows = self.adaptation_rows()
        if self.logs_evaluations:
            self.write_metrics(eval_metrics(rows, self.config.eval.episodes))
        if final:
            write_final_eval(
                self.config,
                self.run_dir,
                self.counters.env_steps,
                rows,
                training_plot=self.logs_evaluations,
            )

    def eval_policy(self) -> Policy:
        """The trained agent as a Policy, for protocols other than ours (Meta-World's)."""
        policy: Policy = self.agent
        return policy

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write `checkpoints/step-N`; a non-finite agent never replaces a good checkpoint."""
        self.flush()
        tensors = self.agent_tensors()
        extras = self.loop_state()
        bad = non_finite(tensors, "agent") + non_finite(extras, "state")
        if bad:
            raise self.fault(f"non-finite values in {', '.join(bad[:3])}")
        py_version, py_state, py_gauss = random.getstate()
        state = {
            "counters": asdict(self.counters),
            "finished": self.finished,
            "rng": {
                "python": [py_version, list(py_state), py_gauss],
                **{name: g.bit_generator.state for name, g in self.generators.items()},
            },
            "sampler": self.sampler_state() if self.sampler is not None else None,
            "loop": extras,
            "logger": {"metrics_rows": self.log.rows if self.log else 0},
        }
        replay = self.replay_store() if self.config.checkpoint.replay else None
        checkpoint.save(
            self.run_dir.checkpoints,
            self.counters.env_steps,
            {**tensors, "torch_rng": torch.get_rng_state()},
            state,
            replay=replay,
            keep=self.config.checkpoint.keep,
        )

    def load_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None:
        """Continue exactly where `ckpt` was written (or, `for_evaluation`, load the agent)."""
        try:
            self.load_agent_tensors(ckpt.agent)
            torch.set_rng_state(ckpt.agent["torch_rng"])
            s = ckpt.state
            self.counters = Counters(**s["counters"])
            self.finished = bool(s["finished"])
            self._resumed_rows = int(s["logger"]["metrics_rows"])
            py = s["rng"]["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
            for name, generator in self.generators.items():
                generator.bit_generator.state = s["rng"][name]
            if self.sampler is not None:
                self.load_sampler_state(s["sampler"])
            self.load_loop_state(s["loop"])
        except STATE_MISMATCH as err:
            raise CheckpointError(
                f"{ckpt.path}: checkpoint does not match this run ({type(err).__name__}: {err})"
            ) from None
        replay = self.replay_store()
        if replay is not None and not self.for_evaluation:
            if ckpt.replay_path is not None:
                replay.load(ckpt.replay_path)
            elif self.needs_replay:
                raise CheckpointError(
                    f"{ckpt.path}: no replay.npz, which {self.config.agent.name} needs to resume"
                )
        self._reset_schedule()
        self.checkpoint_used = ckpt

    # -- transfer (init_from) -------------------------------------------------------------------
    def initialize_from(self) -> None:
        """`init_from`: copy `init_parts` of another run's checkpoint into this fresh run,
        after build and before it trains (the transfer protocol: its env steps count from 0).
        Everything is checked before anything is copied. A resumed run continues from its own
        checkpoint instead; the source is recorded in the run directory (init_from.json)."""
        cfg = self.config
        if cfg.init_from is None:
            return
        ckpt, source = _transfer_checkpoint(cfg.init_from)
        where = f"{source} ({checkpoint_label(ckpt.path)})"
        parts = cfg.transfer_parts
        copies: list[tuple[nn.Module, dict[str, torch.Tensor]]] = []
        if "networks" in parts or "normalizers" in parts:
            copies = self._module_copies(
                ckpt.agent.get("agent"), where, "networks" in parts, "normalizers" in parts
            )
        replay = self._transfer_replay(ckpt, where) if "replay" in parts else None
        for module, state in copies:
            module.load_state_dict(state)
        if replay is not None:
            replay[0].load(replay[1])
        try:
            source_config = RunDir(source).read_config_mapping()
        except (OSError, ValueError, UsageError, yaml.YAMLError):
            source_config = {}  # the record still names the run and checkpoint
        self.init_record = {
            "init_from": str(source.resolve()),
            "checkpoint": checkpoint_label(ckpt.path),
            "step": ckpt.step,
            "parts": parts,
            "agent": (source_config.get("agent") or {}).get("name"),
            "env": (source_config.get("env") or {}).get("name"),
        }

    def network_modules(self) -> dict[str, nn.Module]:
        """The agent's torch networks, by the name its state dict keeps each under (SAC:
        actor, critic, critic_target, temperature; optimisers and counters are not)."""
        state = self.agent_tensors().get("agent")
        if not isinstance(state, dict):
            return {}
        found = {key: getattr(self.agent, key, None) for key in state}
        return {key: m for key, m in found.items() if isinstance(m, nn.Module)}

    def _module_copies(
        self, source: Any, where: str, networks: bool, normalizers: bool
    ) -> list[tuple[nn.Module, dict[str, torch.Tensor]]]:
        """Each network's state with the chosen entries taken from `source` (checked: every
        chosen tensor is there, with this run's shape)."""
        name = self.config.agent.name
        modules = self.network_modules()
        if not modules:
            raise ConfigError(
                f"init_parts: agent {name} names no torch networks in its state, so it cannot "
                "copy networks or normalizers from another run (valid: replay)"
            )
        if not isinstance(source, dict):
            raise ConfigError(f"init_from: {where} holds no agent state to copy networks from")
        chosen: dict[str, list[str]] = {}
        for key, module in modules.items():
            norm = tuple(
                f"{sub}." for sub, m in module.named_modules() if isinstance(m, RunningMeanStd)
            )
            keys = [
                k
                for k in module.state_dict()
                if (normalizers and k.startswith(norm)) or (networks and not k.startswith(norm))
            ]
            if keys:
                chosen[key] = keys
        if normalizers and not any(
            isinstance(m, RunningMeanStd) for mod in modules.values() for m in mod.modules()
        ):
            raise ConfigError(
                f"init_parts: normalizers, but agent {name} keeps no running normalisers "
                "(input statistics); drop it (valid for this agent: networks, replay)"
            )
        copies = []
        for key, keys in chosen.items():
            theirs = source.get(key)
            if not isinstance(theirs, dict):
                raise ConfigError(
                    f"init_from: {where}: its agent has no network {key!r} "
                    f"(it has: {', '.join(sorted(map(str, source)))}); another kind of agent?"
                )
            state = modules[key].state_dict()
            for k in keys:
                if k not in theirs:
                    raise ConfigError(f"init_from: {where}: agent.{key}.{k} is missing there")
                ours_shape, their_shape = tuple(state[k].shape), tuple(theirs[k].shape)
                if ours_shape != their_shape:
                    raise ConfigError(
                        f"init_from: agent.{key}.{k} has shape {list(their_shape)} in {where} "
                        f"but {list(ours_shape)} here (the networks must match: sizes, "
                        "observation and action dimensions, task classes)"
                    )
                state[k] = theirs[k]
            copies.append((modules[key], state))
        return copies

    def _transfer_replay(self, ckpt: checkpoint.Checkpoint, where: str) -> tuple[Any, Path]:
        """This run's replay and the source's replay file, checked against each other."""
        store = None if self.for_evaluation else self.replay_store()
        if store is None:
            raise ConfigError(
                f"init_parts: replay, but agent {self.config.agent.name}'s training loop keeps "
                "no replay (valid: networks)"
            )
        path = ckpt.replay_path
        if path is None:
            raise ConfigError(
                f"init_parts: replay, but {where} holds no replay.npz "
                "(it ran with checkpoint.replay=false)"
            )
        if isinstance(store, ReplayStorage):
            _check_replay_file(store, path, where)
        return store, path

    def fault(self, what: str, batch: Any = None) -> NumericalFault:
        """Stop: save the offending batch beside the run; checkpoints stay the last good ones."""
        c = self.counters
        where = f" (batch saved to {self._save_batch(batch)})" if batch is not None else ""
        latest = self.run_dir.checkpoint_dirs()
        kept = f"last good checkpoint: {latest[-1]}" if latest else "no checkpoint was written"
        return NumericalFault(
            f"training stopped at env step {c.env_steps}, update {c.updates}: {what}{where}; {kept}"
        )

    def _save_batch(self, batch: Any) -> str:
        path = self.run_dir.fault_batch(self.counters.updates)
        path.parent.mkdir(exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for name, value in batch._asdict().items():
            if isinstance(value, dict):
                arrays.update({f"{name}.{k}": v for k, v in value.items()})
            else:
                arrays[name] = value
        np.savez(path, **arrays)  # type: ignore[arg-type]
        return str(path)


def _transfer_checkpoint(value: str) -> tuple[checkpoint.Checkpoint, Path]:
    """The checkpoint `init_from` names (a run directory: its newest whole checkpoint; or a
    checkpoint directory) and the run it belongs to."""
    path = Path(value)
    if not path.exists():
        raise ConfigError(
            f"init_from: {path} does not exist (a run directory, or one of its checkpoints)"
        )
    if (path / MANIFEST).is_file():
        return checkpoint.load(path), path.parent.parent
    run = RunDir(path)
    if not run.is_run():
        raise ConfigError(
            f"init_from: {path} is neither a run directory (no config.yaml) nor a checkpoint"
        )
    whole = run.checkpoint_dirs()
    if not whole:
        raise ConfigError(f"init_from: {path} has no complete checkpoint to start from")
    return checkpoint.load(whole[-1]), path


def _check_replay_file(store: ReplayStorage, path: Path, where: str) -> None:
    """The replay file's columns fit this run's storage (errors name the column and both
    shapes), and its transitions fit its capacity."""
    try:
        with np.load(path, allow_pickle=False) as data:
            shapes = {k[4:]: data[k].shape for k in data.files if k.startswith("col.")}
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable replay file ({err})") from None
    for column, (shape, _) in store.spec.items():
        if column not in shapes:
            raise ConfigError(
                f"init_from: {where}: its replay has no column {column!r}, which this run's "
                "replay stores (another observation or action space?)"
            )
        if tuple(shapes[column][1:]) != tuple(shape):
            raise ConfigError(
                f"init_from: replay column {column!r} holds rows of shape "
                f"{list(shapes[column][1:])} in {where} but {list(shape)} here"
            )
    rows = int(shapes["reward"][0])
    if rows > store.capacity:
        raise ConfigError(
            f"init_from: {where}'s replay holds {rows} transitions, more than this run's "
            f"replay capacity {store.capacity} (agent.buffer_size)"
        )
