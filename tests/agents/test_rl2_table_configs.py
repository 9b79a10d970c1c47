"""configs/rl2_bandit.yaml and configs/rl2_tabular_mdp.yaml against the authors' code, by value.

The authors' RL² code for Tables 1-2 is Yan Duan's sandbox in florensacc/rllab-curriculum:
sandbox/rocky/neural_learner/launchers/102016/1030/mab_17.py (bandits; the `mab-17` runs that
scripts/bandits/evaluate_bandits_rnn.py scores) and launchers/102016/1026/random_mdp_12.py
(MDPs; the `random-mdp-12` runs of scripts/pacmdp/evaluate_pacmdp_rnn.py). The tables below are
those launchers' values, copied verbatim; `_rows` maps each to our key at the config's default
setup (n = 10). Both evaluation scripts run 1000 trials with rllab's sampler, which draws actions
from the policy (CategoricalRNNPolicy.get_actions: weighted_sample_n).

A deliberate deviation is listed in DEVIATIONS with our value and must be named, by key, in the
config's header under "Deviations from the authors' code:". Anything else that differs fails.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from authors_configs import drift, header, named_deviations

from gmtl_rl.config import RunConfig, load_config

CONFIGS = Path(__file__).parents[2] / "configs"

# Values shared by both launchers (VG variants and the PPOSGD / CategoricalRNNPolicy arguments).
AUTHORS_SHARED: dict[str, Any] = {
    "batch_size": 250_000,  # env steps per iteration
    "hidden_dim": 256,  # GRU width, policy and baseline
    "policy_hidden_layers": [],  # CategoricalRNNPolicy: GRU -> softmax, no feature network
    "discount": 0.99,
    "gae_lambda": 0.3,
    "clip_lr": 0.1,
    "min_epochs": 5,
    "entropy_bonus_coeff": 0.0,
    "eval_trials": 1000,  # n_trials in the evaluation scripts
    "eval_deterministic": False,  # get_actions samples
}
AUTHORS: dict[str, dict[str, Any]] = {
    # mab_17.py @aa25608f73febfeb164b71619a7744350d819e7d: MABEnv, episode_horizon=1
    "rl2_bandit": {**AUTHORS_SHARED, "n_itr": 5000, "episode_horizon": 1},
    # random_mdp_12.py @2af5de5611061187333a8c0db59d70f264dcb065: n_states 10, n_actions 5
    "rl2_tabular_mdp": {**AUTHORS_SHARED, "n_itr": 10_000, "episode_horizon": 10},
}
COMMITS = {"rl2_bandit": "aa25608", "rl2_tabular_mdp": "2af5de5"}

# Deliberate deviations: key -> our value. Each is named, with its reason, in the header.
DEVIATIONS: dict[str, dict[str, Any]] = {
    "rl2_bandit": {
        "agent.hidden": [64],
        "agent.gamma": 1.0,
        "agent.clip": 0.2,
        "agent.epochs": 4,
        "agent.entropy_coef": 0.01,
        "agent.trials_per_update": 256,
        "total_steps": 2_000_000,
        "eval.deterministic": True,
    },
    "rl2_tabular_mdp": {
        "agent.hidden": [64],
        "agent.gamma": 1.0,
        "agent.gae_lambda": 0.95,
        "agent.clip": 0.2,
        "agent.epochs": 4,
        "agent.entropy_coef": 0.01,
        "agent.trials_per_update": 128,
        "total_steps": 5_000_000,
        "eval.deterministic": True,
    },
}


def _rows(a: dict[str, Any], cfg: RunConfig) -> list[tuple[str, Any, Any]]:
    """(our key, ours, the authors') for every launcher value that has a counterpart here."""
    agent, ev = cfg.agent, cfg.eval
    dist = cfg.env.build()
    horizon = dist.horizon
    trial_steps = agent.episodes_per_trial * horizon
    return [
        ("env.horizon", horizon, a["episode_horizon"]),
        ("agent.gru_hidden", agent.gru_hidden, a["hidden_dim"]),
        ("agent.hidden", list(agent.hidden), a["policy_hidden_layers"]),
        ("agent.gamma", agent.gamma, a["discount"]),
        ("agent.gae_lambda", agent.gae_lambda, a["gae_lambda"]),
        ("agent.clip", agent.clip, a["clip_lr"]),
        ("agent.epochs", agent.epochs, a["min_epochs"]),
        ("agent.entropy_coef", agent.entropy_coef, a["entropy_bonus_coeff"]),
        # sampler_args n_envs = ceil(batch_size / (n_episodes * episode_horizon)) trials
        (
            "agent.trials_per_update",
            agent.trials_per_update,
            math.ceil(a["batch_size"] / trial_steps),
        ),
        ("total_steps", cfg.total_steps, a["n_itr"] * a["batch_size"]),
        ("env.n_test", len(dist.test_tasks()), a["eval_trials"]),
        ("eval.n_envs", ev.n_envs, a["eval_trials"]),
        ("eval.repeats", ev.repeats, 1),
        ("eval.episodes", ev.episodes, agent.episodes_per_trial),
        ("eval.deterministic", ev.deterministic, a["eval_deterministic"]),
    ]


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_config_equals_the_authors_launcher(name):
    path = CONFIGS / f"{name}.yaml"
    rows = _rows(AUTHORS[name], load_config(path))
    problems = drift(rows, DEVIATIONS[name])
    if problems:
        pytest.fail(f"{path.name} vs the authors' launcher:\n" + "\n".join(problems))


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_header_names_each_deviation_and_the_source(name):
    text = header(CONFIGS / f"{name}.yaml")
    named = named_deviations(text, "Deviations from the authors' code:")
    assert f"rllab-curriculum @{COMMITS[name]}" in text, "the header names the authors' commit"
    assert named == set(DEVIATIONS[name]), (
        f"{name}.yaml: header names {sorted(named)}, the test lists {sorted(DEVIATIONS[name])}"
    )


def test_the_batch_arithmetic_is_the_launchers():
    """At n = 10 the authors' 250,000-step batch is 25,000 bandit trials or 2,500 MDP trials."""
    bandit = {
        k: t for k, _, t in _rows(AUTHORS["rl2_bandit"], load_config(CONFIGS / "rl2_bandit.yaml"))
    }
    mdp_cfg = load_config(CONFIGS / "rl2_tabular_mdp.yaml")
    mdp = {k: t for k, _, t in _rows(AUTHORS["rl2_tabular_mdp"], mdp_cfg)}
    assert bandit["agent.trials_per_update"] == 25_000 and mdp["agent.trials_per_update"] == 2_500
    assert bandit["total_steps"] == 5000 * 250_000 and mdp["total_steps"] == 10_000 * 250_000
