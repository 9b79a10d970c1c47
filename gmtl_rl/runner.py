"""Builds env + agent from a config and runs them: the run directory, seeding, the training
loop of each agent family, logging, scheduled evaluation, checkpoints and resume, signals.

Run directory: runs/<experiment>/<timestamp>-s<seed>/ with config.yaml, tasks.json,
versions.json, metrics.csv, tb/ (TensorBoard), checkpoints/, eval/.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import numpy as np
import torch

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig, apply_overrides, parse_config, read_yaml
from gmtl_rl.core.policy import Policy, RandomPolicy
from gmtl_rl.core.records import EnvSpec, EpisodeRecord
from gmtl_rl.core.replay import SAMPLERS, ReplayBatch, ReplaySampler, ReplayStorage
from gmtl_rl.core.rollout import RolloutSampler, UniformTaskSchedule
from gmtl_rl.envs.task import Task, TaskDistribution, tasks_from_json, tasks_to_json
from gmtl_rl.errors import CheckpointError, ConfigError, NumericalFault, UsageError
from gmtl_rl.evaluation.adaptation import AdaptationRow, run_adaptation, write_report
from gmtl_rl.evaluation.training import read_eval_points, write_training_plot
from gmtl_rl.progress import progress_bar

RESUMABLE_KEYS = ("total_steps", "eval.", "checkpoint.", "logging.")


class OffPolicyAgent(Policy, Protocol):
    """What the off-policy loop needs from an agent (SAC and its relatives)."""

    config: Any

    def update(self, batch: ReplayBatch) -> Any: ...

    def metric_names(self) -> list[str]: ...

    def metrics(self, update: Any) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


@dataclass
class Counters:
    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    update_debt: float = 0.0  # fractional gradient steps owed (updates_per_step may be < 1)


@dataclass(frozen=True)
class Seeds:
    """Independent streams from the one config seed (numpy SeedSequence spawning)."""

    torch: int
    envs: int
    tasks: int
    replay: int
    warmup: int
    eval: int

    @classmethod
    def from_seed(cls, seed: int) -> Seeds:
        streams = np.random.SeedSequence(seed).generate_state(6, dtype=np.uint32)
        return cls(*(int(s) for s in streams))


# -- run directory --------------------------------------------------------------------------
def new_run_dir(config: RunConfig, run_dir: str | Path | None) -> Path:
    """Where a new run goes; an existing non-empty directory is refused (never overwritten)."""
    if run_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(config.runs_dir) / config.experiment / f"{stamp}-s{config.seed}"
        n = 1
        while path.exists():
            n += 1
            path = Path(config.runs_dir) / config.experiment / f"{stamp}-s{config.seed}-{n}"
    else:
        path = Path(run_dir)
        if path.exists() and any(path.iterdir()):
            raise UsageError(
                f"run directory {path} already exists and is not empty; "
                f"continue it with `gmtl resume {path}` or choose another"
            )
    return path


def versions() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": checkpoint.package_versions(),
    }


class MetricsLog:
    """metrics.csv (fixed columns) plus optional TensorBoard, resumable at a row count."""

    def __init__(
        self,
        run_dir: Path,
        columns: Sequence[str],
        tensorboard: bool,
        keep_rows: int | None,
        step: int = 0,
    ):
        self.path = run_dir / "metrics.csv"
        self.columns = list(columns)
        if keep_rows is not None and self.path.exists():
            # Resume: drop rows logged after the checkpoint, so the log matches the state.
            with open(self.path, newline="") as f:
                lines = f.readlines()[: keep_rows + 1]
            self.path.write_text("".join(lines))
            self.rows = max(0, len(lines) - 1)
            self._file = open(self.path, "a", newline="")  # noqa: SIM115 (kept open for the run)
            self._writer = csv.writer(self._file)
        else:
            self._file = open(self.path, "w", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.columns)
            self.rows = 0
        self.tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # On resume, drop events logged after the checkpoint (purge_step), as for the CSV.
            self.tb = SummaryWriter(
                str(run_dir / "tb"), purge_step=step if keep_rows is not None else None
            )

    def write(self, step: int, values: dict[str, float]) -> None:
        row = [step] + [values.get(c, "") for c in self.columns[1:]]
        self._writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
        self._file.flush()
        self.rows += 1
        if self.tb is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and np.isfinite(value):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()


# -- the off-policy training loop (SAC family) ------------------------------------------------
class OffPolicyRun:
    """One run of an off-policy agent: built from config, trained, checkpointed, evaluated."""

    def __init__(self, config: RunConfig, run_dir: Path, distribution: TaskDistribution) -> None:
        self.config = config
        self.run_dir = run_dir
        self.distribution = distribution
        self.train_tasks = distribution.train_tasks()
        self.seeds = Seeds.from_seed(config.seed)
        _seed_everything(config.seed, self.seeds)
        self.sampler = RolloutSampler(
            distribution,
            self.train_tasks,
            config.sampler.n_envs,
            UniformTaskSchedule(len(self.train_tasks), np.random.default_rng(self.seeds.tasks)),
            seed=self.seeds.envs,
            autoreset_mode=config.sampler.autoreset_mode,
        )
        env = EnvSpec(
            self.sampler.single_observation_space,
            self.sampler.single_action_space,
            len(self.train_tasks),
        )
        spec = agent_spec(config.agent.name)
        self.agent: OffPolicyAgent = spec.build(config.agent, env, _device(config.device))
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
            "train_return", "train_success", "train_length",
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

    # -- state ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        c = self.counters
        agent_state = {"agent": self.agent.state_dict(), "torch_rng": torch.get_rng_state()}
        bad = _non_finite_tensors(agent_state["agent"])
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
        previous = _install_signal_handlers(self._on_signal)
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
            _restore_signal_handlers(previous)
            self.log.close()
            self.sampler.close()

    def _update(self, batch_size: int) -> None:
        rows = self.replay_sampler.rows(self.replay, batch_size, self.replay_rng)
        batch = self.replay.batch(rows)
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
        self._next_log = _next_multiple(step, cfg.logging.every_steps)
        self._next_eval = _next_multiple(step, cfg.eval.every_steps)
        self._next_checkpoint = _next_multiple(step, cfg.checkpoint.every_steps)

    def _periodic(self) -> None:
        c, cfg = self.counters, self.config
        if c.env_steps >= self._next_log:
            self._write_metrics({})
            self._next_log = _next_multiple(c.env_steps, cfg.logging.every_steps)
        if c.env_steps >= self._next_eval and c.env_steps < cfg.total_steps:  # final eval follows
            self._evaluate(final=False)
            self._next_eval = _next_multiple(c.env_steps, cfg.eval.every_steps)
        if c.env_steps >= self._next_checkpoint:
            self._next_checkpoint = _next_multiple(c.env_steps, cfg.checkpoint.every_steps)
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
            self.distribution.tasks(cfg.split)[: cfg.max_tasks],
            episodes=cfg.episodes,
            repeats=cfg.repeats,
            n_envs=cfg.n_envs,
            seed=self.seeds.eval,
            deterministic=cfg.deterministic,
            run=self.run_dir.name,
            run_seed=self.config.seed,
        )

    def _evaluate(self, final: bool) -> None:
        cfg = self.config.eval
        rows = self.adaptation_rows()
        first = [r.episode_return for r in rows if r.episode == 1]
        last = [r for r in rows if r.episode == cfg.episodes]
        metrics = {
            "eval_return_first": float(np.mean(first)),
            "eval_return_last": float(np.mean([r.episode_return for r in last])),
            "eval_success_last": float(np.mean([r.success for r in last])),
        }
        self._write_metrics(metrics)
        if final:
            meta = eval_meta(self.config, self.run_dir, self.counters.env_steps)
            write_report(rows, self.run_dir / "eval", meta, cfg.confidence, cfg.bootstrap_resamples)
            points = read_eval_points(self.run_dir / "metrics.csv", self.config.seed)
            write_training_plot(
                {meta["label"]: points},
                self.run_dir / "eval" / "training.png",
                title=f"{self.config.experiment}: {cfg.split}-task return at k={cfg.episodes}",
                resamples=cfg.bootstrap_resamples,
            )

    def _on_signal(self, signum: int) -> None:
        if self._stop_signal is not None:  # second signal: stop now; the last checkpoint is whole
            os._exit(128 + signum)
        self._stop_signal = signum


def eval_meta(config: RunConfig, run_dir: Path, step: int) -> dict[str, Any]:
    return {
        "run": run_dir.name,
        "label": f"{config.experiment} (seed {config.seed})",
        "experiment": config.experiment,
        "seed": config.seed,
        "env": config.env.name,
        "agent": config.agent.name,
        "split": config.eval.split,
        "step": step,
        "title": f"{config.experiment}: {config.agent.name} on {config.env.name} "
        f"({config.eval.split} tasks, step {step})",
    }


# -- entry points used by the CLI ---------------------------------------------------------------
def train(
    config: RunConfig,
    run_dir: str | Path | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> Path:
    """Start a new run; returns its directory (`on_start` hears it before training begins)."""
    distribution = config.env.build()
    path = new_run_dir(config, run_dir)
    # Build env + agent first: a config they reject leaves no half-made run directory behind.
    run = _build_run(config, path, distribution)
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.yaml").write_text(config.dump_yaml())
        splits = {"train": distribution.train_tasks(), "test": distribution.test_tasks()}
        (path / "tasks.json").write_text(tasks_to_json(splits))
        (path / "versions.json").write_text(json.dumps(versions(), indent=2))
    except OSError as err:
        run.sampler.close()
        raise UsageError(f"cannot write run directory {path}: {err.strerror}") from None
    if on_start is not None:
        on_start(path)
    run.train()
    return path


def resume(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[Path, bool]:
    """Continue a run from its latest checkpoint; returns (dir, whether any training ran)."""
    path = Path(run_dir)
    run, config = _open_run(path, overrides)
    if run.finished and run.counters.env_steps >= config.total_steps:
        run.sampler.close()
        return path, False
    run.finished = False
    (path / "config.yaml").write_text(config.dump_yaml())
    run.train(resumed=True)
    return path, True


def evaluate(run_dir: str | Path, split: str | None = None, episodes: int | None = None) -> Path:
    """Evaluate a run's latest checkpoint; writes eval/ (or eval-<split>-k<K>/ if changed)."""
    path = Path(run_dir)
    overrides = []
    if split is not None:
        overrides.append(f"eval.split={split}")
    if episodes is not None:
        overrides.append(f"eval.episodes={episodes}")
    run, config = _open_run(path, overrides)
    run.sampler.close()
    rows = run.adaptation_rows()
    cfg = config.eval
    out = path / "eval" if not overrides else path / f"eval-{cfg.split}-k{cfg.episodes}"
    meta = eval_meta(config, path, run.counters.env_steps)
    write_report(rows, out, meta, cfg.confidence, cfg.bootstrap_resamples)
    return out


def _open_run(path: Path, overrides: Sequence[str]) -> tuple[OffPolicyRun, RunConfig]:
    """A run directory's config (with allowed overrides) and its latest checkpoint, loaded."""
    config = load_run_config(path, overrides)
    distribution = config.env.build()
    check_tasks(path, distribution)
    ckpt = checkpoint.load_latest(path / "checkpoints")
    run = _build_run(config, path, distribution)
    run.load_checkpoint(ckpt)
    return run, config


def load_run_config(path: Path, overrides: Sequence[str] = ()) -> RunConfig:
    if not (path / "config.yaml").is_file():
        raise UsageError(f"{path} is not a run directory (no config.yaml)")
    for item in overrides:
        key = item.partition("=")[0]
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS):
            raise ConfigError(
                f"override {item!r}: only total_steps, eval.*, checkpoint.* and logging.* "
                "can change in an existing run"
            )
    return parse_config(apply_overrides(read_yaml(path / "config.yaml"), overrides))


def check_tasks(path: Path, distribution: TaskDistribution) -> None:
    """The run's saved tasks must be the ones the family builds now."""
    try:
        saved = tasks_from_json((path / "tasks.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}/tasks.json: missing or corrupt ({err})") from None
    current: dict[str, list[Task]] = {
        "train": distribution.train_tasks(),
        "test": distribution.test_tasks(),
    }
    if saved != current:
        raise CheckpointError(
            f"{path}/tasks.json: the saved tasks differ from what env {distribution.name!r} "
            "builds now (the family or its options changed); re-run instead of resuming"
        )


def _build_run(config: RunConfig, path: Path, distribution: TaskDistribution) -> OffPolicyRun:
    spec = agent_spec(config.agent.name)
    if spec.family != "off_policy":
        raise UsageError(f"agent {spec.name!r} has no training loop yet (family {spec.family!r})")
    if (
        getattr(config.agent, "task_embedding_dim", 0) > 0
        and config.eval.split == "test"
        and distribution.test_tasks() != distribution.train_tasks()
    ):
        raise ConfigError(
            "agent.task_embedding_dim: an agent that embeds task ids cannot act on held-out "
            "test tasks; set eval.split=train (the multi-task protocol) or task_embedding_dim=0"
        )
    _set_threads(config)
    return OffPolicyRun(config, path, distribution)


# -- helpers --------------------------------------------------------------------------------
def _non_finite_tensors(tree: Any, path: str = "agent") -> list[str]:
    """Paths of floating tensors in a state tree that hold NaN or inf."""
    if isinstance(tree, torch.Tensor):
        bad = tree.is_floating_point() and not bool(torch.isfinite(tree).all())
        return [path] if bad else []
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _non_finite_tensors(v, f"{path}.{k}")]
    if isinstance(tree, list | tuple):
        return [p for i, v in enumerate(tree) for p in _non_finite_tensors(v, f"{path}[{i}]")]
    return []


def _next_multiple(step: int, every: int) -> int | float:
    """The first multiple of `every` after `step`; never, when `every` is 0."""
    return (step // every + 1) * every if every > 0 else float("inf")


def _seed_everything(seed: int, seeds: Seeds) -> None:
    random.seed(seed)
    torch.manual_seed(seeds.torch)


def _set_threads(config: RunConfig) -> None:
    torch.set_num_threads(config.threads or min(2, os.cpu_count() or 1))


def _device(name: str) -> str:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device: {name!r} is not a torch device (cpu, cuda, cuda:0, ...)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but this machine has no usable CUDA GPU; use cpu")
    return name


def _install_signal_handlers(callback: Any) -> dict[int, Any]:
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        callback(signum)

    if threading.current_thread() is not threading.main_thread():
        return previous  # signals can only be handled in the main thread
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
