"""Agents, one module per algorithm; `agents()` lists them by registry name."""

from gmtl_rl.agents import sac as _sac  # noqa: F401  (registers "sac")
from gmtl_rl.agents.registry import AgentConfig, AgentSpec, agent_spec, agents, register_agent

__all__ = ["AgentConfig", "AgentSpec", "agent_spec", "agents", "register_agent"]
