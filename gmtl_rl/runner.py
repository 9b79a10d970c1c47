"""Entry points the CLI calls: start, resume and evaluate a run.

The runner builds a run from its config, dispatches to its agent family's training loop
(`TRAINING_LOOPS`; each loop is a `training.base.TrainingRun`), holds the run directory's
writer lock while training, and chooses the checkpoint to resume or evaluate. The loops own
the lifecycle itself; `run_dir` owns the files.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.config import RunConfig, apply_overrides, parse_config, read_yaml
from gmtl_rl.envs.task import Task, TaskDistribution, tasks_from_json, tasks_to_json
from gmtl_rl.errors import CheckpointError, ConfigError, NumericalFault, UsageError
from gmtl_rl.evaluation.adaptation import write_report
from gmtl_rl.resources import check_memory, env_spec_of
from gmtl_rl.run_dir import RunDir, checkpoint_label
from gmtl_rl.training.base import TrainingRun
from gmtl_rl.training.common import Interrupted, eval_meta, non_finite, set_threads, versions

__all__ = ["Interrupted", "evaluate", "evaluate_metaworld", "resume", "train"]

RESUMABLE_KEYS = ("total_steps", "total_episodes", "eval.", "checkpoint.", "logging.")

RunBuilder = Callable[..., TrainingRun]

# Agent family -> "module:class" of its training loop, imported only when a run needs it
# (SB3 costs a second to import; Ray more). A new family adds one line here.
TRAINING_LOOPS = {
    "off_policy": "gmtl_rl.training.off_policy:OffPolicyRun",
    "online": "gmtl_rl.training.online:OnlineRun",
    "sb3": "gmtl_rl.training.sb3:SB3Run",
    "pearl": "gmtl_rl.training.pearl:PEARLRun",
    "trials": "gmtl_rl.training.trials:TrialRun",
    "baseline": "gmtl_rl.training.baseline:BaselineRun",
    "continual": "gmtl_rl.training.continual:ContinualRun",
}


@dataclass(frozen=True)
class ResumeOutcome:
    path: Path
    trained: bool  # False: the run had already finished its budget
    checkpoint: str | None  # the checkpoint continued from (step-N); None: started over
    note: str = ""  # what the user should know (a skipped incomplete checkpoint, a restart)


@dataclass(frozen=True)
class EvalOutcome:
    out: Path
    checkpoint: str  # step-N evaluated
    note: str = ""


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
    path = _new_run_dir(config, run_dir)
    # Build env + agent first: a config they reject leaves no half-made run directory behind.
    run = _build_run(config, path, distribution)
    try:
        run.initialize_from()  # init_from: before any file, so a refused source leaves none
        with path.writer_lock():
            _write_run_files(path, config, distribution)
            if on_start is not None:
                on_start(path.path)
            run.train()
    finally:
        run.close()
    return path.path


def resume(
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    checkpoint_name: str | None = None,
    on_start: Callable[[Path, str | None, str], None] | None = None,
) -> ResumeOutcome:
    """Continue a run from its latest whole checkpoint (or `checkpoint_name`). A run killed
    before its first checkpoint starts over from its saved config and tasks."""
    path = RunDir(run_dir)
    path.require_run()
    with path.writer_lock():
        config = load_run_config(path, overrides)
        distribution = config.env.build()
        check_tasks(path, distribution)
        if not path.checkpoint_dirs() and checkpoint_name is None:
            note = "it was stopped before its first checkpoint, so it starts over"
            run = _build_run(config, path, distribution)
            try:
                run.initialize_from()
                path.config.write_text(config.dump_yaml())
                path.clear_outputs()  # the stopped attempt's rows and events
                if on_start is not None:
                    on_start(path.path, None, note)
                run.train()
            finally:
                run.close()
            return ResumeOutcome(path.path, True, None, note)
        ckpt, note = _choose_checkpoint(path, checkpoint_name)
        run = _build_run(config, path, distribution)
        try:
            run.load_checkpoint(ckpt)
            label = checkpoint_label(ckpt.path)
            if checkpoint_name is None and path.is_finished(config.to_yaml_dict()):
                return ResumeOutcome(path.path, False, label, note)
            run.finished = False
            path.config.write_text(config.dump_yaml())
            if on_start is not None:
                on_start(path.path, label, note)
            run.train(resumed=True)
        finally:
            run.close()
    return ResumeOutcome(path.path, True, label, note)


def evaluate(
    run_dir: str | Path,
    split: str | None = None,
    episodes: int | None = None,
    checkpoint_name: str | None = None,
    stochastic: bool = False,
) -> EvalOutcome:
    """Evaluate a run's latest whole checkpoint (or `checkpoint_name`): eval/, or
    eval-<split>-k<K>[-stochastic]/ under another protocol, or eval-step-N/ while another
    process trains the run (its files are left alone). `stochastic` samples actions where the
    run's protocol takes the policy's mode: a meta-learner that explores by sampling (RL²)
    may need it."""
    path = RunDir(run_dir)
    path.require_run()
    overrides = []
    if split is not None:
        overrides.append(f"eval.split={split}")
    if episodes is not None:
        overrides.append(f"eval.episodes={episodes}")
    if stochastic:
        overrides.append("eval.deterministic=false")
    run, config, note = open_for_evaluation(path, overrides, checkpoint_name)
    try:
        rows = run.adaptation_rows()
    finally:
        run.close()
    cfg = config.eval
    step = run.counters.env_steps
    if overrides:
        out = path.eval_variant(cfg.split, cfg.episodes, cfg.deterministic)
    elif path.writer() is not None or checkpoint_name is not None:
        out = path.eval_at_step(step)  # eval/ belongs to the run's own final evaluation
    else:
        out = path.eval
    meta = eval_meta(config, path, step)
    write_report(rows, out, meta, cfg.confidence, cfg.bootstrap_resamples)
    assert run.checkpoint_used is not None
    return EvalOutcome(out, checkpoint_label(run.checkpoint_used.path), note)


def evaluate_metaworld(
    run_dir: str | Path, episodes: int | None = None, checkpoint_name: str | None = None
) -> EvalOutcome:
    """Meta-World's own protocol on a run's latest checkpoint -> eval-metaworld/: the
    multi-task one for MT families (`episodes` per class, default 50), the meta-learning one
    for ML families (`episodes` scored after 10 adaptation episodes, default 3)."""
    from gmtl_rl.envs.metaworld_families import MetaWorldFamily
    from gmtl_rl.evaluation.metaworld_protocol import (
        MetaLearningResult,
        MetaWorldResult,
        evaluate_metalearning,
        evaluate_multitask,
        write_result,
    )

    path = RunDir(run_dir)
    path.require_run()
    run, config, note = open_for_evaluation(path, [], checkpoint_name)
    distribution = run.distribution
    result: MetaWorldResult | MetaLearningResult
    try:
        if isinstance(distribution, MetaWorldFamily) and distribution.meta:
            result = evaluate_metalearning(
                run.eval_policy(),
                distribution,
                evaluation_episodes=episodes or 3,
                deterministic=config.eval.deterministic,
            )
        else:
            result = evaluate_multitask(run.eval_policy(), distribution, episodes or 50)
    finally:
        run.close()
    meta = eval_meta(config, path, run.counters.env_steps)
    assert run.checkpoint_used is not None
    out = write_result(result, path.metaworld_eval, meta)
    return EvalOutcome(out, checkpoint_label(run.checkpoint_used.path), note)


# -- building blocks ------------------------------------------------------------------------------
def _new_run_dir(config: RunConfig, run_dir: str | Path | None) -> RunDir:
    """Where a new run goes; an existing non-empty directory is refused (never overwritten)."""
    if run_dir is None:
        return RunDir.fresh(Path(config.runs_dir) / config.experiment, f"s{config.seed}")
    path = RunDir(run_dir)
    if path.path.exists() and any(path.path.iterdir()):
        raise UsageError(
            f"run directory {path} already exists and is not empty; "
            f"continue it with `gmtl resume {path}` or choose another"
        )
    return path


def _write_run_files(path: RunDir, config: RunConfig, distribution: TaskDistribution) -> None:
    """config.yaml, tasks.json and versions.json: what a run is re-made from."""
    try:
        path.config.write_text(config.dump_yaml())
        splits = {"train": distribution.train_tasks(), "test": distribution.test_tasks()}
        path.tasks.write_text(tasks_to_json(splits))
        path.versions.write_text(json.dumps(versions(), indent=2))
    except OSError as err:
        raise UsageError(f"cannot write run directory {path}: {err.strerror}") from None


def _choose_checkpoint(path: RunDir, name: str | None) -> tuple[checkpoint.Checkpoint, str]:
    """The named checkpoint, or the newest whole one. A corrupt newest checkpoint is refused
    with the name of the older whole one; an incomplete one (no manifest) is skipped and
    named in the note."""
    if name is not None:
        return checkpoint.load(path.checkpoint_named(name)), ""
    whole = path.checkpoint_dirs()
    skipped = [p for p in path.incomplete_checkpoints() if not whole or p.name > whole[-1].name]
    note = ""
    if skipped:
        labels = ", ".join(checkpoint_label(p) for p in skipped)
        note = f"skipped {labels}: incomplete (no manifest; its writer was stopped)"
    if not whole:
        raise CheckpointError(f"{path.checkpoints}: no complete checkpoint to resume from")
    try:
        return checkpoint.load(whole[-1]), note
    except CheckpointError as err:
        if len(whole) < 2:
            raise
        older = checkpoint_label(whole[-2])
        raise CheckpointError(
            f"{err}; the older checkpoint {older} may be whole: use it with `--checkpoint {older}`"
        ) from None


def open_for_evaluation(
    path: RunDir, overrides: Sequence[str], checkpoint_name: str | None
) -> tuple[TrainingRun, RunConfig, str]:
    """The run's agent and tasks from its checkpoint: no training sampler, no replay."""
    config = load_run_config(path, overrides)
    distribution = config.env.build()
    check_tasks(path, distribution)
    for attempt in range(3):
        try:
            ckpt, note = _choose_checkpoint(path, checkpoint_name)
            break
        except CheckpointError:
            # A live run prunes old checkpoints while we read: look again, then give up.
            if attempt == 2 or path.writer() is None:
                raise
    run = _build_run(config, path, distribution, for_evaluation=True)
    try:
        run.load_checkpoint(ckpt)
        bad = non_finite(run.agent_tensors(), "agent") + non_finite(run.loop_state(), "state")
        if bad:
            raise NumericalFault(
                f"{ckpt.path}: the agent holds non-finite values ({', '.join(bad[:3])}); "
                "it cannot be evaluated (an older checkpoint may be whole: --checkpoint step-N)"
            )
    except BaseException:
        run.close()
        raise
    return run, config, note


def load_run_config(run_dir: RunDir | str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The run's saved config, with the overrides a resume or an eval may make."""
    path = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    path.require_run()
    for item in overrides:
        key = item.partition("=")[0]
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS):
            raise ConfigError(
                f"override {item!r}: only total_steps, total_episodes, eval.*, checkpoint.* "
                "and logging.* can change in an existing run"
            )
    return parse_config(apply_overrides(read_yaml(path.config), overrides))


def check_tasks(path: RunDir, distribution: TaskDistribution) -> None:
    """The run's saved tasks must be the ones the family builds now."""
    try:
        saved = tasks_from_json(path.tasks.read_text())
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path.tasks}: missing or corrupt ({err})") from None
    current: dict[str, list[Task]] = {
        "train": distribution.train_tasks(),
        "test": distribution.test_tasks(),
    }
    if saved != current:
        raise CheckpointError(
            f"{path.tasks}: the saved tasks differ from what env {distribution.name!r} "
            "builds now (the family or its options changed); re-run instead of resuming"
        )


def _build_run(
    config: RunConfig, path: RunDir, distribution: TaskDistribution, for_evaluation: bool = False
) -> TrainingRun:
    spec = agent_spec(config.agent.name)
    builder = _run_builder(spec.family)
    eval_tasks = config.eval.tasks(distribution)
    if config.agent.conditions_on_task and (distribution.task_classes(eval_tasks) < 0).any():
        raise ConfigError(
            f"eval.split: the {config.eval.split} tasks of {distribution.name} include task "
            "classes this agent never trains on, and it acts on the task class id "
            "(agent.task_encoding / agent.multi_head / agent.architecture, or the one-hot an "
            "sb3 baseline sees); "
            "set eval.split=train (the multi-task protocol)"
        )
    set_threads(config)
    check_memory(config, env_spec_of(distribution), training=not for_evaluation)
    return builder(config, path, distribution, for_evaluation=for_evaluation)
