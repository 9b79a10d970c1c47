"""Meta-World's own evaluations for our agents: the multi-task one
(`metaworld.evaluation.evaluation`) and the meta-learning one
(`metaworld.evaluation.metalearning_evaluation`).

The benchmark's protocol runs on the benchmark's own vector env (one env per class, goals
resampled on reset, episodes end at success): success rate per class over `num_episodes`
episodes, then the mean over classes. Numbers from here compare directly with papers that
use it. Our agent acts through a thin adapter: Meta-World hands it float64 observations
and `reset(mask)`; the adapter adds the task class id each env belongs to (from the env's
class name) and calls `Policy.act` deterministically.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gmtl_rl.core.policy import Policy
from gmtl_rl.core.records import StepBatch
from gmtl_rl.envs.metaworld_families import MetaWorldFamily, benchmark
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


@contextmanager
def family_benchmark_reused(family: MetaWorldFamily) -> Iterator[None]:
    """Meta-World's own env builders construct their benchmark anew (`metaworld.MT10(seed=...)`:
    5 s for MT10, about 19 s for MT50 and ML45); inside, they get the family's, built by the
    same class with the same seed, so the protocol's code path and tasks are unchanged. The
    builders look the class up in the `metaworld` module, which is where it is swapped."""
    import metaworld

    o = family.options
    task_name = getattr(o, "task_name", None)
    built = benchmark(family.kind, task_name, o.seed)
    original = getattr(metaworld, family.kind)

    def reuse(*args: Any, seed: int | None = None, **kwargs: Any) -> Any:
        if seed == o.seed and (not args or args[0] == task_name) and not kwargs:
            return built
        return original(*args, seed=seed, **kwargs)

    setattr(metaworld, family.kind, reuse)
    try:
        yield
    finally:
        setattr(metaworld, family.kind, original)


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
    with family_benchmark_reused(family):
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


def write_result(
    result: MetaWorldResult | MetaLearningResult, out_dir: Path, meta: dict[str, Any]
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metaworld.json"
    path.write_text(json.dumps({**meta, **asdict(result)}, indent=2))
    return path


# -- meta-learning (ML1 / ML10 / ML45) ------------------------------------------------------
class MetaWorldMetaAgent:
    """`metaworld.evaluation.MetaLearningAgent` over our Policy.

    Our meta-learners adapt online, inside `Policy.observe` (PEARL re-infers its posterior,
    RL² carries its hidden state, MAML takes its inner step when a block of episodes ends), so
    `adapt()` only calls a policy's own `adapt(mask)` where it has one, and a trial spans the
    adaptation and the evaluation episodes of one `init()`: Meta-World's per-episode
    `reset(mask)` calls are episode boundaries inside the trial, not new trials. Meta-World
    hands `step()` no successor observation and `evaluation()` hands the agent no rewards at
    all, so the agent sees every transition through `ObservedVectorEnv` instead.
    """

    def __init__(self, policy: Policy, num_envs: int, deterministic: bool = True) -> None:
        self.policy = policy
        self.num_envs = num_envs
        self.deterministic = deterministic
        self.task_class = np.full(num_envs, -1, np.int64)  # meta-RL is never told the task
        self.trials = 0

    def init(self) -> None:
        self.policy.reset(np.ones(self.num_envs, bool))
        self.trials += 1

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self.eval_action(observations), {}

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, np.float32)
        return self.policy.act(obs, self.task_class, self.deterministic)

    def step(self, timestep: Any) -> None:
        del timestep  # seen, with its successor, by ObservedVectorEnv

    def adapt(self) -> None:
        """Online learners adapted in `observe` already; a learner with an `adapt(mask)` of
        its own (MAML: the inner step on the adaptation episodes, if its block has not ended
        by itself) takes it now."""
        adapt = getattr(self.policy, "adapt", None)
        if adapt is not None:
            adapt(np.ones(self.num_envs, bool))

    def reset(self, env_mask: np.ndarray) -> None:
        del env_mask  # an episode boundary within the trial (see the class docstring)

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        info: dict[str, Any],
        next_obs: np.ndarray,
    ) -> None:
        n = self.num_envs
        true_next = np.array(next_obs, np.float32)
        done = np.logical_or(terminated, truncated)
        if done.any() and "final_obs" in info:  # SAME_STEP autoreset: next_obs is the reset
            for i in np.flatnonzero(done):
                true_next[i] = info["final_obs"][i]
        success = np.asarray(info.get("success", np.zeros(n)), np.float32)
        self.policy.observe(
            StepBatch(
                obs=np.asarray(obs, np.float32),
                action=np.asarray(action, np.float32),
                reward=np.asarray(reward, np.float32),
                next_obs=true_next,
                terminated=np.asarray(terminated, bool),
                truncated=np.asarray(truncated, bool),
                task_id=np.zeros(n, np.int64),
                task_class=self.task_class,
                episode_id=np.zeros(n, np.int64),
                step_index=np.zeros(n, np.int64),
                success=success,
                valid=np.ones(n, bool),
            )
        )


class ObservedVectorEnv:
    """A Meta-World vector env that reports every step, with its true successor, to the
    agent (the evaluation functions only use reset, step, call, get_attr and num_envs)."""

    def __init__(self, envs: gym.vector.VectorEnv, agent: MetaWorldMetaAgent) -> None:
        self.envs: Any = envs  # a Sync/AsyncVectorEnv (call, get_attr)
        self.agent = agent
        self._obs: np.ndarray | None = None

    @property
    def num_envs(self) -> int:
        return int(self.envs.num_envs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.envs.call(name, *args, **kwargs)

    def get_attr(self, name: str) -> Any:
        return self.envs.get_attr(name)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.envs.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, actions: np.ndarray) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        assert self._obs is not None, "step before reset"
        self.agent.observe(self._obs, actions, reward, terminated, truncated, info, obs)
        self._obs = obs
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.envs.close()


@dataclass(frozen=True)
class MetaLearningResult:
    benchmark: str
    num_evals: int
    adaptation_episodes: int
    evaluation_episodes: int
    meta_batch_size: int
    tasks_per_class: int
    mean_success: float
    mean_return: float
    success_per_class: dict[str, float]
    reward_version: str
    seed: int


def make_metalearning_envs(
    family: MetaWorldFamily, meta_batch_size: int, tasks_per_class: int
) -> gym.vector.VectorEnv:
    """The benchmark's own test-split vector env (as `metaworld.make_ml_envs_test` builds it:
    goals change per `sample_tasks`, episodes end at success), our family's seed and reward
    version. ML1's test goals come from the benchmark itself (seed + 1 inside metaworld.ML1)."""
    import metaworld

    o = family.options
    name = o.task_name if family.kind == "ML1" else family.kind
    with family_benchmark_reused(family):
        envs = metaworld.make_ml_envs(
            name,
            seed=o.seed,
            meta_batch_size=meta_batch_size,
            total_tasks_per_cls=tasks_per_class,
            split="test",
            terminate_on_success=True,
            task_select="pseudorandom",
            reward_function_version=o.reward_version,
        )
    return envs


def evaluate_metalearning(
    policy: Policy,
    distribution: TaskDistribution,
    num_evals: int = 10,
    adaptation_episodes: int = 10,
    evaluation_episodes: int = 3,
    meta_batch_size: int | None = None,
    tasks_per_class: int = 40,
    deterministic: bool = True,
) -> MetaLearningResult:
    """Run `metaworld.evaluation.metalearning_evaluation` on an ML family's test tasks: per
    round, every env gets a new test goal, the agent adapts for `adaptation_episodes`, then
    `evaluation_episodes` are scored. Defaults are Meta-World's (10 rounds, 10 + 3 episodes,
    40 goals per test class); `meta_batch_size` defaults to the family's option, rounded
    down to a multiple of the test classes."""
    from metaworld.evaluation import metalearning_evaluation

    if not isinstance(distribution, MetaWorldFamily) or not distribution.meta:
        raise ConfigError(
            f"env.name: Meta-World's meta-learning protocol needs metaworld/ML1, ML10 or "
            f"ML45, not {distribution.name}"
        )
    n_test_classes = len(distribution.class_names) - distribution.num_train_classes or 1
    mbs = meta_batch_size or distribution.options.meta_batch_size
    mbs = max(n_test_classes, mbs - mbs % n_test_classes)
    per_env, rest = divmod(tasks_per_class, mbs // n_test_classes)
    if rest or per_env == 0:
        raise ConfigError(
            f"meta_batch_size {mbs}: {tasks_per_class} goals per test class must split evenly "
            f"over {mbs // n_test_classes} envs per class"
        )
    raw = make_metalearning_envs(distribution, mbs, tasks_per_class)
    agent = MetaWorldMetaAgent(policy, raw.num_envs, deterministic)
    envs = ObservedVectorEnv(raw, agent)
    try:
        mean_success, mean_return, per_class = metalearning_evaluation(
            agent,
            envs,  # type: ignore[arg-type]
            num_evals=num_evals,
            adaptation_episodes=adaptation_episodes,
            evaluation_episodes=evaluation_episodes,
        )
    finally:
        envs.close()
    return MetaLearningResult(
        benchmark=distribution.name,
        num_evals=num_evals,
        adaptation_episodes=adaptation_episodes,
        evaluation_episodes=evaluation_episodes,
        meta_batch_size=mbs,
        tasks_per_class=tasks_per_class,
        mean_success=float(mean_success),
        mean_return=float(mean_return),
        success_per_class={k: float(v) for k, v in sorted(per_class.items())},
        reward_version=distribution.options.reward_version,
        seed=distribution.options.seed,
    )
