"""The plug-in family `gym`: any Gymnasium env becomes a task distribution from YAML alone.

A task is a draw of values for attributes of `env.unwrapped` (`model.body_mass` scaled by
`1.5 ** U[-3, 3]`, ...) and of pure parameters that only a reward override reads."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution, find_layer
from gmtl_rl.errors import ConfigError

RewardFn = Callable[[Any, Any, Any, float, dict[str, Any], Task], float]


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError


class _Range(_Dist):
    low: float = Field(description="lower end of the range")
    high: float = Field(description="upper end of the range (>= low)")

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if isinstance(self, LogUniform) and self.low <= 0:
            raise ValueError(f"low ({self.low}) must be > 0 for a log-uniform distribution")
        return self


class Uniform(_Range):
    """U[low, high]."""

    type: Literal["uniform"] = Field(description="distribution tag")

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=shape)


class LogUniform(_Range):
    """exp(U[log low, log high]): uniform in orders of magnitude."""

    type: Literal["log_uniform"] = Field(description="distribution tag")

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), size=shape))


class ExpUniform(_Range):
    """base ** U[low, high], the PEARL rand_params form `1.5 ** U[-3, 3]`."""

    type: Literal["exp_uniform"] = Field(description="distribution tag")
    base: float = Field(gt=0, description="base raised to the uniform exponent (> 0)")

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return np.power(self.base, rng.uniform(self.low, self.high, size=shape))


class Choice(_Dist):
    """One of `values`, uniformly."""

    type: Literal["choice"] = Field(description="distribution tag")
    values: list[float] = Field(min_length=1, description="the values to choose from")

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.choice(np.asarray(self.values, dtype=np.float64), size=shape)


Distribution = Annotated[Uniform | LogUniform | ExpUniform | Choice, Field(discriminator="type")]


class ParameterSpec(BaseModel):
    """One task parameter: a distribution, and where (if anywhere) its value goes in the env."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="task parameter name; defaults to path[index]")
    # No path: a pure task parameter (a target velocity) that only the reward override reads.
    path: str | None = Field(None, description="dotted path on env.unwrapped: model.body_mass")
    index: int | list[int] | None = Field(None, description="array entries to vary; default all")
    op: Literal["scale", "set"] = Field("scale", description="multiply the default, or replace it")
    distribution: Distribution = Field(description="where values come from, tagged by `type`")
    per_element: bool = Field(True, description="a draw per array entry, or one shared by all")

    @field_validator("path")
    @classmethod
    def _dotted(cls, path: str | None) -> str | None:
        if path is not None and not all(part.isidentifier() for part in path.split(".")):
            raise ValueError(
                f"{path!r} is not a dotted attribute path like model.body_mass "
                "(select array entries with `index`, not brackets)"
            )
        return path

    @model_validator(mode="after")
    def _named(self) -> ParameterSpec:
        if self.path is None and self.name is None:
            raise ValueError("a parameter without a path needs a name")
        if self.path is None and self.index is not None:
            raise ValueError("index selects entries of the array at path; give a path too")
        if self.index == []:
            raise ValueError("index must select at least one entry")
        return self

    @property
    def key(self) -> str:
        """The name the task stores this parameter under: `name`, else `path[index]`."""
        index = self.index if isinstance(self.index, list) else [self.index]
        suffix = "" if self.index is None else f"[{','.join(map(str, index))}]"
        return self.name or f"{self.path}{suffix}"


class GymOptions(FamilyOptions):
    id: str = Field(description="Gymnasium id, or entry point module:Env-v0 or module:Class")
    make_kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to gym.make")
    max_episode_steps: int | None = Field(None, ge=1, description="truncation; default: the env's")
    parameters: list[ParameterSpec] = Field(default_factory=list, description="task parameters")
    # Called after every step as fn(obs, action, next_obs, reward, info, task) -> float.
    reward: str | None = Field(None, description="module:function reward override")
    n_train: int = Field(40, ge=1, le=MAX_TASKS, description="train tasks")
    n_test: int = Field(10, ge=1, le=MAX_TASKS, description="held-out test tasks")
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the task draws; independent of the run seed"
    )


class _TargetError(ValueError):
    """A parameter's path or index does not fit the env; `field` is the spec key at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _hint(name: str, names: Sequence[str], cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=cutoff)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _parent(root: Any, path: str) -> tuple[Any, str]:
    """The object holding the last attribute of `path`, and that attribute's name."""
    obj, parts = root, path.split(".")
    for depth, part in enumerate(parts):
        if not hasattr(obj, part):
            public = [a for a in dir(obj) if not a.startswith("_")]
            where = f"{'.'.join(parts[:depth]) or 'env.unwrapped'} ({type(obj).__name__})"
            hint = _hint(part, public, 0.5) or f"; it has {', '.join(public[:8])}, ..."
            raise _TargetError("path", f"{path}: {where} has no attribute {part!r}{hint}")
        if depth < len(parts) - 1:
            obj = getattr(obj, part)
    return obj, parts[-1]


def _read_default(root: Any, spec: ParameterSpec) -> Any:
    """A copy of the value at `spec.path`, after checking it can be written in place."""
    assert spec.path is not None
    parent, attr = _parent(root, spec.path)
    value = getattr(parent, attr)
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
        # A property that builds a new array per access would swallow in-place writes.
        if not value.flags.writeable or not np.shares_memory(value, getattr(parent, attr)):
            raise _TargetError("path", f"{spec.path} is a read-only or freshly computed array")
        index = ... if spec.index is None else spec.index
        try:
            value[index]
        except IndexError as err:
            msg = f"{spec.index} is out of range for {spec.path} of shape {value.shape}: {err}"
            raise _TargetError("index", msg) from None
        return value.copy()  # MuJoCo model arrays are views into the live model
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if spec.index is not None:
            raise _TargetError("index", f"{spec.path} is a scalar; it has no entries to index")
        return value
    kind = type(value).__name__
    raise _TargetError("path", f"{spec.path} is a {kind}, not a number or numeric array")


def _write(root: Any, spec: ParameterSpec, default: Any, value: Any) -> None:
    """Write the task's `value` for `spec`, always from the saved default so nothing compounds."""
    assert spec.path is not None
    parent, attr = _parent(root, spec.path)
    if isinstance(default, np.ndarray):
        index = ... if spec.index is None else spec.index
        new = np.asarray(value, dtype=np.float64)
        getattr(parent, attr)[index] = default[index] * new if spec.op == "scale" else new
        return
    new_scalar = float(default) * float(value) if spec.op == "scale" else float(value)
    integral = isinstance(default, int | np.integer)
    setattr(parent, attr, round(new_scalar) if integral else new_scalar)


class TaskParameterWrapper(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Applies a task's parameters to `env.unwrapped` and, optionally, overrides the reward.

    Example: `env = TaskParameterWrapper(gym.make("Swimmer-v5"), specs, task=task)`.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        parameters: Sequence[ParameterSpec],
        reward_fn: RewardFn | None = None,
        task: Task | None = None,
    ) -> None:
        # Recorded so that env.spec.make() (used by gymnasium's env checker) rebuilds this env.
        gym.utils.RecordConstructorArgs.__init__(
            self, parameters=parameters, reward_fn=reward_fn, task=task
        )
        super().__init__(env)
        self.parameters = [p for p in parameters if p.path is not None]
        self.defaults = [_read_default(env.unwrapped, p) for p in self.parameters]
        self.reward_fn = reward_fn
        self.task: Task | None = None
        self._obs: Any = None
        if task is not None:
            self.set_task(task)

    def set_task(self, task: Task) -> None:
        """Write `task`'s values into the env now (physics changes mid-episode too)."""
        for spec, default in zip(self.parameters, self.defaults, strict=True):
            _write(self.env.unwrapped, spec, default, task[spec.key])
        self.task = task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        if self.reward_fn is not None:
            if self.task is None:
                raise RuntimeError("call set_task before step: the reward override needs a task")
            info = {**info, "original_reward": float(reward)}
            reward = self.reward_fn(self._obs, action, next_obs, float(reward), info, self.task)
        self._obs = next_obs
        return next_obs, float(reward), terminated, truncated, info


def _env_spec(env_id: str) -> str | EnvSpec:
    """What gym.make needs for `env_id`: a registered id, or a spec for a module:Class."""
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            msg = f"env.id: cannot import module {module!r} of {env_id!r}: {err}"
            raise ConfigError(msg) from None
        if name not in gym.registry and callable(getattr(mod, name, None)):
            return EnvSpec(id=name, entry_point=env_id)
    if name not in gym.registry:
        where = f" (nor a callable in module {module!r})" if module else ""
        hint = _hint(name, list(gym.registry), 0.4)
        raise ConfigError(f"env.id: {name!r} is not a registered Gymnasium id{where}{hint}")
    return name


def _load_reward(ref: str) -> RewardFn:
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"env.reward: {ref!r} is not of the form module:function")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"env.reward: cannot import module {module!r}: {err}") from None
    if not hasattr(obj, attr):
        hint = _hint(attr, [n for n in dir(obj) if not n.startswith("_")])
        raise ConfigError(f"env.reward: module {module!r} has no attribute {attr!r}{hint}")
    obj = getattr(obj, attr)
    if not callable(obj):
        raise ConfigError(f"env.reward: {ref} is a {type(obj).__name__}, not callable")
    return obj


@register_family
class GymFamily(TaskDistribution):
    name = "gym"
    description = "any Gymnasium env: parameters drawn over env.unwrapped attributes, reward hook"
    Options = GymOptions
    options: GymOptions

    def __init__(self, options: FamilyOptions) -> None:
        assert isinstance(options, GymOptions)
        super().__init__(options)
        self._spec = _env_spec(options.id)
        self._reward_fn = _load_reward(options.reward) if options.reward else None
        keys = [p.key for p in options.parameters]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                first = keys.index(key)
                msg = f"{key!r} already names env.parameters[{first}]; give each its own name"
                raise ConfigError(f"env.parameters[{i}].name: {msg}")
        probe = self._make_raw()
        try:
            self._horizon = probe.spec.max_episode_steps if probe.spec else None
            shapes = [self._probe(probe.unwrapped, i, p) for i, p in enumerate(options.parameters)]
        finally:
            probe.close()
        # Train tasks are drawn first, then test, parameter by parameter: a fixed order.
        rng = np.random.default_rng(options.split_seed)
        specs = list(zip(options.parameters, shapes, strict=True))
        draws = [
            {p.key: p.distribution.draw(rng, shape) for p, shape in specs}
            for _ in range(options.n_train + options.n_test)
        ]
        n = options.n_train
        self._train = [Task.create(self.name, i, **d) for i, d in enumerate(draws[:n])]
        self._test = [Task.create(self.name, i, **d) for i, d in enumerate(draws[n:])]

    def _probe(self, root: Any, i: int, spec: ParameterSpec) -> tuple[int, ...]:
        """Check `spec` against the probe env; the shape of one task's draw for it."""
        if spec.path is None:
            return ()
        try:
            default = _read_default(root, spec)
        except _TargetError as err:
            raise ConfigError(f"env.parameters[{i}].{err.field}: {err}") from None
        selected = np.asarray(default if spec.index is None else np.asarray(default)[spec.index])
        if spec.op == "scale" and not selected.any():
            raise ConfigError(
                f"env.parameters[{i}].op: scaling {spec.path} does nothing because its default "
                f"is 0 in {self.options.id}; use op: set"
            )
        return selected.shape if spec.per_element else ()

    def _make_raw(self) -> gym.Env[Any, Any]:
        kwargs = self.options.make_kwargs
        try:
            return gym.make(self._spec, max_episode_steps=self.options.max_episode_steps, **kwargs)
        except TypeError as err:
            if not kwargs:
                raise
            raise ConfigError(f"env.make_kwargs: {self.options.id} rejected them: {err}") from None

    @property
    def horizon(self) -> int | None:
        return self._horizon

    def make_env(self, task: Task | None = None) -> gym.Env:
        task = task or self._train[0]
        return TaskParameterWrapper(
            self._make_raw(), self.options.parameters, self._reward_fn, task
        )

    def set_task(self, env: gym.Env, task: Task) -> None:
        find_layer(env, TaskParameterWrapper, self.name).set_task(task)
