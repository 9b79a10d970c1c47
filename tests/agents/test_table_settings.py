"""Issue 16's settings against their sources, value by value, so that a drift fails here.

- configs/dqn_her_bit_flip.yaml and configs/dqn_bit_flip.yaml against the HER paper
  (Andrychowicz et al. 2017, §3.1 and Appendix A; ../shared/REFERENCE.md "HER bit flipping").
- benchmarks/rl2_tables.py's fixed MDP-baseline priors (MDP_FIXED) against iosband/TabulaRL's
  `src/finite_tabular_agents.py` at TABULARL_COMMIT, whose defaults those cells reproduce.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from benchmark_modules import load_benchmark

from gmtl_rl.agents.registry import parse_agent_config
from gmtl_rl.config import load_config
from gmtl_rl.evaluation.adaptation import AdaptationRow, read_csv

ROOT = Path(__file__).parents[2]

# -- HER bit flipping ------------------------------------------------------------------------
# The paper's values, and ours for what it states as a schedule rather than a number.
HER_PAPER: dict[str, Any] = {
    "env.name": "bit-flip",
    "env.n_bits": 15,  # the size DI-engine's budget (150k env steps) is quoted for
    "env.goal_sampling": "uniform",  # start and goal uniform in every episode
    "agent.hidden": [256],  # "a network with 1 hidden layer with 256 neurons"
    "agent.lr": 1e-3,  # Adam, learning rate 0.001
    "agent.batch_size": 128,
    "agent.buffer_size": 1_000_000,
    "agent.gamma": 0.98,
    "agent.tau": 1 - 0.95,  # target network decay 0.95 ...
    "agent.target_update_interval": 40,  # ... once per cycle of 40 optimisation steps
    "agent.updates_per_step": round(40 / (16 * 15), 4),  # 40 steps per 16 episodes of n = 15
    "agent.double": False,  # DQN, not double DQN
    "agent.eps_start": 0.2,  # 20% random actions
    "agent.eps_end": 0.2,
    "sampler.n_envs": 16,  # 16 episodes per cycle
    "total_steps": 150_000,
}
HER_RELABELLING = {"strategy": "future", "relabel_ratio": 0.8}  # `future`, k = 4: 4 / (1 + 4)


def _value(config: Any, dotted: str) -> Any:
    node = config
    for key in dotted.split("."):
        node = node[key] if isinstance(node, dict) else getattr(node, key)
    return node


@pytest.mark.parametrize("name", ["dqn_her_bit_flip.yaml", "dqn_bit_flip.yaml"])
def test_bit_flip_configs_hold_the_her_papers_values(name):
    config = load_config(ROOT / "configs" / name)
    agent = config.agent  # validated by the agent's model: its defaults count
    resolved = {"env": config.env.to_yaml_dict(), "agent": agent, "sampler": config.sampler}
    wrong = []
    for key, expected in HER_PAPER.items():
        head, _, rest = key.partition(".")
        ours = _value(resolved[head], rest) if head in resolved else _value(config, key)
        if isinstance(expected, list):
            ours = list(ours)
        if ours != pytest.approx(expected) if isinstance(expected, float) else ours != expected:
            wrong.append(f"{key}: ours {ours!r}, paper {expected!r}")
    her = agent.her
    if name == "dqn_her_bit_flip.yaml":
        for key, expected in HER_RELABELLING.items():
            if _value(her, key) != pytest.approx(expected):
                wrong.append(f"agent.her.{key}: ours {_value(her, key)!r}, paper {expected!r}")
    else:
        assert her.strategy == "none", "dqn_bit_flip.yaml is DQN alone: no HER relabelling"
    assert not wrong, f"configs/{name} differs from the HER paper: " + "; ".join(wrong)


# -- TabulaRL's priors for the MDP baselines ---------------------------------------------------
TABULARL_COMMIT = "1228f4cf462647106fca80a3af43622bc1233691"  # iosband/TabulaRL
# FiniteHorizonTabularAgent(alpha0=1., mu0=0., tau0=1., tau=1.): the defaults every agent below
# inherits unless its __init__ overrides them; UCRL2 passes alpha0=1e-5, tau0=0.0001 and
# EpsilonGreedy alpha0=0.0001, tau0=0.0001 (greedy is EpsilonGreedy with epsilon 0).
TABULA_DEFAULT = {"alpha0": 1.0, "mu0": 0.0, "tau0": 1.0, "tau": 1.0}
TABULA: dict[str, dict[str, float]] = {
    "PSRL": TABULA_DEFAULT,
    "OPSRL": TABULA_DEFAULT,  # OptimisticPSRL
    "BEB": TABULA_DEFAULT,
    "UCRL2": {**TABULA_DEFAULT, "alpha0": 1e-5, "tau0": 1e-4},
    "ε-Greedy": {**TABULA_DEFAULT, "alpha0": 1e-4, "tau0": 1e-4},
    "Greedy": {**TABULA_DEFAULT, "alpha0": 1e-4, "tau0": 1e-4},
}


def _load_rl2_tables() -> ModuleType:
    return load_benchmark("rl2_tables")


@pytest.mark.parametrize("column", sorted(TABULA))
def test_mdp_baseline_priors_are_tabularls(column):
    """Our names for TabulaRL's: Dirichlet weight alpha0 = transition_prior, prior mean mu0 =
    reward_prior_mean, prior precision tau0 = 1 / reward_prior_var, and the known reward noise
    precision tau = 1 / reward_noise_var."""
    tables = _load_rl2_tables()
    setup = tables.Setup("mdp", 10, 0)
    agent_name, _grid = setup.agents[column]
    config = parse_agent_config({"name": agent_name, **setup.fixed(column)})
    theirs = TABULA[column]
    ours = {
        "alpha0": config.transition_prior,
        "mu0": config.reward_prior_mean,
        "tau0": 1.0 / config.reward_prior_var,
        "tau": 1.0 / config.reward_noise_var,
    }
    wrong = [
        f"{key}: ours {ours[key]!r}, TabulaRL {theirs[key]!r}"
        for key in theirs
        if ours[key] != pytest.approx(theirs[key])
    ]
    assert not wrong, f"{column} ({agent_name}) differs from TabulaRL: " + "; ".join(wrong)


def test_beb_takes_tabularls_bonus_form():
    tables = _load_rl2_tables()
    assert tables.MDP_FIXED["BEB"]["form"] == "tabula_rl"


@pytest.mark.parametrize("bad", ["10,x", "0,5", "1,2,3", ""])
def test_rl2_tables_rejects_a_malformed_setup(bad):
    tables = _load_rl2_tables()
    with pytest.raises(Exception, match="--setups"):
        tables.parse_setup(bad)


@pytest.mark.parametrize("setup_key", ["bandit-n100-k50", "mdp-n25"])
def test_rl2_overrides_put_the_setup_on_the_shipped_config(setup_key):
    """`--train-rl2` trains each setup from the shipped config with its n (and k): the config
    must load with them and hold them where the trial loop and the evaluator read them."""
    tables = _load_rl2_tables()
    setup = next(s for s in tables.setups(None, None) if s.key == setup_key)
    config = load_config(tables.RL2_CONFIGS[setup.table], tables.rl2_overrides(setup))
    assert config.agent.episodes_per_trial == setup.n
    assert config.eval.episodes == setup.n
    assert config.experiment == f"rl2-{setup_key}"
    if setup.table == "bandit":
        assert config.env.options.arms == setup.k


def test_trial_totals_sum_a_trial_and_average_the_trials():
    tables = _load_rl2_tables()
    returns = {(0, 0): [1.0, 0.0], (0, 1): [1.0, 1.0], (1, 0): [0.0, 0.0], (1, 1): [0.0, 1.0]}
    rows = [
        AdaptationRow("run", 0, task, task, repeat, k + 1, value, 0.0, 1)
        for (task, repeat), episode_returns in returns.items()
        for k, value in enumerate(episode_returns)
    ]
    assert tables.mean_trial_totals(rows) == {0: 1.5, 1: 0.5}


def test_train_rl2_keeps_a_record_of_trial_totals_that_the_table_reads(tmp_path):
    """`--train-rl2` on one setup, one PPO update (256 trials of 10 pulls) from the shipped
    config, evaluated on the 1000 held-out bandits: the record keeps each instance's trial
    total, not the per-episode rows (500,000 at n = 500), and the table reads it once the run
    is gone."""
    tables = _load_rl2_tables()
    setup = next(s for s in tables.setups(None, None) if s.key == "bandit-n10-k5")
    runs, records = tmp_path / "runs", tmp_path / "records"
    tables.train_rl2([setup], runs, records, steps=2560)

    run, record = runs / setup.key, records / setup.key
    expected = tables.mean_trial_totals(read_csv(run / "eval" / "adaptation.csv"))
    assert len(expected) == 1000
    assert (record / "eval" / "trial_totals.csv").is_file()
    assert (record / "eval" / "summary.json").is_file()
    assert not (record / "eval" / "adaptation.csv").exists()
    assert tables.kept_record(setup, runs, records) == record
    np.testing.assert_allclose(tables.rl2_totals(record), list(expected.values()))

    # A larger budget resumes the run with the new schedule, and the record follows the new
    # final evaluation (not the old one still in eval/ while the run is short of its budget).
    tables.train_rl2([setup], runs, records, steps=5120)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["total_steps"], saved["eval"]["every_steps"]) == (5120, 512)
    summary = json.loads((record / "eval" / "summary.json").read_text())
    assert summary["step"] >= 5120
    expected = tables.mean_trial_totals(read_csv(run / "eval" / "adaptation.csv"))
    np.testing.assert_allclose(tables.rl2_totals(record), list(expected.values()))

    shutil.rmtree(run)
    assert tables.kept_record(setup, runs, records) == record
    np.testing.assert_allclose(tables.rl2_totals(record), list(expected.values()))
    assert tables.kept_record(setup, runs, tmp_path / "no-records") is None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--search", "--train-rl2"], "not allowed with argument --search"),
        (["--train-rl2", "--rl2-steps", "0"], "'0': must be a whole number of env steps"),
        (["--train-rl2", "--rl2-steps", "many"], "'many': must be a whole number of env steps"),
        (["--rl2-steps", "1000"], "--rl2-steps sets the budget of --train-rl2; add --train-rl2"),
    ],
)
def test_rl2_tables_refuses_contradictory_flags(argv, says, monkeypatch, capsys):
    tables = _load_rl2_tables()
    monkeypatch.setattr("sys.argv", ["rl2_tables.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        tables.main()
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err
