"""Tasks and task distributions: the one idea the library runs on (a task is data)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from gmtl_rl.envs.batched import BatchedTaskEnv

# A task parameter: a number, a string, or a (nested) tuple of numbers such as a goal position.
ParamValue = Any


def _freeze(value: Any) -> ParamValue:
    """Turn lists and arrays into tuples so a Task stays hashable and JSON round-trips exactly."""
    if isinstance(value, np.ndarray):
        return _freeze(value.tolist())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    raise TypeError(f"task parameter of type {type(value).__name__} is not JSON-serialisable")


def _thaw(value: ParamValue) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Task:
    """One task of a family: equal fields mean the same task.

    `index` is the task's position in its split; `params` are the values that define it
    (goal position, target velocity, physics scales, ...), stored as sorted (name, value) pairs.
    """

    family: str
    index: int
    params: tuple[tuple[str, ParamValue], ...] = ()

    @classmethod
    def create(cls, family: str, index: int, **params: Any) -> Task:
        return cls(family, int(index), tuple(sorted((k, _freeze(v)) for k, v in params.items())))

    def __getitem__(self, name: str) -> ParamValue:
        for key, value in self.params:
            if key == name:
                return value
        names = ", ".join(k for k, _ in self.params) or "none"
        raise KeyError(f"task {self.family}[{self.index}] has no parameter {name!r} (has: {names})")

    def array(self, name: str) -> np.ndarray:
        """A parameter as a float64 numpy array (goal positions, scale vectors)."""
        return np.asarray(_thaw(self[name]), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "index": self.index,
            "params": {k: _thaw(v) for k, v in self.params},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        return cls.create(str(data["family"]), int(data["index"]), **dict(data["params"]))


def tasks_to_json(splits: Mapping[str, Sequence[Task]]) -> str:
    return json.dumps({name: [t.to_json() for t in tasks] for name, tasks in splits.items()})


def tasks_from_json(text: str) -> dict[str, list[Task]]:
    data = json.loads(text)
    return {name: [Task.from_json(t) for t in tasks] for name, tasks in data.items()}


# Bounds shared by every family's options (and the run seed in gmtl_rl.config).
# MAX_TASKS: a split is built in the config process and every task is saved in tasks.json
# (100k point-robot goals: ~2 s and ~20 MB); far more (n_train=1e9) exhausts memory first.
MAX_TASKS = 100_000
# MAX_SEED: numpy's legacy seeding (np.random.seed, which Meta-World and SB3 use), and the
# adaptation summary's int64 (seed, task) strata, accept 0..2**32-1; SeedSequence any n >= 0.
MAX_SEED = 2**32 - 1


class FamilyOptions(BaseModel):
    """Options every family accepts; families subclass this with their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskDistribution(ABC):
    """A family of tasks with a fixed, seeded train/test split.

    Subclasses set `name`, `description` and `Options`, fill `self._train` / `self._test` in
    `__init__` (or override `train_tasks` / `test_tasks`), and implement `make_env` and
    `set_task`. `sample` draws from the train split with the caller's
    generator (never the global numpy RNG).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[FamilyOptions]] = FamilyOptions
    # What `gmtl envs` shows without building the family (for families slow to build): keys
    # split ("train/test"), horizon, observation, action; a test checks it against a build.
    listing: ClassVar[dict[str, str] | None] = None

    def __init__(self, options: FamilyOptions) -> None:
        self.options = options
        self._train: list[Task] = []
        self._test: list[Task] = []

    def train_tasks(self) -> list[Task]:
        """The fixed train split (families set `_train` in `__init__`)."""
        return list(self._train)

    def test_tasks(self) -> list[Task]:
        """The fixed test split; may equal the train split where the benchmark says so."""
        return list(self._test)

    @abstractmethod
    def make_env(self, task: Task | None = None) -> gym.Env:
        """A fresh Gymnasium env, set to `task` (or to the first train task)."""

    @abstractmethod
    def set_task(self, env: gym.Env, task: Task) -> None:
        """Switch `env` to `task`; takes effect at the next reset."""

    def make_batched_env(
        self,
        num_envs: int,
        task: Task | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    ) -> BatchedTaskEnv | None:
        """`num_envs` envs of this family as one array env, all on `task` (or the first train
        task) until `set_pending` switches them; None where the family has none (the sampler
        then steps single envs). See `gmtl_rl.envs.batched`."""
        del num_envs, task, autoreset_mode
        return None

    @property
    def horizon(self) -> int | None:
        """Episode length limit, where the family fixes one."""
        return None

    # -- abilities a training loop may use (declared here, never probed) ---------------------
    @property
    def goal_switch_episode(self) -> int | None:
        """Training moves from the first train task to the first test task after this many
        episodes (Four Rooms, Bacon et al. 2017, Sec. 5.1); None: the family has no switch."""
        return None

    @property
    def defines_sparse_reward(self) -> bool:
        """Whether `sparse_reward` exists (sparse-point-robot: PEARL's context reward)."""
        return False

    def sparse_reward(self, dense: np.ndarray) -> np.ndarray:
        """The family's sparse reward of a dense one, for families that meta-train on dense
        reward and are meta-tested on sparse reward."""
        raise NotImplementedError(f"task family {self.name!r} defines no sparse reward")

    def tasks(self, split: str) -> list[Task]:
        if split == "train":
            return self.train_tasks()
        if split == "test":
            return self.test_tasks()
        raise ValueError(f"unknown split {split!r}: valid splits are 'train' and 'test'")

    # -- task classes: the identity a multi-task agent conditions on ------------------------
    @property
    def observes_task(self) -> bool:
        """True when observations show what tells tasks apart (a goal in a GoalEnv): then all
        tasks share one class, and agents reach held-out tasks through the observation."""
        return False

    @property
    def num_task_classes(self) -> int:
        """How many task classes the train split has (class ids are 0..n-1)."""
        return 1 if self.observes_task else len(self._train)

    def task_classes(self, tasks: Sequence[Task]) -> np.ndarray:
        """Class id of each task, -1 for a task whose class was never trained on.

        By default every train task is its own class (its position in the train split), so a
        held-out task has none; where the observation shows the task (`observes_task`), all
        tasks are class 0. Families whose tasks group into named classes override this:
        Meta-World's class is the environment (`reach-v3`), shared by its 50 goal variations,
        so MT-SAC's one-hot, heads and temperatures are per class, as in the benchmark.
        """
        if self.observes_task:
            return np.zeros(len(tasks), np.int64)
        position = {task: i for i, task in enumerate(self._train)}
        return np.asarray([position.get(task, -1) for task in tasks], np.int64)

    def task_class_names(self) -> list[str]:
        """A name per task class, in class-id order: what a task sequence (`sequence.tasks`)
        may name. By default the ids themselves ("0", "1", ...); Meta-World families name
        their classes ("reach-v3")."""
        return [str(i) for i in range(self.num_task_classes)]

    def sample(self, n: int, rng: np.random.Generator) -> list[Task]:
        """`n` train tasks drawn uniformly with replacement."""
        tasks = self.train_tasks()
        return [tasks[i] for i in rng.integers(len(tasks), size=n)]


L = TypeVar("L")


def find_layer(env: gym.Env, cls: type[L], family: str) -> L:
    """The first layer of `env`'s wrapper chain that is a `cls` (TypeError if none is)."""
    inner: Any = env
    while not isinstance(inner, cls):
        if not isinstance(inner, gym.Wrapper):
            raise TypeError(f"{family}: {env} has no {cls.__name__}; build it with make_env")
        inner = inner.env
    return inner


GOAL_KEYS = frozenset({"observation", "achieved_goal", "desired_goal"})


def is_goal_space(space: gym.Space[Any]) -> bool:
    """A Dict observation space of the GoalEnv convention."""
    return isinstance(space, gym.spaces.Dict) and set(space.spaces) >= GOAL_KEYS


def is_goal_env(env: gym.Env) -> bool:
    """True for envs following the Gymnasium-Robotics GoalEnv convention."""
    return is_goal_space(env.observation_space) and hasattr(env.unwrapped, "compute_reward")


def named_classes(distribution: TaskDistribution) -> tuple[str, ...] | None:
    """The family's task class names, in id order, or None where they are only its ids
    ("0", "1", ...: `TaskDistribution.task_class_names`' default)."""
    names = tuple(distribution.task_class_names())
    return None if names == tuple(str(i) for i in range(len(names))) else names
