"""Whole-trial sequences for recurrent meta-RL (RL², Duan et al. 2016): a trial is K
consecutive episodes on one task, and the unit of learning is the whole trial.

`TrialBuffer` turns the sampler's lockstep `StepBatch` records into complete trials, one
column array per field and sampler step (never a Python object per transition); a trial still
in flight when an update happens stays in the buffer and is completed by later steps.
`trial_gae` is generalised advantage estimation over a trial seen as one meta-episode.

Shape suffixes: N = envs, S = sampler steps held, B = trials, L = steps of the longest trial,
D = flattened observation features, A = action (or sample) dims.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gmtl_rl.core.networks import flatten_obs
from gmtl_rl.core.records import StepBatch
from gmtl_rl.core.schedules import TaskSchedule


@dataclass(frozen=True)
class ActRecord:
    """What a trial-learning policy's last `act` drew, per env (the PPO behaviour policy)."""

    sample_NA: np.ndarray  # the draw its log-prob is of (Box: unclipped; Discrete: [N, 1] index)
    log_prob_N: np.ndarray
    value_N: np.ndarray


@dataclass(frozen=True)
class TrialBatch:
    """Complete trials padded to the longest; `mask_BL` marks real steps (a prefix per row)."""

    obs_BLD: np.ndarray  # float32 flattened observations
    action_BLA: np.ndarray  # actions as the env received them ([B, L] for Discrete)
    sample_BLA: np.ndarray  # the policy's draws (ActRecord.sample_NA)
    reward_BL: np.ndarray
    done_BL: np.ndarray  # an episode of the trial ended at this step (terminated | truncated)
    terminated_BL: np.ndarray
    log_prob_BL: np.ndarray  # behaviour log-probs
    value_BL: np.ndarray  # behaviour values
    mask_BL: np.ndarray  # bool
    task_id_B: np.ndarray

    @property
    def num_trials(self) -> int:
        return int(self.mask_BL.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.mask_BL.sum())


# Per-step columns that go into a TrialBatch (the buffer also keeps `valid` and `task_id`).
_COLUMNS = ("obs", "action", "sample", "reward", "done", "terminated", "log_prob", "value")


class TrialBuffer:
    """Sampler steps, kept until every trial they belong to is complete and popped.

    It mirrors the sampler's trial bookkeeping: a trial starts in every env at the sampler's
    first step, and ends at the step where the env's K-th episode ends (rows with
    `valid == False` are not transitions and never part of a trial).
    """

    def __init__(self, n_envs: int, episodes_per_trial: int) -> None:
        self.n_envs = n_envs
        self.episodes_per_trial = episodes_per_trial
        self._steps: dict[str, list[np.ndarray]] = {k: [] for k in (*_COLUMNS, "valid")}
        self._steps["task_id"] = []
        self.trial_start_N = np.zeros(n_envs, np.int64)  # index into the held steps
        self.episodes_done_N = np.zeros(n_envs, np.int64)
        self.complete: list[tuple[int, int, int]] = []  # (env, first step, last step)

    def __len__(self) -> int:
        return len(self._steps["valid"])

    def add(self, step: StepBatch, act: ActRecord) -> None:
        t = len(self)
        columns = {
            "obs": flatten_obs(step.obs),
            "action": np.asarray(step.action),
            "sample": act.sample_NA,
            "reward": step.reward,
            "done": step.done,
            "terminated": step.terminated,
            "log_prob": act.log_prob_N,
            "value": act.value_N,
            "valid": step.valid,
            "task_id": step.task_id,
        }
        for name, value in columns.items():
            self._steps[name].append(np.array(value, copy=True))
        ended = np.flatnonzero(step.valid & step.done)
        self.episodes_done_N[ended] += 1
        for i in ended[self.episodes_done_N[ended] >= self.episodes_per_trial]:
            self.complete.append((int(i), int(self.trial_start_N[i]), t))
            self.trial_start_N[i] = t + 1
            self.episodes_done_N[i] = 0

    def pop_trials(self) -> TrialBatch:
        """The complete trials (in completion order), padded; their steps are released."""
        cols = {k: np.stack(v) for k, v in self._steps.items()}  # [S, N, ...]
        rows = []
        for env, first, last in self.complete:
            t = np.arange(first, last + 1)
            rows.append((env, t[cols["valid"][t, env]]))
        n_b, n_l = len(rows), max(len(t) for _, t in rows)
        out: dict[str, np.ndarray] = {}
        for name in _COLUMNS:
            col = cols[name]
            padded = np.zeros((n_b, n_l, *col.shape[2:]), col.dtype)
            for b, (env, t) in enumerate(rows):
                padded[b, : len(t)] = col[t, env]
            out[name] = padded
        mask = np.zeros((n_b, n_l), bool)
        for b, (_, t) in enumerate(rows):
            mask[b, : len(t)] = True
        task_id = np.array([cols["task_id"][t[0], env] for env, t in rows], np.int64)
        self.complete = []
        self._release()
        return TrialBatch(
            obs_BLD=out["obs"], action_BLA=out["action"], sample_BLA=out["sample"],
            reward_BL=out["reward"], done_BL=out["done"], terminated_BL=out["terminated"],
            log_prob_BL=out["log_prob"], value_BL=out["value"], mask_BL=mask, task_id_B=task_id,
        )  # fmt: skip

    def _release(self) -> None:
        """Drop the steps before the oldest trial still in flight."""
        keep_from = int(self.trial_start_N.min())
        for name in self._steps:
            del self._steps[name][:keep_from]
        self.trial_start_N -= keep_from

    # -- checkpointing: arrays only --------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        held = {k: np.stack(v) if v else np.zeros(0) for k, v in self._steps.items()}
        return {
            "steps": held,
            "trial_start": self.trial_start_N.copy(),
            "episodes_done": self.episodes_done_N.copy(),
            "complete": np.asarray(self.complete, np.int64).reshape(-1, 3),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        steps = state["steps"]
        count = len(steps["valid"])
        self._steps = {k: [np.array(steps[k][t]) for t in range(count)] for k in steps}
        self.trial_start_N = np.asarray(state["trial_start"], np.int64).copy()
        self.episodes_done_N = np.asarray(state["episodes_done"], np.int64).copy()
        self.complete = [(int(e), int(a), int(b)) for e, a, b in np.asarray(state["complete"])]


class RoundSchedule:
    """Synchronous collection (MAML): at most `trials` trials in a round, their tasks drawn
    by `tasks`; once they are handed out, envs that finish go idle. The loop starts the next
    round (`RolloutSampler.restart`) after the update, so every trial of a meta-batch is
    sampled by the same parameters and none straddles an update."""

    def __init__(self, tasks: TaskSchedule, trials: int) -> None:
        self.tasks = tasks
        self.trials = trials
        self.started = 0

    def next_task(self, env_index: int) -> int | None:
        if self.started >= self.trials:
            return None
        self.started += 1
        return self.tasks.next_task(env_index)

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks.state_dict(), "started": self.started}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks.load_state_dict(state["tasks"])
        self.started = int(state["started"])


def trial_gae(
    reward_BL: np.ndarray, value_BL: np.ndarray, mask_BL: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """GAE (Schulman et al. 2016, eq. 16) over whole trials; returns (advantages, returns).

    RL² maximises the discounted return of the whole trial (Duan et al. 2016, §2.2: "the
    objective is to maximise the expected total discounted reward accumulated during a single
    trial rather than a single episode"), so a trial is one episode of the meta-MDP whose
    state includes the hidden state:
    - an inner episode end (terminated or truncated) does not cut the recursion: the
      meta-MDP continues into the next episode's reset state, and δ_t bootstraps from the
      value of that next trial step. The terminal observation of the inner episode is never
      bootstrapped from (after `terminated` the inner MDP has no future; after a time limit
      its future is not part of the trial either: the env is reset);
    - the trial's last step has no successor in the meta-episode, so V = 0 there.
    Padded steps (mask False) carry zero reward and value and do not leak into real ones.
    """
    m = mask_BL.astype(np.float64)
    r, v = reward_BL * m, value_BL * m
    n_b, n_l = r.shape
    adv = np.zeros((n_b, n_l), np.float64)
    running = np.zeros(n_b, np.float64)
    next_value = np.zeros(n_b, np.float64)
    for t in range(n_l - 1, -1, -1):
        # Beyond a trial's last step value and mask are 0: no bootstrap, recursion restarts.
        delta = r[:, t] + gamma * next_value - v[:, t]
        running = (delta + gamma * lam * running) * m[:, t]
        adv[:, t] = running
        next_value = v[:, t]
    return adv.astype(np.float32), ((adv + v) * m).astype(np.float32)


__all__ = ["ActRecord", "RoundSchedule", "TrialBatch", "TrialBuffer", "trial_gae"]
