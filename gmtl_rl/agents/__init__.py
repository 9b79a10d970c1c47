"""Agents, one module per algorithm; `agents()` lists them by registry name."""

from gmtl_rl.agents import bandit_baselines as _bandits  # noqa: F401  (bandit_random, ...)
from gmtl_rl.agents import continual_sac as _continual_sac  # noqa: F401  (registers "cl_sac")
from gmtl_rl.agents import deep_option_critic as _deep_oc  # noqa: F401  (deep_option_critic)
from gmtl_rl.agents import dqn as _dqn  # noqa: F401  (registers "dqn", "dqn_her")
from gmtl_rl.agents import gridworld_bayes as _gridworld_bayes  # noqa: F401  (bayes_optimal_gridworld)
from gmtl_rl.agents import maml as _maml  # noqa: F401  (registers "maml")
from gmtl_rl.agents import mdp_baselines as _mdp  # noqa: F401  (mdp_random, mdp_psrl, ...)
from gmtl_rl.agents import option_critic as _option_critic  # noqa: F401  (option_critic, actor_critic)
from gmtl_rl.agents import pearl as _pearl  # noqa: F401  (registers "pearl")
from gmtl_rl.agents import rl2 as _rl2  # noqa: F401  (registers "rl2")
from gmtl_rl.agents import sac as _sac  # noqa: F401  (registers "sac")
from gmtl_rl.agents import sb3 as _sb3  # noqa: F401  (registers "sb3"; imports SB3 lazily)
from gmtl_rl.agents import varibad as _varibad  # noqa: F401  (registers "varibad")
from gmtl_rl.agents.registry import AgentConfig, AgentSpec, agent_spec, agents, register_agent

__all__ = ["AgentConfig", "AgentSpec", "agent_spec", "agents", "register_agent"]
