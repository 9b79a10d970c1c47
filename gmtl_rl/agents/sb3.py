"""The stable-baselines3 adapter: any SB3 algorithm trained on our task distributions and
measured by our evaluator, so baselines are compared like for like.

SB3 policies have no task-id input, so the task class reaches them as a one-hot appended to the
observation (to the `observation` entry of a GoalEnv's Dict): the "wrapper for SB3-style
consumers" of DESIGN.md. The training loop lives in `gmtl_rl.training.sb3`. stable-baselines3
is imported only when an SB3 agent is configured (it takes a second to import).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import (
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.records import EnvSpec, Obs
from gmtl_rl.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

ALGORITHMS = ("SAC", "TD3", "DDPG", "PPO", "A2C", "DQN")
OFF_POLICY = frozenset({"SAC", "TD3", "DDPG", "DQN"})  # the ones with a replay buffer (HER)

# Constructor arguments the adapter sets itself, and where the user sets them instead.
RESERVED_KWARGS = {
    "policy": "agent.policy",
    "env": "env",
    "seed": "seed",
    "device": "device",
    "verbose": "nothing (gmtl logs to metrics.csv)",
    "tensorboard_log": "logging.tensorboard",
    "replay_buffer_class": "agent.her",
    "_init_setup_model": "nothing",
}

# What each algorithm records under `train/` (SB3's names, as metrics.csv columns).
METRICS = {
    "SAC": ["actor_loss", "critic_loss", "ent_coef", "ent_coef_loss"],
    "TD3": ["actor_loss", "critic_loss"],
    "DDPG": ["actor_loss", "critic_loss"],
    "DQN": ["loss", "exploration_rate"],
    "PPO": ["loss", "policy_gradient_loss", "value_loss", "entropy_loss", "approx_kl",
            "clip_fraction", "explained_variance"],
    "A2C": ["policy_loss", "value_loss", "entropy_loss", "explained_variance"],
}  # fmt: skip


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    import stable_baselines3

    cls: type[BaseAlgorithm] = getattr(stable_baselines3, algo)
    return cls


_ANY_TYPES = ConfigDict(arbitrary_types_allowed=True)  # SB3 annotates with its own classes


def _constructor_parameters(algo: str) -> Mapping[str, inspect.Parameter]:
    """The algorithm's constructor parameters, annotations resolved where SB3's source allows."""
    init = algorithm_class(algo).__init__
    try:
        return inspect.signature(init, eval_str=True).parameters
    except NameError:  # an annotation that names something only imported for type checking
        return inspect.signature(init).parameters


def _type_name(annotation: Any) -> str:
    """`float | Callable[[float], float]`, `ActionNoise | None`: module paths dropped."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", text)


class SB3Config(AgentConfig):
    """A stable-baselines3 algorithm; its own hyperparameters go in `kwargs` (SB3's defaults)."""

    name: Literal["sb3"] = "sb3"
    algo: str = Field(..., description="SB3 algorithm: SAC, TD3, DDPG, PPO, A2C or DQN")
    policy: str = Field(
        "auto", description="SB3 policy name; auto: MultiInputPolicy for Dict obs, else MlpPolicy"
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="arguments of the SB3 algorithm's constructor"
    )
    her: bool | Literal["auto"] = Field(
        "auto", description="HerReplayBuffer; auto: on for goal envs with an off-policy algo"
    )
    her_strategy: Literal["future", "final", "episode"] = Field(
        "future", description="HER goal selection strategy"
    )
    her_n_sampled_goal: int = Field(4, ge=1, description="relabelled goals per real transition")

    @field_validator("algo", mode="before")
    @classmethod
    def _known_algo(cls, value: Any) -> str:
        canonical = {a.lower(): a for a in ALGORITHMS}
        if not isinstance(value, str) or value.lower() not in canonical:
            # ConfigError (not ValueError) passes through pydantic as the one-line message.
            raise unknown_name("stable-baselines3 algorithm", str(value), ALGORITHMS, "agent.algo")
        return canonical[value.lower()]

    @field_validator("her", mode="before")
    @classmethod
    def _her_choice(cls, value: Any) -> Any:
        if value is True or value is False or value == "auto":
            return value
        raise ConfigError(f"agent.her: expected true, false or auto, got {value!r}")

    @field_validator("kwargs")
    @classmethod
    def _known_kwargs(cls, kwargs: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Names and types checked against the SB3 constructor, so mistakes fail before a run."""
        if "algo" not in info.data:  # the algo itself was rejected
            return kwargs
        algo = info.data["algo"]
        params = _constructor_parameters(algo)
        valid = sorted(p for p in params if p != "self" and p not in RESERVED_KWARGS)
        checked = {}
        for key, value in kwargs.items():
            if key in RESERVED_KWARGS:
                raise ConfigError(
                    f"agent.kwargs.{key}: set by gmtl_rl; use {RESERVED_KWARGS[key]} instead"
                )
            if key not in params:
                raise unknown_name(f"argument of SB3 {algo}", key, valid, f"agent.kwargs.{key}")
            annotation = params[key].annotation
            if annotation is inspect.Parameter.empty or isinstance(annotation, str):
                checked[key] = value  # no usable annotation: SB3 itself will judge the value
                continue
            try:
                checked[key] = TypeAdapter(annotation, config=_ANY_TYPES).validate_python(value)
            except ValidationError as err:
                problem = err.errors()[0]["msg"]
                raise ConfigError(
                    f"agent.kwargs.{key}: {problem} (SB3 {algo} takes {_type_name(annotation)})"
                ) from None
        return checked

    @model_validator(mode="after")
    def _check_against_sb3(self) -> SB3Config:
        algo_cls = algorithm_class(self.algo)
        aliases = ["auto", *algo_cls.policy_aliases]
        if self.policy not in aliases:
            raise unknown_name(f"SB3 {self.algo} policy", self.policy, aliases, "agent.policy")
        if self.her is True and self.algo not in OFF_POLICY:
            raise ConfigError(
                f"agent.her: HER relabels a replay buffer, and {self.algo} has none; use an "
                f"off-policy algorithm ({', '.join(sorted(OFF_POLICY))}) or agent.her=false"
            )
        return self

    @property
    def conditions_on_task(self) -> bool:
        """Always: the policy sees the task class one-hot, so every class must be a train one."""
        return True


class TaskClassOneHot:
    """Appends a one-hot of the task class to observations, batched or one at a time.

    Box observations get it concatenated; Discrete ones become their own one-hot first (as SB3
    would encode them); a GoalEnv's Dict gets it on its `observation` entry, so the goals that
    HER relabels stay untouched.
    """

    def __init__(self, space: gym.Space[Any], num_classes: int) -> None:
        self.num_classes = num_classes
        self.is_dict = isinstance(space, gym.spaces.Dict)
        base = space["observation"] if isinstance(space, gym.spaces.Dict) else space
        self.discrete: gym.spaces.Discrete | None = None
        if isinstance(base, gym.spaces.Discrete):
            self.discrete = base
            low, high = np.zeros(int(base.n)), np.ones(int(base.n))
        elif isinstance(base, gym.spaces.Box | gym.spaces.MultiBinary) and len(base.shape) == 1:
            low = base.low if isinstance(base, gym.spaces.Box) else np.zeros(base.shape)
            high = base.high if isinstance(base, gym.spaces.Box) else np.ones(base.shape)
        else:
            where = "'s observation entry" if self.is_dict else ""
            raise ConfigError(
                f"agent.name: sb3 appends a task-class one-hot to flat observations; this "
                f"env{where} is {base} (a 1-D Box, Discrete or MultiBinary is needed)"
            )
        augmented = gym.spaces.Box(
            np.concatenate([low, np.zeros(num_classes)]).astype(np.float32),
            np.concatenate([high, np.ones(num_classes)]).astype(np.float32),
            dtype=np.float32,
        )
        self.space: gym.Space[Any] = (
            gym.spaces.Dict({**space.spaces, "observation": augmented})
            if isinstance(space, gym.spaces.Dict)
            else augmented
        )
        self._classes = np.eye(num_classes, dtype=np.float32)

    def batch(self, obs: Obs, task_class: np.ndarray) -> Obs:
        """Observations [N, ...] of envs on task classes [N], with the one-hot appended."""
        onehot = self._classes[np.asarray(task_class, np.int64)]
        if isinstance(obs, dict):
            return {**obs, "observation": self._join(obs["observation"], onehot)}
        return self._join(obs, onehot)

    def one(self, obs: Any, task_class: int) -> Any:
        """One env's observation, with its class one-hot appended."""
        classes = np.array([task_class])
        if isinstance(obs, dict):
            out = self.batch({k: np.asarray(v)[None] for k, v in obs.items()}, classes)
            assert isinstance(out, dict)
            return {k: v[0] for k, v in out.items()}
        out = self.batch(np.asarray(obs)[None], classes)
        assert isinstance(out, np.ndarray)
        return out[0]

    def _join(self, obs: np.ndarray, onehot: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if self.discrete is not None:
            codes = np.eye(int(self.discrete.n), dtype=np.float32)
            obs = codes[obs.astype(np.int64) - int(self.discrete.start)]
        return np.concatenate([obs.astype(np.float32).reshape(len(onehot), -1), onehot], axis=1)


class SB3Policy(StatelessPolicy):
    """An SB3 model behind the Policy protocol, so `run_adaptation` evaluates it as any agent."""

    def __init__(self, model: BaseAlgorithm, encoder: TaskClassOneHot) -> None:
        self.model = model
        self.encoder = encoder

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        task_class = np.asarray(task_class, np.int64)
        unknown = (task_class < 0) | (task_class >= self.encoder.num_classes)
        if unknown.any():
            raise ValueError(
                f"task class {int(task_class[unknown][0])} is not one of the "
                f"{self.encoder.num_classes} classes this SB3 model was trained on (-1: a "
                "held-out task); evaluate on the train split"
            )
        obs = self.encoder.batch(obs, task_class)
        actions, _ = self.model.predict(obs, deterministic=deterministic)
        return np.asarray(actions)


def build_sb3(config: SB3Config, spec: EnvSpec, seed: int, device: str) -> BaseAlgorithm:
    """The configured SB3 algorithm on `spec.envs` (one DummyVecEnv over the task classes)."""
    if spec.envs is None:
        raise ValueError("an SB3 model trains on its own vector env: pass spec.with_envs(vec)")
    env: VecEnv = spec.envs
    goal_env = spec.goal_env
    algo_cls = algorithm_class(config.algo)
    kwargs = dict(config.kwargs)
    use_her = (config.algo in OFF_POLICY and goal_env) if config.her == "auto" else config.her
    if use_her:
        if not goal_env:
            raise ConfigError(
                "agent.her: true needs a goal env (Dict observation with observation, "
                "achieved_goal, desired_goal and a compute_reward); this env is not one, set "
                "agent.her=false (or env.observe_goal=true where the family has it)"
            )
        from stable_baselines3 import HerReplayBuffer

        kwargs["replay_buffer_class"] = HerReplayBuffer
        kwargs["replay_buffer_kwargs"] = {
            "n_sampled_goal": config.her_n_sampled_goal,
            "goal_selection_strategy": config.her_strategy,
            **kwargs.get("replay_buffer_kwargs", {}),
        }
    policy = config.policy
    if policy == "auto":
        is_dict = isinstance(env.observation_space, gym.spaces.Dict)
        policy = "MultiInputPolicy" if is_dict else "MlpPolicy"
    try:
        return algo_cls(policy, env, seed=seed, device=device, verbose=0, **kwargs)
    except (AssertionError, ValueError, TypeError, KeyError) as err:
        # SB3 checks spaces and values with asserts and plain exceptions: report them as
        # the user's mistake, on one line.
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError(
            f"agent: stable-baselines3 {config.algo} rejected this setup (agent.kwargs, "
            f"agent.policy or the env's spaces): {reason}"
        ) from None


register_agent(
    AgentSpec(
        "sb3",
        "any stable-baselines3 algorithm (agent.algo), task class one-hot in the observation",
        family="sb3",
        config=SB3Config,
        build=build_sb3,
    )
)
