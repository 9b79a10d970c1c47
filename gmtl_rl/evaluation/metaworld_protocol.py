"""Meta-World's own multi-task evaluation (`metaworld.evaluation.evaluation`) for our agents.

The benchmark's protocol runs on the benchmark's own vector env (one env per class, goals
resampled on reset, episodes end at success): success rate per class over `num_episodes`
episodes, then the mean over classes. Numbers from here compare directly with papers that
use it. Our agent acts through a thin adapter: Meta-World hands it float64 observations
and `reset(mask)`; the adapter adds the task class id each env belongs to (from the env's
class name) and calls `Policy.act` deterministically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gmtl_rl.core.policy import Policy
from gmtl_rl.envs.metaworld_families import MetaWorldFamily
from gmtl_rl.envs.task import TaskDistribution
from gmtl_rl.errors import ConfigError


class MetaWorldAgent:
    """`metaworld.evaluation.Agent` over our Policy: eval_action(obs) and reset(mask)."""

    def __init__(self, policy: Policy, task_class: np.ndarray, deterministic: bool = True):
        self.policy = policy
        self.task_class = np.asarray(task_class, np.int64)
        self.deterministic = deterministic

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, np.float32)
        return self.policy.act(obs, self.task_class, self.deterministic)

    def reset(self, env_mask: np.ndarray) -> None:
        if np.any(env_mask):
            self.policy.reset(np.asarray(env_mask, bool))


@dataclass(frozen=True)
class MetaWorldResult:
    benchmark: str
    num_episodes: int
    mean_success: float
    mean_return: float
    success_per_class: dict[str, float]
    reward_version: str
    seed: int


def make_benchmark_envs(family: MetaWorldFamily) -> gym.vector.SyncVectorEnv:
    """The benchmark's own eval vector env for an MT family, with our family's goals (both
    come from the benchmark seed) and reward version."""
    o = family.options
    common: dict[str, Any] = {
        "vector_strategy": "sync",
        "seed": o.seed,
        "use_one_hot": getattr(o, "one_hot", False),
        "reward_function_version": o.reward_version,
    }
    if family.kind == "MT1":
        envs = gym.make_vec("Meta-World/MT1", env_name=o.task_name, num_envs=1, **common)
    else:
        envs = gym.make_vec(f"Meta-World/{family.kind}", **common)
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    return envs


def evaluate_multitask(
    policy: Policy, distribution: TaskDistribution, num_episodes: int = 50
) -> MetaWorldResult:
    """Run `metaworld.evaluation.evaluation` on an MT family with our policy."""
    import metaworld  # noqa: F401  (registers the Meta-World/* gym ids)
    from metaworld.evaluation import _get_task_names, evaluation

    if not isinstance(distribution, MetaWorldFamily) or distribution.meta:
        raise ConfigError(
            f"env.name: Meta-World's multi-task protocol needs metaworld/MT1, MT10 or MT50, "
            f"not {distribution.name}"
        )
    envs = make_benchmark_envs(distribution)
    try:
        names = _get_task_names(envs)
        task_class = np.asarray([distribution.class_names.index(n) for n in names], np.int64)
        agent = MetaWorldAgent(policy, task_class)
        mean_success, mean_return, per_class, _ = evaluation(agent, envs, num_episodes)
    finally:
        envs.close()
    return MetaWorldResult(
        benchmark=distribution.name,
        num_episodes=num_episodes,
        mean_success=mean_success,
        mean_return=mean_return,
        success_per_class={k: float(v) for k, v in sorted(per_class.items())},
        reward_version=distribution.options.reward_version,
        seed=distribution.options.seed,
    )


def write_result(result: MetaWorldResult, out_dir: Path, meta: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metaworld.json"
    path.write_text(json.dumps({**meta, **asdict(result)}, indent=2))
    return path
