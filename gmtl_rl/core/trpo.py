"""Trust-region policy optimisation machinery (Schulman et al. 2015) as rllab runs it, for
MAML-TRPO and any other TRPO learner: flat-parameter helpers, conjugate gradient, the
backtracking line search under a KL bound, and rllab's linear feature baseline with the
advantages it feeds.

Sources (cbfinn/maml_rl @9c8e2eb, the rllab copy MAML's results were produced with):
- `conjugate_gradient`: rllab/misc/krylov.py `cg` (Demmel p. 312), residual tolerance 1e-10;
- `trpo_step`: sandbox/rocky/tf/optimizers/conjugate_gradient_optimizer.py
  `ConjugateGradientOptimizer.optimize` (L237-305): direction s = A⁻¹g by CG with A = H + reg·I,
  initial step sqrt(2δ / (sᵀAs + 1e-8)) (1 if that is NaN), backtracking by 0.8 up to 15
  times until the loss improves *and* the KL is within δ, else the step is rejected;
- `LinearFeatureBaseline`: rllab/baselines/linear_feature_baseline.py (features, ridge 1e-5
  raised ×10 while the fit is NaN, 5 tries);
- `block_advantages`: rllab/sampler/base.py `process_samples` (L48-99): discounted returns,
  the baseline fit on the same paths, GAE with the baseline (0 after a path's last step: no
  bootstrap at a time limit either) and advantages standardised over the batch
  (rllab/algos/util.py `center_advantages`);
- `pad_block`: those per-task batches padded into one tensor batch (a row per task) for
  policies evaluated on all tasks at once; `gaussian_log_prob` / `gaussian_kl`: rllab's
  DiagonalGaussian (sandbox/rocky/tf/distributions/diagonal_gaussian.py).

Deliberate difference: the Hessian(Fisher)-vector products are exact (Pearlmutter, double
backward: the `PerlmutterHvp` of the authors' file) where the authors' default was the
`FiniteDifferenceHvp` (L61-115) with ε = 1e-8 / ‖θ‖ on float32 parameters, of which the exact
product is the limit; the line search enforces the KL bound either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# -- flat parameters ---------------------------------------------------------------------------


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One flat vector of all `tensors` (a copy, in their order)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """`flat` cut into views shaped like `like`."""
    total = sum(t.numel() for t in like)
    if total != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} values, the tensors hold {total}")
    out, start = [], 0
    for t in like:
        out.append(flat[start : start + t.numel()].view_as(t))
        start += t.numel()
    return out


def assign_flat(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Write `flat` into the leaf tensors `params` in place (no autograd history)."""
    with torch.no_grad():
        for p, value in zip(params, unflatten(flat, params), strict=True):
            p.copy_(value)


# -- conjugate gradient and the TRPO step --------------------------------------------------------


def conjugate_gradient(
    f_ax: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """x ≈ A⁻¹b for a symmetric positive-definite A given as x -> Ax (rllab krylov.cg)."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rdotr = r.dot(r)
    for _ in range(iters):
        z = f_ax(p)
        v = rdotr / p.dot(z)
        x += v * p
        r -= v * z
        new_rdotr = r.dot(r)
        p = r + (new_rdotr / rdotr) * p
        rdotr = new_rdotr
        if rdotr < residual_tol:
            break
    return x


@dataclass(frozen=True)
class LineSearchResult:
    """Where the backtracking line search ended: the step taken (0 if rejected) and the
    loss and KL there."""

    accepted: bool
    fraction: float  # of the full step that was taken (0 when rejected)
    backtracks: int  # candidates tried before the accepted one (all of them when rejected)
    loss: float  # at the parameters kept
    kl: float


def line_search(
    params: Sequence[torch.Tensor],
    old_flat: torch.Tensor,
    full_step: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    loss_before: float,
    max_kl: float,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    accept_violation: bool = False,
) -> LineSearchResult:
    """Try θ_old - ratio^n · full_step for n = 0, 1, ... until the loss improves and the KL is
    within `max_kl` (ConjugateGradientOptimizer.optimize, L279-302). `evaluate()` gives
    (loss, kl) at the parameters currently in `params`. Without an acceptable step the old
    parameters are restored unless `accept_violation`."""
    loss, kl, n = float("nan"), float("nan"), 0
    for n in range(max_backtracks):
        fraction = backtrack_ratio**n
        assign_flat(params, old_flat - fraction * full_step)
        loss, kl = evaluate()
        if loss < loss_before and kl <= max_kl:
            return LineSearchResult(True, fraction, n, loss, kl)
    if accept_violation and np.isfinite(loss) and np.isfinite(kl):
        return LineSearchResult(True, backtrack_ratio**n, n, loss, kl)
    assign_flat(params, old_flat)
    return LineSearchResult(False, 0.0, max_backtracks, loss_before, 0.0)


@dataclass(frozen=True)
class TRPOStats:
    """Diagnostics of one TRPO step."""

    loss_before: float
    loss_after: float
    kl_after: float
    accepted: float  # 1.0 if a step was taken
    backtracks: float
    step_norm: float  # ‖θ_new - θ_old‖


def trpo_step(
    params: Sequence[torch.Tensor],
    loss: torch.Tensor,
    kl: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    max_kl: float,
    cg_iters: int = 10,
    reg_coeff: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    accept_violation: bool = False,
) -> TRPOStats:
    """One constrained step on the leaf tensors `params` (updated in place).

    `loss` and `kl` are scalars built from `params` with a graph that can be differentiated
    twice (the KL's Hessian-vector products); `kl` is 0 with zero gradient at the current
    parameters, so its Hessian there is the Fisher matrix. `evaluate()` recomputes
    (loss, kl) at whatever `params` hold, for the line search.
    """
    params = list(params)
    old_flat = flatten([p.detach() for p in params])
    loss_before = float(loss.detach())

    def grad(
        y: torch.Tensor, retain_graph: bool | None = None, create_graph: bool = False
    ) -> torch.Tensor:
        """∂y/∂params, flat; zeros for parameters y does not depend on (as rllab's)."""
        parts = torch.autograd.grad(
            y, params, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
        )
        return flatten(
            [torch.zeros_like(p) if d is None else d for d, p in zip(parts, params, strict=True)]
        )

    g = grad(loss, retain_graph=True)
    grad_kl = grad(kl, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if not grad_kl.requires_grad:  # the KL is linear in what is left: no curvature
            return reg_coeff * v
        return grad(grad_kl.dot(v), retain_graph=True).detach() + reg_coeff * v

    direction = conjugate_gradient(hvp, g.detach(), cg_iters)
    shs = float(direction.dot(hvp(direction)))
    step_size = float(np.sqrt(2.0 * max_kl / (shs + 1e-8)))
    if not np.isfinite(step_size):
        step_size = 1.0  # the authors' fallback (L273-274)
    full_step = step_size * direction
    result = line_search(
        params,
        old_flat,
        full_step,
        evaluate,
        loss_before,
        max_kl,
        backtrack_ratio,
        max_backtracks,
        accept_violation,
    )
    return TRPOStats(
        loss_before=loss_before,
        loss_after=result.loss,
        kl_after=result.kl,
        accepted=float(result.accepted),
        backtracks=float(result.backtracks),
        step_norm=float(result.fraction * full_step.norm()),
    )


# -- the linear feature baseline and advantages ----------------------------------------------


def discount_cumsum_padded(x_EH: np.ndarray, discount: float) -> np.ndarray:
    """y_t = Σ_k discount^k x_{t+k} along each row; rows are episodes padded with zeros
    (zeros after a row's end leave its sums unchanged)."""
    out = np.zeros_like(x_EH, dtype=np.float64)
    running = np.zeros(x_EH.shape[0], np.float64)
    for t in range(x_EH.shape[1] - 1, -1, -1):
        running = x_EH[:, t] + discount * running
        out[:, t] = running
    return out


class LinearFeatureBaseline:
    """rllab's linear baseline: returns regressed on [o, o², t/100, (t/100)², (t/100)³, 1]
    with o the observation clipped to ±10 and t the step within the episode, by ridge
    regression (reg 1e-5, ×10 while the solution is NaN, at most 5 tries)."""

    def __init__(self, reg_coeff: float = 1e-5) -> None:
        self.reg_coeff = reg_coeff
        self.coeffs: np.ndarray | None = None

    @staticmethod
    def features(obs_TD: np.ndarray, t_T: np.ndarray) -> np.ndarray:
        o = np.clip(np.asarray(obs_TD, np.float64), -10, 10)
        al = (np.asarray(t_T, np.float64) / 100.0)[:, None]
        return np.concatenate([o, o**2, al, al**2, al**3, np.ones_like(al)], axis=1)

    def fit(self, obs_TD: np.ndarray, t_T: np.ndarray, returns_T: np.ndarray) -> None:
        feat = self.features(obs_TD, t_T)
        reg = self.reg_coeff
        for _ in range(5):
            a = feat.T @ feat + reg * np.identity(feat.shape[1])
            self.coeffs = np.linalg.lstsq(a, feat.T @ returns_T, rcond=None)[0]
            if not np.any(np.isnan(self.coeffs)):
                break
            reg *= 10

    def predict(self, obs_TD: np.ndarray, t_T: np.ndarray) -> np.ndarray:
        if self.coeffs is None:
            return np.zeros(len(t_T))
        return self.features(obs_TD, t_T) @ self.coeffs


@dataclass(frozen=True)
class BlockAdvantages:
    """Per-step advantages of one batch of episodes on one task, and what produced them."""

    advantage_T: np.ndarray  # float32, standardised when asked
    returns_T: np.ndarray  # discounted returns-to-go (the baseline's targets)
    baseline_T: np.ndarray
    episode_returns: np.ndarray  # undiscounted, one per episode

    @property
    def explained_variance(self) -> float:
        var = float(np.var(self.returns_T))
        if var < 1e-8:
            return 0.0
        return 1.0 - float(np.var(self.returns_T - self.baseline_T)) / var


def block_advantages(
    obs_TD: np.ndarray,
    reward_T: np.ndarray,
    done_T: np.ndarray,
    gamma: float,
    gae_lambda: float,
    reg_coeff: float = 1e-5,
    center: bool = True,
) -> BlockAdvantages:
    """rllab `process_samples` on one task's batch of whole episodes, laid end to end
    (`done_T` marks each episode's last step; the batch's last step ends an episode).

    The baseline is fitted to this batch's own returns and predicts on it, as in rllab; a
    path's baseline after its last step is 0 whether it terminated or hit the time limit."""
    n = len(reward_T)
    ends = np.flatnonzero(done_T)
    if n == 0 or len(ends) == 0 or ends[-1] != n - 1:
        raise ValueError("a block must be whole episodes: its last step must end an episode")
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    episode = np.repeat(np.arange(len(ends)), lengths)
    t_T = np.arange(n) - starts[episode]
    rows = np.zeros((len(ends), int(lengths.max())), np.float64)
    rows[episode, t_T] = reward_T
    returns_T = discount_cumsum_padded(rows, gamma)[episode, t_T]
    baseline = LinearFeatureBaseline(reg_coeff)
    baseline.fit(obs_TD, t_T, returns_T)
    b_T = baseline.predict(obs_TD, t_T)
    b_next = np.zeros((len(ends), rows.shape[1] + 1), np.float64)
    b_next[episode, t_T] = b_T
    deltas = np.zeros_like(rows)
    deltas[episode, t_T] = reward_T + gamma * b_next[episode, t_T + 1] - b_T
    adv = discount_cumsum_padded(deltas, gamma * gae_lambda)[episode, t_T]
    if center:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return BlockAdvantages(
        advantage_T=adv.astype(np.float32),
        returns_T=returns_T,
        baseline_T=b_T,
        episode_returns=rows.sum(axis=1),
    )


# -- padded blocks of episodes, Gaussian policies ----------------------------------------
@dataclass(frozen=True)
class Block:
    """One block per row (task): whole episodes padded to the longest; `mask` marks steps."""

    obs_BTD: torch.Tensor
    sample_BTA: torch.Tensor  # the policy's draws, in the normalised action box
    adv_BT: torch.Tensor
    mask_BT: torch.Tensor  # float
    episode_returns: list[float]
    explained_variance: list[float]

    @property
    def count_B(self) -> torch.Tensor:
        return self.mask_BT.sum(1).clamp_min(1.0)


def pad_block(
    steps: Sequence[dict[str, np.ndarray]], gamma: float, lam: float, reg: float, center: bool
) -> Block:
    """Rows of whole-episode steps (obs, sample, reward, done) -> advantages and a Block."""
    n_b, n_t = len(steps), max(len(s["reward"]) for s in steps)
    obs = np.zeros((n_b, n_t, steps[0]["obs"].shape[1]), np.float32)
    sample = np.zeros((n_b, n_t, steps[0]["sample"].shape[1]), np.float32)
    adv, mask = np.zeros((n_b, n_t), np.float32), np.zeros((n_b, n_t), np.float32)
    returns, ev = [], []
    for b, s in enumerate(steps):
        t = len(s["reward"])
        a = block_advantages(s["obs"], s["reward"], s["done"], gamma, lam, reg, center)
        obs[b, :t], sample[b, :t], adv[b, :t], mask[b, :t] = s["obs"], s["sample"], a.advantage_T, 1
        returns.extend(a.episode_returns.tolist())
        ev.append(a.explained_variance)
    tensors = [torch.as_tensor(x) for x in (obs, sample, adv, mask)]
    return Block(tensors[0], tensors[1], tensors[2], tensors[3], returns, ev)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_kl(
    mean0: torch.Tensor, log_std0: torch.Tensor, mean1: torch.Tensor, log_std1: torch.Tensor
) -> torch.Tensor:
    """KL(N0 ‖ N1) of diagonal Gaussians, summed over the last dim (rllab DiagonalGaussian)."""
    var0, var1 = torch.exp(2 * log_std0), torch.exp(2 * log_std1)
    return ((mean0 - mean1).pow(2) + var0 - var1) / (2 * var1 + 1e-8) + log_std1 - log_std0


__all__ = [
    "Block",
    "BlockAdvantages",
    "LineSearchResult",
    "LinearFeatureBaseline",
    "TRPOStats",
    "assign_flat",
    "block_advantages",
    "conjugate_gradient",
    "discount_cumsum_padded",
    "flatten",
    "gaussian_kl",
    "gaussian_log_prob",
    "line_search",
    "pad_block",
    "trpo_step",
    "unflatten",
]
