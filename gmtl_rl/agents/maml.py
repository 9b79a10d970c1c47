"""MAML-TRPO for RL (Finn et al. 2017, Alg. 3) as the authors' code runs it (cbfinn/maml_rl
@9c8e2eb; file:line references below are that commit's).

A trial is `inner_steps + 1` blocks of `episodes_per_step` episodes on one task. Every env
slot keeps its own adapted parameters φ, set to the meta-parameters θ when its trial starts
(`reset`); when a slot's block ends, `observe` takes the inner policy-gradient step on that
block, φ ← φ - α ∇φ L(φ), L = -mean_t log π_φ(a_t|s_t) Â_t over the block's steps (maml_npo.py
L102, maml_minimal_gauss_mlp_policy.py L163-206), so the next block is sampled with the adapted
policy, in training and in evaluation alike. Slots are vectorised: parameters are stacked
[slots, ...] and every layer is one batched matmul.

The meta-update (maml_npo.py L61-147, batch_maml_polopt.py L152-189) recomputes the inner
step(s) of every trial from its stored pre-update blocks, differentiably: second order by
default (through ∇φ L), first order (`first_order`, the authors' `stop_grad`) as an option.
The loss is -mean_t r_t Â_t on the last block with r_t = π_φ(θ)(a_t|s_t) / π_sample(a_t|s_t),
averaged over trials; the constraint is the mean KL(π_sample ‖ π_φ(θ)) over the last block's
steps of all trials (`kl_constrain_step = -1`); TRPO takes the step (core.trpo.trpo_step:
conjugate gradient on the KL's Hessian, backtracking line search under the bound).
`outer_optimizer: adam` is the authors' `use_maml=False` path (one Adam step, lr 1e-3, on
the same loss): with `inner_steps: 0` it trains their "pretrained" baseline.

Advantages: rllab's per-task, per-block processing (core.trpo.block_advantages): γ 0.99,
λ 1, the linear feature baseline fitted on that block, standardised. Policy: the authors'
Gaussian MLP (maml_minimal_gauss_mlp_policy.py): Xavier-uniform weights, zero biases, a
state-independent log-std initialised to log(init_std) and floored at log(min_std), every
parameter adapted by the inner step. Actions live in rllab's normalised [-1, 1] box and are
mapped affinely onto the env's box and clipped (rllab/envs/normalized_env.py L78-86).

Evaluation (maml_examples/test_maml_point.py L63-76): `eval_inner_steps` inner steps, each on
`eval_episodes_per_step` episodes, with step size α then α/2 (their VPG's init_learning_rate
then 0.5 × it) unless `eval_inner_lrs` says otherwise. Blocks that feed an inner step are
always sampled (a policy gradient needs sampled actions); `deterministic` applies to the
last block only.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, PositiveFloat, PositiveInt

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.networks import action_layout, flat_dim, flatten_obs
from gmtl_rl.core.policy import state_restored
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch, UpdateResult
from gmtl_rl.core.trials import ActRecord, TrialBatch
from gmtl_rl.core.trpo import (
    Block,
    gaussian_kl,
    gaussian_log_prob,
    pad_block,
    trpo_step,
)
from gmtl_rl.evaluation.adaptation import AdaptationRow


class MAMLConfig(AgentConfig):
    """MAML-TRPO; defaults: the authors' 2-D navigation run (maml_trpo_point.py, ICML state)."""

    name: Literal["maml"] = "maml"
    hidden: list[PositiveInt] = Field([100, 100], description="policy MLP hidden sizes")
    activation: Literal["relu", "tanh"] = Field("relu", description="hidden nonlinearity")
    init_std: PositiveFloat = Field(1.0, description="initial action std (normalised box)")
    min_std: PositiveFloat = Field(1e-6, description="floor of the std")
    learn_std: bool = Field(True, description="the log-std is meta-learned and adapted")
    inner_steps: int = Field(1, ge=0, le=20, description="inner policy-gradient steps (training)")
    inner_lr: PositiveFloat = Field(0.5, description="α, the inner step size")
    learn_inner_lr: bool = Field(False, description="meta-learn one α per parameter tensor")
    first_order: bool = Field(False, description="no gradient through the inner gradient")
    episodes_per_step: int = Field(20, ge=1, description="episodes per inner batch (training)")
    trials_per_update: int = Field(20, ge=1, description="tasks per meta-update (meta-batch)")
    outer_optimizer: Literal["trpo", "adam"] = Field("trpo", description="meta-optimiser")
    max_kl: PositiveFloat = Field(0.01, description="TRPO's KL bound δ (meta step size)")
    cg_iters: int = Field(10, ge=1, description="conjugate-gradient iterations")
    cg_damping: float = Field(1e-5, ge=0, description="A = H + damping·I in CG")
    backtrack_ratio: float = Field(0.8, gt=0, lt=1, description="line-search shrink factor")
    max_backtracks: int = Field(15, ge=1, description="line-search candidates")
    adam_lr: PositiveFloat = Field(1e-3, description="lr of outer_optimizer adam")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    gae_lambda: float = Field(1.0, ge=0, le=1, description="GAE λ (1: returns - baseline)")
    center_advantages: bool = Field(True, description="standardise advantages per block")
    baseline_reg: PositiveFloat = Field(1e-5, description="ridge of the linear baseline")
    eval_inner_steps: int = Field(3, ge=0, le=20, description="inner steps when evaluating")
    eval_episodes_per_step: int = Field(40, ge=1, description="episodes per evaluation step")
    eval_inner_lrs: list[PositiveFloat] | None = Field(
        None,
        description="step size of evaluation step k = list[min(k, len-1)]; default α, then α/2",
    )

    # Each meta-batch must be sampled by the current θ: the trials loop collects in rounds.
    synchronous_trials: ClassVar[bool] = True

    def trial_episodes(self) -> int:
        return self.episodes_per_step * (self.inner_steps + 1)

    def default_eval_episodes(self) -> int:
        return self.eval_episodes_per_step * (self.eval_inner_steps + 1)


@dataclass(frozen=True)
class MAMLUpdate(UpdateResult):
    loss_before: float
    loss_after: float
    kl: float
    step_accepted: float
    backtracks: float
    step_norm: float
    return_pre: float  # mean episode return of the first block (θ)
    return_post: float  # of the last block (after inner_steps steps)
    explained_variance: float  # of the linear baseline, mean over blocks
    inner_lr: float  # mean α over parameter tensors
    policy_std: float  # mean exp(log-std) of θ


# -- the policy, functional over stacked parameters -----------------------------------------
def init_policy(
    obs_dim: int, hidden: Sequence[int], act_dim: int, init_std: float
) -> list[torch.Tensor]:
    """[W0, b0, ..., Wn, bn, log_std]: Xavier-uniform weights [in, out], zero biases
    (maml_minimal_gauss_mlp_policy.py L349-380), log-std log(init_std) (L104-115)."""
    params: list[torch.Tensor] = []
    sizes = [obs_dim, *hidden, act_dim]
    for fan_in, fan_out in itertools.pairwise(sizes):
        params.append(torch.nn.init.xavier_uniform_(torch.empty(fan_in, fan_out)))
        params.append(torch.zeros(fan_out))
    params.append(torch.full((act_dim,), math.log(init_std)))
    return params


def policy_forward(
    params: Sequence[torch.Tensor], obs_STD: torch.Tensor, activation: str, min_log_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means [S, T, A] and log-stds [S, A] under per-row parameters (each [S, ...])."""
    act = torch.relu if activation == "relu" else torch.tanh
    x = obs_STD
    n_layers = (len(params) - 1) // 2
    for i in range(n_layers):
        x = torch.baddbmm(params[2 * i + 1].unsqueeze(1), x, params[2 * i])
        if i < n_layers - 1:
            x = act(x)
    return x, params[-1].clamp_min(min_log_std)


def inner_update(
    params_S: Sequence[torch.Tensor],
    lrs_S: Sequence[torch.Tensor],
    block: Block,
    activation: str,
    min_log_std: float,
    create_graph: bool,
    adapted: Sequence[bool],
) -> list[torch.Tensor]:
    """One policy-gradient step per row: φ - α ∇φ (-mean_t log π_φ(a_t|s_t) Â_t).

    `lrs_S[j]` is α of tensor j per row [S]; tensors with `adapted[j]` False are kept."""
    mean, log_std = policy_forward(params_S, block.obs_BTD, activation, min_log_std)
    logp = gaussian_log_prob(block.sample_BTA, mean, log_std.unsqueeze(1))
    loss_S = -(logp * block.adv_BT * block.mask_BT).sum(1) / block.count_B
    targets = [p for p, a in zip(params_S, adapted, strict=True) if a]
    grads = iter(torch.autograd.grad(loss_S.sum(), targets, create_graph=create_graph))
    out = []
    for p, lr, a in zip(params_S, lrs_S, adapted, strict=True):
        out.append(p - lr.view(-1, *([1] * (p.dim() - 1))) * next(grads) if a else p)
    return out


class MAML:
    """The MAML-TRPO agent (see the module docstring): Policy protocol + meta-update."""

    def __init__(self, config: MAMLConfig, env: EnvSpec, seed: int = 0) -> None:
        self.config = c = config
        actions = action_layout(env.action_space, "maml", discrete_ok=False)
        self.act_dim, self.center, self.half = actions.dim, actions.center, actions.half
        self.obs_dim = flat_dim(env.observation_space)
        self.min_log_std = math.log(c.min_std)
        self.theta = init_policy(self.obs_dim, c.hidden, self.act_dim, c.init_std)
        self.adapted = [True] * (len(self.theta) - 1) + [c.learn_std]
        for p, a in zip(self.theta, self.adapted, strict=True):
            p.requires_grad_(a)
        self.lrs = [torch.tensor(c.inner_lr, requires_grad=c.learn_inner_lr) for _ in self.theta]
        self.meta_params = [p for p, a in zip(self.theta, self.adapted, strict=True) if a]
        if c.learn_inner_lr:
            self.meta_params += [lr for lr, a in zip(self.lrs, self.adapted, strict=True) if a]
        self.opt = torch.optim.Adam(self.meta_params, lr=c.adam_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.updates = 0
        self.evaluation = False  # evaluation's inner steps and batch sizes
        self.last_act: ActRecord | None = None
        self._alloc(0)

    # -- block structure ------------------------------------------------------------------
    @property
    def steps_per_trial(self) -> int:
        c = self.config
        return c.eval_inner_steps if self.evaluation else c.inner_steps

    @property
    def episodes_per_block(self) -> int:
        c = self.config
        return c.eval_episodes_per_step if self.evaluation else c.episodes_per_step

    def step_lrs(self, k_S: np.ndarray) -> list[torch.Tensor]:
        """α of every parameter tensor for rows taking their inner step k_S[s] (0-based)."""
        c, k = self.config, torch.as_tensor(k_S)
        if not self.evaluation:
            return [lr.expand(len(k_S)) for lr in self.lrs]
        if c.eval_inner_lrs is not None:
            table = torch.tensor(c.eval_inner_lrs)
            lr_S = table[k.clamp_max(len(table) - 1)]
            return [lr_S for _ in self.lrs]
        factor = torch.where(k == 0, 1.0, 0.5)  # test_maml_point.py L75: α, then α/2
        return [lr.detach() * factor for lr in self.lrs]

    def evaluation_mode(self) -> None:
        """Act with the evaluation's inner steps from now on (Meta-World's protocol)."""
        self.evaluation = True

    # -- per-slot state -------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        self.slot_params = [p.detach().expand(n, *p.shape).clone() for p in self.theta]
        self.block_N = np.zeros(n, np.int64)  # blocks finished in the slot's trial
        self.episodes_N = np.zeros(n, np.int64)  # episodes finished in its current block
        self.start_N = np.zeros(n, np.int64)  # where its current block starts in the store
        self.store: dict[str, list[np.ndarray]] = {
            k: [] for k in ("obs", "sample", "reward", "done", "valid")
        }
        self._sample_NA = np.zeros((n, self.act_dim), np.float32)

    @property
    def num_slots(self) -> int:
        return len(self.block_N)

    def reset(self, env_mask: np.ndarray) -> None:
        if len(env_mask) != self.num_slots:
            self._alloc(len(env_mask))  # a new set of envs (e.g. evaluation): all start
            return
        rows = np.flatnonzero(env_mask)
        for slot, p in zip(self.slot_params, self.theta, strict=True):
            slot[rows] = p.detach()
        self.block_N[rows] = 0
        self.episodes_N[rows] = 0
        self.start_N[rows] = len(self.store["valid"])

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del task_class  # meta-RL: the task is learnt from rewards, never told
        obs_ND = torch.as_tensor(flatten_obs(obs))
        if len(obs_ND) != self.num_slots:
            self._alloc(len(obs_ND))
        with torch.no_grad():
            mean, log_std = policy_forward(
                self.slot_params, obs_ND[:, None, :], self.config.activation, self.min_log_std
            )
            mean = mean[:, 0]
            noise = torch.randn(mean.shape, generator=self.generator)
            sample = mean + log_std.exp() * noise
            if deterministic:  # only where no inner step will learn from the block
                final = torch.as_tensor(self.block_N >= self.steps_per_trial)
                sample = torch.where(final[:, None], mean, sample)
            log_prob = gaussian_log_prob(sample, mean, log_std)
        self._sample_NA = sample.numpy()
        self.last_act = ActRecord(
            self._sample_NA, log_prob.numpy(), np.zeros(len(mean), np.float32)
        )
        return (self.center + self.half * np.clip(self._sample_NA, -1.0, 1.0)).astype(np.float32)

    def observe(self, step: StepBatch) -> None:
        valid = np.asarray(step.valid, bool)
        done = np.asarray(step.done, bool) & valid
        for key, value in (
            ("obs", flatten_obs(step.obs)),
            ("sample", self._sample_NA),
            ("reward", np.asarray(step.reward, np.float32)),
            ("done", done),
            ("valid", valid),
        ):
            self.store[key].append(np.array(value, copy=True))
        self.episodes_N[done] += 1
        learning = self.block_N < self.steps_per_trial
        ends = done & learning & (self.episodes_N >= self.episodes_per_block)
        if ends.any():
            self._inner_step(np.flatnonzero(ends))
        self._release()

    def adapt(self, env_mask: np.ndarray | None = None) -> None:
        """End the current block now in the masked slots that have whole episodes in it and
        inner steps left: the inner step on those episodes (Meta-World's `adapt()`). An
        episode in flight belongs to neither block: the next block starts after its steps so
        far, as Meta-World resets every env after `adapt()`."""
        mask = np.ones(self.num_slots, bool) if env_mask is None else np.asarray(env_mask, bool)
        ready = mask & (self.block_N < self.steps_per_trial) & (self.episodes_N > 0)
        if ready.any():
            self._inner_step(np.flatnonzero(ready), whole_episodes_only=True)
            self._release()

    def _inner_step(self, slots: np.ndarray, whole_episodes_only: bool = False) -> None:
        c, n = self.config, len(self.store["valid"])
        first = int(self.start_N[slots].min())
        cols = {k: np.stack(v[first:]) for k, v in self.store.items()}
        rows = []
        for i in slots:
            t = np.arange(int(self.start_N[i]) - first, n - first)
            t = t[cols["valid"][t, i]]
            if whole_episodes_only:  # drop the episode in flight
                ends = np.flatnonzero(cols["done"][t, i])
                t = t[: ends[-1] + 1]
            rows.append({k: cols[k][t, i] for k in ("obs", "sample", "reward", "done")})
        block = pad_block(rows, c.gamma, c.gae_lambda, c.baseline_reg, c.center_advantages)
        with torch.enable_grad():
            params = [
                p[slots].requires_grad_(a)
                for p, a in zip(self.slot_params, self.adapted, strict=True)
            ]
            new = inner_update(
                params, self.step_lrs(self.block_N[slots]), block, c.activation,
                self.min_log_std, False, self.adapted,
            )  # fmt: skip
        for slot, p in zip(self.slot_params, new, strict=True):
            slot[slots] = p.detach()
        self.block_N[slots] += 1
        self.episodes_N[slots] = 0
        self.start_N[slots] = n

    def _release(self) -> None:
        """Drop stored steps no slot still needs for an inner step."""
        learning = self.block_N < self.steps_per_trial
        n = len(self.store["valid"])
        keep_from = int(self.start_N[learning].min()) if learning.any() else n
        if keep_from > 0:
            for v in self.store.values():
                del v[:keep_from]
            self.start_N = np.maximum(self.start_N - keep_from, 0)

    # -- the meta-update --------------------------------------------------------------------
    def trial_blocks(self, batch: TrialBatch) -> tuple[list[Block], torch.Tensor]:
        """The trials' K + 1 blocks (K = inner_steps), and the sampling log-probs of the last."""
        c = self.config
        n_blocks, per_block = c.inner_steps + 1, c.episodes_per_step
        rows: list[list[dict[str, np.ndarray]]] = [[] for _ in range(n_blocks)]
        for b in range(batch.num_trials):
            length = int(batch.mask_BL[b].sum())
            done = batch.done_BL[b, :length].astype(bool)
            episode = np.concatenate([[0], np.cumsum(done)[:-1]])
            if int(done.sum()) != n_blocks * per_block:
                raise ValueError(
                    f"trial {b} has {int(done.sum())} episodes, expected {n_blocks * per_block}"
                )
            for k in range(n_blocks):
                t = np.flatnonzero(episode // per_block == k)
                rows[k].append(
                    {
                        "obs": batch.obs_BLD[b, t],
                        "sample": batch.sample_BLA[b, t],
                        "reward": batch.reward_BL[b, t],
                        "done": done[t],
                        "log_prob": batch.log_prob_BL[b, t],
                    }
                )
        blocks = [
            pad_block(r, c.gamma, c.gae_lambda, c.baseline_reg, c.center_advantages) for r in rows
        ]
        old_logp = torch.zeros_like(blocks[-1].mask_BT)
        for b, r in enumerate(rows[-1]):
            old_logp[b, : len(r["log_prob"])] = torch.as_tensor(r["log_prob"])
        return blocks, old_logp

    def adapted_params(
        self, blocks: Sequence[Block], n_b: int, create_graph: bool
    ) -> list[torch.Tensor]:
        """φ(θ) of each of `n_b` trials after its inner steps on `blocks` (rows = trials; no
        blocks: θ itself)."""
        c = self.config
        params = [p.expand(n_b, *p.shape) for p in self.theta]
        for block in blocks:
            lrs = [lr.expand(n_b) for lr in self.lrs]
            params = inner_update(
                params, lrs, block, c.activation, self.min_log_std, create_graph, self.adapted
            )
        return params

    def update(self, batch: TrialBatch) -> MAMLUpdate:
        c = self.config
        blocks, old_logp = self.trial_blocks(batch)
        pre, last = blocks[:-1], blocks[-1]
        n_b = batch.num_trials
        with torch.enable_grad():  # π_sample: φ(θ_old) recomputed (equal to what acted)
            phi_old = [p.detach() for p in self.adapted_params(pre, n_b, False)]
        with torch.no_grad():
            mean_old, log_std_old = policy_forward(
                phi_old, last.obs_BTD, c.activation, self.min_log_std
            )
            log_std_old = log_std_old.unsqueeze(1)

        def objective(create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
            phi = self.adapted_params(pre, n_b, create_graph)
            mean, log_std = policy_forward(phi, last.obs_BTD, c.activation, self.min_log_std)
            log_std = log_std.unsqueeze(1)
            ratio = torch.exp(gaussian_log_prob(last.sample_BTA, mean, log_std) - old_logp)
            loss = -((ratio * last.adv_BT * last.mask_BT).sum(1) / last.count_B).mean()
            kl_BT = gaussian_kl(mean_old, log_std_old, mean, log_std).sum(-1)
            kl = (kl_BT * last.mask_BT).sum() / last.mask_BT.sum()
            return loss, kl

        def evaluate() -> tuple[float, float]:
            with torch.enable_grad():
                loss, kl = objective(False)
            return float(loss.detach()), float(kl.detach())

        with torch.enable_grad():
            loss, kl = objective(not c.first_order)
            if c.outer_optimizer == "trpo":
                stats = trpo_step(
                    self.meta_params, loss, kl, evaluate, c.max_kl, c.cg_iters, c.cg_damping,
                    c.backtrack_ratio, c.max_backtracks,
                )  # fmt: skip
                result = (stats.loss_before, stats.loss_after, stats.kl_after, stats.accepted)
                moves = (stats.backtracks, stats.step_norm)
            else:  # use_maml=False (maml_npo.py L31-36): one full-batch Adam step
                before = [p.detach().clone() for p in self.meta_params]
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                after, kl_after = evaluate()
                norm = math.sqrt(
                    sum(
                        float((p.detach() - q).pow(2).sum())
                        for p, q in zip(self.meta_params, before, strict=True)
                    )
                )
                result, moves = (float(loss.detach()), after, kl_after, 1.0), (0.0, norm)
        self.updates += 1
        ev = [v for block in blocks for v in block.explained_variance]
        return MAMLUpdate(
            *result,
            *moves,
            return_pre=float(np.mean(blocks[0].episode_returns)),
            return_post=float(np.mean(last.episode_returns)),
            explained_variance=float(np.mean(ev)),
            inner_lr=float(np.mean([float(lr.detach()) for lr in self.lrs])),
            policy_std=float(self.theta[-1].detach().exp().mean()),
        )

    # -- logs and state ---------------------------------------------------------------------
    @staticmethod
    def metric_names() -> list[str]:
        return MAMLUpdate.names()

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Evaluation's inner steps inside; the training slots and generator put back after."""
        previous = self.evaluation
        with state_restored(self):
            self.evaluation = True
            try:
                yield
            finally:
                self.evaluation = previous

    def state_dict(self) -> dict[str, Any]:
        """θ, step sizes, optimiser, generator, counters and every slot's trial in flight
        (its adapted parameters and the steps of its current block), tensors only."""
        store = {
            k: torch.as_tensor(np.stack(v)) if v else torch.zeros(0) for k, v in self.store.items()
        }
        return copy.deepcopy(
            {
                "theta": [p.detach() for p in self.theta],
                "lrs": [lr.detach() for lr in self.lrs],
                "opt": self.opt.state_dict(),
                "generator": self.generator.get_state(),
                "updates": self.updates,
                "slot_params": self.slot_params,
                "block": torch.as_tensor(self.block_N),
                "episodes": torch.as_tensor(self.episodes_N),
                "start": torch.as_tensor(self.start_N),
                "sample": torch.as_tensor(self._sample_NA),
                "store": store,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)  # two agents never share tensors
        with torch.no_grad():
            for p, value in zip(
                [*self.theta, *self.lrs], [*state["theta"], *state["lrs"]], strict=True
            ):
                p.copy_(value)
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self.slot_params = list(state["slot_params"])
        self.block_N = state["block"].numpy().copy()
        self.episodes_N = state["episodes"].numpy().copy()
        self.start_N = state["start"].numpy().copy()
        self._sample_NA = state["sample"].numpy().copy()
        self.store = {k: list(v.numpy()) if v.numel() else [] for k, v in state["store"].items()}


# -- the adaptation curve by inner step --------------------------------------------------------
@dataclass(frozen=True)
class InnerStepPoint:
    """Return and success after `inner_steps` inner steps: the mean over the block of episodes
    they were measured on, per task, then over tasks (with its standard error)."""

    inner_steps: int
    episodes_consumed: int  # episodes the inner steps learnt from (inner_steps × per block)
    first_episode: int  # 1-based episodes of the adaptation curve this point averages
    last_episode: int
    episode_return: float
    return_se: float
    success: float
    tasks: int


def adaptation_by_inner_step(
    rows: Sequence[AdaptationRow], episodes_per_step: int
) -> list[InnerStepPoint]:
    """The evaluator's episode axis regrouped by inner step: episodes (k·E, (k+1)·E] were
    sampled after k inner steps, each of which consumed E episodes."""
    by_block: dict[int, dict[int, list[AdaptationRow]]] = {}
    for r in rows:
        k = (r.episode - 1) // episodes_per_step
        by_block.setdefault(k, {}).setdefault(r.task, []).append(r)
    points = []
    for k in sorted(by_block):
        per_task = by_block[k].values()
        ret = np.array([np.mean([r.episode_return for r in g]) for g in per_task])
        succ = np.array([np.mean([r.success for r in g]) for g in per_task])
        episodes = [r.episode for g in per_task for r in g]
        points.append(
            InnerStepPoint(
                inner_steps=k,
                episodes_consumed=k * episodes_per_step,
                first_episode=min(episodes),
                last_episode=max(episodes),
                episode_return=float(ret.mean()),
                return_se=float(ret.std(ddof=1) / np.sqrt(len(ret))) if len(ret) > 1 else 0.0,
                success=float(succ.mean()),
                tasks=len(ret),
            )
        )
    return points


def build_maml(config: MAMLConfig, env: EnvSpec, seed: int = 0, device: str = "cpu") -> MAML:
    del device  # CPU: per-env batched matmuls of a small MLP
    torch.manual_seed(seed)  # the policy's initial weights
    return MAML(config, env, seed)


register_agent(
    AgentSpec(
        "maml",
        "MAML-TRPO: inner policy-gradient steps per task inside each trial, TRPO meta-update",
        "trials",
        MAMLConfig,
        build_maml,
    )
)
