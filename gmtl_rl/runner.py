"""Builds env + agent from a config and runs them: the run directory, seeding, the training
loop of each agent family, logging, scheduled evaluation, checkpoints and resume, signals.

Run directory: runs/<experiment>/<timestamp>-s<seed>/ with config.yaml, tasks.json,
versions.json, metrics.csv, tb/ (TensorBoard), checkpoints/, eval/.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig, apply_overrides, parse_config, read_yaml
from gmtl_rl.core.policy import Policy
from gmtl_rl.envs.task import Task, TaskDistribution, tasks_from_json, tasks_to_json
from gmtl_rl.errors import CheckpointError, ConfigError, UsageError
from gmtl_rl.evaluation.adaptation import AdaptationRow, write_report
from gmtl_rl.training.common import Counters, Interrupted, eval_meta, new_run_dir, set_threads
from gmtl_rl.training.common import versions as package_versions

__all__ = ["Interrupted", "evaluate", "resume", "train"]

RESUMABLE_KEYS = ("total_steps", "total_episodes", "eval.", "checkpoint.", "logging.")


class Run(Protocol):
    """What the entry points need from a family's training loop (OffPolicyRun, SB3Run, ...)."""

    config: RunConfig
    counters: Counters
    finished: bool

    def train(self, resumed: bool = False) -> None: ...

    def load_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None: ...

    def adaptation_rows(self) -> list[AdaptationRow]: ...

    def eval_policy(self) -> Policy:
        """The trained agent as a Policy (for protocols other than ours)."""

    def close(self) -> None:
        """Release envs (and workers) without training."""


RunBuilder = Callable[[RunConfig, Path, TaskDistribution], Run]

# Agent family -> "module:class" of its training loop, imported only when a run needs it
# (SB3 costs a second to import; Ray more). A new family adds one line here.
TRAINING_LOOPS = {
    "off_policy": "gmtl_rl.training.off_policy:OffPolicyRun",
    "online": "gmtl_rl.training.online:OnlineRun",
    "sb3": "gmtl_rl.training.sb3:SB3Run",
    "pearl": "gmtl_rl.training.pearl:PEARLRun",
    "trials": "gmtl_rl.training.trials:TrialRun",
}


def _run_builder(family: str) -> RunBuilder:
    if family not in TRAINING_LOOPS:
        raise UsageError(
            f"agent family {family!r} has no training loop; known: {', '.join(TRAINING_LOOPS)}"
        )
    module, _, name = TRAINING_LOOPS[family].partition(":")
    builder: RunBuilder = getattr(importlib.import_module(module), name)
    return builder


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
        (path / "versions.json").write_text(json.dumps(package_versions(), indent=2))
    except OSError as err:
        run.close()
        raise UsageError(f"cannot write run directory {path}: {err.strerror}") from None
    if on_start is not None:
        on_start(path)
    run.train()
    return path


def resume(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[Path, bool]:
    """Continue a run from its latest checkpoint; returns (dir, whether any training ran)."""
    path = Path(run_dir)
    run, config = _open_run(path, overrides)
    episodes_done = config.total_episodes is not None and (
        run.counters.episodes >= config.total_episodes
    )
    if run.finished and (run.counters.env_steps >= config.total_steps or episodes_done):
        run.close()
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
    run.close()
    rows = run.adaptation_rows()
    cfg = config.eval
    out = path / "eval" if not overrides else path / f"eval-{cfg.split}-k{cfg.episodes}"
    meta = eval_meta(config, path, run.counters.env_steps)
    write_report(rows, out, meta, cfg.confidence, cfg.bootstrap_resamples)
    return out


def evaluate_metaworld(run_dir: str | Path, episodes: int | None = None) -> Path:
    """Meta-World's own protocol on a run's latest checkpoint -> eval-metaworld/: the
    multi-task one for MT families (`episodes` per class, default 50), the meta-learning one
    for ML families (`episodes` scored after 10 adaptation episodes, default 3)."""
    from gmtl_rl.evaluation.metaworld_protocol import (
        MetaLearningResult,
        MetaWorldResult,
        evaluate_metalearning,
        evaluate_multitask,
        write_result,
    )

    path = Path(run_dir)
    run, config = _open_run(path, [])
    run.close()
    distribution = config.env.build()
    result: MetaWorldResult | MetaLearningResult
    if getattr(distribution, "meta", False):
        result = evaluate_metalearning(
            run.eval_policy(),
            distribution,
            evaluation_episodes=episodes or 3,
            deterministic=config.eval.deterministic,
        )
    else:
        result = evaluate_multitask(run.eval_policy(), distribution, episodes or 50)
    meta = eval_meta(config, path, run.counters.env_steps)
    return write_result(result, path / "eval-metaworld", meta)


def _open_run(path: Path, overrides: Sequence[str]) -> tuple[Run, RunConfig]:
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
                f"override {item!r}: only total_steps, total_episodes, eval.*, checkpoint.* "
                "and logging.* "
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


def _build_run(config: RunConfig, path: Path, distribution: TaskDistribution) -> Run:
    spec = agent_spec(config.agent.name)
    builder = _run_builder(spec.family)
    eval_tasks = config.eval.tasks(distribution)
    if (
        getattr(config.agent, "conditions_on_task", False)
        and (distribution.task_classes(eval_tasks) < 0).any()
    ):
        raise ConfigError(
            f"eval.split: the {config.eval.split} tasks of {distribution.name} include task "
            "classes this agent never trains on, and it acts on the task class id "
            "(agent.task_encoding / agent.multi_head, or the one-hot an sb3 baseline sees); "
            "set eval.split=train (the multi-task protocol)"
        )
    set_threads(config)
    return builder(config, path, distribution)
