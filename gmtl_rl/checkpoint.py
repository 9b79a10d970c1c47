"""Atomic, complete, pickle-free checkpoints.

A checkpoint is a directory written under a temporary name and renamed into place; its
`manifest.json` (format version, package versions, counters, SHA-256 of every file) is written
last, so a directory without a valid manifest is never loaded. Loading never unpickles:
tensors via `torch.load(weights_only=True)`, arrays via `numpy.load(allow_pickle=False)`,
everything else JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmtl_rl.errors import CheckpointError, StorageError
from gmtl_rl.run_dir import (
    MANIFEST,
    checkpoint_dir,
    checkpoint_temp_dir,
    complete_checkpoints,
    stale_temp_dirs,
)

# 2: one state layout for every loop (training.base: counters, rng, sampler, loop, logger).
FORMAT_VERSION = 2
REQUIRED_FILES = {"agent.pt", "arrays.npz", "state.json"}
PACKAGES = ("gmtl-rl", "torch", "numpy", "gymnasium", "mujoco", "stable-baselines3", "metaworld")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def split_arrays(tree: Any, arrays: dict[str, np.ndarray], prefix: str = "") -> Any:
    """Replace numpy arrays in a nested JSON-like tree by references into `arrays`."""
    if isinstance(tree, np.ndarray):
        key = f"{prefix or 'root'}#{len(arrays)}"  # numbered: dict keys may contain "/"
        arrays[key] = tree
        return {"__array__": key}
    if isinstance(tree, dict):
        return {k: split_arrays(v, arrays, f"{prefix}/{k}") for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [split_arrays(v, arrays, f"{prefix}/{i}") for i, v in enumerate(tree)]
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def join_arrays(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            if tree["__array__"] not in arrays:
                raise CheckpointError(f"array {tree['__array__']!r} is missing from the checkpoint")
            return arrays[tree["__array__"]]
        return {k: join_arrays(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_arrays(v, arrays) for v in tree]
    return tree


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@dataclass
class Checkpoint:
    path: Path
    step: int
    agent: dict[str, Any]  # torch state (tensors, optimiser state, counters)
    state: dict[str, Any]  # everything else, arrays joined back in
    manifest: dict[str, Any]

    @property
    def replay_path(self) -> Path | None:
        p = self.path / "replay.npz"
        return p if p.exists() else None


def save(
    root: Path,
    step: int,
    agent_state: dict[str, Any],
    state: dict[str, Any],
    replay: Any | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint `step-<step>` under `root` atomically; prune to the newest `keep`.

    A write that fails (full disk, read-only directory) removes its partial temp directory
    and raises StorageError; the checkpoints already there are untouched.
    """
    final = checkpoint_dir(root, step)
    tmp = checkpoint_temp_dir(root, step)
    try:
        _write(root, final, tmp, step, agent_state, state, replay)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = list_checkpoints(root)
        kept = f"the last whole checkpoint is {previous[-1]}" if previous else "none was written"
        raise StorageError(
            f"cannot write checkpoint {final}: {err.strerror or err}; {kept} "
            "(free space or fix permissions, then `gmtl resume`)"
        ) from None
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in stale_temp_dirs(root):  # left by a save that was killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _write(
    root: Path,
    final: Path,
    tmp: Path,
    step: int,
    agent_state: dict[str, Any],
    state: dict[str, Any],
    replay: Any | None,
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    arrays: dict[str, np.ndarray] = {}
    skeleton = split_arrays(state, arrays)
    torch.save(agent_state, tmp / "agent.pt")
    with open(tmp / "arrays.npz", "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    _fsync_write(tmp / "state.json", json.dumps(skeleton).encode())
    if replay is not None:
        replay.save(tmp / "replay.npz")
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "packages": package_versions(),
        "files": {name: _sha256(tmp / name) for name in files},
    }
    _fsync_write(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
    if final.exists():  # a re-run of the same step: replace it only once the new one is whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints (with a manifest), oldest first."""
    return complete_checkpoints(root)


def verify(path: Path) -> dict[str, Any]:
    """The manifest, after checking every file against its checksum."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {MANIFEST})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path}/{MANIFEST}: corrupt (not valid JSON)") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {manifest.get('format_version')!r} "
            f"(this gmtl_rl reads format {FORMAT_VERSION})"
            if isinstance(manifest, dict)
            else f"{path}/{MANIFEST}: corrupt (not a mapping)"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not set(files) >= REQUIRED_FILES:
        raise CheckpointError(f"{path}/{MANIFEST}: corrupt (file list missing or incomplete)")
    for name, digest in files.items():
        f = path / str(name)
        if Path(str(name)).name != name or not f.is_file():
            raise CheckpointError(f"{path}: file {name!r} listed in the manifest is missing")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f}: checksum mismatch (corrupt or modified after writing)")
    return manifest


def load(path: Path) -> Checkpoint:
    manifest = verify(path)
    try:
        agent = torch.load(path / "agent.pt", weights_only=True, map_location="cpu")
        with np.load(path / "arrays.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        skeleton = json.loads((path / "state.json").read_text())
    except Exception as err:  # a checksum-valid file that still cannot be read
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(err).__name__}: {err})"
        ) from None
    return Checkpoint(
        path=path,
        step=int(manifest["step"]),
        agent=agent,
        state=join_arrays(skeleton, arrays),
        manifest=manifest,
    )


def load_latest(root: Path) -> Checkpoint:
    found = list_checkpoints(root)
    if not found:
        raise CheckpointError(f"{root}: no complete checkpoint to resume from")
    return load(found[-1])
