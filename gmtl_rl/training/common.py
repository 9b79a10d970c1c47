"""The pieces of the run lifecycle (`base.py`): seeds, counters, the metrics log, signal
handling, numeric checks and the final evaluation's files."""

from __future__ import annotations

import csv
import math
import os
import platform
import random
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
import torch

from gmtl_rl import checkpoint
from gmtl_rl.config import MAX_THREADS, RunConfig
from gmtl_rl.errors import ConfigError
from gmtl_rl.evaluation.adaptation import AdaptationRow, write_report
from gmtl_rl.evaluation.training import read_eval_points, write_training_plot
from gmtl_rl.run_dir import RunDir


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


# A rate such as 40 updates per 240 env steps accumulates float error (16 × 0.1666… is
# 2.6666…65, not 2.6666…67): a debt within this of a whole update counts as that update, so a
# cycle gets all its updates rather than one slipping into the next.
UPDATE_DEBT_TOLERANCE = 1e-9


@dataclass
class Counters:
    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    update_debt: float = 0.0  # fractional gradient steps owed (updates_per_step may be < 1)

    def take_whole_updates(self) -> int:
        """The whole gradient steps owed, taken off the debt (its fraction stays owed)."""
        whole = math.floor(self.update_debt + UPDATE_DEBT_TOLERANCE)
        if whole <= 0:
            return 0
        self.update_debt -= whole
        return whole


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


def versions() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": checkpoint.package_versions(),
        "torch_threads": torch.get_num_threads(),  # as set_threads left them for this run
    }


class MetricsLog:
    """metrics.csv (fixed columns) plus optional TensorBoard, resumable at a row count."""

    def __init__(
        self,
        run_dir: RunDir,
        columns: Sequence[str],
        tensorboard: bool,
        keep_rows: int | None,
        step: int = 0,
    ):
        self.path = run_dir.metrics
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
                str(run_dir.tensorboard), purge_step=step if keep_rows is not None else None
            )

    def write(self, step: int, values: dict[str, float]) -> None:
        row = [step] + [values.get(c, "") for c in self.columns[1:]]
        self._writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
        self._file.flush()
        self.rows += 1
        if self.tb is not None:
            for key, value in values.items():
                if key in self.columns and isinstance(value, int | float) and np.isfinite(value):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()


def eval_meta(config: RunConfig, run_dir: RunDir, step: int) -> dict[str, Any]:
    return {
        "run": run_dir.name,
        "label": f"{config.experiment} (seed {config.seed})",
        "experiment": config.experiment,
        "seed": config.seed,
        "env": config.env.name,
        "agent": config.agent.name,
        "split": config.eval.split,
        "exploration_episodes": config.agent.exploration_episodes(),
        "step": step,
        "title": f"{config.experiment}: {config.agent.name} on {config.env.name} "
        f"({config.eval.split} tasks, step {step})",
    }


# -- helpers --------------------------------------------------------------------------------
def non_finite(tree: Any, path: str) -> list[str]:
    """Paths of floating tensors or arrays in a state tree that hold NaN or inf."""
    if isinstance(tree, torch.Tensor):
        bad = tree.is_floating_point() and not bool(torch.isfinite(tree).all())
        return [path] if bad else []
    if isinstance(tree, np.ndarray):
        bad = np.issubdtype(tree.dtype, np.floating) and not bool(np.isfinite(tree).all())
        return [path] if bad else []
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in non_finite(v, f"{path}.{k}")]
    if isinstance(tree, list | tuple):
        return [p for i, v in enumerate(tree) for p in non_finite(v, f"{path}[{i}]")]
    return []


def next_multiple(step: int, every: int) -> int | float:
    """The first multiple of `every` after `step`; never, when `every` is 0."""
    return (step // every + 1) * every if every > 0 else float("inf")


def seed_everything(seed: int, seeds: Seeds) -> None:
    random.seed(seed)
    torch.manual_seed(seeds.torch)


THREADS_VARIABLE = "GMTL_THREADS"


def default_threads() -> int:
    """Torch threads for a config without `threads`: $GMTL_THREADS where set (processes that
    share the cores, such as parallel test workers, each take 1: two threads per process on 2
    busy cores ran a training test 1.3x slower than one), else min(2, cores)."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return min(2, os.cpu_count() or 1)
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_THREADS:
        raise ConfigError(
            f"environment variable {THREADS_VARIABLE}={value!r}: expected a whole number of "
            f"torch threads from 1 to {MAX_THREADS}, or unset it for the default min(2, cores)"
        )
    return int(value)


def set_threads(config: RunConfig) -> None:
    torch.set_num_threads(config.threads or default_threads())


def resolve_device(name: str) -> str:
    """The torch device of config key `device`: `auto` is cuda where a usable GPU is, else
    cpu; anything else must be a torch device this machine has."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device: {name!r} is not a torch device (auto, cpu, cuda, cuda:0, ...)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device: cuda requested but this machine has no usable CUDA GPU; use cpu or auto"
        )
    return name


def install_signal_handlers(callback: Any) -> dict[int, Any]:
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        callback(signum)

    if threading.current_thread() is not threading.main_thread():
        return previous  # signals can only be handled in the main thread
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def eval_metrics(rows: Sequence[AdaptationRow], episodes: int) -> dict[str, float]:
    """The metrics.csv columns of one scheduled evaluation: return of episode 1 and K."""
    first = [r.episode_return for r in rows if r.episode == 1]
    last = [r for r in rows if r.episode == episodes]
    return {
        "eval_return_first": float(np.mean(first)),
        "eval_return_last": float(np.mean([r.episode_return for r in last])),
        "eval_success_last": float(np.mean([r.success for r in last])),
    }


def write_final_eval(
    config: RunConfig,
    run_dir: RunDir,
    step: int,
    rows: Sequence[AdaptationRow],
    training_plot: bool = True,
) -> None:
    """`eval/`: the adaptation report and, for loops that log scheduled evaluations in
    metrics.csv, the training curve."""
    cfg = config.eval
    meta = eval_meta(config, run_dir, step)
    write_report(rows, run_dir.eval, meta, cfg.confidence, cfg.bootstrap_resamples)
    points = read_eval_points(run_dir.metrics, config.seed) if training_plot else []
    if points:
        write_training_plot(
            {meta["label"]: points},
            run_dir.training_plot,
            title=f"{config.experiment}: {cfg.split}-task return at k={cfg.episodes}",
            resamples=cfg.bootstrap_resamples,
        )
