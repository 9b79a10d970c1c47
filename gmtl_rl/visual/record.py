"""`gmtl record RUN_DIR --out FILE`: one trial of a run's checkpoint as a video or a picture.

The run is opened as `gmtl eval` opens it (its saved config and tasks, the newest whole
checkpoint, nothing unpickled, nothing written into the run), the agent is put in its
evaluation mode, and one trial runs through the evaluator (`visual.trial`). The file's
suffix says what is made: .mp4 or .gif, the frames of a family with a renderer (MuJoCo,
Meta-World, an env with an `rgb_array` render), each labelled with the episode k, the step,
the return so far and the task; .png, a picture of the trial (`visual.pictures`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np

from gmtl_rl import runner
from gmtl_rl.config import EvalConfig
from gmtl_rl.envs.task import Task, TaskDistribution
from gmtl_rl.errors import UsageError
from gmtl_rl.run_dir import RunDir, checkpoint_label
from gmtl_rl.visual import frames, offscreen
from gmtl_rl.visual.pictures import draw_trial, returns_text
from gmtl_rl.visual.trial import (
    FrameFactory,
    FrameInfo,
    FrameSink,
    TrialRecording,
    record_trial,
    task_text,
)
from gmtl_rl.visual.video import VIDEO_SUFFIXES, label_frame, open_video, option_color

PICTURE_SUFFIXES = (".png",)
SPLITS = ("test", "train")
DEFAULT_SIZE = (320, 240)
MAX_SIZE = 4096  # pixels per side; mujoco's offscreen buffers grow to it
DEFAULT_FPS = 30.0  # for envs with no real-time rate; real time is capped at this too


@dataclass(frozen=True)
class RecordRequest:
    """What `gmtl record` was asked for; None fields take the run's own setting."""

    run_dir: Path
    out: Path
    split: str | None = None  # test or train
    task: int | None = None  # position in the split (adaptation.csv's task_index)
    episodes: int | None = None  # K; default: the run's eval.episodes
    seed: int | None = None  # default: the run's evaluation seed
    checkpoint: str | None = None  # step-N; default: the newest whole checkpoint
    deterministic: bool = True
    size: tuple[int, int] = DEFAULT_SIZE  # (width, height) of video frames
    fps: float | None = None  # default: the env's real time, at most DEFAULT_FPS
    every: int = 1  # film every N-th step (and each episode's last state)


@dataclass(frozen=True)
class RecordOutcome:
    out: Path
    kind: Literal["video", "picture"]
    checkpoint: str  # step-N recorded
    split: str
    task: Task
    recording: TrialRecording
    frames: int = 0
    fps: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def returns(self) -> list[float]:
        return self.recording.returns


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240")
    width, height = int(match[1]), int(match[2])
    if not (16 <= width <= MAX_SIZE and 16 <= height <= MAX_SIZE):
        raise UsageError(f"--size {text}: width and height must be 16..{MAX_SIZE} pixels")
    return width, height


def _check(req: RecordRequest) -> str:
    """The output kind's suffix, after refusing what cannot be recorded."""
    suffix = req.out.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + PICTURE_SUFFIXES:
        raise UsageError(
            f"--out {req.out}: unknown format {suffix or '(no suffix)'!r}; valid: .mp4 or .gif "
            "(a video of a family with a renderer), .png (a picture of the trial)"
        )
    if req.split is not None and req.split not in SPLITS:
        raise UsageError(f"--split {req.split}: valid splits are {' and '.join(SPLITS)}")
    if req.episodes is not None and req.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {req.episodes}")
    if req.every < 1:
        raise UsageError(f"--every must be >= 1, got {req.every}")
    if req.fps is not None and not 0 < req.fps <= 240:
        raise UsageError(f"--fps must be in (0, 240], got {req.fps}")
    if req.seed is not None and req.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {req.seed}")
    if req.out.is_dir():
        raise UsageError(f"--out {req.out} is a directory; give a file name ending in {suffix}")
    return suffix


def choose_task(
    distribution: TaskDistribution, split: str, evaluated: EvalConfig, index: int | None
) -> Task:
    """The split's task at `index`, or (None) the first task the evaluator evaluates."""
    if index is None:
        return evaluated.tasks(distribution)[0]
    tasks = distribution.tasks(split)
    if not 0 <= index < len(tasks):
        raise UsageError(
            f"--task {index}: the {split} split of {distribution.name} has {len(tasks)} "
            f"task{'s' if len(tasks) != 1 else ''} (valid: 0..{len(tasks) - 1})"
        )
    return tasks[index]


def record(req: RecordRequest) -> RecordOutcome:
    """Run one trial of the run's checkpoint and write it to `req.out`."""
    suffix = _check(req)
    path = RunDir(req.run_dir)
    path.require_run()
    if req.checkpoint is None and not path.checkpoint_dirs():
        raise UsageError(
            f"{path}: no complete checkpoint to record (train the run, or wait for its "
            "first checkpoint)"
        )
    overrides = [f"eval.deterministic={'true' if req.deterministic else 'false'}"]
    if req.split is not None:
        overrides.append(f"eval.split={req.split}")
    if req.episodes is not None:
        overrides.append(f"eval.episodes={req.episodes}")
    # As `gmtl eval` opens a run: the evaluation-only build, the checkpoint checked whole.
    run, config, note = runner.open_for_evaluation(path, overrides, req.checkpoint)
    notes = [note] if note else []
    try:
        distribution = run.distribution
        cfg = config.eval
        task = choose_task(distribution, cfg.split, cfg, req.task)
        assert run.checkpoint_used is not None
        label = checkpoint_label(run.checkpoint_used.path)
        if getattr(run, "switch_after", None) is not None:
            notes.append(
                "this agent adapts by learning online; the trial acts with learning frozen, "
                "as the evaluator does without a goal switch"
            )
        seed = run.seeds.eval if req.seed is None else req.seed

        def trial(
            frames_of: FrameFactory | None = None, sink: FrameSink | None = None, every: int = 1
        ) -> TrialRecording:
            with run.evaluation_policy() as policy:
                recording = record_trial(
                    policy, distribution, cfg.tasks(distribution), task, cfg.episodes, seed,
                    repeats=cfg.repeats, n_envs=cfg.n_envs, deterministic=cfg.deterministic,
                    frames=frames_of, sink=sink, every=every,
                )  # fmt: skip
            if recording.alone:
                notes.append(
                    f"{cfg.split} task {task.index} is not among the evaluated tasks "
                    "(eval.max_tasks): its trial ran alone, so its starts and draws are not "
                    "those of an evaluation"
                )
            return recording

        title = (
            f"{config.agent.name} on {distribution.name}, {cfg.split} task {task.index} "
            f"({task_text(task)}), {label}"
        )
        req.out.parent.mkdir(parents=True, exist_ok=True)
        if suffix in PICTURE_SUFFIXES:
            recording = trial()
            draw_trial(recording, distribution, req.out, title, split=cfg.split)
            return RecordOutcome(req.out, "picture", label, cfg.split, task, recording, notes=notes)
        return _video(req, distribution, task, cfg.split, label, notes, trial)
    finally:
        run.close()


def _video(
    req: RecordRequest,
    distribution: TaskDistribution,
    task: Task,
    split: str,
    checkpoint: str,
    notes: list[str],
    trial: Callable[[FrameFactory | None, FrameSink | None, int], TrialRecording],
) -> RecordOutcome:
    probe = distribution.make_env(task)
    try:
        renders, mujoco_env = frames.renders(probe), frames.mujoco_scene(probe) is not None
        real_time = frames.real_time_fps(probe)
    finally:
        probe.close()
    if not renders:
        raise UsageError(
            f"--out {req.out}: {distribution.name} has no renderer; write a picture of the "
            f"trial instead: --out {req.out.with_suffix('.png')}"
        )
    if mujoco_env:
        offscreen.check()  # before the trial runs: one line saying what to install
    fps = req.fps or min(DEFAULT_FPS, (real_time or DEFAULT_FPS) / req.every)
    width, height = req.size
    writer = open_video(req.out, req.size, fps)
    task_line = f"{split} task {task.index}: {task_text(task, width=60)}"

    def sink(image: np.ndarray, info: FrameInfo) -> None:
        writer.append(label_frame(image, frame_lines(info, task_line), _swatch(info)))

    try:
        recording = trial(lambda env: _frames(env, width, height), sink, req.every)
        out = writer.close()
    except BaseException:
        writer.abort()
        raise
    return RecordOutcome(
        out, "video", checkpoint, split, task, recording, writer.frames, fps, notes=notes
    )


def _frames(env: gym.Env, width: int, height: int) -> frames.FrameSource:
    source = frames.frame_source(env, width, height)
    if source is None:  # `renders` said yes for this family's probe env
        raise RuntimeError(f"{env} has no renderer")
    return source


def frame_lines(info: FrameInfo, task_line: str) -> list[str]:
    """A frame's label: episode, step and return so far; the task; what the agent exposes."""
    head = f"k={info.episode}/{info.episodes}  t={info.step}  return {info.return_so_far:.2f}"
    lines = [head + ("  success" if info.success else ""), task_line]
    if info.option is not None and info.option >= 0:
        lines.append(f"option {info.option}")
    elif info.z_source is not None:
        lines.append(
            f"z from the {info.z_source}" + (" (exploring)" if info.z_source == "prior" else "")
        )
    return lines


def _swatch(info: FrameInfo) -> tuple[int, int, int] | None:
    return option_color(info.option) if info.option is not None and info.option >= 0 else None


def summary(outcome: RecordOutcome) -> str:
    """What `gmtl record` prints: what was recorded and where it went."""
    what = (
        f"{outcome.frames} frames, {outcome.fps:.3g} fps" if outcome.kind == "video" else "picture"
    )
    lines = [
        f"recorded {outcome.checkpoint}: {outcome.split} task {outcome.task.index} "
        f"({task_text(outcome.task)}), {_count(outcome.recording.episodes, 'episode')}; "
        f"{returns_text(outcome.recording)}",
        *[f"note: {n}" for n in outcome.notes],
        f"wrote {outcome.out} ({what})",
    ]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
