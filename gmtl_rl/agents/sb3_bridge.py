"""What connects a stable-baselines3 model to our runs: the per-class task env it trains on,
the metric tap on its logger, and its checkpoint state as plain tensors and arrays (never
SB3's pickled zip): parameters, torch variables, counters, RNGs and the replay rows."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from gmtl_rl.agents.sb3 import TaskClassOneHot
from gmtl_rl.envs.task import Task, TaskDistribution
from gmtl_rl.errors import CheckpointError

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.buffers import ReplayBuffer

# Plain counters SB3 keeps on the model (those an algorithm lacks are skipped).
MODEL_COUNTERS = (
    "num_timesteps",
    "_n_updates",
    "_episode_num",
    "_n_calls",  # DQN: target-network update period
    "exploration_rate",  # DQN: epsilon, recomputed only after the next step
    "_current_progress_remaining",
)
# Replay fields saved row by row ([buffer_size, n_envs, ...]; Dict observations per key).
REPLAY_ROWS = (
    "observations",
    "next_observations",
    "actions",
    "rewards",
    "dones",
    "timeouts",
    "ep_start",  # HerReplayBuffer episode bookkeeping
    "ep_length",
)


@dataclass(frozen=True)
class EpisodeStats:
    episode_return: float
    length: int
    success: bool  # Meta-World protocol: success == 1 at any step


class ClassTaskEnv(gym.Wrapper[Any, Any, Any, Any]):
    """One task class's training env: a random train task of the class at every reset, the
    class one-hot appended to observations, and each finished episode reported."""

    def __init__(
        self,
        distribution: TaskDistribution,
        tasks: list[Task],
        task_class: int,
        encoder: TaskClassOneHot,
        rng: np.random.Generator,
        finished: list[EpisodeStats],
    ) -> None:
        super().__init__(distribution.make_env(tasks[0]))
        self.distribution = distribution
        self.tasks = tasks
        self.task_class = task_class
        self.encoder = encoder
        self.rng = rng
        self.finished = finished
        self.observation_space = encoder.space
        self._return, self._length, self._success = 0.0, 0, False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        task = self.tasks[int(self.rng.integers(len(self.tasks)))]
        self.distribution.set_task(self.env, task)  # applied by the reset below
        obs, info = self.env.reset(seed=seed, options=options)
        self._return, self._length, self._success = 0.0, 0, False
        return self.encoder.one(obs, self.task_class), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        self._success |= float(info.get("success", 0.0)) == 1.0
        if terminated or truncated:
            self.finished.append(EpisodeStats(self._return, self._length, self._success))
        return self.encoder.one(obs, self.task_class), reward, terminated, truncated, info


class ReplaySnapshot:
    """An SB3 replay buffer's filled rows as plain arrays in one .npz (no pickle either way)."""

    def __init__(self, buffer: ReplayBuffer) -> None:
        self.buffer = buffer

    def _fields(self) -> dict[str, np.ndarray]:
        """Every saved row array, Dict observations flattened to `observations.<key>`."""
        out: dict[str, np.ndarray] = {}
        for name in REPLAY_ROWS:
            value = getattr(self.buffer, name, None)
            if isinstance(value, dict):
                out.update({f"{name}.{key}": array for key, array in value.items()})
            elif isinstance(value, np.ndarray):
                out[name] = value
        return out

    def save(self, path: Path) -> None:
        b = self.buffer
        rows = b.buffer_size if b.full else b.pos
        arrays = {name: array[:rows] for name, array in self._fields().items()}
        arrays["pos"] = np.asarray(b.pos)
        arrays["full"] = np.asarray(b.full)
        current_start = getattr(b, "_current_ep_start", None)
        if isinstance(current_start, np.ndarray):
            arrays["_current_ep_start"] = current_start
        with open(path, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]

    def load(self, path: Path) -> None:
        b = self.buffer
        fields = self._fields()
        with np.load(path, allow_pickle=False) as data:
            missing = set(fields) - set(data.files)
            if missing:
                raise CheckpointError(f"{path}: replay lacks {sorted(missing)} (another run's?)")
            for name, array in fields.items():
                saved = data[name]
                if saved.shape[1:] != array.shape[1:] or len(saved) > len(array):
                    raise CheckpointError(
                        f"{path}: replay field {name} has shape {saved.shape}, this run's buffer "
                        f"{array.shape}; resume with the run's own agent.kwargs"
                    )
                array[: len(saved)] = saved
            b.pos, b.full = int(data["pos"]), bool(data["full"])
            if "_current_ep_start" in data.files:
                b._current_ep_start = data["_current_ep_start"].copy()  # type: ignore[attr-defined]
        truncate = getattr(b, "truncate_last_trajectory", None)
        if truncate is not None:
            # HER: the episodes in flight at the checkpoint restart, so close them off, or the
            # next episodes would be glued onto them and relabelled with their goals.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                truncate()


def metric_tap(names: list[str]) -> Any:
    """An SB3 logger with no outputs that keeps window means of the values SB3 records."""
    from stable_baselines3.common.logger import Logger

    class MetricTap(Logger):
        def __init__(self) -> None:
            super().__init__(folder=None, output_formats=[])
            self.sums: dict[str, float] = {}
            self.counts: dict[str, int] = {}

        def record(self, key: str, value: Any, exclude: Any = None) -> None:
            super().record(key, value, exclude)
            name = key.rpartition("/")[2]
            if name in names and isinstance(value, int | float | np.number):
                self.sums[name] = self.sums.get(name, 0.0) + float(value)
                self.counts[name] = self.counts.get(name, 0) + 1

        def pop_means(self) -> dict[str, float]:
            means = {k: total / self.counts[k] for k, total in self.sums.items()}
            self.sums, self.counts = {}, {}
            return means

    return MetricTap()


def model_tensors(model: BaseAlgorithm) -> dict[str, Any]:
    """The model's parameters and torch variables (e.g. SAC's `log_ent_coef`)."""
    _, variable_names = model._get_torch_save_params()
    return {
        "parameters": model.get_parameters(),
        "variables": {name: _attr(model, name).detach().clone() for name in variable_names},
    }


def load_model_tensors(model: BaseAlgorithm, tree: dict[str, Any]) -> None:
    model.set_parameters(tree["parameters"], exact_match=True)
    with torch.no_grad():
        for name, value in tree["variables"].items():
            _attr(model, name).copy_(value)  # in place: optimisers hold these tensors


def model_state(model: BaseAlgorithm) -> dict[str, Any]:
    """The model's counters and the RNGs SB3 draws from (JSON and arrays)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = _numpy_global_state()
    return {
        "counters": {k: getattr(model, k) for k in MODEL_COUNTERS if hasattr(model, k)},
        "numpy_global": [np_name, np_keys, np_pos, np_has_gauss, np_gauss],
        "action_space": _space_rng(model.action_space).bit_generator.state,
    }


def load_model_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    for key, value in state["counters"].items():
        setattr(model, key, value)
    name, keys, pos, has_gauss, gauss = state["numpy_global"]
    _set_numpy_global_state((name, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    _space_rng(model.action_space).bit_generator.state = state["action_space"]


class PreservedRandomness:
    """Puts SB3's RNGs back on exit (DQN explores with numpy's global RNG and the action
    space), so evaluating a model never changes its training."""

    def __init__(self, model: BaseAlgorithm) -> None:
        self.space_rng = _space_rng(model.action_space)

    def __enter__(self) -> None:
        self.numpy_state = _numpy_global_state()
        self.space_state = self.space_rng.bit_generator.state

    def __exit__(self, *exc: object) -> None:
        _set_numpy_global_state(self.numpy_state)
        self.space_rng.bit_generator.state = self.space_state


def _attr(model: Any, dotted: str) -> torch.Tensor:
    """`model.a.b` for SB3's dotted names of torch variables (e.g. `log_ent_coef`)."""
    value = model
    for part in dotted.split("."):
        value = getattr(value, part)
    assert isinstance(value, torch.Tensor)
    return value


# SB3 samples replay batches, HER goals and DQN's exploration from numpy's legacy global RNG,
# so a checkpoint must carry its state (our own code uses Generators only).
def _numpy_global_state() -> Any:
    return np.random.get_state()  # noqa: NPY002


def _set_numpy_global_state(state: Any) -> None:
    np.random.set_state(state)  # noqa: NPY002


def _space_rng(space: gym.Space[Any]) -> np.random.Generator:
    """The generator behind `space.sample()` (SB3's warm-up actions)."""
    return space.np_random
