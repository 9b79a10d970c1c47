"""The PEARL MuJoCo suite (Rakelly et al. 2019; oyster `rlkit/envs/*.py`) on Gymnasium v5 envs.

Reward families keep the v5 env's physics and termination and recompute the reward from its
`info` in a thin wrapper; the params families (oyster's `rand_param_envs`) scale the live
MuJoCo model through the plug-in family's `TaskParameterWrapper` and keep the env's reward.
Every family truncates at `horizon` (200) steps. With `observe_task` the task's parameters
are appended to the observation (`TaskObservationWrapper`), so a plain SAC sees the task: the
oracle bound of a meta-learner's adaptation curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from gmtl_rl.envs.plugin import ExpUniform, GymFamily, GymOptions, ParameterSpec
from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS, FamilyOptions, Task, TaskDistribution, find_layer
from gmtl_rl.errors import ConfigError

HORIZON = 200  # oyster configs: max_path_length 200 for every MuJoCo family

# (task parameters, action, the v5 env's step info) -> named reward terms that sum to the reward.
RewardTerms = Callable[[Mapping[str, Any], np.ndarray, dict[str, Any]], dict[str, float]]


def _params(task: Task) -> dict[str, Any]:
    """A task's parameters as floats and float64 arrays, looked up once per task, not per step."""
    return {k: task.array(k) if isinstance(v, tuple) else v for k, v in task.params}


def _along(theta: float, info: dict[str, Any]) -> float:
    """Velocity along the direction θ: cosθ·v_x + sinθ·v_y (v = Δxy/dt from the v5 info)."""
    return math.cos(theta) * info["x_velocity"] + math.sin(theta) * info["y_velocity"]


class PearlRewardWrapper(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Replaces a v5 MuJoCo env's reward by a PEARL task's, computed from the step `info`.

    The terms go in `info` as `task_reward_<term>` and the env's own reward as
    `original_reward`. Example: `PearlRewardWrapper(gym.make("HalfCheetah-v5"), fn, task)`.
    """

    def __init__(self, env: gym.Env[Any, Any], reward_fn: RewardTerms, task: Task) -> None:
        # Recorded so that env.spec.make() (used by gymnasium's env checker) rebuilds this env.
        gym.utils.RecordConstructorArgs.__init__(self, reward_fn=reward_fn, task=task)
        super().__init__(env)
        self.reward_fn = reward_fn
        self.task = task
        self._params = _params(task)
        self._pending: Task | None = None

    def set_task(self, task: Task) -> None:
        """Switch to `task` at the next reset (the episode in flight keeps its task)."""
        self._pending = task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if self._pending is not None:
            self.task, self._params, self._pending = self._pending, _params(self._pending), None
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        terms = self.reward_fn(self._params, np.asarray(action, dtype=np.float64), info)
        info["original_reward"] = float(env_reward)
        for name, value in terms.items():
            info[f"task_reward_{name}"] = value
        return obs, float(sum(terms.values())), terminated, truncated, info


class TaskObservationWrapper(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Appends the running task's parameters to a flat Box observation: an oracle's input.

    The task is the `task` of the layer below that holds it (the reward wrapper, which switches
    at reset, or the params families' parameter wrapper, which switches at once), so the
    appended part always describes the task the env runs. `features(task)` is clipped into
    [low, high] (float rounding), and the observation space is the inner Box with those bounds
    appended. Example: `TaskObservationWrapper(env, lambda t: np.array([t["velocity"]]), [0],
    [3])`.
    """

    def __init__(
        self,
        env: gym.Env[np.ndarray, Any],
        features: Callable[[Task], np.ndarray],
        low: Any,
        high: Any,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, features=features, low=low, high=high)
        gym.ObservationWrapper.__init__(self, env)
        inner = env.observation_space
        if not isinstance(inner, gym.spaces.Box) or len(inner.shape) != 1:
            raise TypeError(f"observe_task needs a flat Box observation, got {inner}")
        self.features = features
        self._low = np.asarray(low, inner.dtype).reshape(-1)
        self._high = np.asarray(high, inner.dtype).reshape(-1)
        self.observation_space = gym.spaces.Box(
            np.concatenate([inner.low, self._low]),
            np.concatenate([inner.high, self._high]),
            dtype=inner.dtype,
        )
        self._task: Task | None = None
        self._appended = self._low

    def observation(self, observation: np.ndarray) -> np.ndarray:
        task = self.env.get_wrapper_attr("task")
        if task is not self._task:  # features are computed once per task, not per step
            f = np.asarray(self.features(task), self._low.dtype).reshape(-1)
            self._task, self._appended = task, np.clip(f, self._low, self._high)
        return np.concatenate([np.asarray(observation, self._low.dtype), self._appended])


def _ctrl(weight: float, action: np.ndarray) -> float:
    return -weight * float(np.dot(action, action))


def _direction(angle: float) -> np.ndarray:
    """A direction task as the oracle sees it: (cos θ, sin θ), continuous across θ = 2π."""
    return np.array([math.cos(angle), math.sin(angle)])


class PearlOptions(FamilyOptions):
    horizon: int = Field(HORIZON, ge=1, description="episode length (truncation)")
    observe_task: bool = Field(
        False,
        description="append the task's parameters to the observation (an oracle's input): goal "
        "velocity; direction ±1 or (cos θ, sin θ); goal xy; log-scale exponents of the physics",
    )


class SampledOptions(PearlOptions):
    n_train: int = Field(100, ge=1, le=MAX_TASKS, description="train tasks")
    n_test: int = Field(30, ge=1, le=MAX_TASKS, description="held-out test tasks")
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the task split; independent of the run seed"
    )


class _PearlFamily(TaskDistribution):
    """Shared machinery: a v5 env, a time limit, a reward wrapper, a seeded train/test split."""

    env_id: ClassVar[str]
    env_kwargs: ClassVar[dict[str, Any]] = {}
    options: Any

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        # Train tasks are drawn first, then test, from one generator: a fixed split per seed.
        draws = self._draw(np.random.default_rng(o.split_seed), o.n_train + o.n_test)
        tasks = [Task.create(self.name, i, **d) for i, d in enumerate(draws)]
        self._train = tasks[: o.n_train]
        self._test = [Task(t.family, i, t.params) for i, t in enumerate(tasks[o.n_train :])]

    def _draw(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    @staticmethod
    def reward(p: Mapping[str, Any], a: np.ndarray, info: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    @property
    def horizon(self) -> int | None:
        return int(self.options.horizon)

    @property
    def observes_task(self) -> bool:
        return bool(self.options.observe_task)

    def task_features(self, task: Task) -> np.ndarray:
        """What `observe_task` appends to the observation: the task's parameters."""
        raise NotImplementedError

    def task_feature_bounds(self) -> tuple[list[float], list[float]]:
        """(low, high) of `task_features` over every task of the family."""
        raise NotImplementedError

    def make_env(self, task: Task | None = None) -> gym.Env:
        env = gym.make(self.env_id, max_episode_steps=self.options.horizon, **self.env_kwargs)
        return _observing(self, PearlRewardWrapper(env, self.reward, task or self._train[0]))

    def set_task(self, env: gym.Env, task: Task) -> None:
        find_layer(env, PearlRewardWrapper, self.name).set_task(task)


def _observing(dist: _PearlFamily | _ParamsFamily, env: gym.Env) -> gym.Env:
    """`env` with the task appended to its observation where `observe_task` asks for it."""
    if not dist.options.observe_task:
        return env
    return TaskObservationWrapper(env, dist.task_features, *dist.task_feature_bounds())


class CheetahVelOptions(SampledOptions):
    # oyster half_cheetah_vel.py, varibad and ProMP draw U[0, 3]; garage HalfCheetahVelEnv U[0, 2].
    vel_high: float = Field(3.0, gt=0, description="goal velocity ~ U[0, vel_high]; garage: 2.0")


@register_family
class CheetahVel(_PearlFamily):
    name = "cheetah-vel"
    description = "PEARL HalfCheetah-v5 goal velocity v ~ U[0, 3]: reward -|v_x - v| - 0.05‖a‖²"
    Options = CheetahVelOptions
    env_id = "HalfCheetah-v5"

    def _draw(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        return [{"velocity": v} for v in rng.uniform(0.0, self.options.vel_high, size=n)]

    def task_features(self, task: Task) -> np.ndarray:
        return np.array([task["velocity"]])

    def task_feature_bounds(self) -> tuple[list[float], list[float]]:
        return [0.0], [float(self.options.vel_high)]

    @staticmethod
    def reward(p: Mapping[str, Any], a: np.ndarray, info: dict[str, Any]) -> dict[str, float]:
        # oyster half_cheetah_vel.py: -|Δx/dt - v| - 0.5·1e-1·‖a‖²
        return {"forward": -abs(info["x_velocity"] - p["velocity"]), "ctrl": _ctrl(0.05, a)}


@register_family
class CheetahDir(_PearlFamily):
    name = "cheetah-dir"
    description = "PEARL HalfCheetah-v5 direction d ∈ {+1, -1}: reward d·v_x - 0.05‖a‖²"
    Options = PearlOptions
    env_id = "HalfCheetah-v5"

    def __init__(self, options: FamilyOptions) -> None:
        TaskDistribution.__init__(self, options)
        # oyster half_cheetah_dir.py: the two directions are both the train and the test tasks.
        self._train = [Task.create(self.name, i, direction=d) for i, d in enumerate((1.0, -1.0))]
        self._test = list(self._train)

    def task_features(self, task: Task) -> np.ndarray:
        return np.array([task["direction"]])

    def task_feature_bounds(self) -> tuple[list[float], list[float]]:
        return [-1.0], [1.0]

    @staticmethod
    def reward(p: Mapping[str, Any], a: np.ndarray, info: dict[str, Any]) -> dict[str, float]:
        return {"forward": p["direction"] * info["x_velocity"], "ctrl": _ctrl(0.05, a)}


class AntDirOptions(SampledOptions):
    n_train: int = Field(2, ge=1, le=MAX_TASKS, description="train tasks (forward_back: exactly 2)")
    n_test: int = Field(
        2, ge=1, le=MAX_TASKS, description="test tasks (forward_back: the 2 train tasks)"
    )
    directions: Literal["forward_back", "random"] = Field(
        "forward_back",
        description="θ ∈ {0, π} (ProMP, oyster forward_backward) or θ ~ U[0, 2π) (oyster random)",
    )


@register_family
class AntDir(_PearlFamily):
    name = "ant-dir"
    description = "PEARL Ant-v5 direction θ: reward v·(cosθ, sinθ) - 0.5‖a‖² - contact + 1"
    Options = AntDirOptions
    env_id = "Ant-v5"

    def __init__(self, options: FamilyOptions) -> None:
        o = options
        assert isinstance(o, AntDirOptions)
        if o.directions == "random":
            super().__init__(options)
            return
        for key in ("n_train", "n_test"):
            if getattr(o, key) != 2:
                raise ConfigError(f"env.{key}: directions forward_back has exactly 2 tasks (0, π)")
        TaskDistribution.__init__(self, options)
        # oyster ant_dir.py sample_tasks(forward_backward): [0, π], train and test alike.
        self._train = [Task.create(self.name, i, angle=t) for i, t in enumerate((0.0, math.pi))]
        self._test = list(self._train)

    def _draw(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        return [{"angle": t} for t in rng.uniform(0.0, 2.0 * math.pi, size=n)]

    def task_features(self, task: Task) -> np.ndarray:
        return _direction(task["angle"])

    def task_feature_bounds(self) -> tuple[list[float], list[float]]:
        return [-1.0, -1.0], [1.0, 1.0]

    @staticmethod
    def reward(p: Mapping[str, Any], a: np.ndarray, info: dict[str, Any]) -> dict[str, float]:
        # oyster ant_dir.py: torso Δxy/dt along θ - 0.5‖a‖² - 0.5e-3·‖clip(cfrc_ext, -1, 1)‖² + 1.
        # Ant-v5's defaults are the same weights (ctrl 0.5, contact 5e-4, clip ±1), so the
        # contact term is its info["reward_contact"]. Survive is a constant 1 as in oyster: v5's
        # info["reward_survive"] is 0 on the step that ends the episode.
        return {
            "forward": _along(p["angle"], info),
            "ctrl": _ctrl(0.5, a),
            "contact": float(info["reward_contact"]),
            "survive": 1.0,
        }


class AntGoalOptions(SampledOptions):
    n_train: int = Field(
        150, ge=1, le=MAX_TASKS, description="train goals (oyster config; paper: 100)"
    )
    radius: float = Field(3.0, gt=0, description="goals uniform in a disk of this radius")


@register_family
class AntGoal(_PearlFamily):
    name = "ant-goal"
    description = "PEARL Ant-v5 goal in a disk of radius 3: reward -‖xy - g‖₁ - 0.1‖a‖² - contact"
    Options = AntGoalOptions
    env_id = "Ant-v5"
    # oyster ant_goal.py: done is always False, and its observation holds the full qpos (the
    # torso's xy included: without it the goal cannot be located); v5 drops xy by default.
    env_kwargs: ClassVar[dict[str, Any]] = {
        "terminate_when_unhealthy": False,
        "exclude_current_positions_from_observation": False,
    }

    def _draw(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        # r = R·√U makes the goals uniform over the disk's area (oyster ant_goal.py).
        angle = rng.uniform(0.0, 2.0 * math.pi, size=n)
        r = self.options.radius * np.sqrt(rng.uniform(size=n))
        goals = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        return [{"goal": g} for g in goals]

    def task_features(self, task: Task) -> np.ndarray:
        return task.array("goal")

    def task_feature_bounds(self) -> tuple[list[float], list[float]]:
        r = float(self.options.radius)
        return [-r, -r], [r, r]

    @staticmethod
    def reward(p: Mapping[str, Any], a: np.ndarray, info: dict[str, Any]) -> dict[str, float]:
        # oyster ant_goal.py: -‖torso xy - g‖₁ - 0.1‖a‖² - contact cost, survive 0. v5's
        # info x/y_position is qpos[:2], the torso's free-joint position after the step.
        xy = np.array([info["x_position"], info["y_position"]])
        return {
            "goal": -float(np.abs(xy - p["goal"]).sum()),
            "ctrl": _ctrl(0.1, a),
            "contact": float(info["reward_contact"]),
        }


class HumanoidDirOptions(SampledOptions):
    # oyster humanoid_dir.py: 0.25·Δxy/model.opt.timestep, i.e. per physics step, not per
    # control step; with frame_skip 5 that is 1.25·Δxy/dt, Humanoid-v5's own forward weight.
    velocity_weight: float = Field(
        1.25, description="weight on Δxy/dt along θ; 1.25 = oyster's 0.25·Δxy/timestep"
    )


@register_family
class HumanoidDir(_PearlFamily):
    name = "humanoid-dir"
    description = "PEARL Humanoid-v5 direction θ ~ U[0, 2π): velocity along θ - ctrl - contact + 5"
    Options = HumanoidDirOptions
    env_id = "Humanoid-v5"

    def _draw(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        return [{"angle": t} for t in rng.uniform(0.0, 2.0 * math.pi, size=n)]

    def task_features(self, task: Task) -> np.ndarray:
        return _direction(task["angle"])

    def task_feature_bounds(self) -> tuple[list[float], list[float]]:
        return [-1.0, -1.0], [1.0, 1.0]

    def make_env(self, task: Task | None = None) -> gym.Env:
        env = gym.make(self.env_id, max_episode_steps=self.options.horizon)
        w = float(self.options.velocity_weight)

        def reward(p: Mapping[str, Any], a: np.ndarray, info: dict[str, Any]) -> dict[str, float]:
            # oyster humanoid_dir.py: mass-centre velocity along θ - 0.1‖ctrl‖²
            # - min(5e-7·‖cfrc_ext‖², 10) + 5; v5's reward_ctrl / reward_contact are exactly
            # these costs (negated), and its healthy z range [1, 2] is oyster's done test.
            return {
                "forward": w * _along(p["angle"], info),
                "ctrl": float(info["reward_ctrl"]),
                "contact": float(info["reward_contact"]),
                "survive": 5.0,
            }

        return _observing(self, PearlRewardWrapper(env, reward, task or self._train[0]))


class ParamsOptions(SampledOptions):
    n_train: int = Field(40, ge=1, le=MAX_TASKS, description="train physics")
    n_test: int = Field(10, ge=1, le=MAX_TASKS, description="held-out test physics")
    log_scale_limit: float = Field(
        3.0, ge=0, description="scales are base^U[-limit, limit] (rand_param_envs: 3)"
    )


def _rand_params(limit: float) -> list[ParameterSpec]:
    """rand_param_envs base.py: 1.5^U for mass, inertia and friction, 1.3^U for damping."""

    def spec(path: str, base: float) -> ParameterSpec:
        dist = ExpUniform(type="exp_uniform", low=-limit, high=limit, base=base)
        return ParameterSpec(path=path, distribution=dist)

    return [
        spec("model.body_mass", 1.5),
        spec("model.body_inertia", 1.5),
        spec("model.dof_damping", 1.3),
        spec("model.geom_friction", 1.5),
    ]


class _ParamsFamily(TaskDistribution):
    """A v5 env with its own reward and physics scaled per task; delegates to the `gym` family.

    The arrays are written in place at `set_task`, always from the defaults saved at
    construction, so returning to a task restores its dynamics exactly. Like mujoco-py in
    rand_param_envs, derived constants (`mj_setConst`: body_invweight0, ...) are not redone.
    """

    Options = ParamsOptions
    env_id: ClassVar[str]
    options: Any

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        # v5 Walker2d/Hopper defaults already are oyster's reward: Δx/dt + 1 - 1e-3‖a‖²,
        # healthy checks as rand_param_envs (Walker2d-v5 differs from it: both feet have
        # friction 0.9, the v4 left foot had 1.9).
        self._specs = _rand_params(o.log_scale_limit)
        self._gym = GymFamily(
            GymOptions(
                id=self.env_id,
                max_episode_steps=o.horizon,
                parameters=self._specs,
                n_train=o.n_train,
                n_test=o.n_test,
                split_seed=o.split_seed,
            )
        )
        self._train = [Task(self.name, t.index, t.params) for t in self._gym.train_tasks()]
        self._test = [Task(self.name, t.index, t.params) for t in self._gym.test_tasks()]

    @property
    def horizon(self) -> int | None:
        return int(self.options.horizon)

    @property
    def observes_task(self) -> bool:
        return bool(self.options.observe_task)

    def task_features(self, task: Task) -> np.ndarray:
        """The exponents u that define the task (factor = base^u, u ~ U[-limit, limit]), every
        entry of body_mass, body_inertia, dof_damping and geom_friction in that order, flat."""
        return np.concatenate(
            [
                np.log(task.array(str(s.key))).reshape(-1) / math.log(s.distribution.base)
                for s in self._specs
                if isinstance(s.distribution, ExpUniform)
            ]
        )

    def task_feature_bounds(self) -> tuple[list[float], list[float]]:
        n = self.task_features(self._train[0]).size
        limit = float(self.options.log_scale_limit)
        return [-limit] * n, [limit] * n

    def make_env(self, task: Task | None = None) -> gym.Env:
        return _observing(self, self._gym.make_env(task or self._train[0]))

    def set_task(self, env: gym.Env, task: Task) -> None:
        """Write `task`'s physics now (the wrapper writes immediately, mid-episode too)."""
        self._gym.set_task(env, task)


@register_family
class WalkerParams(_ParamsFamily):
    name = "walker-params"
    description = "PEARL Walker2d-v5 random physics: mass/inertia/friction ×1.5^U, damping ×1.3^U"
    env_id = "Walker2d-v5"


@register_family
class HopperParams(_ParamsFamily):
    name = "hopper-params"
    description = "PEARL Hopper-v5 random physics: mass/inertia/friction ×1.5^U, damping ×1.3^U"
    env_id = "Hopper-v5"
