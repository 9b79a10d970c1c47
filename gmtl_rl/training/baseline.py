"""The baseline loop: non-learning policies that adapt within a trial (the bandit baselines
of RL² Table 1). Nothing is trained; `gmtl train` makes the run directory, runs the final
evaluation (the adaptation curve over `eval.episodes` episodes per trial, by default the
agent's `episodes_per_trial`, on the eval split) and writes a checkpoint, so `gmtl eval`,
`gmtl resume` and sweeps treat a baseline like any other run.

The config schema requires `total_steps >= 1`; a baseline config writes `total_steps: 1`
(any value does the same). No env is stepped: the budget counts as spent at once (the
counters say `total_steps` steps), so the run is finished and `gmtl resume` says so.
The agent's state (per-env counts, its generator) is numpy and plain values, saved with the
checkpoint's JSON/array state, not the torch file.
"""

from __future__ import annotations

from typing import Any

from gmtl_rl.core.policy import Agent
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.base import STEP_COLUMNS, TrainingRun


class BaselineRun(TrainingRun):
    """One run of a non-learning agent (see the module docstring)."""

    logs_evaluations = False  # one evaluation, at the end: no training curve to plot

    def build(self) -> None:
        # A planner plans for its own `horizon`; one that differs from the env's would act on
        # the wrong steps-to-go without any error, so refuse it (the MDP baselines).
        planned, actual = getattr(self.config.agent, "horizon", None), self.distribution.horizon
        if planned is not None and actual is not None and planned != actual:
            raise ConfigError(
                f"agent.horizon: {planned} differs from the env's episode length {actual} "
                f"(env.horizon); set agent.horizon={actual}"
            )
        self.agent: Agent = self.build_agent(self.env_spec())  # no training sampler
        self.columns = [*STEP_COLUMNS]

    def run_loop(self) -> None:
        c = self.counters
        c.env_steps = max(c.env_steps, self.config.total_steps)  # nothing to train
        self.advance()

    # The agent's state is numpy: it goes to the JSON/array side of the checkpoint.
    def agent_tensors(self) -> dict[str, Any]:
        return {}

    def load_agent_tensors(self, tree: dict[str, Any]) -> None:
        del tree

    def loop_state(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict()}

    def load_loop_state(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
