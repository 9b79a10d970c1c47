"""What an agent exposes about its task during a recorded trial, and how it is read.

- option-critic: the option in force at every step (`active_option`);
- PEARL: its posterior q(z | c) over the trial's own context after every episode
  (`LatentBelief`); z has no decoder to the goal, so that is all it exposes about the task;
- bandit baselines: their posterior mean reward of every arm after every pull (`ArmBelief`);
- VariBAD with a multi-head Bernoulli reward decoder (the gridworld): its belief over goal
  cells at the trial's start and after every episode (`CellBelief`).
RL²'s belief lives in its GRU state, which has no readout: nothing is read from it.

A probe reads an agent after the recorder has passed it a step; it changes nothing and draws no
random numbers, so the recorded trial stays the evaluator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from gmtl_rl.agents.bandit_baselines import BanditPolicy
from gmtl_rl.agents.deep_option_critic import DeepOptionCritic
from gmtl_rl.agents.option_critic import OptionCritic
from gmtl_rl.agents.pearl import PEARL
from gmtl_rl.agents.varibad import VariBAD
from gmtl_rl.core.records import StepBatch, obs_index


@dataclass(frozen=True)
class LatentBelief:
    """PEARL's posterior q(z | c) from the trial's context up to the end of episode k;
    `z_source` says what episode k acted on (a prior draw while exploring, else a draw from
    the posterior of the episodes before it)."""

    episode: int
    z_source: Literal["prior", "posterior"]
    mean: np.ndarray  # [latent]
    std: np.ndarray  # [latent]; zeros without the information bottleneck


@dataclass(frozen=True)
class ArmBelief:
    """A bandit baseline's posterior mean reward of every arm after episode (pull) k."""

    episode: int
    mean: np.ndarray  # [arms]


@dataclass(frozen=True)
class CellBelief:
    """VariBAD's belief over goal cells after episode k (k = 0: its prior, before the trial):
    p(r = 1 | m = μ, cell) of every cell from its reward decoder at the belief's mean μ,
    normalised over the cells. The decoder's reading of the mean belief, not an exact
    posterior over goals."""

    episode: int
    p: np.ndarray  # [cells per axis...], indexed by a cell's coordinates (x, y); sums to 1


Belief = LatentBelief | ArmBelief | CellBelief


# -- reading the agents -------------------------------------------------------------------------
def active_option(policy: Any, row: int = 0) -> int | None:
    """The option in force in env `row`, for option-critic agents (after `act` chose it)."""
    if isinstance(policy, OptionCritic | DeepOptionCritic) and len(policy.option) > row:
        return int(policy.option[row])
    return None


class Probe:
    """Reads what an agent exposes; the recorder calls it with the filmed env's row."""

    def trial_start(self) -> Belief | None:
        """The belief the trial starts from, if the agent has one to show."""
        return None

    def observe(self, step: StepBatch, row: int) -> None:
        """Step `step` has just been observed by the agent."""

    def episode_end(self, episode: int, row: int) -> Belief | None:
        """The belief after episode k."""
        return None

    def z_source(self, episode: int) -> str | None:
        """What episode k acts on, for agents that draw a latent (PEARL)."""
        return None


class PearlProbe(Probe):
    """Rebuilds PEARL's trial context from the steps, as its `observe` does (same rows, same
    context reward), and asks its encoder for the posterior at every episode end."""

    def __init__(self, agent: PEARL) -> None:
        self.agent = agent
        self.rows: list[np.ndarray] = []

    def z_source(self, episode: int) -> Literal["prior", "posterior"]:
        explore = self.agent.config.eval_exploration_episodes
        return "prior" if episode <= explore else "posterior"

    def observe(self, step: StepBatch, row: int) -> None:
        one = slice(row, row + 1)
        reward = step.reward[one]
        if self.agent.reward_to_context is not None:
            reward = self.agent.reward_to_context(reward)
        obs, next_obs = obs_index(step.obs, one), obs_index(step.next_obs, one)
        self.rows.append(self.agent.context_rows(obs, step.action[one], reward, next_obs))

    def episode_end(self, episode: int, row: int) -> Belief:
        del row
        context = torch.as_tensor(np.concatenate(self.rows), device=self.agent.device)[None]
        with torch.inference_mode():
            mu, var = self.agent.posterior(context)
        return LatentBelief(
            episode,
            self.z_source(episode),
            mu[0].cpu().numpy().astype(np.float64),
            np.sqrt(var[0].cpu().numpy().astype(np.float64)),
        )


class BanditProbe(Probe):
    def __init__(self, agent: BanditPolicy) -> None:
        self.agent = agent

    def episode_end(self, episode: int, row: int) -> Belief:
        return ArmBelief(episode, self.agent.posterior_mean_NK[row].astype(np.float64).copy())


class VariBADProbe(Probe):
    """Reads VariBAD's belief over goal cells from the env's belief state, which its `observe`
    has just updated (`VariBAD.goal_belief`)."""

    def __init__(self, agent: VariBAD) -> None:
        self.agent = agent

    def trial_start(self) -> Belief | None:
        prior = self.agent.goal_belief(prior=True)
        return None if prior is None else CellBelief(0, prior[0])

    def episode_end(self, episode: int, row: int) -> Belief | None:
        p = self.agent.goal_belief()
        return None if p is None else CellBelief(episode, p[row].copy())


def probe(policy: Any) -> Probe:
    """The probe of an agent (the base one, which reads nothing, for agents with no belief)."""
    if isinstance(policy, PEARL):
        return PearlProbe(policy)
    if isinstance(policy, BanditPolicy):
        return BanditProbe(policy)
    if isinstance(policy, VariBAD):
        return VariBADProbe(policy)
    return Probe()
