"""Shared test helper: a shipped config held against the authors' own values, row by row.

A test builds rows (our key, our value, the authors' value) and lists its deliberate
deviations (key -> our value); each deviation must also be named, by key, in the config's
header as `# - key: why` under a section line such as "Deviations from oyster:"."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def matches(ours: Any, theirs: Any) -> bool:
    """Equal values; floats to 1e-12 relative (a bound type may define its own `admits`)."""
    if hasattr(theirs, "admits"):
        return bool(theirs.admits(ours))
    if isinstance(theirs, float) and isinstance(ours, int | float) and not isinstance(ours, bool):
        return math.isclose(ours, theirs, rel_tol=1e-12)
    return type(ours) is type(theirs) and ours == theirs


def drift(rows: Sequence[tuple[str, Any, Any]], deviations: dict[str, Any]) -> list[str]:
    """What differs from the authors and is not a listed deviation, and each listed deviation
    that no longer holds (ours is not the listed value, or now equals theirs)."""
    keys = {key for key, _, _ in rows}
    problems = [
        f"{key}: listed as a deviation, but no row has it" for key in deviations.keys() - keys
    ]
    for key, ours, theirs in rows:
        if key in deviations:
            if not matches(ours, deviations[key]) or matches(ours, theirs):
                problems.append(
                    f"{key}: ours {ours!r}, listed deviation {deviations[key]!r}, theirs {theirs!r}"
                )
        elif not matches(ours, theirs):
            problems.append(f"{key}: ours {ours!r}, theirs {theirs!r}")
    return problems


def header(path: Path) -> str:
    """The config's opening comment lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(itertools.takewhile(lambda line: line.startswith("#"), lines))


def named_deviations(config_header: str, section: str) -> set[str]:
    """Keys listed as `# - key: ...` after the header's `section` line."""
    _, found, rest = config_header.partition(section)
    assert found, f"the header has no {section!r} section"
    return set(re.findall(r"^#\s+- ([A-Za-z_.]+):", rest, flags=re.MULTILINE))
