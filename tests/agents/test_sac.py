"""SAC update math on synthetic batches (no env)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from gmtl_rl.agents.sac import SAC, SACConfig
from gmtl_rl.core.networks import TanhGaussianActor
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.core.replay import ReplayBatch
from gmtl_rl.errors import ConfigError

OBS = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)


def _agent(**overrides) -> SAC:
    torch.manual_seed(0)
    config = SACConfig(hidden=[16, 16], **overrides)
    return SAC(config, EnvSpec(OBS, ACT, num_task_classes=3))


def _batch(n: int = 8, terminated: float = 0.0, seed: int = 0) -> ReplayBatch:
    rng = np.random.default_rng(seed)
    return ReplayBatch(
        obs=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        action=rng.uniform(-2, 2, (n, 2)).astype(np.float32),
        reward=rng.normal(size=n).astype(np.float32),
        next_obs=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        terminated=np.full(n, terminated, np.float32),
        task_id=rng.integers(3, size=n),
        task_class=rng.integers(3, size=n),
        rows=np.arange(n),
    )


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(1)
    actor = TanhGaussianActor(3, 2, [8])
    obs, task = torch.randn(64, 3) * 3, torch.zeros(64, dtype=torch.long)
    torch.manual_seed(2)
    action, log_prob = actor.sample(obs, task)
    mean, log_std = actor(obs, task)
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    # Compare where tanh is not saturated (the reference itself loses precision there).
    ok = action.abs().max(dim=1).values < 0.999
    expected = reference.log_prob(action).sum(-1)
    torch.testing.assert_close(log_prob[ok], expected[ok], rtol=1e-4, atol=1e-4)


def test_log_prob_stays_finite_for_saturated_actions():
    actor = TanhGaussianActor(1, 1, [4])
    with torch.no_grad():
        actor.net[-1].bias.copy_(torch.tensor([30.0, -5.0]))  # mean 30: tanh saturates to 1.0
    action, log_prob = actor.sample(torch.zeros(16, 1), torch.zeros(16, dtype=torch.long))
    assert torch.all(action == 1.0) and torch.isfinite(log_prob).all()


def test_actions_respect_the_env_bounds():
    agent = _agent()
    actions = agent.act(np.random.default_rng(0).uniform(-1, 1, (100, 3)), np.zeros(100, np.int64))
    assert actions.shape == (100, 2) and np.all(actions >= -2.0) and np.all(actions <= 2.0)


def test_deterministic_action_is_the_squashed_mean():
    agent = _agent()
    obs = np.zeros((4, 3), np.float32)
    a = agent.act(obs, np.zeros(4, np.int64), deterministic=True)
    b = agent.act(obs, np.zeros(4, np.int64), deterministic=True)
    np.testing.assert_array_equal(a, b)


def _critic_target(agent: SAC, batch: ReplayBatch) -> torch.Tensor:
    """Recompute the soft Bellman target the way the update does, with the same noise."""
    torch.manual_seed(5)
    obs = torch.as_tensor(batch.next_obs)
    task = torch.as_tensor(batch.task_id)
    with torch.no_grad():
        a, logp = agent.actor.sample(obs, task)
        q = agent.critic_target(obs, a, task).min(0).values
        alpha = agent.temperature(task)
    not_done = 1 - torch.as_tensor(batch.terminated)
    return torch.as_tensor(batch.reward) + agent.config.gamma * not_done * (q - alpha * logp)


@pytest.mark.parametrize("terminated", [0.0, 1.0])
def test_critic_regresses_to_the_soft_bellman_target(terminated):
    """Termination cuts the bootstrap; truncation (terminated=0) bootstraps through."""
    agent = _agent(lr=1e-2, learn_alpha=False)
    batch = _batch(terminated=terminated)
    target = _critic_target(agent, batch)
    if terminated:
        torch.testing.assert_close(target, torch.as_tensor(batch.reward))
    obs, act = torch.as_tensor(batch.obs), torch.as_tensor(agent._to_unit_action(batch.action))
    task = torch.as_tensor(batch.task_id)
    before = (agent.critic(obs, act, task) - target).pow(2).mean()
    torch.manual_seed(5)
    agent.update(batch)
    after = (agent.critic(obs, act, task) - target).pow(2).mean()
    assert after < before


def test_target_critic_moves_by_polyak_factor():
    agent = _agent(tau=0.1)
    target_before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(_batch())
    for t0, t1, p in zip(
        target_before, agent.critic_target.parameters(), agent.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * p.detach())


def test_temperature_falls_when_entropy_exceeds_the_target():
    agent = _agent(target_entropy=-50.0, lr=1e-2)  # any policy is far more random than this
    alphas = [agent.update(_batch(seed=i)).alpha for i in range(20)]
    assert alphas[-1] < alphas[0]


def test_per_task_temperature_only_moves_tasks_in_the_batch():
    agent = _agent(per_task_alpha=True)
    batch = _batch()._replace(task_class=np.zeros(8, np.int64))
    agent.update(batch)
    log_alpha = agent.temperature.log_alpha.detach()
    assert log_alpha[0] != 0.0 and log_alpha[1] == 0.0 and log_alpha[2] == 0.0


def test_state_dict_round_trip_gives_identical_updates():
    a = _agent(task_encoding="embedding", task_embedding_dim=4)
    b = _agent(task_encoding="embedding", task_embedding_dim=4)
    a.update(_batch(seed=1))
    b.load_state_dict(a.state_dict())
    torch.manual_seed(9)
    ua = a.update(_batch(seed=2))
    torch.manual_seed(9)
    ub = b.update(_batch(seed=2))
    assert ua == ub
    for pa, pb in zip(a.actor.parameters(), b.actor.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [5, -1])
def test_task_conditioned_agent_rejects_unknown_task_classes(cls):
    agent = _agent(task_encoding="embedding", task_embedding_dim=4)
    with pytest.raises(ValueError, match="not one of the 3 classes"):
        agent.act(np.zeros((1, 3), np.float32), np.array([cls]))


def test_sac_refuses_discrete_actions_as_a_config_error():
    with pytest.raises(ConfigError, match=r"agent\.name: sac needs a continuous \(Box\)"):
        SAC(SACConfig(), EnvSpec(OBS, gym.spaces.Discrete(3), num_task_classes=1))
