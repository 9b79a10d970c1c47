"""User-facing errors: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic is not imported at run time here: run_dir.py reads this module
    from pydantic import ValidationError


class UsageError(Exception):
    """A mistake in what the user asked for (config, override, name, file); not a bug."""


class ConfigError(UsageError):
    """A config value is missing, unknown or invalid; the message names the full key path."""


class CheckpointError(UsageError):
    """A checkpoint or run directory is missing, incomplete, corrupt or tampered with."""


class StorageError(UsageError):
    """The run directory cannot be written (read-only, full disk, not a directory); what was
    written before, checkpoints included, is intact."""


class NumericalFault(Exception):
    """Training produced a non-finite loss or parameter; the last good checkpoint is kept."""

    exit_code = 3


class EnvWorkerFailure(Exception):
    """An env worker kept failing past sampler.max_restarts; the last checkpoint is kept."""

    exit_code = 4


def unknown_name(kind: str, name: str, valid: Iterable[str], where: str = "") -> UsageError:
    """An error for an unknown registry name, listing valid names with the closest first."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=len(valid), cutoff=0.0)
    ordered = close[:3] + [v for v in valid if v not in close[:3]]
    prefix = f"{where}: " if where else ""
    return ConfigError(f"{prefix}unknown {kind} {name!r}; valid: {', '.join(ordered)}")


def format_validation_error(err: ValidationError, prefix: str) -> str:
    """One clause per problem, each with the full key path (`env.parameters[0].path`)."""
    lines = []
    for e in err.errors():
        path = prefix
        for part in e["loc"]:
            if isinstance(part, int):
                path = f"{path}[{part}]"
            elif _plain_key(str(part)):
                path = f"{path}.{part}".lstrip(".")
            else:  # a key with spaces, dots or control characters: quoted, on one line
                path = f"{path}[{str(part)!r}]"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{path or '<config>'}: {' '.join(str(msg).split())}")
    return "; ".join(lines)


def _plain_key(key: str) -> bool:
    return bool(key) and key.isprintable() and not any(c in key for c in " .[]'\"")
