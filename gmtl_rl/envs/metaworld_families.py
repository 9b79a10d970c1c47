"""Meta-World 3.1.1 benchmarks (Yu et al. 2019; Meta-World+ 2025) as task families.

Tasks are the benchmark's goal variations (50 per class). The benchmark is built through its
class (`metaworld.MT10(seed=...)`), never the `Meta-World/ML1-train` gym id (in 3.1.1 that id
returns the test split), once per (benchmark, task name, seed) per process. `metaworld` is
imported lazily: it costs ~1 s (scipy), which `import gmtl_rl.envs` should not pay.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from gmtl_rl.envs.registry import register_family
from gmtl_rl.envs.task import MAX_SEED, FamilyOptions, Task, TaskDistribution, find_layer
from gmtl_rl.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from metaworld import Benchmark
    from metaworld import Task as MWTask
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

MAX_PATH_LENGTH = 500  # SawyerXYZEnv.max_path_length: step() raises once it is reached
GOALS_PER_CLASS = 50  # metaworld._N_GOALS

# (benchmark, task name or None, seed) -> benchmark; construction takes 0.6-20 s.
_BENCHMARKS: dict[tuple[str, str | None, int], Benchmark] = {}


def v3_task_names() -> list[str]:
    """The 50 Meta-World v3 class names (`reach-v3`, ...)."""
    return list(importlib.import_module("metaworld.env_dict").ALL_V3_ENVIRONMENTS)


def benchmark(kind: str, task_name: str | None, seed: int) -> Benchmark:
    """The Meta-World benchmark `kind` ("MT10", "ML1", ...), built once per process."""
    key = (kind, task_name, seed)
    if key not in _BENCHMARKS:
        cls = getattr(importlib.import_module("metaworld"), kind)
        _BENCHMARKS[key] = cls(task_name, seed=seed) if task_name else cls(seed=seed)
    return _BENCHMARKS[key]


class MetaWorldOptions(FamilyOptions):
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED - 1,
        description="benchmark seed: fixes the goal variations of every class",
    )
    reward_version: Literal["v1", "v2"] = Field(
        "v2", description="Meta-World reward function (env kwarg); record it with every result"
    )
    max_tasks_per_class: int | None = Field(
        None, ge=1, le=GOALS_PER_CLASS, description="keep the first k goal variations per class"
    )
    horizon: int = Field(
        MAX_PATH_LENGTH, ge=1, le=MAX_PATH_LENGTH, description="episode length (Meta-World: 500)"
    )


class MTOptions(MetaWorldOptions):
    one_hot: bool = Field(False, description="append a one-hot of the task class to observations")


class MT1Options(MTOptions):
    task_name: str = Field("reach-v3", description="the Meta-World v3 class, e.g. reach-v3")


class MLOptions(MetaWorldOptions):
    meta_batch_size: int = Field(
        20, ge=1, description="tasks per meta-batch: a multiple of the train classes"
    )


class ML1Options(MLOptions):
    task_name: str = Field("reach-v3", description="the Meta-World v3 class, e.g. reach-v3")
    meta_batch_size: int = Field(10, ge=1, description="tasks per meta-batch: divides the goals")


class ML45Options(MLOptions):
    meta_batch_size: int = Field(45, ge=1, description="tasks per meta-batch: a multiple of 45")


class InnerEnvPool:
    """Idle Meta-World envs by class, shared by every `MetaWorldTaskEnv` of one family in one
    process (the envs of a sampler, then its evaluation's).

    A Meta-World env object is one class for life and building one compiles its MuJoCo model
    (~0.13 s). When env i switches class it returns its inner env here and takes an idle one of
    the new class, so a process builds as many envs of a class as ever run it at the same
    time, instead of one per (env, class) pair: 10 envs on MT10's 10 classes built ~50 in
    their first 1500 steps. Which tasks run, and in which env, is unchanged.
    """

    def __init__(self, family: MetaWorldFamily) -> None:
        self.family = family
        self._idle: dict[str, list[SawyerXYZEnv]] = {}
        # inner env -> the task set on it; weak, so an env dropped without close() leaves no
        # entry that a later env at the same address could be mistaken for.
        self._applied: weakref.WeakKeyDictionary[SawyerXYZEnv, Task] = weakref.WeakKeyDictionary()
        self.built = 0

    def acquire(self, task: Task) -> SawyerXYZEnv:
        """An env of `task`'s class set to `task` (set_task must precede reset)."""
        name = task["env_name"]
        idle = self._idle.get(name)
        if idle:
            env = idle.pop()
        else:
            cls = self.family.env_classes[name]
            env = cls(reward_function_version=self.family.options.reward_version)
            self.built += 1
        if self._applied.get(env) != task:
            env.set_task(self.family.mw_task(task))
            self._applied[env] = task
            if self.family.randomizes_init:
                # Continual World's random_init_all (continualworld/utils/wrappers.py,
                # RandomizationWrapper): set_task freezes the task's object and goal
                # positions; unfrozen, every reset draws new ones, from the env's own seeded
                # generator (seeded_rand_vec) rather than the global numpy one.
                env._freeze_rand_vec = False
                env.seeded_rand_vec = True
        return env

    def release(self, env: SawyerXYZEnv, task: Task) -> None:
        self._idle.setdefault(task["env_name"], []).append(env)

    def __getstate__(self) -> dict[str, Any]:
        # A family pickled to a worker process (subprocess / Ray backends) leaves its envs here.
        return {"family": self.family, "_idle": {}, "built": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._applied = weakref.WeakKeyDictionary()


class MetaWorldTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """A Meta-World env that can be set to any task of its family, whatever its class.

    Its inner env (a Meta-World env of the task's class) comes from the family's
    `InnerEnvPool` and goes back there when a reset switches class or the env closes.
    Observations are cast from float64 to float32 (our replay stores float32).
    Example: `env = make("metaworld/MT10").make_env(task); env.reset(seed=0)`.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(self, family: MetaWorldFamily, task: Task) -> None:
        self.family = family
        self.task = task
        self._pending: Task | None = task
        self._pool = family.inner_envs
        self._inner: SawyerXYZEnv | None = None
        self._inner_task = task  # the task the inner env was acquired for
        self._t = 0
        self._horizon = min(family.options.horizon, MAX_PATH_LENGTH)
        n = len(family.class_names) if getattr(family.options, "one_hot", False) else 0
        self._one_hot = np.eye(n, dtype=np.float32)
        # The inner env's own observation_space is stale after set_task switches observability
        # (it is cached at construction, goal bounds [0, 0]), so build ours from the task's.
        self._inner = self._pool.acquire(task)
        space = self._inner.sawyer_observation_space
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        if not family.meta:
            # Goal bounds differ per class (each class's goal_space); one env serves them all.
            low[-3:], high[-3:] = -np.inf, np.inf
        low = np.concatenate([low, np.zeros(n, np.float32)])
        high = np.concatenate([high, np.ones(n, np.float32)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)

    @property
    def simulation(self) -> SawyerXYZEnv | None:
        """The Meta-World env of the running task's class (what renders); None before the
        first reset. A reset that switches class swaps it: look it up each time."""
        return self._inner

    def set_task(self, task: Task) -> None:
        """Switch to `task` at the next reset (the episode in flight keeps its task)."""
        self.family.mw_task(task)  # fail now, not at reset, on a task of another family
        self._pending = task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self._pending is not None:
            self.task, self._pending = self._pending, None
        inner = self._inner
        switched = inner is None or self.task != self._inner_task
        if switched:
            if inner is not None:
                self._pool.release(inner, self._inner_task)
            inner = self._inner = self._pool.acquire(self.task)
            self._inner_task = self.task
        assert inner is not None
        if seed is not None:
            inner.seed(seed)  # SawyerXYZEnv.reset ignores its seed argument
        elif switched and self.family.randomizes_init:
            # A pooled env's generator is where its last user left it: seed it from ours, so
            # the random initial states stay a function of the run's seed.
            inner.seed(int(self.np_random.integers(2**31 - 1)))
        obs, info = inner.reset()
        self._t = 0
        return self._obs(obs), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._inner is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        obs, reward, terminated, truncated, info = self._inner.step(action)
        self._t += 1
        # The sim-instability branch of SawyerXYZEnv.step reports success as bool False.
        info["success"] = float(info["success"])
        truncated = bool(truncated) or self._t >= self._horizon
        return self._obs(obs), float(reward), bool(terminated), truncated, info

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        obs = obs.astype(np.float32)
        if len(self._one_hot):
            obs = np.concatenate([obs, self._one_hot[self.task["class_index"]]])
        return obs

    def close(self) -> None:
        """Return the inner env to the family's pool (the next env of the family reuses it)."""
        if self._inner is not None:
            self._pool.release(self._inner, self._inner_task)
        self._inner = None


def _listing(split: str, horizon: int = MAX_PATH_LENGTH) -> dict[str, str]:
    """`gmtl envs` row for default options: every v3 class has these spaces (checked in tests)."""
    return {
        "split": split,
        "horizon": str(horizon),
        "observation": "Box(39,)",
        "action": "Box(4,)",
    }


class MetaWorldFamily(TaskDistribution):
    """Tasks = goal variations of a Meta-World benchmark's classes.

    `class_names` lists the train classes, then the test classes not among them; a task's
    `class_index` indexes it (MT agents use it as the class id for per-class heads).
    """

    kind: ClassVar[str]  # the metaworld benchmark class
    meta: ClassVar[bool]  # ML: goals hidden, test classes or goals held out
    options: Any

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        o = self.options
        task_name = getattr(o, "task_name", None)
        if task_name is not None and task_name not in v3_task_names():
            raise unknown_name("Meta-World v3 task", task_name, v3_task_names(), "env.task_name")
        bench = benchmark(self.kind, task_name, o.seed)
        self.env_classes: dict[str, type[SawyerXYZEnv]] = dict(bench.train_classes)
        if self.meta:
            self.env_classes.update(bench.test_classes)
        self.class_names: list[str] = list(self.env_classes)
        self.inner_envs = InnerEnvPool(self)
        self.num_train_classes = len(bench.train_classes)
        self._mw: dict[tuple[str, int, int], MWTask] = {}
        self._train = self._enumerate(bench.train_tasks, o.seed)
        if self.meta:
            # metaworld.ML1 draws its test goals with seed + 1; ML10/ML45 use held-out classes.
            test_seed = o.seed + 1 if task_name is not None else o.seed
            self._test = self._enumerate(bench.test_tasks, test_seed)
            self._check_meta_batch_size(len(bench.train_classes))
        else:
            self._test = list(self._train)  # MT evaluation is on the training goals

    def _tasks_per_class(self) -> int:
        return int(self.options.max_tasks_per_class or GOALS_PER_CLASS)

    def _enumerate(self, mw_tasks: list[MWTask], goal_seed: int) -> list[Task]:
        # `goal_seed` is part of the task: ML1's train and test goals share class and variation
        # index (deviation from a (env_name, variation) key), and seeds must not compare equal.
        cap = self._tasks_per_class()
        seen: dict[str, int] = {}
        tasks: list[Task] = []
        for mw in mw_tasks:
            k = seen[mw.env_name] = seen.get(mw.env_name, -1) + 1
            if k >= cap:
                continue
            self._mw[(mw.env_name, goal_seed, k)] = mw
            index = self.class_names.index(mw.env_name)
            tasks.append(
                Task.create(
                    self.name,
                    len(tasks),
                    env_name=mw.env_name,
                    variation=k,
                    class_index=index,
                    goal_seed=goal_seed,
                )
            )
        return tasks

    def _check_meta_batch_size(self, n_classes: int) -> None:
        # metaworld._make_ml_envs_inner asserts both: meta-batches cover every train class
        # equally, and each class's goals split into meta_batch_size / n_classes equal groups.
        mbs = self.options.meta_batch_size
        goals = self.options.max_tasks_per_class or GOALS_PER_CLASS
        if mbs % n_classes == 0 and goals % (mbs // n_classes) == 0:
            return
        valid = [n_classes * d for d in range(1, goals + 1) if goals % d == 0]
        raise ConfigError(
            f"env.meta_batch_size: {mbs} cannot spread over {n_classes} train class(es) with "
            f"{goals} goals each: it must be {n_classes} × a divisor of {goals} so every class "
            f"gets the same number of goals and each class's goals split evenly; "
            f"valid: {', '.join(map(str, valid))}"
        )

    def mw_task(self, task: Task) -> MWTask:
        """The metaworld.Task (with its pickled goal blob) behind one of our tasks."""
        key = (task["env_name"], task["goal_seed"], task["variation"])
        if task.family != self.name or key not in self._mw:
            raise ValueError(f"{self.name}: task {task} is not a task of this distribution")
        return self._mw[key]

    @property
    def horizon(self) -> int | None:
        return int(self.options.horizon)

    @property
    def randomizes_init(self) -> bool:
        """Whether every reset draws new object and goal positions (Continual World's
        random_init_all) instead of the task's fixed ones."""
        return False

    @property
    def num_task_classes(self) -> int:
        return self.num_train_classes

    def task_class_names(self) -> list[str]:
        """The train classes' Meta-World names (`reach-v3`, ...), in class-id order."""
        return self.class_names[: self.num_train_classes]

    def task_classes(self, tasks: Sequence[Task]) -> np.ndarray:
        """The task's Meta-World class (train classes come first); -1 for a held-out class."""
        index = np.asarray([task["class_index"] for task in tasks], np.int64)
        return np.where(index < self.num_train_classes, index, -1)

    def make_env(self, task: Task | None = None) -> gym.Env:
        return MetaWorldTaskEnv(self, task or self._train[0])

    def set_task(self, env: gym.Env, task: Task) -> None:
        find_layer(env, MetaWorldTaskEnv, self.name).set_task(task)


@register_family
class MT1(MetaWorldFamily):
    name = "metaworld/MT1"
    description = "Meta-World MT1: 50 observable goals of one v3 class (train = test)"
    Options = MT1Options
    kind, meta = "MT1", False
    listing = _listing("50/50")


@register_family
class MT10(MetaWorldFamily):
    name = "metaworld/MT10"
    description = "Meta-World MT10: 10 classes × 50 observable goals (train = test)"
    Options = MTOptions
    kind, meta = "MT10", False
    listing = _listing("500/500")


@register_family
class MT50(MetaWorldFamily):
    name = "metaworld/MT50"
    description = "Meta-World MT50: 50 classes × 50 observable goals (train = test); ~19 s build"
    Options = MTOptions
    kind, meta = "MT50", False
    listing = _listing("2500/2500")


@register_family
class ML1(MetaWorldFamily):
    name = "metaworld/ML1"
    description = "Meta-World ML1: one v3 class, 50 hidden train goals, 50 test goals (seed + 1)"
    Options = ML1Options
    kind, meta = "ML1", True
    listing = _listing("50/50")


@register_family
class ML10(MetaWorldFamily):
    name = "metaworld/ML10"
    description = "Meta-World ML10: 10 train classes, 5 held-out test classes, goals hidden"
    Options = MLOptions
    kind, meta = "ML10", True
    listing = _listing("500/250")


@register_family
class ML45(MetaWorldFamily):
    name = "metaworld/ML45"
    description = "Meta-World ML45: 45 train, 5 held-out test classes, goals hidden; ~19 s build"
    Options = ML45Options
    kind, meta = "ML45", True
    listing = _listing("2250/250")


# Continual World's sequence (continualworld/tasks.py, TASK_SEQS["CW10"]), as v3 classes;
# CW20 is this list twice (a `sequence:` repeats it; the family names each class once).
CW10 = (
    "hammer-v3",
    "push-wall-v3",
    "faucet-close-v3",
    "push-back-v3",
    "stick-pull-v3",
    "handle-press-side-v3",
    "push-v3",
    "shelf-place-v3",
    "window-close-v3",
    "peg-unplug-side-v3",
)
CW_HORIZON = 200  # continualworld/envs.py: META_WORLD_TIME_HORIZON


class CWOptions(MetaWorldOptions):
    task_names: list[str] = Field(
        default_factory=lambda: list(CW10),
        min_length=1,
        description="the Meta-World v3 classes, one task class each (default: CW10's, in the "
        "paper's order)",
    )
    horizon: int = Field(
        CW_HORIZON, ge=1, le=MAX_PATH_LENGTH, description="episode length (Continual World: 200)"
    )
    randomization: Literal["random_init_all", "fixed_goals"] = Field(
        "random_init_all",
        description="random_init_all: one task per class, new object and goal positions at "
        "every reset (Continual World's default); fixed_goals: the class's goal variations "
        "as tasks (as MT families)",
    )


@register_family
class ContinualWorld(MetaWorldFamily):
    """Continual World (Wołczyk et al. 2021) on Meta-World v3: one task class per name of
    `task_names`; a continual run's `sequence:` orders them (and repeats them: CW20).

    Follows continualworld/envs.py (`get_single_env`, `get_cl_env`) and utils/wrappers.py:
    200-step episodes (TimeLimit, truncation), goals observed (MT50's tasks), and under the
    default `random_init_all` the task's object and goal positions re-drawn at every reset
    from the class's random reset space. Deviations: Meta-World v3 classes of the same names
    (CW: v1, 12-dim observations; here v3's 39 dims, reward `reward_version`); the task set
    on each env is the first of `metaworld.MT1(name, seed)`'s goal variations (CW: the first
    of MT50's under np.random.seed(1)), which under random_init_all fixes only what is not
    randomised; positions are drawn from each env's seeded generator (CW: the global numpy
    one); the sequence position reaches the agent as its task class, not as a one-hot
    appended to the observation (CW's OneHotAdder, which its networks hide from the body and
    use to pick the head). Cutting the running episode at a task change (CW's
    ContinualLearningEnv) is the continual loop's.
    """

    name = "metaworld/CW"
    description = (
        "Continual World: CW10's v3 classes (any list via task_names), random init per "
        "episode, 200-step episodes"
    )
    Options = CWOptions
    kind, meta = "MT1", False
    listing = _listing("10/10", CW_HORIZON)

    def __init__(self, options: FamilyOptions) -> None:
        TaskDistribution.__init__(self, options)
        o = self.options
        valid = v3_task_names()
        for i, name in enumerate(o.task_names):
            if name not in valid:
                raise unknown_name("Meta-World v3 task", name, valid, f"env.task_names[{i}]")
            if name in o.task_names[:i]:
                raise ConfigError(
                    f"env.task_names[{i}]: {name} is listed twice; name each class once and "
                    "repeat it in sequence.tasks (CW20 is CW10 twice)"
                )
        if o.randomization == "random_init_all" and o.max_tasks_per_class is not None:
            raise ConfigError(
                "env.max_tasks_per_class: only with env.randomization=fixed_goals "
                "(random_init_all has one task per class, re-drawn at every reset)"
            )
        benches = {name: benchmark("MT1", name, o.seed) for name in o.task_names}
        self.env_classes = {name: benches[name].train_classes[name] for name in o.task_names}
        self.class_names = list(o.task_names)
        self.inner_envs = InnerEnvPool(self)
        self.num_train_classes = len(self.class_names)
        self._mw = {}
        mw_tasks = [task for name in o.task_names for task in benches[name].train_tasks]
        self._train = self._enumerate(mw_tasks, o.seed)
        self._test = list(self._train)  # CW evaluates on the training classes

    def _tasks_per_class(self) -> int:
        if self.options.randomization == "random_init_all":
            return 1
        return super()._tasks_per_class()

    @property
    def randomizes_init(self) -> bool:
        return bool(self.options.randomization == "random_init_all")
