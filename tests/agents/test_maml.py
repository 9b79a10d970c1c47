"""MAML-TRPO (Finn et al. 2017): the 2-D navigation config against the authors' files, the inner
step, second- against first-order meta-gradients, per-env adapted parameters, state round
trips, collection in synchronous rounds, bit-exact resume, Meta-World's meta-learning protocol,
and learning to adapt on held-out 2-D navigation goals."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from benchmark_modules import load_benchmark
from metaworld_rounds import ml1_reach, two_rounds
from trees import assert_tree_equal

from gmtl_rl import checkpoint, runner
from gmtl_rl.agents.maml import (
    MAML,
    MAMLConfig,
    adaptation_by_inner_step,
    build_maml,
    inner_update,
    policy_forward,
)
from gmtl_rl.cli import main
from gmtl_rl.config import RunConfig, load_config
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.core.trials import RoundSchedule
from gmtl_rl.core.trpo import Block, flatten, gaussian_log_prob, pad_block
from gmtl_rl.errors import ConfigError
from gmtl_rl.evaluation.adaptation import AdaptationRow, read_csv
from gmtl_rl.evaluation.stats import stratified_bootstrap_ci

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "configs" / "maml_2d_navigation.yaml"
SMOKE = str(ROOT / "configs" / "smoke" / "maml_2d_navigation.yaml")
AUTHORS_COMMIT = "9c8e2eb"  # cbfinn/maml_rl
BOX = gym.spaces.Box(-0.1, 0.1, shape=(2,), dtype=np.float32)
OBS = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
MIN_LOG_STD = math.log(1e-6)

# configs/maml_2d_navigation.yaml, key path -> (the authors' value, where it is set).
AUTHORS: dict[str, tuple[Any, str]] = {
    "agent.hidden": ([100, 100], "maml_trpo_point.py L38 hidden_sizes=(100,100)"),
    "agent.activation": ("relu", "maml_trpo_point.py L37 tf.nn.relu"),
    "agent.init_std": (1.0, "maml_minimal_gauss_mlp_policy.py L34 init_std=1.0"),
    "agent.min_std": (1e-6, "maml_minimal_gauss_mlp_policy.py L38 min_std=1e-6"),
    "agent.learn_std": (True, "maml_minimal_gauss_mlp_policy.py L33 learn_std=True"),
    "agent.inner_steps": (1, "maml_trpo_point.py L22 num_grad_updates = 1"),
    "agent.inner_lr": (0.5, "maml_trpo_point.py L17; test_maml_point.py L21 'flr_0.5'"),
    "agent.learn_inner_lr": (False, "maml_minimal_gauss_mlp_policy.py L78: a fixed step size"),
    "agent.first_order": (False, "maml_minimal_gauss_mlp_policy.py L46 stop_grad=False"),
    "agent.episodes_per_step": (20, "maml_trpo_point.py L19 fast_batch_size = 20"),
    "agent.trials_per_update": (20, "test_maml_point.py L21 'mbs20' (7fe27d7 sens_trpo_point.py)"),
    "sampler.n_envs": (20, "batch_maml_polopt.py L108: n_envs = meta_batch_size"),
    "agent.outer_optimizer": ("trpo", "maml_trpo.py: ConjugateGradientOptimizer"),
    "agent.max_kl": (0.01, "maml_trpo_point.py L23 meta_step_size = 0.01"),
    "agent.cg_iters": (10, "conjugate_gradient_optimizer.py L127 cg_iters=10"),
    "agent.cg_damping": (1e-5, "conjugate_gradient_optimizer.py L128 reg_coeff=1e-5"),
    "agent.backtrack_ratio": (0.8, "conjugate_gradient_optimizer.py L130 backtrack_ratio=0.8"),
    "agent.max_backtracks": (15, "conjugate_gradient_optimizer.py L131 max_backtracks=15"),
    "agent.gamma": (0.99, "batch_maml_polopt.py L39 discount=0.99"),
    "agent.gae_lambda": (1.0, "batch_maml_polopt.py L40 gae_lambda=1"),
    "agent.center_advantages": (True, "batch_maml_polopt.py L43 center_adv=True"),
    "agent.baseline_reg": (1e-5, "linear_feature_baseline.py L7 reg_coeff=1e-5"),
    "env.horizon": (100, "maml_trpo_point.py L21 max_path_length = 100"),
    "total_episodes": (100 * 20 * 40, "maml_trpo_point.py L54 n_itr=100: 100 x 20 x (20 + 20)"),
    "env.n_test": (40, "test_maml_point.py L26 test_num_goals = 40"),
    "env.test_goals": ("maml", "test_maml_point.py L27-28 np.random.seed(1), uniform"),
    "agent.eval_inner_steps": (3, "test_maml_point.py L54 n_itr = 5; the table: 0-3 steps"),
    "agent.eval_episodes_per_step": (40, "test_maml_point.py L72 batch_size=4000 / 100"),
    "agent.eval_inner_lrs": ([0.5, 0.25], "test_maml_point.py L35, L75: 0.5, then 0.5 x 0.5"),
    "eval.episodes": (160, "4 batches of 40 (0, 1, 2, 3 steps)"),
    "eval.deterministic": (False, "test_maml_point.py: AverageReturn of the sampled batches"),
}
# icml/icml_point_results_{maml,sens0,random,oracle}.pkl: mean over the 40 goals after k steps.
PUBLISHED = {
    "MAML": (-40.41, -11.68, -3.33, -3.23),
    "pretrained": (-40.81, -19.73, -11.72, -8.47),
    "random": (-82.66, -57.96, -53.84, -46.81),
    "oracle": (-2.29,),
}


def _value(config: RunConfig, path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = getattr(node.options if part not in type(node).model_fields else node, part)
    return node


def test_2d_navigation_config_holds_the_authors_values():
    config = load_config(CONFIG)
    wrong = [
        f"{key}: ours {_value(config, key)!r}, authors {value!r} ({where})"
        for key, (value, where) in AUTHORS.items()
        if _value(config, key) != value
    ]
    assert not wrong, "\n".join(wrong)


def test_2d_navigation_config_header_names_the_source_and_the_published_table():
    header = CONFIG.read_text().split("\nexperiment:")[0]
    assert AUTHORS_COMMIT in header and "Deliberate deviations" in header
    for row in PUBLISHED.values():
        for value in row:
            assert f"{value:.2f}" in header


# -- helpers ------------------------------------------------------------------------------------
def _agent(seed: int = 0, **overrides: Any) -> MAML:
    config = MAMLConfig(**{"hidden": [8], **overrides})
    return build_maml(config, EnvSpec(OBS, BOX, 1), seed=seed)


def _step(n: int, reward, done, valid=None, obs=None) -> StepBatch:
    zeros = np.zeros(n, np.int64)
    obs = np.zeros((n, 2), np.float32) if obs is None else np.asarray(obs, np.float32)
    return StepBatch(
        obs=obs,
        action=np.zeros((n, 2), np.float32),
        reward=np.asarray(reward, np.float32),
        next_obs=obs,
        terminated=np.asarray(done, bool),
        truncated=np.zeros(n, bool),
        task_id=zeros,
        task_class=zeros,
        episode_id=zeros,
        step_index=zeros,
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool) if valid is None else np.asarray(valid, bool),
    )


def _random_block(rows: int, steps: int, obs_dim: int = 2, seed: int = 0) -> Block:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(rows, steps)
    mask[0, -1] = 0.0  # a padded step
    return Block(
        torch.randn(rows, steps, obs_dim, generator=g),
        torch.randn(rows, steps, 2, generator=g),
        torch.randn(rows, steps, generator=g),
        mask,
        [],
        [],
    )


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# -- the inner step -------------------------------------------------------------------------------
def test_inner_step_is_the_hand_computed_policy_gradient_step():
    g = torch.Generator().manual_seed(3)
    w, b, log_std = (
        torch.randn(2, 2, generator=g),
        torch.randn(2, generator=g),
        torch.tensor([0.1, -0.2]),
    )
    block = _random_block(1, 5)
    alpha = 0.3
    params = [p[None].requires_grad_() for p in (w, b, log_std)]
    new = inner_update(
        params, [torch.full((1,), alpha)] * 3, block, "relu", MIN_LOG_STD, False, [True] * 3
    )
    # By hand (Finn et al. 2017 eq. 4 with rllab's loss -mean_t log π(a_t|s_t) A_t), 4 real steps.
    s, a, adv = block.obs_BTD[0, :4], block.sample_BTA[0, :4], block.adv_BT[0, :4]
    mu, var = s @ w + b, torch.exp(2 * log_std)
    dlogp_dmu = (a - mu) / var  # [T, A]
    grad_mu = -(adv[:, None] * dlogp_dmu) / 4
    grad_w, grad_b = s.T @ grad_mu, grad_mu.sum(0)
    grad_log_std = -(adv[:, None] * ((a - mu) ** 2 / var - 1)).sum(0) / 4
    torch.testing.assert_close(new[0][0].detach(), w - alpha * grad_w)
    torch.testing.assert_close(new[1][0].detach(), b - alpha * grad_b)
    torch.testing.assert_close(new[2][0].detach(), log_std - alpha * grad_log_std)


def _manual_log_prob(params, obs, act):
    w0, b0, w1, b1, log_std = params
    mu = torch.tanh(obs @ w0 + b0) @ w1 + b1
    return gaussian_log_prob(act, mu, log_std)


def _manual_meta_gradient(agent: MAML, pre: Block, last: Block, first_order: bool):
    """The outer loss -mean_t log π_φ(a|s) A on `last` through an inner step written out with
    plain autograd, trial by trial (no batching over trials)."""
    theta = [p.detach().clone().requires_grad_() for p in agent.theta]
    alpha = agent.config.inner_lr
    outer = []
    for i in range(pre.obs_BTD.shape[0]):
        m = pre.mask_BT[i] > 0
        inner = -(
            _manual_log_prob(theta, pre.obs_BTD[i][m], pre.sample_BTA[i][m]) * pre.adv_BT[i][m]
        ).mean()
        grads = torch.autograd.grad(inner, theta, create_graph=not first_order)
        phi = [
            p - alpha * (g.detach() if first_order else g)
            for p, g in zip(theta, grads, strict=True)
        ]
        m = last.mask_BT[i] > 0
        logp = _manual_log_prob(phi, last.obs_BTD[i][m], last.sample_BTA[i][m])
        outer.append(-(logp * last.adv_BT[i][m]).mean())
    return torch.autograd.grad(torch.stack(outer).mean(), theta)


def _forward(agent: MAML, params, obs_STD: torch.Tensor):
    return policy_forward(params, obs_STD, agent.config.activation, agent.min_log_std)


def _meta_gradient(agent: MAML, pre: Block, last: Block, first_order: bool):
    phi = agent.adapted_params([pre], pre.obs_BTD.shape[0], create_graph=not first_order)
    mean, log_std = _forward(agent, phi, last.obs_BTD)
    logp = gaussian_log_prob(last.sample_BTA, mean, log_std.unsqueeze(1))
    loss = -((logp * last.adv_BT * last.mask_BT).sum(1) / last.count_B).mean()
    return torch.autograd.grad(loss, agent.theta)


def test_second_order_meta_gradient_matches_autograd_through_a_manual_inner_step():
    agent = _agent(hidden=[6], activation="tanh", inner_lr=0.3)
    pre, last = _random_block(3, 7, seed=1), _random_block(3, 6, seed=2)
    second = _meta_gradient(agent, pre, last, first_order=False)
    for ours, manual in zip(second, _manual_meta_gradient(agent, pre, last, False), strict=True):
        torch.testing.assert_close(ours, manual, rtol=1e-4, atol=1e-6)
    first = _meta_gradient(agent, pre, last, first_order=True)
    for ours, manual in zip(first, _manual_meta_gradient(agent, pre, last, True), strict=True):
        torch.testing.assert_close(ours, manual, rtol=1e-4, atol=1e-6)
    gap = (flatten(list(second)) - flatten(list(first))).norm()
    assert gap > 0.05 * flatten(list(second)).norm()  # the Hessian term is not negligible


# -- per-env adapted parameters ---------------------------------------------------------------
def test_slots_adapt_independently_and_reset_to_theta_at_a_trial_start():
    agent = _agent(episodes_per_step=1, inner_steps=1)
    agent.reset(np.ones(3, bool))
    theta = [p.detach() for p in agent.theta]
    rng = np.random.default_rng(0)
    done_at = {1: [True, False, False], 3: [False, True, False]}  # slot 2 never ends
    seen: list[dict[str, np.ndarray]] = []
    for t in range(5):
        obs = rng.normal(size=(3, 2)).astype(np.float32)
        agent.act(obs, np.zeros(3, np.int64))
        assert agent.last_act is not None
        seen.append({"obs": obs, "sample": agent.last_act.sample_NA.copy()})
        reward = rng.normal(size=3)
        # slot 2's episode end arrives on an invalid row: it is no transition, so no step
        valid = [True, True, t != 2]
        agent.observe(_step(3, reward, done_at.get(t, [False, False, t == 2]), valid, obs))
        seen[-1]["reward"] = reward
        slot = [[p[i] for p in agent.slot_params] for i in range(3)]
        assert _same(slot[2], theta)
        assert _same(slot[1], theta) == (t < 3)
        assert _same(slot[0], theta) == (t < 1)
    # slot 0's adapted parameters are the inner step on its own two steps alone
    rows = [
        {
            "obs": np.stack([seen[t]["obs"][0] for t in (0, 1)]),
            "sample": np.stack([seen[t]["sample"][0] for t in (0, 1)]),
            "reward": np.array([seen[t]["reward"][0] for t in (0, 1)], np.float32),
            "done": np.array([False, True]),
        }
    ]
    c = agent.config
    block = pad_block(rows, c.gamma, c.gae_lambda, c.baseline_reg, c.center_advantages)
    params = [p.detach()[None].requires_grad_() for p in agent.theta]
    expected = inner_update(
        params, [torch.full((1,), c.inner_lr)] * len(params), block, c.activation, MIN_LOG_STD,
        False, agent.adapted,
    )  # fmt: skip
    for got, want in zip([p[0] for p in agent.slot_params], expected, strict=True):
        torch.testing.assert_close(got, want[0].detach())
    adapted_1 = [p[1].clone() for p in agent.slot_params]
    agent.reset(np.array([True, False, False]))
    assert _same([p[0] for p in agent.slot_params], theta)
    assert _same([p[1] for p in agent.slot_params], adapted_1)


def test_adapt_ends_the_block_early_on_its_whole_episodes_only():
    """Meta-World's `adapt()`: the inner step now, on the whole episodes of the block so far;
    the episode in flight is left out; slots without a whole episode wait."""
    agent = _agent(episodes_per_step=5, inner_steps=1)
    agent.reset(np.ones(2, bool))
    rng = np.random.default_rng(2)
    seen = []
    for done in ([False, False], [True, False], [False, False]):  # slot 0: 1 episode + 1 step
        obs = rng.normal(size=(2, 2)).astype(np.float32)
        agent.act(obs, np.zeros(2, np.int64))
        assert agent.last_act is not None
        seen.append((obs[0], agent.last_act.sample_NA[0].copy()))
        agent.observe(_step(2, [1.0, -1.0], done, obs=obs))
    agent.adapt()
    assert agent.block_N.tolist() == [1, 0]
    c = agent.config
    rows = [
        {
            "obs": np.stack([o for o, _ in seen[:2]]),
            "sample": np.stack([a for _, a in seen[:2]]),
            "reward": np.ones(2, np.float32),
            "done": np.array([False, True]),
        }
    ]
    block = pad_block(rows, c.gamma, c.gae_lambda, c.baseline_reg, c.center_advantages)
    params = [p.detach()[None].requires_grad_() for p in agent.theta]
    lrs = [torch.full((1,), c.inner_lr)] * len(params)
    expected = inner_update(params, lrs, block, c.activation, MIN_LOG_STD, False, agent.adapted)
    for got, want in zip([p[0] for p in agent.slot_params], expected, strict=True):
        torch.testing.assert_close(got, want[0].detach())


def test_deterministic_acting_samples_blocks_that_feed_an_inner_step():
    agent = _agent(episodes_per_step=1, inner_steps=1)
    agent.reset(np.ones(2, bool))
    obs = np.ones((2, 2), np.float32)
    agent.act(obs, np.zeros(2, np.int64), deterministic=True)
    assert agent.last_act is not None
    mean = _forward(agent, agent.slot_params, torch.as_tensor(obs)[:, None])[0][:, 0].numpy()
    assert not np.allclose(agent.last_act.sample_NA, mean)
    agent.observe(_step(2, [1.0, 0.0], [True, False]))  # slot 0 adapts: its last block
    agent.act(obs, np.zeros(2, np.int64), deterministic=True)
    mean = _forward(agent, agent.slot_params, torch.as_tensor(obs)[:, None])[0][:, 0].numpy()
    np.testing.assert_allclose(agent.last_act.sample_NA[0], mean[0])
    assert not np.allclose(agent.last_act.sample_NA[1], mean[1])


def test_actions_are_the_normalised_sample_mapped_onto_the_box_and_clipped():
    agent = _agent(init_std=5.0)
    actions = agent.act(np.zeros((64, 2), np.float32), np.zeros(64, np.int64))
    assert agent.last_act is not None
    expected = 0.1 * np.clip(agent.last_act.sample_NA, -1, 1)
    np.testing.assert_allclose(actions, expected, rtol=1e-6)
    assert (np.abs(agent.last_act.sample_NA) > 1).any()


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    steps = [
        (rng.normal(size=(2, 2)).astype(np.float32), rng.normal(size=2), [t % 3 == 2, t == 4])
        for t in range(9)
    ]
    a = _agent(seed=0, episodes_per_step=1, inner_steps=2)
    a.reset(np.ones(2, bool))
    for obs, reward, done in steps[:4]:
        a.act(obs, np.zeros(2, np.int64))
        a.observe(_step(2, reward, done, obs=obs))
    b = _agent(seed=7, episodes_per_step=1, inner_steps=2)
    b.load_state_dict(a.state_dict())
    for obs, reward, done in steps[4:]:
        acts = [x.act(obs, np.zeros(2, np.int64)) for x in (a, b)]
        np.testing.assert_array_equal(acts[0], acts[1])
        for x in (a, b):
            x.observe(_step(2, reward, done, obs=obs))
    assert_tree_equal(a.state_dict(), b.state_dict())


def test_unbounded_box_actions_are_a_config_error():
    space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    with pytest.raises(ConfigError, match="bounded 1-d Box"):
        build_maml(MAMLConfig(), EnvSpec(OBS, space, 1))


# -- the trials loop: synchronous rounds, resume ---------------------------------------------
def test_round_schedule_hands_out_exactly_one_meta_batch_and_round_trips():
    schedule = RoundSchedule(UniformTaskSchedule(10, np.random.default_rng(0)), trials=3)
    tasks = [schedule.next_task(i % 2) for i in range(5)]
    assert all(t is not None for t in tasks[:3]) and tasks[3:] == [None, None]
    copy = RoundSchedule(UniformTaskSchedule(10, np.random.default_rng(99)), trials=3)
    copy.load_state_dict(schedule.state_dict())
    assert copy.started == 3
    schedule.started = copy.started = 0
    assert [schedule.next_task(0) for _ in range(3)] == [copy.next_task(0) for _ in range(3)]


def test_every_meta_update_sees_only_finished_trials_of_the_current_parameters(
    tmp_path, monkeypatch
):
    seen = []
    update = MAML.update

    def checked(self: MAML, batch):
        # every env finished its trial of this round (its last block complete) and none started
        seen.append((self.block_N.copy(), self.episodes_N.copy(), batch.num_trials))
        return update(self, batch)

    monkeypatch.setattr(MAML, "update", checked)
    config = load_config(SMOKE, ["sampler.n_envs=2", "total_steps=640"])
    runner.train(config, tmp_path / "run")
    assert len(seen) == 2
    for block, episodes, trials in seen:
        assert trials == config.agent.trials_per_update  # type: ignore[attr-defined]
        assert (block == 1).all() and (episodes == 2).all()


@pytest.mark.parametrize("optimizer", ["trpo", "adam"])
def test_without_inner_steps_the_meta_update_is_plain_trpo_or_adam(tmp_path, optimizer):
    """inner_steps 0: the authors' use_maml=False (Adam) pretraining and trpo_point.py's TRPO."""
    overrides = ["agent.inner_steps=0", f"agent.outer_optimizer={optimizer}", "total_steps=320"]
    run = runner.train(load_config(SMOKE, overrides), tmp_path / "run")
    agent = checkpoint.load_latest(run / "checkpoints").agent["agent"]
    assert agent["updates"] == 2  # rounds of 4 tasks x 2 episodes x 20 steps = 160
    assert not torch.equal(agent["theta"][0], _agent(hidden=[16, 16]).theta[0])


def test_learnt_inner_step_sizes_move_with_the_meta_update(tmp_path):
    run = runner.train(load_config(SMOKE, ["agent.learn_inner_lr=true"]), tmp_path / "run")
    lrs = checkpoint.load_latest(run / "checkpoints").agent["agent"]["lrs"]
    assert all(float(lr) != 0.5 for lr in lrs)


def test_the_meta_update_recomputes_the_adapted_policy_that_sampled(tmp_path, monkeypatch):
    """φ(θ_old) rebuilt from the stored pre-update blocks gives the log-probs the adapted
    slots sampled with: the likelihood ratio is 1 at θ_old (2 inner steps, envs on the
    batched and the sync backend)."""
    gaps = []
    update = MAML.update

    def checked(self: MAML, batch):
        blocks, old_logp = self.trial_blocks(batch)
        with torch.enable_grad():
            phi = self.adapted_params(blocks[:-1], batch.num_trials, False)
        last = blocks[-1]
        with torch.no_grad():
            mean, log_std = policy_forward(phi, last.obs_BTD, "relu", self.min_log_std)
            logp = gaussian_log_prob(last.sample_BTA, mean, log_std.unsqueeze(1))
        gaps.append(float(((logp - old_logp).abs() * last.mask_BT).max()))
        return update(self, batch)

    monkeypatch.setattr(MAML, "update", checked)
    for backend in ("batched", "sync"):
        overrides = ["agent.inner_steps=2", "total_steps=480", f"sampler.backend={backend}"]
        runner.train(load_config(SMOKE, overrides), tmp_path / backend)
    assert len(gaps) == 2 and max(gaps) < 1e-4


def test_more_envs_than_trials_per_round_is_a_config_error(tmp_path):
    config = load_config(SMOKE, ["sampler.n_envs=8"])
    with pytest.raises(ConfigError, match=r"sampler\.n_envs"):
        runner.train(config, tmp_path / "run")


def test_split_run_resumed_in_a_new_process_matches_the_straight_run_bit_for_bit(tmp_path):
    common = ["total_steps=960", "checkpoint.every_steps=0", "eval.bootstrap_resamples=100"]
    assert main(["train", SMOKE, *common, "--run-dir", str(tmp_path / "straight")]) == 0
    split = tmp_path / "split"
    # 500 env steps: mid-round (a round is 4 trials x 4 episodes x 20 steps = 320), mid-block
    assert main(["train", SMOKE, *common, "total_steps=500", "--run-dir", str(split)]) == 0
    held = checkpoint.load_latest(split / "checkpoints")
    assert len(held.state["loop"]["buffer"]["steps"]["valid"]) > 0  # trials in flight
    done = subprocess.run(
        [sys.executable, "-m", "gmtl_rl.cli", "resume", str(split), "total_steps=960"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    def final(run: Path) -> dict[str, Any]:
        return checkpoint.load_latest(run / "checkpoints").agent["agent"]

    straight, resumed = final(tmp_path / "straight"), final(split)
    assert straight["updates"] == resumed["updates"] == 3
    assert_tree_equal(straight, resumed)  # exact: atol 0


# -- evaluation ----------------------------------------------------------------------------------
def test_adaptation_rows_regroup_by_inner_step_with_the_episodes_each_consumed():
    rows = [
        AdaptationRow(
            "r", 0, task, task, 0, episode, float(episode + 10 * task), float(episode > 2), 5
        )
        for task in range(2)
        for episode in range(1, 7)
    ]
    points = adaptation_by_inner_step(rows, episodes_per_step=2)
    assert [p.inner_steps for p in points] == [0, 1, 2]
    assert [p.episodes_consumed for p in points] == [0, 2, 4]
    assert [(p.first_episode, p.last_episode) for p in points] == [(1, 2), (3, 4), (5, 6)]
    assert [p.episode_return for p in points] == [6.5, 8.5, 10.5]
    assert [p.success for p in points] == [0.0, 1.0, 1.0]


def test_maml_adapts_for_real_under_metaworld_metalearning_evaluation():
    """Meta-World's protocol: one trial per round; the adaptation episode feeds an inner step,
    so the scored episode is acted by adapted parameters."""
    ml1 = ml1_reach()
    env = ml1.make_env()
    agent = build_maml(
        MAMLConfig(hidden=[8], eval_inner_steps=1, eval_episodes_per_step=1),
        EnvSpec(env.observation_space, env.action_space, 1),
    )
    env.close()
    agent.evaluation_mode()
    steps: list[np.ndarray] = []
    inner_step = agent._inner_step

    def recording(slots, whole_episodes_only=False):
        steps.append(np.asarray(slots).copy())
        inner_step(slots, whole_episodes_only)

    agent._inner_step = recording  # type: ignore[method-assign]
    result = two_rounds(agent, ml1)
    assert 0.0 <= result.mean_success <= 1.0
    assert sorted(int(s) for slots in steps for s in slots) == [0, 0, 1, 1]  # 1 per env, round
    theta = [p.detach() for p in agent.theta]
    assert not any(_same([p[i] for p in agent.slot_params], theta) for i in range(2))


# -- learning ------------------------------------------------------------------------------------
LEARNING = [
    "agent.episodes_per_step=10", "agent.trials_per_update=10", "sampler.n_envs=10",
    "total_episodes=2400", "agent.eval_inner_steps=1", "agent.eval_episodes_per_step=20",
    "eval.episodes=40", "eval.n_envs=40", "checkpoint.every_steps=0", "logging.every_steps=50000",
]  # fmt: skip


def _best_fixed_point_return(goals: np.ndarray, horizon: int) -> float:
    """-horizon × min_s mean_g ‖s - g‖ (Weiszfeld's geometric median): the return of the best
    position a policy that ignores the rewards could hold on these goals (it reaches a goal
    only by luck, so termination is ignored)."""
    s = goals.mean(0)
    for _ in range(200):
        d = np.maximum(np.linalg.norm(goals - s, axis=1), 1e-12)
        s = (goals / d[:, None]).sum(0) / (1 / d).sum()
    return -horizon * float(np.linalg.norm(goals - s, axis=1).mean())


def test_maml_adapts_on_held_out_2d_navigation_goals(tmp_path):
    """12 meta-iterations of 10 tasks x (10 + 10) episodes (of the config's 100 x 20 x 40), then
    on the authors' 40 test goals one inner step on 20 episodes: the return after it beats the
    return before it and the best non-adaptive position, goal by goal (95% intervals > 0).
    Measured (2 shared cores, about 50 s each): seed 0 -44.9 before, -21.1 after; seeds 1 and 2
    -42.9 -> -17.1 and -42.8 -> -16.9; the bound on these goals is -38.9."""
    config = load_config(CONFIG, LEARNING)
    run = runner.train(config, tmp_path / "maml")
    points = adaptation_by_inner_step(read_csv(run / "eval" / "adaptation.csv"), 20)
    rows = read_csv(run / "eval" / "adaptation.csv")
    by_step = np.zeros((2, 40))
    for r in rows:
        by_step[(r.episode - 1) // 20, r.task] += r.episode_return / 20
    goals = np.array([t["goal"] for t in config.env.build().test_tasks()])
    bound = _best_fixed_point_return(goals, 100)
    pool = np.zeros(40)  # the goals resampled as one pool (one value per goal)
    gain = stratified_bootstrap_ci(by_step[1] - by_step[0], pool, "mean")
    over_bound = stratified_bootstrap_ci(by_step[1] - bound, pool, "mean")
    report = f"{points}; non-adaptive bound {bound:.2f}"
    assert gain[0] > 0, report
    assert over_bound[0] > 0, report


# -- the benchmark's model of the authors' evaluation batches -----------------------------------
def _lockstep_batch_mean(lengths, returns, rng, envs=40, budget=4000):  # type: ignore[no-untyped-def]
    """rllab's VectorizedSampler.obtain_samples written out as its loop: `envs` envs step
    together, a finished path adds its length to n_samples and its env starts another; the
    loop stops once n_samples >= budget; paths in progress are dropped."""
    n, got = 0, []
    current = rng.integers(len(lengths), size=envs)
    left = lengths[current].copy()
    while n < budget:
        left -= 1
        for i in np.flatnonzero(left == 0):
            n += lengths[current[i]]
            got.append(returns[current[i]])
            current[i] = rng.integers(len(lengths))
            left[i] = lengths[current[i]]
    return float(np.mean(got))


def test_rllab_batch_mean_follows_the_authors_sampler_loop():
    bench = load_benchmark("maml_2d_navigation")
    rng = np.random.default_rng(0)
    # One kind of episode: every batch is 40 whole paths of it.
    assert bench.rllab_batch_mean(np.full(5, 100), np.full(5, -7.0), rng) == -7.0
    # Half end early at the goal (10 steps, return 0), half run out (100 steps, return -10):
    # counted by episodes the mean is -5; a 4000-step batch holds more of the short ones.
    lengths = np.array([10] * 20 + [100] * 20)
    returns = np.array([0.0] * 20 + [-10.0] * 20)
    vectorised = bench.rllab_batch_mean(lengths, returns, rng, sims=2000)
    loop = np.mean([_lockstep_batch_mean(lengths, returns, rng) for _ in range(300)])
    assert vectorised > -4.5
    assert abs(vectorised - loop) < 0.1
