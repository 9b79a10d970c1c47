"""Connecting to Ray (optional extra `gmtl-rl[ray]`), shared by `gmtl sweep --backend ray` and
`sampler.backend: ray`. `ray` is imported only here and only when asked for."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gmtl_rl.errors import UsageError

RAY_MISSING = "Ray is not installed: pip install 'gmtl-rl[ray]'"
# Ray puts unix sockets at <temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store,
# ~66 characters below its temp dir, and AF_UNIX paths stop at 107 bytes: a longer temp dir
# makes ray.init fail.
TEMP_DIR_MAX_CHARS = 35


def import_ray(hint: str = "") -> Any:
    """`ray`, or a one-line UsageError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING + hint) from None
    return ray


@dataclass
class RaySession:
    """What `connect` did, so `close` undoes exactly that (never a Ray someone else started)."""

    started: bool  # ray.init was called here
    local: bool  # a Ray started on this machine (not a cluster address)
    temp_dir: Path | None  # a short /tmp fallback to remove after shutdown

    def close(self) -> None:
        if self.started:
            import_ray().shutdown()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
        self.started = False


def connect(
    address: str | None = None, temp_root: Path | None = None, hint: str = ""
) -> RaySession:
    """Join the running Ray of this process, or connect to `address` (else $RAY_ADDRESS), or
    start a local Ray with its temp files under `temp_root` when that path is short enough."""
    ray = import_ray(hint)
    if ray.is_initialized():
        return RaySession(started=False, local=False, temp_dir=None)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        return RaySession(started=True, local=False, temp_dir=None)
    # A local Ray writes an auth token under $HOME unless told not to.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp, fallback = _temp_dir(temp_root)
    ray.init(
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=str(temp),
    )
    return RaySession(started=True, local=True, temp_dir=temp if fallback else None)


def _temp_dir(root: Path | None) -> tuple[Path, bool]:
    """(temp dir, whether it is a /tmp fallback to remove afterwards)."""
    if root is not None:
        candidate = root.resolve() / "ray-tmp"
        if len(str(candidate)) <= TEMP_DIR_MAX_CHARS:
            candidate.mkdir(parents=True, exist_ok=True)
            return candidate, False
    # Too long for Ray's unix socket paths (or no run directory): a short one under /tmp.
    return Path(tempfile.mkdtemp(prefix="gmtl-ray-", dir="/tmp")), True
