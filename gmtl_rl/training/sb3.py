"""The stable-baselines3 training loop: SB3's own `learn`, with our schedule around it.

One env per task class in a `DummyVecEnv`; each draws a uniformly random train task of its class
at every reset and appends the class one-hot to its observations. A callback keeps the counters
current and, at the start of every SB3 rollout (after the previous update, so the state is
whole), writes metrics, evaluates with our evaluator and checkpoints on the env-step schedule.

Checkpoints are ours, never SB3's zip (which pickles): the model's state dicts and torch
variables, its counters, every RNG (SB3 samples replay and warm-up actions with numpy's global
RNG) and the replay arrays. Episodes in flight at a checkpoint restart on resume (SB3 keeps no
env state to restore), so a resumed run is not bit-equal to an uninterrupted one.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from gmtl_rl import checkpoint
from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.agents.sb3 import METRICS, SB3Config, SB3Policy, TaskClassOneHot
from gmtl_rl.config import RunConfig, SamplerConfig
from gmtl_rl.envs.task import Task, TaskDistribution, is_goal_env
from gmtl_rl.errors import CheckpointError, ConfigError, NumericalFault
from gmtl_rl.evaluation.adaptation import AdaptationRow, run_adaptation
from gmtl_rl.progress import progress_bar
from gmtl_rl.training.common import (
    Counters,
    Interrupted,
    MetricsLog,
    Seeds,
    eval_metrics,
    install_signal_handlers,
    next_multiple,
    non_finite_tensors,
    resolve_device,
    restore_signal_handlers,
    seed_everything,
    write_final_eval,
)

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


def _metric_tap(names: list[str]) -> Any:
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


class SB3Run:
    """One run of an SB3 algorithm: built from config, trained, checkpointed, evaluated."""

    def __init__(self, config: RunConfig, run_dir: Path, distribution: TaskDistribution) -> None:
        assert isinstance(config.agent, SB3Config)
        if config.sampler.autoreset_mode != SamplerConfig().autoreset_mode:
            raise ConfigError(
                "sampler.autoreset_mode: SB3 resets its envs itself; remove the key "
                "(sampler.n_envs does apply: envs are spread evenly over the task classes)"
            )
        if config.sampler.backend != "sync":
            raise ConfigError(
                f"sampler.backend: {config.sampler.backend!r} does not apply to sb3, which "
                "steps its envs in SB3's own DummyVecEnv; remove the key (sync)"
            )
        self.config = config
        self.agent_config: SB3Config = config.agent
        self.run_dir = run_dir
        self.distribution = distribution
        self.seeds = Seeds.from_seed(config.seed)
        seed_everything(config.seed, self.seeds)
        train_tasks = distribution.train_tasks()
        classes = distribution.task_classes(train_tasks)
        n_classes = distribution.num_task_classes
        probe = distribution.make_env(train_tasks[0])  # spaces and GoalEnv-ness, before SB3
        try:
            goal_env = is_goal_env(probe)
            self.encoder = TaskClassOneHot(probe.observation_space, n_classes)
        finally:
            probe.close()
        self.finished_episodes: list[EpisodeStats] = []
        # At least one env per class, and an equal number per class (env i runs class
        # i % n_classes): n_envs rounded up to a multiple of the class count.
        n_envs = -(-max(config.sampler.n_envs, n_classes) // n_classes) * n_classes
        # One generator per env (SeedSequence spawning), so each env's task draws are its own.
        task_seeds = np.random.SeedSequence(self.seeds.tasks).spawn(n_envs)
        self.task_rngs = [np.random.default_rng(s) for s in task_seeds]
        envs = [
            ClassTaskEnv(
                distribution,
                [t for t, k in zip(train_tasks, classes, strict=True) if k == i % n_classes],
                i % n_classes,
                self.encoder,
                self.task_rngs[i],
                self.finished_episodes,
            )
            for i in range(n_envs)
        ]
        from stable_baselines3.common.vec_env import DummyVecEnv

        self.vec = DummyVecEnv([lambda env=env: env for env in envs])  # type: ignore[misc]
        spec = agent_spec(self.agent_config.name)
        device = resolve_device(config.device)
        try:
            self.model: BaseAlgorithm = spec.build(
                self.agent_config, self.vec, goal_env, self.seeds.torch, device
            )
        except BaseException:
            self.vec.close()
            raise
        self.vec.seed(self.seeds.envs)  # SB3 seeded the envs with its own seed; use ours
        self.metric_names = [*METRICS[self.agent_config.algo], "learning_rate"]
        self.tap = _metric_tap(self.metric_names)
        self.model.set_logger(self.tap)
        self.counters = Counters()
        self._next_log: float = 0
        self._next_eval: float = 0
        self._next_checkpoint: float = 0
        self._reset_schedule()
        self.columns = [
            "step", "time_s", "steps_per_s", "episodes", "updates",
            "train_return", "train_success", "train_length",
            *self.metric_names,
            "eval_return_first", "eval_return_last", "eval_success_last",
        ]  # fmt: skip
        self._stop_signal: int | None = None
        self._window: list[EpisodeStats] = []
        self.finished = False
        self.log: MetricsLog | None = None
        self._resumed_rows: int | None = None
        self._advance: Any = None
        self._start_wall = time.perf_counter()
        self._last_log = (0, self._start_wall)

    def close(self) -> None:
        self.vec.close()

    @property
    def replay(self) -> ReplaySnapshot | None:
        buffer = getattr(self.model, "replay_buffer", None)  # on-policy algos have none
        return ReplaySnapshot(buffer) if buffer is not None else None

    # -- state ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        model = self.model
        _, variable_names = model._get_torch_save_params()
        agent_state = {
            "parameters": model.get_parameters(),
            "variables": {name: _attr(model, name).detach().clone() for name in variable_names},
            "torch_rng": torch.get_rng_state(),
        }
        bad = non_finite_tensors(agent_state["parameters"], "model")
        if bad:  # never replace a good checkpoint with a broken one
            raise self._fault(f"non-finite values in {', '.join(bad[:3])}")
        py_version, py_state, py_gauss = random.getstate()
        np_name, np_keys, np_pos, np_has_gauss, np_gauss = _numpy_global_state()
        state = {
            "counters": asdict(self.counters),
            "finished": self.finished,
            "model": {k: getattr(model, k) for k in MODEL_COUNTERS if hasattr(model, k)},
            "rng": {
                "python": [py_version, list(py_state), py_gauss],
                "numpy_global": [np_name, np_keys, np_pos, np_has_gauss, np_gauss],
                "action_space": _space_rng(model.action_space).bit_generator.state,
                "tasks": [rng.bit_generator.state for rng in self.task_rngs],
            },
            "logger": {"metrics_rows": self.log.rows if self.log else 0},
        }
        return checkpoint.save(
            self.run_dir / "checkpoints",
            self.counters.env_steps,
            agent_state,
            state,
            replay=self.replay if self.config.checkpoint.replay else None,
            keep=self.config.checkpoint.keep,
        )

    def load_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None:
        model = self.model
        try:
            model.set_parameters(ckpt.agent["parameters"], exact_match=True)
            with torch.no_grad():
                for name, value in ckpt.agent["variables"].items():
                    _attr(model, name).copy_(value)  # in place: optimisers hold these tensors
            torch.set_rng_state(ckpt.agent["torch_rng"])
            s = ckpt.state
            self.counters = Counters(**s["counters"])
            self._reset_schedule()
            self.finished = bool(s["finished"])
            for key, value in s["model"].items():
                setattr(model, key, value)
            py = s["rng"]["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
            name, keys, pos, has_gauss, gauss = s["rng"]["numpy_global"]
            _set_numpy_global_state((name, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
            _space_rng(model.action_space).bit_generator.state = s["rng"]["action_space"]
            for rng, rng_state in zip(self.task_rngs, s["rng"]["tasks"], strict=True):
                rng.bit_generator.state = rng_state
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise CheckpointError(
                f"{ckpt.path}: checkpoint does not match this run ({type(err).__name__}: {err})"
            ) from None
        replay = self.replay
        if ckpt.replay_path is not None and replay is not None:
            replay.load(ckpt.replay_path)
        # Episodes in flight restart: seed their resets afresh, not with the run's first seeds.
        restart = np.random.SeedSequence([self.seeds.envs, self.counters.env_steps])
        self.vec.seed(int(restart.generate_state(1)[0]))
        self._resumed_rows = int(ckpt.state["logger"]["metrics_rows"])

    # -- loop -----------------------------------------------------------------------------
    def train(self, resumed: bool = False) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        run = self

        class Schedule(BaseCallback):
            def _on_step(self) -> bool:
                run._on_env_step()
                return True

            def _on_rollout_start(self) -> None:
                run._on_rollout_start()

        cfg = self.config
        self.log = MetricsLog(
            self.run_dir,
            self.columns,
            cfg.logging.tensorboard,
            keep_rows=self._resumed_rows if resumed else None,
            step=self.counters.env_steps,
        )
        c = self.counters
        self._start_wall = time.perf_counter()
        self._last_log = (c.env_steps, self._start_wall)
        previous = install_signal_handlers(self._on_signal)
        try:
            with progress_bar(cfg.total_steps, c.env_steps, cfg.experiment, "steps") as advance:
                self._advance = advance
                remaining = cfg.total_steps - self.model.num_timesteps
                if remaining > 0:
                    # One learn call to the end, so SB3's schedules see the whole budget.
                    self.model.learn(remaining, callback=Schedule(), reset_num_timesteps=False)
                self._on_env_step()
                self._periodic()  # the last rollout's row, as at every rollout start
            self._evaluate(final=True)
            self.finished = True
            self.save_checkpoint()
        finally:
            restore_signal_handlers(previous)
            self.log.close()
            self.vec.close()

    def _on_env_step(self) -> None:
        """After every vectorised env step: counters and the progress bar stay current."""
        c = self.counters
        c.env_steps = int(self.model.num_timesteps)
        c.updates = int(self.model._n_updates)
        c.episodes += len(self.finished_episodes)
        self._window.extend(self.finished_episodes)
        self.finished_episodes.clear()
        self._advance(c.env_steps)

    def _on_rollout_start(self) -> None:
        """Between SB3 rollouts (the update is done, the state whole): the schedule, signals."""
        bad = [key for key, total in self.tap.sums.items() if not np.isfinite(total)]
        if bad:  # SB3 computes the losses anyway, so this check is free
            raise self._fault(f"{', '.join(bad)} became non-finite")
        self._periodic()
        if self._stop_signal is not None:
            self.save_checkpoint()
            raise Interrupted(self._stop_signal)

    def _periodic(self) -> None:
        c, cfg = self.counters, self.config
        if c.env_steps >= self._next_log:
            self._write_metrics({})
            self._next_log = next_multiple(c.env_steps, cfg.logging.every_steps)
        if c.env_steps >= self._next_eval and c.env_steps < cfg.total_steps:  # final eval follows
            self._evaluate(final=False)
            self._next_eval = next_multiple(c.env_steps, cfg.eval.every_steps)
        if c.env_steps >= self._next_checkpoint:
            self._next_checkpoint = next_multiple(c.env_steps, cfg.checkpoint.every_steps)
            self.save_checkpoint()

    def _fault(self, what: str) -> NumericalFault:
        c = self.counters
        latest = checkpoint.list_checkpoints(self.run_dir / "checkpoints")
        kept = f"last good checkpoint: {latest[-1]}" if latest else "no checkpoint was written"
        return NumericalFault(
            f"training stopped at env step {c.env_steps}, update {c.updates}: {what}; {kept}"
        )

    def _reset_schedule(self) -> None:
        """Next env step at which to log, evaluate, checkpoint (derived, so never saved)."""
        cfg, step = self.config, self.counters.env_steps
        self._next_log = next_multiple(step, cfg.logging.every_steps)
        self._next_eval = next_multiple(step, cfg.eval.every_steps)
        self._next_checkpoint = next_multiple(step, cfg.checkpoint.every_steps)

    def _write_metrics(self, extra: dict[str, float]) -> None:
        assert self.log is not None
        c = self.counters
        now = time.perf_counter()
        if extra:  # an evaluation row: its time is not training throughput
            self.log.write(c.env_steps, {"time_s": now - self._start_wall, **extra})
            return
        last_steps, last_time = self._last_log
        values: dict[str, float] = {
            "time_s": now - self._start_wall,
            "steps_per_s": (c.env_steps - last_steps) / max(now - last_time, 1e-9),
            "episodes": c.episodes,
            "updates": c.updates,
        }
        self._last_log = (c.env_steps, now)
        if self._window:
            eps = self._window
            values["train_return"] = float(np.mean([e.episode_return for e in eps]))
            values["train_success"] = float(np.mean([e.success for e in eps]))
            values["train_length"] = float(np.mean([e.length for e in eps]))
            self._window = []
        values.update(self.tap.pop_means())
        self.log.write(c.env_steps, values)

    # -- evaluation -------------------------------------------------------------------------
    def eval_policy(self) -> SB3Policy:
        return SB3Policy(self.model, self.encoder)

    def adaptation_rows(self) -> list[AdaptationRow]:
        """The model's adaptation curve under the config's eval protocol (own envs and seed)."""
        cfg = self.config.eval
        # SB3 draws DQN's exploration from numpy's global RNG and the action space: put both
        # back afterwards, so evaluating never changes training.
        np_state = _numpy_global_state()
        space_rng = _space_rng(self.model.action_space)
        space_state = space_rng.bit_generator.state
        try:
            return run_adaptation(
                SB3Policy(self.model, self.encoder),
                self.distribution,
                cfg.tasks(self.distribution),
                episodes=cfg.episodes,
                repeats=cfg.repeats,
                n_envs=cfg.n_envs,
                seed=self.seeds.eval,
                deterministic=cfg.deterministic,
                run=self.run_dir.name,
                run_seed=self.config.seed,
            )
        finally:
            _set_numpy_global_state(np_state)
            space_rng.bit_generator.state = space_state

    def _evaluate(self, final: bool) -> None:
        rows = self.adaptation_rows()
        self._write_metrics(eval_metrics(rows, self.config.eval.episodes))
        if final:
            write_final_eval(self.config, self.run_dir, self.counters.env_steps, rows)

    def _on_signal(self, signum: int) -> None:
        if self._stop_signal is not None:  # second signal: stop now; the last checkpoint is whole
            os._exit(128 + signum)
        self._stop_signal = signum


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
