"""DQN: update math on hand-built batches (no env), exploration, state, and learning HER's bit
flipping through the shared off-policy loop and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from benchmark_modules import load_benchmark
from torch import nn
from trees import assert_tree_equal

from gmtl_rl import checkpoint, runner
from gmtl_rl.agents.dqn import DQN, DiscreteQ, DQNConfig, DQNHERConfig, linear_epsilon
from gmtl_rl.cli import main
from gmtl_rl.config import load_config
from gmtl_rl.core.networks import TaskEncoder
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.core.replay import ReplayBatch
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.common import Counters

OBS = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ACT = gym.spaces.Discrete(3)
CONFIGS = Path(__file__).parents[2] / "configs"


def _agent(**overrides) -> DQN:
    torch.manual_seed(0)
    config = DQNConfig(hidden=[16, 16], **overrides)
    return DQN(config, EnvSpec(OBS, ACT, num_task_classes=1))


def _batch(n: int = 8, terminated: float = 0.0, seed: int = 0) -> ReplayBatch:
    rng = np.random.default_rng(seed)
    return ReplayBatch(
        obs=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        action=rng.integers(3, size=n),
        reward=rng.normal(size=n).astype(np.float32),
        next_obs=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        terminated=np.full(n, terminated, np.float32),
        task_id=np.zeros(n, np.int64),
        task_class=np.zeros(n, np.int64),
        rows=np.arange(n),
    )


class FixedQ(nn.Module):
    """Q-values given by hand: the same [B, A] table whatever the input."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.tensor(table)

    def forward(self, obs: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        return self.table


# -- update math ------------------------------------------------------------------------------
@pytest.mark.parametrize(("double", "expected"), [(True, [11.0, -1.0]), (False, [16.0, -1.0])])
def test_td_target_double_takes_the_online_argmax_plain_the_target_max(double, expected):
    agent = _agent(double=double, gamma=0.5)
    agent.q = FixedQ([[1.0, 5.0, 2.0], [3.0, 0.0, 4.0]])  # online argmax: 1, 2
    agent.q_target = FixedQ([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])  # target max: 30, 60
    reward, not_done = torch.tensor([1.0, -1.0]), torch.tensor([1.0, 0.0])  # row 1 terminated
    target = agent.td_target(reward, not_done, torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    # double: 1 + 0.5 * Q'(s', 1) = 11; plain: 1 + 0.5 * max Q'(s') = 16; terminated: r alone.
    torch.testing.assert_close(target, torch.tensor(expected))


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_update_loss_is_the_td_error_of_the_batch_actions(loss):
    agent = _agent(loss=loss, double=False, gamma=0.9)
    batch = _batch(terminated=0.0)
    obs, next_obs = torch.as_tensor(batch.obs), torch.as_tensor(batch.next_obs)
    task = torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        q = agent.q(obs, task)[torch.arange(8), torch.as_tensor(batch.action)]
        target = torch.as_tensor(batch.reward) + 0.9 * agent.q_target(next_obs, task).max(1).values
    error = q - target
    expected = (
        error.pow(2).mean()
        if loss == "mse"
        else torch.where(error.abs() < 1, 0.5 * error.pow(2), error.abs() - 0.5).mean()
    )
    result = agent.update(batch)
    assert result.td_loss == pytest.approx(float(expected), rel=1e-5)
    assert result.q_mean == pytest.approx(float(q.mean()), rel=1e-5)


def test_dueling_head_is_value_plus_centred_advantage():
    torch.manual_seed(3)
    net = DiscreteQ(3, 4, [8], TaskEncoder(1, "none", 0), dueling=True)
    obs, task = torch.randn(5, 3), torch.zeros(5, dtype=torch.long)
    q = net(obs, task)
    h = net.body(obs)
    value, adv = net.value(h), net.advantage(h)
    torch.testing.assert_close(q, value + adv - adv.mean(dim=1, keepdim=True))
    torch.testing.assert_close(q.mean(dim=1, keepdim=True), value)  # V = mean of Q (eq. 9)
    assert q.shape == (5, 4)


def test_polyak_target_moves_by_tau_every_update():
    agent = _agent(tau=0.05, target_update_interval=1)
    before = [p.clone() for p in agent.q_target.parameters()]
    agent.update(_batch())
    for old, new, online in zip(
        before, agent.q_target.parameters(), agent.q.parameters(), strict=True
    ):
        torch.testing.assert_close(new, 0.95 * old + 0.05 * online)


def test_hard_target_copies_every_n_updates_only():
    agent = _agent(tau=1.0, target_update_interval=3)
    start = [p.clone() for p in agent.q_target.parameters()]
    for _ in range(2):
        agent.update(_batch())
    for old, new in zip(start, agent.q_target.parameters(), strict=True):
        torch.testing.assert_close(new, old)  # not yet
    agent.update(_batch())
    for new, online in zip(agent.q_target.parameters(), agent.q.parameters(), strict=True):
        assert torch.equal(new, online)


def test_polyak_every_n_updates_moves_the_target_only_on_the_nth():
    # HER's schedule: decay 0.95 once per cycle of N optimisation steps (τ < 1, interval N).
    agent = _agent(tau=0.05, target_update_interval=2)
    before = [p.clone() for p in agent.q_target.parameters()]
    agent.update(_batch())
    assert all(torch.equal(a, b) for a, b in zip(agent.q_target.parameters(), before, strict=True))
    agent.update(_batch())
    for new, old, online in zip(
        agent.q_target.parameters(), before, agent.q.parameters(), strict=True
    ):
        torch.testing.assert_close(new, 0.95 * old + 0.05 * online)


def test_gradient_clipping_bounds_the_step():
    clipped, free = _agent(max_grad_norm=1e-3, lr=1.0), _agent(max_grad_norm=None, lr=1.0)
    big = _batch()._replace(reward=np.full(8, 1e3, np.float32))
    clipped.update(big)
    free.update(big)
    fresh = _agent()
    moved = [
        sum(
            float((a - b).detach().abs().sum())
            for a, b in zip(x.q.parameters(), fresh.q.parameters(), strict=True)
        )
        for x in (clipped, free)
    ]
    assert 0 < moved[0] < moved[1]


# -- exploration ------------------------------------------------------------------------------
def test_linear_epsilon_schedule():
    values = [linear_epsilon(s, 1000, 1.0, 0.05, 0.1) for s in (0, 50, 100, 500)]
    np.testing.assert_allclose(values, [1.0, 0.525, 0.05, 0.05])
    assert linear_epsilon(10, 1000, 1.0, 0.05, 0.0) == 0.05  # no decay: at its end
    assert linear_epsilon(10, 0, 1.0, 0.05, 0.1) == 0.05  # no budget told
    assert linear_epsilon(150, 1000, 0.2, 0.2, 0.5) == 0.2  # constant (the HER preset)
    agent = _agent(eps_start=1.0, eps_end=0.1, eps_fraction=0.5)
    agent.set_progress(250, 1000)
    assert agent.epsilon == pytest.approx(0.55)


def test_actions_are_greedy_when_deterministic_and_epsilon_greedy_otherwise():
    agent = _agent(eps_start=0.3, eps_end=0.3)
    agent.set_progress(0, 100)
    agent.q = FixedQ([[0.0, 1.0, 0.0]] * 4000)  # action 1 is greedy everywhere
    obs, task = np.zeros((4000, 3), np.float32), np.zeros(4000, np.int64)
    greedy = agent.act(obs, task, deterministic=True)
    assert greedy.shape == (4000,) and greedy.dtype == np.int64 and np.all(greedy == 1)
    torch.manual_seed(0)
    actions = agent.act(obs, task)
    # ε = 0.3: a uniform random action 30% of the time, so not action 1 in 0.3 * 2/3 = 20%.
    assert np.mean(actions != 1) == pytest.approx(0.2, abs=0.02)
    assert set(np.unique(actions)) == {0, 1, 2}


def test_actions_keep_the_discrete_space_offset():
    torch.manual_seed(0)
    agent = DQN(DQNConfig(hidden=[8]), EnvSpec(OBS, gym.spaces.Discrete(3, start=5), 1))
    agent.set_progress(0, 10)  # ε = 1 at the start
    actions = agent.act(np.zeros((300, 3), np.float32), np.zeros(300, np.int64))
    assert set(np.unique(actions)) == {5, 6, 7}
    batch = _batch()._replace(action=np.asarray(_batch().action) + 5)
    agent.update(batch)  # stored actions are offset too: no index error


# -- state and errors -------------------------------------------------------------------------
def test_state_dict_round_trip_gives_identical_updates():
    a = _agent(eps_start=1.0, eps_end=0.1)
    a.set_progress(40, 100)
    for seed in range(3):
        a.update(_batch(seed=seed))
    torch.manual_seed(1)  # other initial weights: the loaded state must replace them
    b = DQN(a.config, EnvSpec(OBS, ACT, num_task_classes=1))
    b.load_state_dict(a.state_dict())
    assert b.epsilon == a.epsilon and b.updates == a.updates == 3
    ra, rb = a.update(_batch(seed=9)), b.update(_batch(seed=9))
    assert ra == rb
    assert_tree_equal(a.state_dict(), b.state_dict(), atol=0)


def test_box_action_space_is_a_config_error_naming_the_agent():
    with pytest.raises(ConfigError, match=r"dqn_her needs a discrete \(Discrete\) action space"):
        DQN(DQNHERConfig(), EnvSpec(OBS, gym.spaces.Box(-1, 1, (2,)), 1))


def test_the_her_preset_carries_the_papers_bit_flip_settings():
    c = DQNHERConfig()
    assert (c.hidden, c.lr, c.batch_size, c.buffer_size, c.gamma) == ([256], 1e-3, 128, 10**6, 0.98)
    assert (c.tau, c.target_update_interval, c.her.strategy) == (0.05, 40, "future")


# -- through the loop -------------------------------------------------------------------------
# DQN(+HER) on HER's bit flipping, n = 10, start and goal uniform per episode (goal_sampling
# uniform): 16 envs, the dqn_her preset (HER paper settings), 12k env steps (3k updates).
LEARNING = [
    "env.n_bits=10", "env.n_test=100", "total_steps=12000", "sampler.n_envs=16",
    "eval.n_envs=25", "logging.every_steps=4000", "checkpoint.every_steps=0",
]  # fmt: skip


def _bit_flip_success(tmp_path: Path, *extra: str) -> float:
    config = load_config(CONFIGS / "smoke" / "dqn_her_bit_flip.yaml", [*LEARNING, *extra])
    run = runner.train(config, tmp_path / "_".join(extra or ("her",)))
    return float(json.loads((run / "eval" / "summary.json").read_text())["success"][0]["mean"])


def test_dqn_her_solves_ten_bit_flipping_where_dqn_alone_does_not(tmp_path):
    """Measured on the 2-core dev machine (2026-12-01, busy with other runs), 12k env steps,
    100 evaluation episodes on fresh uniform goals: success 1.00 with HER for seeds 0, 1 and
    2; 0.00 without (`her.strategy=none`, same agent and budget); ~4 s per run."""
    with_her = _bit_flip_success(tmp_path)
    without = _bit_flip_success(tmp_path, "agent.her.strategy=none")
    assert with_her >= 0.9, with_her
    assert without <= 0.3, without


def test_gmtl_train_runs_dqn_on_four_rooms(tmp_path, capsys):
    config = tmp_path / "dqn_four_rooms.yaml"
    config.write_text(
        "# tiny DQN run on four-rooms (one-hot cells)\n"
        "total_steps: 400\nthreads: 1\n"
        "env: {name: four-rooms, observation: onehot, horizon: 50}\n"
        "agent: {name: dqn, hidden: [32], learning_starts: 100, target_update_interval: 50}\n"
        "sampler: {n_envs: 2}\neval: {split: train, n_envs: 1}\n"
        "checkpoint: {every_steps: 200}\nlogging: {every_steps: 100, tensorboard: false}\n"
    )
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["return"][0]["n"] == 1
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert "td_loss" in header and "epsilon" in header and len(rows) >= 4
    agent = checkpoint.load_latest(run / "checkpoints").agent["agent"]
    assert agent["updates"] == 75  # (400 - 100 warm-up steps) x 0.25 updates per step
    assert main(["resume", str(run)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_resumed_run_continues_the_epsilon_schedule_exactly(tmp_path):
    """A run stopped at its step-200 checkpoint and resumed in a new process ends where the
    straight run ends: the ε schedule (mid-decay at the split), replay, HER and the target."""
    smoke = str(CONFIGS / "smoke" / "dqn_bit_flip.yaml")
    common = [
        "total_steps=400", "env.n_bits=6", "agent.eps_fraction=1.0", "agent.learning_starts=50",
        "agent.her.strategy=future", "eval.n_envs=2", "env.n_test=2",
    ]  # fmt: skip
    straight, split = tmp_path / "straight", tmp_path / "split"
    for run, every in ((straight, 0), (split, 200)):
        args = ["train", smoke, *common, f"checkpoint.every_steps={every}", "--run-dir", str(run)]
        assert main(args) == 0
    done = subprocess.run(
        [sys.executable, "-m", "gmtl_rl.cli", "resume", str(split), "--checkpoint", "step-200"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    a = checkpoint.load_latest(straight / "checkpoints").agent["agent"]
    b = checkpoint.load_latest(split / "checkpoints").agent["agent"]
    assert a["updates"] == b["updates"] > 0 and a["env_steps"] == b["env_steps"] > 200
    assert_tree_equal(a, b, atol=1e-6)


@pytest.mark.parametrize("n", [5, 15, 30, 50])
def test_bit_flip_curve_loads_the_shipped_configs_with_the_papers_cycle(n):
    """benchmarks/her_bit_flip.py trains each n from the shipped configs: they must load with
    its overrides, and the off-policy loop must then make exactly the paper's 40 updates in
    every cycle of 16 episodes of n steps (n = 15 and 30 lost one to float error), with the
    budget and the evaluation and checkpoint schedules whole cycles."""
    bench = load_benchmark("her_bit_flip")
    cycle = 16 * n
    for agent in bench.AGENTS:
        config = load_config(
            CONFIGS / f"{agent}_bit_flip.yaml", bench.overrides(agent, n, 2, cycles_per_bit=40)
        )
        assert config.env.options.n_bits == n
        assert config.seed == 2
        assert config.sampler.n_envs == 16
        assert config.eval.every_steps % cycle == 0
        assert config.checkpoint.every_steps % cycle == 0
        counters = Counters()  # the loop's accounting: 16 valid rows per vector step
        for _ in range(3):
            made = 0
            for _ in range(n):
                counters.update_debt += 16 * config.agent.updates_per_step
                made += counters.take_whole_updates()
            assert made == 40
    assert bench.budget(n, 40) == 40 * n * cycle
