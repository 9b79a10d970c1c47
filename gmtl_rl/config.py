"""Typed run configs: YAML (safe_load only) + dotted overrides -> validated models.

Every default lives in one model here or in the env family's / agent's own model; YAML files
only override. Errors name the full key path and what would be valid.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from gmtl_rl.agents.registry import AgentConfig, agent_spec, agents, parse_agent_config
from gmtl_rl.envs.registry import build, family
from gmtl_rl.envs.task import MAX_SEED, FamilyOptions, Task, TaskDistribution
from gmtl_rl.errors import ConfigError, UsageError, format_validation_error, unknown_name

# torch's intra-op (OpenMP) pool. It gains nothing past the physical cores of one machine,
# and for RL-sized networks past a few dozen; libgomp fails to create a pool far larger
# (threads=100000: "Thread creation failed", then an ImportError). 256 leaves room for the
# largest single machines.
MAX_THREADS = 256
# How deep a config may nest (mappings and lists, the top level included). Real configs
# need 6 levels (env.parameters[0].distribution.values); PyYAML's recursive composer
# overflows the Python stack at a few hundred, and deep values would later overflow
# validation or copying.
MAX_DEPTH = 32


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplerConfig(_Section):
    n_envs: int = Field(1, ge=1, le=4096, description="envs stepped together, each on its own task")
    autoreset_mode: Literal["disabled", "next_step", "same_step"] = Field(
        "disabled", description="Gymnasium vector autoreset mode (disabled: the sampler resets)"
    )
    backend: Literal["auto", "batched", "sync", "subprocess", "ray"] = Field(
        "auto",
        description="auto: the family's batched env where it has one (all envs as one array "
        "step: point robots, bit-flip, four-rooms), else sync; sync: single envs stepped "
        "in this process; "
        "subprocess: one worker process per env; ray: one Ray actor per env "
        "(pip install 'gmtl-rl[ray]'; $RAY_ADDRESS, else a local Ray)",
    )
    worker_timeout_s: float = Field(
        60.0, gt=0, description="subprocess/ray: a worker silent this long is restarted"
    )
    max_restarts: int = Field(
        3, ge=0, description="subprocess/ray: worker restarts allowed before training stops"
    )

    @model_validator(mode="after")
    def _workers_reset_themselves(self) -> SamplerConfig:
        if self.backend in ("subprocess", "ray") and self.autoreset_mode != "disabled":
            raise ValueError(
                f"backend {self.backend} needs autoreset_mode disabled (it resets envs)"
            )
        if self.backend == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError("backend ray: Ray is not installed: pip install 'gmtl-rl[ray]'")
        return self


class EvalConfig(_Section):
    every_steps: int = Field(0, ge=0, description="evaluate every N env steps (0: only at the end)")
    split: Literal["test", "train"] = Field("test", description="task split to evaluate on")
    episodes: int = Field(
        1,
        ge=1,
        description="K: consecutive episodes per trial (adaptation); when a config leaves it "
        "out, the agent's own: PEARL its exploration episodes + 2 posterior ones, RL² its trial "
        "length, 1 otherwise",
    )
    repeats: int = Field(1, ge=1, description="R: trials per task")
    max_tasks: int | None = Field(
        None, ge=1, description="evaluate N tasks spread evenly over the split (all: null)"
    )

    def tasks(self, distribution: TaskDistribution) -> list[Task]:
        """The evaluated tasks: the split, or `max_tasks` of it at evenly spaced positions, so
        a split grouped by class (Meta-World: 50 goals of each class in turn) keeps every
        class."""
        tasks = distribution.tasks(self.split)
        if self.max_tasks is None or self.max_tasks >= len(tasks):
            return tasks
        positions = np.linspace(0, len(tasks), self.max_tasks, endpoint=False).astype(int)
        return [tasks[i] for i in positions]

    n_envs: int = Field(4, ge=1, le=4096, description="envs stepped together during evaluation")
    deterministic: bool = Field(True, description="act with the policy's mode, not a sample")
    confidence: float = Field(0.95, gt=0, lt=1, description="bootstrap interval level")
    bootstrap_resamples: int = Field(2000, ge=100, description="bootstrap resamples")


class CheckpointConfig(_Section):
    every_steps: int = Field(
        0, ge=0, description="checkpoint every N env steps (0: only at the end)"
    )
    keep: int = Field(2, ge=1, description="how many checkpoints to keep")
    replay: bool = Field(True, description="save the replay buffer (resume loses nothing)")


class LoggingConfig(_Section):
    every_steps: int = Field(1000, ge=1, description="write a metrics row every N env steps")
    tensorboard: bool = Field(True, description="also write TensorBoard events")


class SequenceConfig(_Section):
    """`sequence:` = the tasks a continual agent learns one after another (Continual World)."""

    tasks: list[StrictInt | str] = Field(
        ...,
        min_length=1,
        description="the sequence's elements in order: task class names of the env family "
        "(Meta-World: hammer-v3; others: their class ids as names, `0`, `1`, ...) or class "
        "ids; repeats allowed (CW20 is CW10 twice)",
    )
    steps_per_task: int = Field(..., ge=1, description="env steps on each element")
    task_identity: Literal["visible", "hidden"] = Field(
        "visible",
        description="visible: the agent is told the element's position (its task class: "
        "heads, encodings); hidden: it must not use it (a single head, no task encoding)",
    )

    def class_ids(self, distribution: TaskDistribution) -> list[int]:
        """The env family's class id of each element (errors name the element and list the
        family's classes)."""
        names = distribution.task_class_names()
        ids = []
        for i, entry in enumerate(self.tasks):
            if isinstance(entry, int):
                if not 0 <= entry < len(names):
                    raise ConfigError(
                        f"sequence.tasks[{i}]: class id {entry} is out of range; "
                        f"{distribution.name} has classes 0..{len(names) - 1} "
                        f"({', '.join(names)})"
                    )
                ids.append(entry)
            elif entry in names:
                ids.append(names.index(entry))
            else:
                raise unknown_name(
                    f"task class of {distribution.name}", entry, names, f"sequence.tasks[{i}]"
                )
        return ids


class EnvConfig(_Section):
    """`env:` = `name` of a task family plus that family's own options."""

    name: str
    options: FamilyOptions

    def to_yaml_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options.model_dump(mode="json")}

    def build(self) -> TaskDistribution:
        return build(self.name, self.options.model_dump(), where="env")


class RunConfig(_Section):
    """A whole experiment. `total_steps` counts env steps over all envs."""

    experiment: str = Field("default", pattern=r"^[A-Za-z0-9_.\-]+$", description="run group name")
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="seeds python, numpy, torch, envs and task sampling (0..2**32-1: the range "
        "every seed stream derived from it accepts)",
    )
    total_steps: int = Field(..., ge=1, description="env steps to train for")
    total_episodes: int | None = Field(
        None, ge=1, description="also stop after this many episodes (e.g. Four Rooms' 2000)"
    )
    device: str = Field(
        "auto",
        description="torch device: auto (cuda when this machine has one, else cpu), "
        "cpu, cuda, cuda:1, ...",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=MAX_THREADS,
        description="torch CPU threads (default: $GMTL_THREADS where set, else min(2, cores))",
    )
    runs_dir: str = Field("runs", description="run directories go under <runs_dir>/<experiment>/")
    init_from: str | None = Field(
        None,
        description="start from another run: its directory (its newest whole checkpoint) or "
        "one of its checkpoints/step-N; the parts in init_parts are copied before training",
    )
    init_parts: list[Literal["networks", "normalizers", "replay"]] | None = Field(
        None,
        min_length=1,
        description="what init_from copies (default [networks]): networks (the agent's "
        "network weights, no optimiser state), normalizers (running input statistics), "
        "replay (the other run's replay contents)",
    )
    env: EnvConfig
    agent: AgentConfig
    sequence: SequenceConfig | None = Field(
        None, description="the task sequence of a continual agent (cl_sac); others have none"
    )
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @property
    def transfer_parts(self) -> list[str]:
        """What `init_from` copies."""
        return list(self.init_parts or ["networks"])

    def to_yaml_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.model_dump(mode="json").items() if k not in ("env", "agent")}
        data["env"] = self.env.to_yaml_dict()
        data["agent"] = self.agent.model_dump(mode="json")
        return data

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=False)


_SECTIONS = {
    "sequence": SequenceConfig,
    "sampler": SamplerConfig,
    "eval": EvalConfig,
    "checkpoint": CheckpointConfig,
    "logging": LoggingConfig,
}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping with safe_load (Python tags are refused, never executed)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(_too_deep(str(p))) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{p}{where}: invalid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a YAML mapping, got {type(data).__name__}")
    if nesting_depth(data) > MAX_DEPTH:
        raise ConfigError(_too_deep(str(p)))
    return data


def nesting_depth(value: Any) -> int:
    """How deep mappings and lists nest in a loaded YAML value (a scalar: 0), found without
    recursion. Stops counting past MAX_DEPTH, so anchors that reuse a collection many times
    (or a collection that contains itself) cost at most MAX_DEPTH visits per collection."""
    deepest = 0
    expanded: dict[int, int] = {}  # id of a collection -> the deepest level it was expanded at
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        if expanded.get(id(node), 0) >= level:
            continue
        expanded[id(node)] = level
        stack.extend((child, level + 1) for child in children)
    return deepest


def _too_deep(where: str) -> str:
    return (
        f"{where}: mappings and lists nest more than {MAX_DEPTH} levels deep; a config "
        "needs at most a few (env.parameters[0].distribution.values is 6)"
    )


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides; values are parsed as YAML scalars/flow (safely)."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not _KEY.match(key):
            raise ConfigError(f"override {item!r}: expected key.sub=value, e.g. total_steps=20000")
        parts = key.split(".")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except RecursionError:  # PyYAML composes nested collections recursively
            raise ConfigError(_too_deep(f"override {key}=...")) from None
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not valid YAML") from None
        if len(parts) + nesting_depth(value) > MAX_DEPTH:  # the top level, the keys, the value
            raise ConfigError(_too_deep(f"override {key}=..."))
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {item!r}: {where} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def parse_config(data: dict[str, Any]) -> RunConfig:
    """Validate a raw mapping: top level first, then env options and agent by their names."""
    raw = dict(data)
    env_raw = raw.pop("env", None)
    agent_raw = raw.pop("agent", None)
    problems = []
    for key, value in (("env", env_raw), ("agent", agent_raw)):
        if value is None:
            problems.append(f"{key}: missing (every config has an `{key}:` section with a name)")
        elif not isinstance(value, dict):
            problems.append(f"{key}: must be a mapping with a `name`, got {type(value).__name__}")
    if problems:
        raise ConfigError("; ".join(problems))
    assert isinstance(env_raw, dict) and isinstance(agent_raw, dict)
    env_opts = dict(env_raw)
    env_name = env_opts.pop("name", None)
    if not isinstance(env_name, str):
        raise ConfigError("env.name: missing; `gmtl envs` lists the task families")
    cls = family(env_name, "env.name")
    try:
        options = cls.Options.model_validate(env_opts)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "env")) from None
    agent = parse_agent_config(agent_raw, "agent")
    eval_raw = raw.get("eval", {})
    if isinstance(eval_raw, dict) and "episodes" not in eval_raw:
        # A trial long enough for the agent's adaptation (PEARL: past its exploration).
        raw["eval"] = {**eval_raw, "episodes": agent.default_eval_episodes()}
    sequence_raw = raw.get("sequence")
    if "total_steps" not in raw and isinstance(sequence_raw, dict):
        # A sequence fixes the budget: len(tasks) × steps_per_task, unless the config says.
        tasks, steps = sequence_raw.get("tasks"), sequence_raw.get("steps_per_task")
        if isinstance(tasks, list) and isinstance(steps, int) and not isinstance(steps, bool):
            raw["total_steps"] = len(tasks) * steps
    try:
        config = RunConfig.model_validate(
            {**raw, "env": EnvConfig(name=env_name, options=options), "agent": agent}
        )
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "")) from None
    check_sequence(config)
    parts = config.init_parts
    if parts is not None and config.init_from is None:
        raise ConfigError("init_parts: given without init_from (the run to copy them from)")
    if parts is not None and len(set(parts)) != len(parts):
        raise ConfigError(f"init_parts: {', '.join(parts)} names a part twice")
    return config


def check_sequence(config: RunConfig) -> None:
    """A `sequence:` goes with a continual agent, and fixes the budget and what the agent
    may know of the task."""
    name = config.agent.name
    continual = sorted(n for n, spec in agents().items() if spec.family == "continual")
    seq = config.sequence
    if agent_spec(name).family != "continual":
        if seq is not None:
            raise ConfigError(
                f"sequence: only continual agents ({', '.join(continual) or 'none registered'}) "
                f"train on a task sequence; agent {name!r} does not (remove `sequence:`)"
            )
        return
    if seq is None:
        raise ConfigError(
            f"sequence: missing; agent {name!r} trains on a task sequence: add `sequence:` "
            "with tasks (class names or ids) and steps_per_task"
        )
    expected = len(seq.tasks) * seq.steps_per_task
    if config.total_steps != expected:
        raise ConfigError(
            f"total_steps: {config.total_steps} must equal len(sequence.tasks) × "
            f"sequence.steps_per_task = {len(seq.tasks)} × {seq.steps_per_task} = {expected} "
            "(or leave total_steps out)"
        )
    n_envs = config.sampler.n_envs
    if seq.steps_per_task % n_envs:
        raise ConfigError(
            f"sequence.steps_per_task: {seq.steps_per_task} is not a multiple of sampler.n_envs "
            f"({n_envs}); the envs step together, so the elements would not get exactly "
            "their steps"
        )
    # The agent's own checks first (cl_sac: its method on this sequence), where it has them.
    agent_check = getattr(config.agent, "check_sequence", None)
    if agent_check is not None:
        agent_check(seq.task_identity, len(seq.tasks), seq.steps_per_task)
    if seq.task_identity == "hidden":
        # Optional on continual agent configs: a method that cannot work without the
        # position (PackNet's per-task masks) says so.
        if getattr(config.agent, "needs_task_identity", False):
            method = getattr(config.agent, "method", name)
            raise ConfigError(
                f"sequence.task_identity: hidden, but agent.method {method} needs the task "
                "identity; use sequence.task_identity=visible or another method"
            )
        if config.agent.conditions_on_task:
            raise ConfigError(
                "sequence.task_identity: hidden, but the agent acts on the task class (a head "
                "per task or a task encoding); set agent.multi_head=false and "
                "agent.task_encoding=none, or sequence.task_identity=visible"
            )


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    return parse_config(apply_overrides(read_yaml(path), overrides))
