"""Name -> task family. Families register with `@register_family` or the `gmtl_rl.envs`
entry-point group, so a third-party package plugs in without forking us."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

from pydantic import ValidationError

from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.errors import ConfigError, format_validation_error, unknown_name

_FAMILIES: dict[str, type[TaskDistribution]] = {}
_ENTRY_POINTS_LOADED = False

D = TypeVar("D", bound=type[TaskDistribution])


def register_family(cls: D) -> D:
    """Class decorator: make a TaskDistribution subclass available under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} must set a class attribute `name` to register")
    existing = _FAMILIES.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"task family {cls.name!r} is already registered by {existing!r}")
    _FAMILIES[cls.name] = cls
    return cls


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group="gmtl_rl.envs"):
        cls = ep.load()
        if cls.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} loads a family named {cls.name!r}")
        register_family(cls)


def families() -> dict[str, type[TaskDistribution]]:
    _load_entry_points()
    return dict(sorted(_FAMILIES.items()))


def family(name: str, where: str = "env.name") -> type[TaskDistribution]:
    known = families()
    if name not in known:
        raise unknown_name("env family", name, known, where)
    return known[name]


def make(name: str, /, **options: Any) -> TaskDistribution:
    """Build the task distribution `name`, e.g. `make("point-robot", n_train=10)`."""
    return build(name, options)


def build(
    name: str, options: Mapping[str, Any] | None = None, where: str = "env"
) -> TaskDistribution:
    """Build the task distribution `name` with its options (validated; errors name the key)."""
    cls = family(name, f"{where}.name")
    try:
        opts = cls.Options.model_validate(dict(options or {}))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)) from None
    return cls(opts)
