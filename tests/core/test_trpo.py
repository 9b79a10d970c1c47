"""core.trpo: conjugate gradient, the KL-bounded line search, the TRPO step on a quadratic,
rllab's linear feature baseline and the advantages it feeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmtl_rl.core.trpo import (
    LinearFeatureBaseline,
    assign_flat,
    block_advantages,
    conjugate_gradient,
    flatten,
    line_search,
    trpo_step,
    unflatten,
)


def _spd(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    return m @ m.T + torch.eye(n, dtype=torch.float64)


def test_conjugate_gradient_solves_a_small_spd_system():
    a = _spd(6)
    b = torch.arange(1.0, 7.0, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=6, residual_tol=0.0)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-8)


def test_conjugate_gradient_stops_at_the_residual_tolerance():
    calls = []
    a = torch.diag(torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64))  # one eigenvalue: 1 step

    def f_ax(v):
        calls.append(1)
        return a @ v

    x = conjugate_gradient(f_ax, torch.ones(3, dtype=torch.float64), iters=10)
    assert len(calls) == 1
    torch.testing.assert_close(x, torch.full((3,), 0.5, dtype=torch.float64))


def test_flatten_and_unflatten_round_trip():
    tensors = [torch.arange(6.0).view(2, 3), torch.tensor([7.0, 8.0])]
    flat = flatten(tensors)
    assert flat.tolist() == [0, 1, 2, 3, 4, 5, 7, 8]
    back = unflatten(flat, tensors)
    assert all(torch.equal(a, b) for a, b in zip(back, tensors, strict=True))
    with pytest.raises(ValueError, match="flat vector"):
        unflatten(torch.zeros(3), tensors)
    target = [torch.zeros(2, 3), torch.zeros(2)]
    assign_flat(target, flat)
    assert all(torch.equal(a, b) for a, b in zip(target, tensors, strict=True))


def _one_dim(p0: float):
    """θ = [p]; loss -p improves as p grows; KL (p - p0)²."""
    p = torch.tensor([p0])

    def evaluate():
        return -float(p[0]), float((p[0] - p0) ** 2)

    return p, evaluate


def test_line_search_backtracks_until_the_kl_bound_holds():
    p, evaluate = _one_dim(0.0)
    # full step +1 (θ_old - full_step with full_step = -1): KL 1, far over 0.01
    result = line_search([p], torch.tensor([0.0]), torch.tensor([-1.0]), evaluate, 0.0, 0.01)
    assert result.accepted
    # 0.8^n ≤ 0.1 first at n = 11 (0.8^10 = 0.107: KL 0.0115 > 0.01)
    assert result.backtracks == 11
    assert result.fraction == pytest.approx(0.8**11)
    assert result.kl <= 0.01 < (0.8**10) ** 2
    assert float(p[0]) == pytest.approx(0.8**11)


def test_line_search_rejects_a_step_that_never_improves_the_loss():
    p, evaluate = _one_dim(0.0)
    # a step backwards (p decreases): the loss only gets worse; the old θ is restored
    result = line_search([p], torch.tensor([0.0]), torch.tensor([1.0]), evaluate, 0.0, 0.01)
    assert not result.accepted and result.fraction == 0.0
    assert float(p[0]) == 0.0


def test_trpo_step_on_a_quadratic_kl_lands_on_the_bound_along_the_natural_gradient():
    a = _spd(4, seed=1).float()
    g = torch.tensor([1.0, -2.0, 0.5, 3.0])
    theta = torch.zeros(4, requires_grad=True)

    def objective():
        return g.dot(theta), 0.5 * theta @ a @ theta

    def evaluate():
        with torch.no_grad():
            loss, kl = objective()
        return float(loss), float(kl)

    loss, kl = objective()
    stats = trpo_step([theta], loss, kl, evaluate, max_kl=0.01, cg_iters=4, reg_coeff=0.0)
    natural = torch.linalg.solve(a, g)
    expected = -np.sqrt(2 * 0.01 / float(g.dot(natural))) * natural
    torch.testing.assert_close(theta.detach(), expected, rtol=1e-4, atol=1e-5)
    assert stats.accepted == 1.0 and stats.backtracks == 0
    assert stats.kl_after == pytest.approx(0.01, rel=1e-3)
    assert stats.loss_after < stats.loss_before


def test_linear_baseline_fits_a_linear_return_exactly():
    rng = np.random.default_rng(0)
    obs = rng.uniform(-3, 3, size=(50, 2))
    t = np.tile(np.arange(10), 5)
    w = rng.normal(size=2 * 2 + 4)
    returns = LinearFeatureBaseline.features(obs, t) @ w
    baseline = LinearFeatureBaseline(reg_coeff=1e-10)
    baseline.fit(obs, t, returns)
    np.testing.assert_allclose(baseline.predict(obs, t), returns, atol=1e-6)


def test_linear_baseline_features_clip_observations_and_scale_time():
    feat = LinearFeatureBaseline.features(np.array([[20.0, -1.0]]), np.array([50]))
    np.testing.assert_allclose(feat, [[10, -1, 100, 1, 0.5, 0.25, 0.125, 1]])


def test_advantages_with_lambda_one_are_returns_minus_baseline_per_episode():
    # two episodes of 3 and 2 steps; γ 0.5
    obs = np.array([[0.0], [1.0], [2.0], [0.5], [1.5]])
    reward = np.array([1.0, 2.0, 4.0, 1.0, 1.0])
    done = np.array([False, False, True, False, True])
    out = block_advantages(obs, reward, done, gamma=0.5, gae_lambda=1.0, center=False)
    np.testing.assert_allclose(out.returns_T, [1 + 1 + 1, 2 + 2, 4, 1 + 0.5, 1])
    np.testing.assert_allclose(out.advantage_T, out.returns_T - out.baseline_T, atol=1e-5)
    np.testing.assert_allclose(out.episode_returns, [7.0, 2.0])


def test_advantages_are_standardised_over_the_block():
    rng = np.random.default_rng(1)
    reward = rng.normal(size=30)
    done = np.zeros(30, bool)
    done[[9, 19, 29]] = True
    out = block_advantages(rng.normal(size=(30, 3)), reward, done, 0.99, 1.0)
    assert abs(out.advantage_T.mean()) < 1e-5 and out.advantage_T.std() == pytest.approx(1, 1e-4)


def test_advantages_refuse_a_block_that_ends_mid_episode():
    with pytest.raises(ValueError, match="whole episodes"):
        block_advantages(np.zeros((2, 1)), np.ones(2), np.array([True, False]), 0.99, 1.0)
