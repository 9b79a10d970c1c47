"""The on-disk layout of a run, in one place, and the rule that one process writes a run.

    <run>/config.yaml        the fully resolved config
    <run>/tasks.json         the exact train and test tasks
    <run>/versions.json      Python, platform and package versions
    <run>/metrics.csv, tb/   training curves (CSV, TensorBoard)
    <run>/episodes.csv       every training episode (online loops)
    <run>/sequence.json      a task sequence's elements and their step windows (continual)
    <run>/continual.csv      every element's success and return at every evaluation (continual)
    <run>/init_from.json     the run and checkpoint a transfer run started from (init_from)
    <run>/checkpoints/step-N/   the newest `checkpoint.keep` checkpoints
    <run>/eval/              the final evaluation (adaptation.csv, summary.json, *.png)
    <run>/eval-<split>-k<K>/ an offline evaluation under another protocol
    <run>/eval-metaworld/    Meta-World's own protocol
    <run>/faults/            the batch of a numerical fault
    <run>/.lock              held by the one process that trains the run
    <sweep>/.lock            held by the one process that runs or aggregates the sweep

Nothing else spells these names. This module imports neither torch nor the config models
(Ray workers of a sweep read run directories), so it reads checkpoint manifests by hand.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from gmtl_rl.errors import UsageError

CHECKPOINT_PREFIX = "step-"
TEMP_PREFIX = ".tmp-"
MANIFEST = "manifest.json"  # written last into a checkpoint: without it, it is incomplete
# What an evaluation directory (eval/, eval-*/) holds: `evaluation.adaptation.write_report`.
ADAPTATION_CSV = "adaptation.csv"
SUMMARY_JSON = "summary.json"
ADAPTATION_PNG = "adaptation.png"


class RunInUse(UsageError):
    """Another live process trains this run (or sweep)."""


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory; `RunDir(path).metrics` and so on."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def fresh(cls, parent: Path, suffix: str) -> RunDir:
        """A new run's directory: `<parent>/<time>-<suffix>`, numbered if that exists."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = parent / f"{stamp}-{suffix}"
        n = 1
        while path.exists():
            n += 1
            path = parent / f"{stamp}-{suffix}-{n}"
        return cls(path)

    # -- files -------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def tasks(self) -> Path:
        return self.path / "tasks.json"

    @property
    def versions(self) -> Path:
        return self.path / "versions.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    @property
    def episodes(self) -> Path:
        return self.path / "episodes.csv"

    @property
    def sequence(self) -> Path:
        return self.path / "sequence.json"

    @property
    def continual_csv(self) -> Path:
        return self.path / "continual.csv"

    @property
    def init_record(self) -> Path:
        return self.path / "init_from.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval(self) -> Path:
        """The final evaluation of training (and of `gmtl eval` under the run's protocol)."""
        return self.path / "eval"

    def eval_variant(self, split: str, episodes: int, deterministic: bool = True) -> Path:
        """An offline evaluation under a protocol other than the run's (`-stochastic`: actions
        sampled from the policy rather than its mode)."""
        mode = "" if deterministic else "-stochastic"
        return self.path / f"eval-{split}-k{episodes}{mode}"

    def eval_at_step(self, step: int) -> Path:
        """An offline evaluation of a run that another process is still training."""
        return self.path / f"eval-step-{step}"

    @property
    def metaworld_eval(self) -> Path:
        return self.path / "eval-metaworld"

    @property
    def adaptation_csv(self) -> Path:
        return self.eval / ADAPTATION_CSV

    @property
    def summary_json(self) -> Path:
        return self.eval / SUMMARY_JSON

    @property
    def adaptation_plot(self) -> Path:
        return self.eval / ADAPTATION_PNG

    @property
    def training_plot(self) -> Path:
        return self.eval / "training.png"

    @property
    def faults(self) -> Path:
        return self.path / "faults"

    def fault_batch(self, update: int) -> Path:
        return self.faults / f"batch-update-{update}.npz"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    # -- what a directory holds ------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.config.is_file()

    def require_run(self) -> None:
        if not self.is_run():
            raise UsageError(f"{self.path} is not a run directory (no {self.config.name})")

    def checkpoint_dirs(self) -> list[Path]:
        """Complete checkpoints (with a manifest), oldest first."""
        return complete_checkpoints(self.checkpoints)

    def incomplete_checkpoints(self) -> list[Path]:
        """Checkpoint directories without a manifest (their writer was stopped), oldest first."""
        return _checkpoints(self.checkpoints, complete=False)

    def checkpoint_named(self, name: str) -> Path:
        """`step-N` (or `step-000000000N`, or a path) -> that checkpoint's directory."""
        label = Path(name).name
        digits = label.removeprefix(CHECKPOINT_PREFIX)
        if digits.isdigit():
            label = f"{CHECKPOINT_PREFIX}{int(digits):012d}"
        path = self.checkpoints / label
        if not path.is_dir():
            found = ", ".join(checkpoint_label(p) for p in self.checkpoint_dirs()) or "none"
            raise UsageError(f"--checkpoint {name}: no such checkpoint in {self.checkpoints}; "
                             f"whole ones: {found}")  # fmt: skip
        return path

    def clear_outputs(self) -> None:
        """Remove what training wrote (logs, episodes, evaluations, faults, half-written
        checkpoints), keeping what the run is made from (config, tasks, versions): a run that
        starts over."""
        for path in (self.metrics, self.episodes, self.continual_csv):
            path.unlink(missing_ok=True)
        for folder in (self.tensorboard, self.eval, self.faults, *self.incomplete_checkpoints()):
            shutil.rmtree(folder, ignore_errors=True)

    def read_config_mapping(self) -> dict[str, Any]:
        data = yaml.safe_load(self.config.read_text())
        if not isinstance(data, dict):
            raise UsageError(f"{self.config}: not a mapping")
        return data

    def is_finished(self, config: dict[str, Any] | None = None) -> bool:
        """The run's newest checkpoint says it finished its step (or episode) budget, and its
        final evaluation is on disk. One rule for `gmtl resume` and `gmtl sweep`; `config`
        (the run's config with a resume's overrides) replaces config.yaml's budget."""
        found = self.checkpoint_dirs()
        if not found:
            return False
        try:
            state = json.loads((found[-1] / "state.json").read_text())
            config = config if config is not None else self.read_config_mapping()
            return budget_met(state, config) and self.summary_json.is_file()
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, UsageError):
            return False

    # -- one writer ------------------------------------------------------------------------------
    @contextmanager
    def writer_lock(self, command: str = "") -> Iterator[None]:
        """Hold the run's lock while training it; see `WriterLock`."""
        with WriterLock(self.lock_file, command or " ".join(sys.argv)):
            yield

    def writer(self) -> dict[str, Any] | None:
        """Who holds the run's lock now (pid, host, command, since), or None."""
        return lock_holder(self.lock_file)


def sweep_lock_file(sweep_dir: str | os.PathLike[str]) -> Path:
    """The lock held by the one process that runs (or aggregates) a sweep directory."""
    return RunDir(sweep_dir).lock_file


# -- checkpoint directories (their contents are `gmtl_rl.checkpoint`'s format) ---------------
def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"{CHECKPOINT_PREFIX}{step:012d}"


def checkpoint_temp_dir(root: Path, step: int) -> Path:
    """Where a checkpoint is written before it is renamed into place."""
    return root / f"{TEMP_PREFIX}{CHECKPOINT_PREFIX}{step:012d}-{os.getpid()}"


def stale_temp_dirs(root: Path) -> list[Path]:
    """Temp dirs of checkpoint writes that were killed."""
    return sorted(root.glob(f"{TEMP_PREFIX}{CHECKPOINT_PREFIX}*"))


def complete_checkpoints(root: Path) -> list[Path]:
    """Checkpoints under `root` with a manifest, oldest first."""
    return _checkpoints(root, complete=True)


def _checkpoints(root: Path, complete: bool) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / MANIFEST).is_file() == complete]
    return sorted(found, key=lambda p: p.name)


def checkpoint_label(path: Path) -> str:
    """`checkpoints/step-000000000400` -> `step-400`, as users type it."""
    digits = path.name.removeprefix(CHECKPOINT_PREFIX)
    return f"{CHECKPOINT_PREFIX}{int(digits)}" if digits.isdigit() else path.name


def budget_met(state: dict[str, Any], config: dict[str, Any]) -> bool:
    """A checkpoint's state (`state.json`) marks the run finished and its counters meet the
    config's step or episode budget (a resume with a larger budget is not finished)."""
    counters = state["counters"]
    steps_done = counters["env_steps"] >= config["total_steps"]
    episodes = config.get("total_episodes")
    episodes_done = episodes is not None and counters["episodes"] >= episodes
    return bool(state["finished"]) and (steps_done or episodes_done)


# -- the lock ------------------------------------------------------------------------------------
_HELD: dict[Path, int] = {}  # lock file -> nesting depth in this process


class WriterLock:
    """An exclusive POSIX record lock on `<dir>/.lock`, held while a process writes the dir.

    The kernel drops a record lock when its process dies (killed or not), so a lock left by a
    dead process is simply taken over; record locks are not inherited by forked env workers.
    The file holds the owner's pid, host and command, for the refusal message. Nested use in
    one process is counted, not re-locked (a record lock would be released by the inner close).
    """

    def __init__(self, path: Path, command: str) -> None:
        self.path = path.resolve()
        self.command = command
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        if _HELD.get(self.path, 0) > 0:
            _HELD[self.path] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise RunInUse(_in_use_message(self.path)) from None
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd
        _HELD[self.path] = 1
        return self

    def __exit__(self, *exc: object) -> None:
        depth = _HELD.get(self.path, 0)
        if depth > 1:
            _HELD[self.path] = depth - 1
            return
        _HELD.pop(self.path, None)
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the file stays; an empty one names no owner
            os.close(self._fd)  # releases the record lock
            self._fd = None


def lock_holder(path: Path) -> dict[str, Any] | None:
    """The owner recorded in a lock file if a live process holds the lock, else None."""
    if not path.is_file():
        return None
    if _HELD.get(path.resolve(), 0) > 0:
        return {"pid": os.getpid(), "host": socket.gethostname(), "command": "this process"}
    # Test the lock on a separate descriptor (F_GETLK via lockf's test mode is not exposed;
    # a non-blocking shared attempt tells the same and is dropped at once).
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_owner(path) or {"pid": None, "host": "?", "command": "?"}
        return None
    finally:
        os.close(fd)


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _in_use_message(path: Path) -> str:
    owner = _read_owner(path) or {}
    who = f"process {owner.get('pid', '?')}"
    if owner.get("host") and owner.get("host") != socket.gethostname():
        who += f" on {owner['host']}"
    what = f" ({owner['command']})" if owner.get("command") else ""
    since = f" since {owner['since']}" if owner.get("since") else ""
    return (
        f"{path.parent} is in use by {who}{what}{since}; wait for it to finish or stop it "
        "(one process writes a run at a time)"
    )
