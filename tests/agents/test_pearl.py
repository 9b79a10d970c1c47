"""PEARL: the posterior (eq. 5), the KL bottleneck (eq. 4), online adaptation at evaluation,
where its context comes from in training, and exact resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from trees import assert_tree_equal

from gmtl_rl import checkpoint
from gmtl_rl.agents.pearl import PEARL, PEARLConfig
from gmtl_rl.cli import main
from gmtl_rl.config import load_config
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.envs import make
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.pearl import PEARLRun

SMOKE = Path(__file__).parents[2] / "configs" / "smoke" / "pearl_point_robot.yaml"


def _agent(**overrides) -> PEARL:
    env = make("point-robot").make_env()
    spec = EnvSpec(env.observation_space, env.action_space, 1)
    torch.manual_seed(0)
    return PEARL(PEARLConfig(hidden=[16], encoder_hidden=[16], **overrides), spec)


def _step(n: int, done: np.ndarray, reward: float = -1.0, valid=None) -> StepBatch:
    z = np.zeros(n, np.int64)
    return StepBatch(
        obs=np.full((n, 2), 0.5, np.float32),
        action=np.full((n, 2), 0.05, np.float32),
        reward=np.full(n, reward, np.float32),
        next_obs=np.full((n, 2), 0.55, np.float32),
        terminated=np.zeros(n, bool),
        truncated=done,
        task_id=z,
        task_class=z,
        episode_id=z,
        step_index=z,
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool) if valid is None else valid,
    )


def test_posterior_is_the_product_of_the_gaussian_factors():
    agent = _agent()
    context = torch.randn(3, 7, agent.context_dim)
    mu, var = agent.posterior(context)
    out = agent.encoder(context)
    m, v = out[..., :5], torch.nn.functional.softplus(out[..., 5:])
    # Product of N(m_n, v_n): precision adds, the mean is precision-weighted (eq. 5).
    expected_var = 1.0 / (1.0 / v).sum(1)
    expected_mu = expected_var * (m / v).sum(1)
    torch.testing.assert_close(var, expected_var)
    torch.testing.assert_close(mu, expected_mu)
    # Permutation invariant, and masked rows count for nothing.
    mu_perm, _ = agent.posterior(context[:, torch.randperm(7)])
    torch.testing.assert_close(mu, mu_perm)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[:, 7:] = False
    padded = torch.cat([context, 100 * torch.randn(3, 2, agent.context_dim)], 1)
    torch.testing.assert_close(agent.posterior(padded, mask)[0], mu)
    # An empty context is the prior.
    prior_mu, prior_var = agent.posterior(context, torch.zeros(3, 7, dtype=torch.bool))
    assert torch.all(prior_mu == 0) and torch.all(prior_var == 1)


def test_kl_matches_torch_distributions():
    mu, var = torch.randn(4, 5), torch.rand(4, 5) + 0.1
    post = torch.distributions.Normal(mu, var.sqrt())
    prior = torch.distributions.Normal(torch.zeros(5), torch.ones(5))
    expected = torch.distributions.kl_divergence(post, prior).sum()
    torch.testing.assert_close(PEARL.kl_to_prior(mu, var), expected)


def test_adapt_mode_explores_with_a_fresh_prior_z_per_episode_then_its_own_posterior():
    """oyster's collect_paths: `sample_z` after every trajectory, from the prior until
    `num_exp_traj_eval` trajectories are done (posterior sampling), then from the posterior
    re-inferred from the trial's own context. One z for all exploration episodes made them
    copies of each other under deterministic evaluation (found on sparse-point-robot)."""
    agent = _agent(eval_exploration_episodes=2)
    agent.reset(np.ones(3, bool))
    z0 = agent.z.copy()
    not_done = np.zeros(3, bool)
    agent.observe(_step(3, not_done))
    ends = np.array([True, True, False])
    posteriors = []
    original = agent.posterior
    agent.posterior = lambda *a, **k: posteriors.append(1) or original(*a, **k)  # type: ignore
    agent.observe(_step(3, ends))  # episode 1 ends in envs 0 and 1: a new prior z, still exploring
    assert not posteriors  # drawn from the prior, not inferred
    assert not np.allclose(agent.z[:2], z0[:2]) and np.array_equal(agent.z[2], z0[2])
    z1 = agent.z.copy()
    agent.observe(_step(3, ends))  # episode 2 ends: the posterior of 3 rows takes over
    assert posteriors
    assert not np.allclose(agent.z[:2], z1[:2]) and np.allclose(agent.z[2], z0[2])
    assert agent._ctx_len.tolist() == [3, 3, 3]
    # Invalid rows (NEXT_STEP dummies) are not context; reset clears only the masked envs.
    agent.observe(_step(3, not_done, valid=np.array([True, False, True])))
    assert agent._ctx_len.tolist() == [4, 3, 4]
    agent.reset(np.array([False, True, False]))
    assert agent._ctx_len.tolist() == [4, 0, 4]


def test_posterior_depends_on_the_context_rewards():
    """The check above can fail: two contexts that differ only in reward give different z."""
    agent = _agent(eval_exploration_episodes=0)
    agent.reset(np.ones(2, bool))
    torch.manual_seed(1)
    agent.observe(_step(2, np.ones(2, bool), reward=-1.0))
    z_a = agent.z.copy()
    agent.reset(np.ones(2, bool))
    torch.manual_seed(1)
    agent.observe(_step(2, np.ones(2, bool), reward=+1.0))
    assert not np.allclose(z_a, agent.z)


def _run(tmp_path: Path, *overrides: str) -> PEARLRun:
    config = load_config(SMOKE, list(overrides))
    tmp_path.mkdir(parents=True, exist_ok=True)
    return PEARLRun(config, tmp_path, config.env.build())


def test_a_tasks_context_is_its_latest_prior_collection_only(tmp_path):
    run = _run(tmp_path)
    try:
        for task in range(4):
            run._collect_task(task, initial=True)
        first = run.replay.batch(run.contexts.rows(2))
        run._collect_task(2, initial=False)
        rows = run.contexts.rows(2)
        cfg = run.agent_config
        assert len(rows) == cfg.steps_prior  # whole episodes: 20 = one episode of 20 steps
        ids = run.replay.columns["episode_id"]
        newest = run.replay.recent_rows(2, cfg.steps_prior + cfg.steps_extra_posterior)
        tail = np.setdiff1d(newest, rows)
        # Prior rows of the latest collection; the posterior-z rows after them are RL-only.
        assert len(tail) == cfg.steps_extra_posterior
        assert ids[rows].max() < ids[tail].min()
        assert (ids[rows] > ids[first.rows].max()).all()  # the earlier context is replaced
        assert (run.replay.columns["task_id"][rows] == 2).all()
    finally:
        run.close()


def test_sparse_context_needs_a_family_with_a_sparse_reward(tmp_path):
    with pytest.raises(ConfigError, match=r"agent\.sparse_context"):
        _run(tmp_path, "agent.sparse_context=true")


def test_sparse_point_robot_meta_tests_on_sparse_reward():
    family = make("sparse-point-robot")
    dense = np.array([-0.5, -0.15, -0.2, 0.0], np.float32)
    np.testing.assert_allclose(family.sparse_reward(dense), [0.0, 0.85, 0.8, 1.0])
    env = family.make_env(family.test_tasks()[0])
    env.reset(seed=0)
    _, reward, *_, info = env.step(np.zeros(2, np.float32))
    assert reward == info["sparse_reward"] == 0.0  # start (0,0) is 1 away from every goal
    train_env = family.make_env(family.train_tasks()[0])
    train_env.reset(seed=0)
    assert train_env.step(np.zeros(2, np.float32))[1] == pytest.approx(-1.0)


def _final_agent(run_dir: Path) -> dict:
    return checkpoint.load_latest(run_dir / "checkpoints").agent["agent"]


def test_split_run_resumed_in_a_new_process_matches_the_straight_run(tmp_path):
    common = ["checkpoint.every_steps=0", "agent.updates_per_iteration=4"]
    assert main(["train", str(SMOKE), *common, "total_steps=200",
                 "--run-dir", str(tmp_path / "straight")]) == 0  # fmt: skip
    split = tmp_path / "split"
    assert main(["train", str(SMOKE), *common, "total_steps=120", "--run-dir", str(split)]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "gmtl_rl.cli", "resume", str(split), "total_steps=200"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    straight, resumed = _final_agent(tmp_path / "straight"), _final_agent(split)
    assert straight["updates"] == resumed["updates"] == 8
    assert_tree_equal(straight, resumed, atol=1e-6)


def test_a_run_stopped_between_updates_resumes_exactly(tmp_path):
    """Signalled mid-iteration: the checkpoint holds the iteration's progress (collected,
    updates done), and the resumed run does the remaining updates on the same batches."""
    straight = _run(tmp_path / "straight", "total_steps=240", "agent.updates_per_iteration=6")
    straight.train()
    stopped = _run(tmp_path / "stopped", "total_steps=240", "agent.updates_per_iteration=6")
    original = stopped.record_update

    def update_then_signal(metrics, batch=None) -> None:
        original(metrics, batch)
        if stopped.counters.updates == 8:  # iteration 2, update 2 of 6
            stopped._stop_signal = 15

    stopped.record_update = update_then_signal  # type: ignore[method-assign]
    with pytest.raises(Exception, match="SIGTERM"):
        stopped.train()
    ckpt = checkpoint.load_latest(tmp_path / "stopped" / "checkpoints")
    assert ckpt.state["loop"]["iteration_updates"] == 2 and ckpt.state["loop"]["collected"]
    resumed = _run(tmp_path / "stopped", "total_steps=240", "agent.updates_per_iteration=6")
    resumed.load_checkpoint(ckpt)
    resumed.train(resumed=True)
    assert_tree_equal(_final_agent(tmp_path / "straight"), _final_agent(tmp_path / "stopped"))


def test_parallel_envs_collect_whole_episodes_up_to_the_budget_not_one_per_env(tmp_path):
    """oyster collects `steps` in whole trajectories; 5 parallel envs must not make that 5
    episodes when 2 are enough (horizon 20)."""
    run = _run(tmp_path, "sampler.n_envs=5")
    try:
        for budget, expected in ((40, 40), (50, 60), (100, 100), (7, 20)):
            before = run.counters.env_steps
            run._collect(0, budget, "prior", as_context=True)
            assert run.counters.env_steps - before == expected, budget
    finally:
        run.close()


def test_tasks_whose_data_left_the_replay_are_not_drawn_for_a_meta_batch(tmp_path):
    """One FIFO replay for all tasks: a task not collected for long loses its rows (oyster's
    per-task buffers never do), and must then not be drawn."""
    run = _run(tmp_path, "agent.buffer_size=60", "agent.meta_batch=8")
    try:
        for task in range(4):
            run._collect_task(task, initial=True)  # 4 × 20 rows into 60: task 0 is gone
        assert not run.contexts.has_data(0) and run.contexts.has_data(3)
        for _ in range(20):
            assert all(
                run.contexts.has_data(int(t))
                for t in run.contexts.draw_tasks(run.agent_config.meta_batch)
            )
        run.agent.update(run._meta_batch())  # and the update runs on what is there
    finally:
        run.close()


def test_posterior_collection_without_prior_collection_is_refused():
    with pytest.raises(ConfigError, match="steps_prior must be > 0"):
        load_config(SMOKE, ["agent.steps_prior=0"])


def test_a_posterior_collection_starts_with_one_prior_episode_then_infers_per_episode():
    """oyster's collect_data starts with `clear_z` (prior z) and infers the posterior from a
    fresh context batch after each trajectory: a posterior collection's first episode acts on
    prior z, every other one on the posterior of its own context batch. With parallel envs
    only one starts on the prior (all of them did, so posterior-z data was never collected
    with several envs and short collections)."""
    agent = _agent()
    calls = []
    source = lambda: calls.append(1) or np.ones((4, agent.context_dim), np.float32)  # noqa: E731
    agent.set_mode("posterior", source)
    torch.manual_seed(0)
    agent.reset(np.ones(3, bool))
    assert len(calls) == 1  # envs 1 and 2: one context batch, one posterior
    prior_z = agent.z[0].copy()
    torch.manual_seed(0)
    assert np.allclose(prior_z, torch.randn(1, agent.config.latent_dim).numpy())  # env 0: prior
    agent.reset(np.array([True, False, False]))  # env 0 starts its second episode
    assert len(calls) == 2  # from the posterior of a new context batch
    agent.set_mode("posterior", source)  # a new collection starts from the prior again
    agent.reset(np.array([True, False, False]))
    assert len(calls) == 2


def test_context_drawn_during_a_collection_takes_no_rl_only_rows_and_keeps_its_oldest(tmp_path):
    """A task's context is its prior (and posterior-as-context) collection; rows of an
    RL-only collection in progress must not enter it (oyster keeps them out of the encoder
    buffer), and rows of a context collection in progress join it (oyster adds each
    trajectory before inferring the next posterior). Counting the window only at the end of a
    collection let it slide over the newest rows."""
    run = _run(tmp_path, "agent.steps_posterior=20")
    try:
        run._collect_task(0, initial=True)  # 20 prior rows: task 0's context
        prior = run.contexts.rows(0).copy()
        seen: list[np.ndarray] = []
        original = run.contexts.collected

        def collect_and_look(rows: int) -> None:  # after every sampler step of a collection
            original(rows)
            seen.append(run.contexts.rows(0).copy())

        run.contexts.collected = collect_and_look  # type: ignore[method-assign]
        run._collect(0, 20, "posterior", as_context=False)  # RL-only rows
        assert all(np.array_equal(rows, prior) for rows in seen)
        seen.clear()
        run._collect(0, 20, "posterior", as_context=True)  # context rows
        ids = run.replay.columns["episode_id"]
        for k, rows in enumerate(seen, start=1):
            assert np.array_equal(rows[: len(prior)], prior)  # the oldest context stays
            assert len(rows) == len(prior) + k  # and the rows so far join it
            assert ids[rows[len(prior) :]].min() > ids[prior].max()
    finally:
        run.close()


def test_the_end_of_run_summary_says_which_episodes_were_exploration(tmp_path, capsys):
    assert main(["train", str(SMOKE), "--run-dir", str(tmp_path / "run"),
                 "agent.eval_exploration_episodes=2"]) == 0  # fmt: skip
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("eval on"))
    assert "(k=1..2: exploration)" in line


def test_the_progress_bar_counts_iterations_so_its_eta_includes_the_updates(tmp_path):
    """An iteration is `updates_per_iteration` gradient steps after its collection: counting
    env steps put hours of updates at minutes. The bar counts the initial collection and the
    iterations the budget allows, and a finished run ends at its total."""
    full = load_config(SMOKE.parents[1] / "pearl_point_robot.yaml")
    oyster = PEARLRun(full, tmp_path / "a", full.env.build(), for_evaluation=True)
    try:  # oyster's point robot: the initial collection and its 500 iterations
        assert oyster.progress_total == 1 + 500
    finally:
        oyster.close()
    run = _run(tmp_path / "b")
    try:
        assert run.progress_unit == "iterations"
        # 300 steps: 4 tasks x 20 initial, then 2 tasks x (20 + 20) per iteration.
        assert run.progress_total == 1 + 3 and run.progress_count() == 0
        run.train()
        assert run.progress_count() == run.progress_total
    finally:
        run.close()
