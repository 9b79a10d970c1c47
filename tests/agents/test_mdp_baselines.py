"""RL²'s tabular-MDP baselines: planning, posteriors and bookkeeping on hand-worked data."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from gmtl_rl.agents import agent_spec, mdp_baselines
from gmtl_rl.agents.mdp_baselines import (
    BEB,
    OPSRL,
    PSRL,
    UCRL2,
    BEBConfig,
    MDPEpsilonGreedy,
    MDPEpsilonGreedyConfig,
    MDPGreedy,
    MDPGreedyConfig,
    OPSRLConfig,
    PSRLConfig,
    UCRL2Config,
    backward_induction,
    beb_bonus,
    optimistic_transitions,
    reward_posterior,
    transition_posterior_mean,
)
from gmtl_rl.checkpoint import join_arrays, split_arrays
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.errors import ConfigError

S, A = 3, 2
SPEC = EnvSpec(gym.spaces.Box(0.0, 1.0, (S,), np.float32), gym.spaces.Discrete(A), 1)
NAMES = [
    "mdp_random",
    "mdp_greedy",
    "mdp_egreedy",
    "mdp_psrl",
    "mdp_opsrl",
    "mdp_ucrl2",
    "mdp_beb",
]


def _onehot(states) -> np.ndarray:
    return np.eye(S, dtype=np.float32)[np.asarray(states)]


def _step(s, a, r, s_next, done=None, valid=None) -> StepBatch:
    """One step of len(s) envs: states s -> s_next under actions a with rewards r."""
    n = len(s)
    zeros = np.zeros(n, np.int64)
    return StepBatch(
        obs=_onehot(s), action=np.asarray(a, np.int64), reward=np.asarray(r, np.float32),
        next_obs=_onehot(s_next), terminated=np.zeros(n, bool),
        truncated=np.zeros(n, bool) if done is None else np.asarray(done, bool),
        task_id=zeros, task_class=zeros, episode_id=zeros, step_index=zeros,
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool) if valid is None else np.asarray(valid, bool),
    )  # fmt: skip


def _agent(name: str, n: int = 1, seed: int = 0, **options):
    spec = agent_spec(name)
    agent = spec.build(spec.config(name=name, **options), SPEC, seed, "cpu")
    agent.reset(np.ones(n, bool))
    return agent


def test_backward_induction_matches_a_hand_solved_two_state_mdp():
    # State 0: a0 pays 1 and stays; a1 pays 0 and moves to 1 with probability 1/2.
    # State 1: a0 pays 3 and stays; a1 pays 0 and returns to 0.
    reward = np.array([[[1.0, 0.0], [3.0, 0.0]]])
    transition = np.array([[[[1, 0], [0.5, 0.5]], [[0, 1], [1, 0]]]], float)
    q = backward_induction(reward, transition, 3)
    np.testing.assert_allclose(q[0, 0], [[1, 0], [3, 0]])  # one step to go: V = [1, 3]
    np.testing.assert_allclose(q[0, 1], [[2, 2], [6, 1]])  # V = [2, 6]
    np.testing.assert_allclose(q[0, 2], [[3, 4], [9, 2]])  # 0.5·2 + 0.5·6 = 4


def test_reward_posterior_is_the_normal_normal_closed_form():
    mean, var = reward_posterior(np.array([3.0]), np.array([5.5]), 1.0, 1.0, 1.0)
    np.testing.assert_allclose([mean[0], var[0]], [(1 + 5.5) / 4, 1 / 4])
    # prior N(2, 4), noise variance 0.5, two rewards summing to 3: precision 1/4 + 2/0.5
    mean, var = reward_posterior(np.array([2.0]), np.array([3.0]), 2.0, 4.0, 0.5)
    np.testing.assert_allclose([mean[0], var[0]], [(2 / 4 + 3 / 0.5) / 4.25, 1 / 4.25])


def test_psrl_counts_what_it_observes_and_samples_from_the_closed_form_posterior():
    agent = _agent("mdp_psrl")
    for r, s_next in [(2.0, 1), (0.5, 2), (3.0, 1)]:
        agent.observe(_step([0], [1], [r], [s_next]))
    assert agent.visits[0, 0, 1] == 3 and agent.visits.sum() == 3
    np.testing.assert_array_equal(agent.transitions[0, 0, 1], [0, 2, 1])
    np.testing.assert_allclose(agent.reward_sum[0, 0, 1], 5.5)
    reward, transition = agent.sample_mdps(np.array([0]), 40_000)
    draws = reward[0, :, 0, 1]
    assert abs(draws.mean() - 1.625) < 0.01 and abs(draws.var() - 0.25) < 0.01
    # Dirichlet(1 + [0, 2, 1]) has mean [1, 3, 2] / 6; an unvisited pair keeps the flat prior
    np.testing.assert_allclose(transition[0, :, 0, 1].mean(0), [1 / 6, 3 / 6, 2 / 6], atol=0.005)
    np.testing.assert_allclose(transition[0, :, 2, 0].mean(0), [1 / 3] * 3, atol=0.005)
    np.testing.assert_allclose(transition.sum(-1), 1.0)


def test_transition_posterior_mean_is_the_dirichlet_mean():
    np.testing.assert_allclose(
        transition_posterior_mean(np.array([0, 2, 1]), 1.0), [1 / 6, 1 / 2, 1 / 3]
    )


def test_inner_maximisation_moves_mass_to_the_best_next_state_within_the_l1_budget():
    p_hat = np.tile([0.2, 0.5, 0.3], (4, 1))  # values: state 0 best, then 2, then 1 (worst)
    values = np.array([2.0, 0.0, 1.0])
    radius = np.array([0.0, 0.6, 1.2, 3.0])
    p = optimistic_transitions(p_hat, radius, values)
    np.testing.assert_allclose(p[0], [0.2, 0.5, 0.3])  # no budget: p̂ itself
    np.testing.assert_allclose(p[1], [0.5, 0.2, 0.3])  # +0.3 to the best, all from the worst
    np.testing.assert_allclose(p[2], [0.8, 0.0, 0.2])  # +0.6: the worst emptied, then the next
    np.testing.assert_allclose(p[3], [1.0, 0.0, 0.0])  # a budget past 2(1 - p̂(s*)): all mass
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert (p >= 0).all()
    assert (np.abs(p - p_hat).sum(-1) <= radius + 1e-12).all()
    assert (p @ values >= p_hat @ values).all()


def test_beb_bonus_is_beta_over_one_plus_visits():
    np.testing.assert_allclose(beb_bonus(np.array([0, 1, 3]), 2.0), [2.0, 1.0, 0.5])


def test_beb_plans_on_the_posterior_mean_plus_its_bonus():
    agent = _agent("mdp_beb", beta=2.0, horizon=1)
    assert isinstance(agent, BEB)
    agent.observe(_step([0], [1], [3.0], [1]))
    q = agent.plan(np.array([0]))
    # (0, 1): posterior mean (1 + 3) / 2 = 2, bonus 2 / 2 = 1; unvisited: 1 + 2
    np.testing.assert_allclose(q[0, 0, 0], [3.0, 3.0])


def test_tabula_rl_beb_matches_its_gen_bonus_worked_by_hand():
    # TabulaRL's BEB (S = 3, H = 2, scaling 0.5 -> beta = 2 H^2 0.5 = 4): reward bonus
    # 1 / (precision + 1), transition bonus beta H / (1 + Dirichlet total) per step to go.
    agent = _agent("mdp_beb", beta=0.5, horizon=2, form="tabula_rl")
    agent.observe(_step([0], [1], [3.0], [1]))
    q = agent.plan(np.array([0]))
    # One step to go: (0, 1) visited: mean (1 + 3) / 2 = 2, precision 2 -> 2 + 1/3;
    # unvisited: prior mean 1, precision 1 -> 1 + 1/2; no transition bonus on the last step.
    np.testing.assert_allclose(q[0, 0, 0], [1.5, 2.0 + 1.0 / 3.0])
    # Two steps to go, (0, 0) unvisited (Dirichlet total 3): 1 + 1/2 + 4 * 2 / (1 + 3)
    # + uniform p_hat . V_1, V_1 = (max(1.5, 2 + 1/3), 1.5, 1.5).
    v1 = np.array([2.0 + 1.0 / 3.0, 1.5, 1.5])
    np.testing.assert_allclose(q[0, 1, 0, 0], 1.0 + 0.5 + 2.0 + v1.mean())


def test_greedy_picks_the_best_known_action_on_scripted_data():
    agent = _agent("mdp_greedy", horizon=1)
    for a, r in [(0, -3.0), (0, -3.0), (1, 5.0), (1, 5.0), (1, 5.0)]:
        agent.observe(_step([0], [a], [r], [0], done=[True]))
    # (0, 1): (1 + 15) / 4 = 4 against (0, 0): (1 - 6) / 3 and the prior's 1 elsewhere
    assert all(agent.act(_onehot([0]), np.zeros(1, np.int64))[0] == 1 for _ in range(5))


def test_an_action_is_chosen_for_the_steps_left_in_the_episode():
    agent = _agent("mdp_greedy", horizon=3)
    agent.act(_onehot([0]), np.zeros(1, np.int64))  # plans the episode
    agent.q[0, :, 0] = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]  # best action by steps to go
    chosen = []
    for _ in range(3):
        chosen.append(int(agent.act(_onehot([0]), np.zeros(1, np.int64))[0]))
        agent.observe(_step([0], [0], [0.0], [0]))
    assert chosen == [0, 1, 0]  # 3 steps to go, then 2, then 1


def test_episode_step_counter_restarts_at_episode_ends_and_replans():
    agent = _agent("mdp_greedy", n=2)
    agent.act(_onehot([0, 0]), np.zeros(2, np.int64))
    for _ in range(3):
        agent.observe(_step([0, 0], [0, 0], [0.0, 0.0], [1, 1]))
    np.testing.assert_array_equal(agent.step, [3, 3])
    assert not agent.stale.any()
    agent.observe(_step([1, 1], [0, 0], [0.0, 0.0], [2, 2], done=[True, False]))
    np.testing.assert_array_equal(agent.step, [0, 4])
    np.testing.assert_array_equal(agent.stale, [True, False])
    assert agent.visits[0].sum() == 4  # the trial's counts stay across its episodes


def test_reset_clears_only_the_masked_envs():
    agent = _agent("mdp_psrl", n=2)
    agent.act(_onehot([0, 0]), np.zeros(2, np.int64))
    agent.observe(_step([0, 0], [1, 0], [2.0, 3.0], [1, 2]))
    agent.reset(np.array([True, False]))
    assert agent.visits[0].sum() == 0 and agent.transitions[0].sum() == 0
    assert agent.reward_sum[0].sum() == 0 and agent.step[0] == 0 and agent.stale[0]
    assert agent.visits[1, 0, 0] == 1 and agent.transitions[1, 0, 0, 2] == 1
    assert agent.reward_sum[1, 0, 0] == 3.0 and agent.step[1] == 1 and not agent.stale[1]


def test_invalid_rows_are_ignored():
    agent = _agent("mdp_greedy", n=2)
    agent.act(_onehot([0, 0]), np.zeros(2, np.int64))
    agent.observe(_step([0, 0], [1, 1], [2.0, 2.0], [1, 1], done=[True, True], valid=[True, False]))
    assert agent.visits[1].sum() == 0 and agent.reward_sum[1].sum() == 0
    assert agent.step[1] == 0 and not agent.stale[1]  # no step taken, no episode ended
    assert agent.visits[0, 0, 1] == 1 and agent.stale[0]


def test_a_new_number_of_envs_starts_fresh_trials():
    agent = _agent("mdp_ucrl2", n=2)
    actions = agent.act(_onehot([0, 1, 2]), np.zeros(3, np.int64))
    assert actions.shape == (3,) and agent.visits.shape == (3, S, A)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name):
    agent = _agent(name, n=2, seed=3)
    rng = np.random.default_rng(0)
    for t in range(5):
        s = rng.integers(S, size=2)
        a = agent.act(_onehot(s), np.zeros(2, np.int64))
        agent.observe(_step(s, a, rng.normal(size=2), rng.integers(S, size=2), done=[t == 2] * 2))
    # through a checkpoint's JSON skeleton + arrays, as training saves it
    arrays: dict[str, np.ndarray] = {}
    skeleton = json.loads(json.dumps(split_arrays(agent.state_dict(), arrays)))
    other = _agent(name, n=1, seed=99)
    other.load_state_dict(join_arrays(skeleton, arrays))
    s = np.array([1, 2])
    for _ in range(3):
        np.testing.assert_array_equal(
            agent.act(_onehot(s), np.zeros(2, np.int64)),
            other.act(_onehot(s), np.zeros(2, np.int64)),
        )


@pytest.mark.parametrize("name", NAMES)
def test_evaluating_leaves_no_trace(name):
    agent = _agent(name, n=2)
    before = agent.state_dict()
    with agent.evaluating():
        agent.reset(np.ones(4, bool))
        a = agent.act(_onehot([0, 1, 2, 0]), np.zeros(4, np.int64))
        agent.observe(_step([0, 1, 2, 0], a, [1.0] * 4, [1, 2, 0, 0]))
    after = agent.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        if isinstance(before[key], np.ndarray):
            np.testing.assert_array_equal(after[key], before[key])
        else:
            assert after[key] == before[key]
    assert agent.metric_names() == []


def test_opsrl_with_one_sample_is_psrl():
    psrl = PSRL(PSRLConfig(), S, A, seed=5)
    opsrl = OPSRL(OPSRLConfig(samples=1), S, A, seed=5)
    for agent in (psrl, opsrl):
        agent.reset(np.ones(2, bool))
        agent.observe(_step([0, 1], [1, 0], [2.0, -1.0], [2, 0]))
    np.testing.assert_allclose(opsrl.plan(np.arange(2)), psrl.plan(np.arange(2)))


def test_opsrl_acts_on_the_max_over_samples_of_each_q(monkeypatch):
    monkeypatch.setattr(mdp_baselines, "_SAMPLED_MDPS", 4)  # one env per chunk of 4 samples
    opsrl = OPSRL(OPSRLConfig(samples=4), S, A, seed=1)
    opsrl.reset(np.ones(3, bool))
    opsrl.observe(_step([0, 1, 2], [1, 0, 1], [2.0, -1.0, 0.5], [2, 0, 1]))
    saved = opsrl.rng.bit_generator.state
    q = opsrl.plan(np.arange(3))
    opsrl.rng.bit_generator.state = saved
    for row in range(3):
        reward, transition = opsrl.sample_mdps(np.array([row]), 4)
        each = [backward_induction(reward[:, i], transition[:, i], opsrl.H) for i in range(4)]
        np.testing.assert_allclose(q[row], np.max(each, axis=0)[0])


def test_ucrl2_without_confidence_is_greedy_and_optimistic_with_it():
    greedy = MDPGreedy(MDPGreedyConfig(), S, A, seed=0)
    flat = UCRL2(UCRL2Config(scale=0.0), S, A, seed=0)
    wide = UCRL2(UCRL2Config(scale=0.5), S, A, seed=0)
    for agent in (greedy, flat, wide):
        agent.reset(np.ones(1, bool))
        agent.observe(_step([0], [1], [2.0], [2]))
    rows = np.array([0])
    np.testing.assert_allclose(flat.plan(rows), greedy.plan(rows))
    assert (wide.plan(rows) > greedy.plan(rows)).all()


def test_epsilon_one_acts_uniformly_and_zero_greedily():
    agent = MDPEpsilonGreedy(MDPEpsilonGreedyConfig(epsilon=1.0, horizon=1), S, A, seed=0)
    agent.reset(np.ones(1000, bool))
    agent.observe(_step([0] * 1000, [1] * 1000, [9.0] * 1000, [0] * 1000, done=[True] * 1000))
    actions = agent.act(_onehot([0] * 1000), np.zeros(1000, np.int64))
    assert 400 < (actions == 1).sum() < 600
    agent = MDPEpsilonGreedy(MDPEpsilonGreedyConfig(epsilon=0.0, horizon=1), S, A, seed=0)
    agent.reset(np.ones(1000, bool))
    agent.observe(_step([0] * 1000, [1] * 1000, [9.0] * 1000, [0] * 1000, done=[True] * 1000))
    assert (agent.act(_onehot([0] * 1000), np.zeros(1000, np.int64)) == 1).all()


def test_actions_are_numbered_from_the_spaces_start():
    spec = EnvSpec(SPEC.observation_space, gym.spaces.Discrete(A, start=1), 1)
    for name in ("mdp_random", "mdp_greedy"):
        agent = agent_spec(name).build(agent_spec(name).config(name=name), spec, 0, "cpu")
        agent.reset(np.ones(200, bool))
        actions = agent.act(_onehot([0] * 200), np.zeros(200, np.int64))
        assert set(actions.tolist()) == {1, 2}
    agent.observe(_step([0] * 200, actions, [1.0] * 200, [0] * 200))
    assert agent.visits[:, 0].sum() == 200 and agent.visits[actions == 2, 0, 1].all()


def test_random_draws_every_action():
    agent = _agent("mdp_random", n=500)
    actions = agent.act(_onehot([0] * 500), np.zeros(500, np.int64))
    assert set(actions.tolist()) == {0, 1}


@pytest.mark.parametrize("name", NAMES)
def test_registered_as_baselines_over_trials_of_ten_episodes(name):
    spec = agent_spec(name)
    config = spec.config(name=name)
    assert spec.family == "baseline"
    assert config.trial_episodes() == config.default_eval_episodes() == 10


def test_a_continuous_action_space_is_a_config_error():
    spec = agent_spec("mdp_psrl")
    box = EnvSpec(SPEC.observation_space, gym.spaces.Box(-1, 1, (2,)), 1)
    with pytest.raises(ConfigError, match="Discrete action space"):
        spec.build(spec.config(name="mdp_psrl"), box, 0, "cpu")


def test_config_bounds_are_enforced():
    with pytest.raises(ValueError):
        MDPEpsilonGreedyConfig(epsilon=1.5)
    with pytest.raises(ValueError):
        OPSRLConfig(samples=0)
    with pytest.raises(ValueError):
        BEBConfig(beta=-1.0)


@pytest.fixture(scope="module")
def held_out_mdps():
    """50 held-out tabular-mdp instances (RL² §4.2) and the spaces of their envs."""
    from gmtl_rl.envs import make
    from gmtl_rl.resources import env_spec_of

    distribution = make("tabular-mdp", n_train=1, n_test=50)
    return distribution, env_spec_of(distribution)


def _trial_returns(name: str, held_out_mdps) -> np.ndarray:
    """Total reward of one 10-episode trial on each held-out MDP, through the evaluator."""
    from gmtl_rl.evaluation.adaptation import run_adaptation

    distribution, env = held_out_mdps
    spec = agent_spec(name)
    agent = spec.build(spec.config(name=name), env, 0, "cpu")
    rows = run_adaptation(agent, distribution, distribution.test_tasks(), episodes=10, n_envs=50)
    assert {r.length for r in rows} == {10}
    return np.array([r.episode_return for r in rows]).reshape(50, 10).sum(1)


@pytest.fixture(scope="module")
def random_total(held_out_mdps) -> float:
    total = _trial_returns("mdp_random", held_out_mdps).mean()
    assert 85 < total < 115  # RL² Table 2, n = 10: 100.1 (10 steps × μ ~ N(1, 1) × 10)
    return float(total)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "mdp_random"])
def test_planners_beat_random_over_a_ten_episode_trial_on_held_out_mdps(
    name, held_out_mdps, random_total
):
    # Table 2: 133-150 for the planners; about 135-157 here, random's ± 3 (s.e.)
    assert _trial_returns(name, held_out_mdps).mean() > random_total + 15


def test_a_shipped_config_trains_evaluates_and_reloads_through_the_runner(tmp_path):
    from pathlib import Path

    from gmtl_rl import runner
    from gmtl_rl.config import load_config

    path = Path(__file__).parents[2] / "configs" / "tabular_mdp" / "psrl.yaml"
    run = runner.train(load_config(path, ["env.n_test=20", "eval.n_envs=20"]), tmp_path / "run")
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["agent"] == "mdp_psrl" and summary["num_tasks"] == 20
    assert len(summary["return"]) == 10  # one point per episode of the trial
    out = runner.evaluate(run, episodes=2).out  # the agent comes back from its checkpoint
    assert (out / "summary.json").is_file()


def test_a_planner_horizon_other_than_the_envs_is_a_config_error(tmp_path):
    from pathlib import Path

    from gmtl_rl import runner
    from gmtl_rl.config import load_config

    path = Path(__file__).parents[2] / "configs" / "tabular_mdp" / "psrl.yaml"
    config = load_config(path, ["env.horizon=20", "env.n_test=4"])
    with pytest.raises(ConfigError, match=r"agent.horizon: 10 differs .* 20 \(env.horizon\)"):
        runner.train(config, tmp_path / "run")
