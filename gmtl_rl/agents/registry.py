"""Name -> agent: its config model, how to build it, and which training loop drives it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gmtl_rl.core.records import EnvSpec
from gmtl_rl.errors import ConfigError, format_validation_error, unknown_name


class AgentConfig(BaseModel):
    """Base of every agent's config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str

    @property
    def conditions_on_task(self) -> bool:
        """Whether the agent acts on the task class id (then it can only act on classes it
        trained on)."""
        return False

    def default_eval_episodes(self) -> int:
        """K of the adaptation curve when the config does not set `eval.episodes`."""
        return self.trial_episodes()

    def exploration_episodes(self) -> int:
        """Leading episodes of an evaluation trial that only explore (PEARL's prior z)."""
        return 0

    def trial_episodes(self) -> int:
        """Episodes the agent keeps its memory across (a trial): 1 unless it adapts over
        several (RL²'s `episodes_per_trial`)."""
        return 1


@dataclass(frozen=True)
class AgentSpec:
    name: str
    description: str
    family: str  # its training loop: a key of runner.TRAINING_LOOPS ("off_policy", "pearl", ...)
    config: type[AgentConfig]
    build: Callable[[Any, EnvSpec, int, str], Any]  # build(config, env, seed, device) -> agent


_AGENTS: dict[str, AgentSpec] = {}


def register_agent(spec: AgentSpec) -> AgentSpec:
    if spec.name in _AGENTS and _AGENTS[spec.name] is not spec:
        raise ValueError(f"agent {spec.name!r} is already registered")
    _AGENTS[spec.name] = spec
    return spec


def agents() -> dict[str, AgentSpec]:
    return dict(sorted(_AGENTS.items()))


def agent_spec(name: str, where: str = "agent.name") -> AgentSpec:
    if name not in _AGENTS:
        raise unknown_name("agent", name, _AGENTS, where)
    return _AGENTS[name]


def parse_agent_config(data: Mapping[str, Any], where: str = "agent") -> AgentConfig:
    """Validate an `agent:` mapping against the named agent's model (errors name the key)."""
    if "name" not in data:
        raise ConfigError(f"{where}.name: missing; valid: {', '.join(_AGENTS)}")
    spec = agent_spec(str(data["name"]), f"{where}.name")
    try:
        return spec.config.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)) from None
