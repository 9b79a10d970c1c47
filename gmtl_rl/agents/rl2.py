"""RL² (Duan et al. 2016): a recurrent policy that learns to learn within a trial.

A GRU actor-critic reads, at every step, [observation, previous action, previous reward,
previous done flag] (§2.2, Fig. 1; zeros at a trial start) and keeps its hidden state across
the K episodes of a trial, so what it learned about the task in episode 1 shapes episode 2.
The hidden state and previous-step inputs are reset only when a trial starts (`reset(mask)`).
It never sees the task identity: `task_class` is ignored.

Training is PPO (Schulman et al. 2017, clipped surrogate eq. 7) on whole trials (the
trials_per_update trials of one iteration = the meta-batch): the GRU is re-run over each trial
from its stored inputs, batched over trials; advantages are GAE over the trial as one
meta-episode (`core.trials.trial_gae`). The original used TRPO; PPO is what garage's RL2PPO
and most later work use (REFERENCE.md "RL²").

Box actions: a Gaussian over the action box rescaled to [-1, 1] with a learned
state-independent log-std; the env receives the sample clipped to the box (log-probs are of
the unclipped sample, as SB3's PPO does). Discrete actions: a categorical; the previous
action is fed one-hot.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn import functional as F

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.networks import action_layout, flat_dim, flatten_obs, mlp
from gmtl_rl.core.policy import state_restored
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch, UpdateResult
from gmtl_rl.core.trials import ActRecord, TrialBatch, trial_gae


class RL2Config(AgentConfig):
    """RL² with PPO; defaults: REFERENCE.md "RL²" (GRU 64-256, clip 0.2, γ 0.99, λ 0.95)."""

    name: Literal["rl2"] = "rl2"
    gru_hidden: int = Field(128, ge=1, description="GRU hidden size (REFERENCE: 64-256)")
    hidden: list[PositiveInt] = Field([64], description="MLP sizes of the policy and value heads")
    episodes_per_trial: int = Field(2, ge=1, description="K: episodes per trial on one task")
    trials_per_update: int = Field(16, ge=1, description="trials per PPO update (meta-batch)")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate")
    gamma: float = Field(0.99, gt=0, le=1, description="discount over the whole trial")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE λ")
    clip: float = Field(0.2, gt=0, description="PPO ratio clip ε")
    epochs: int = Field(4, ge=1, description="PPO epochs over each iteration's trials")
    minibatches: int = Field(4, ge=1, description="minibatches per epoch, split over trials")
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus")
    value_coef: float = Field(0.5, ge=0, description="value-loss weight")
    max_grad_norm: float = Field(0.5, gt=0, description="gradient clipping")
    normalize_advantage: bool = Field(True, description="advantages to zero mean, unit std")
    reward_scale: float = Field(
        1.0, gt=0, description="rewards × this for the PPO targets (the GRU sees them unscaled)"
    )
    init_log_std: float = Field(0.0, description="initial log-std of the Gaussian (Box)")

    def trial_episodes(self) -> int:
        return self.episodes_per_trial


@dataclass(frozen=True)
class RL2Update(UpdateResult):
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    explained_variance: float


class RecurrentActorCritic(nn.Module):
    """GRU over the RL² inputs, then a policy head and a value head."""

    def __init__(self, in_dim: int, gru_hidden: int, hidden: list[int], out_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, gru_hidden, batch_first=True)
        self.pi = mlp(gru_hidden, hidden, out_dim)
        self.v = mlp(gru_hidden, hidden, 1)
        self.log_std = nn.Parameter(torch.zeros(out_dim))

    def forward(
        self, x_BLI: torch.Tensor, h_BH: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Policy outputs [B, L, out], values [B, L] and the last hidden state [B, H]."""
        feats, h = self.gru(x_BLI, None if h_BH is None else h_BH.unsqueeze(0).contiguous())
        return self.pi(feats), self.v(feats).squeeze(-1), h.squeeze(0)


class RL2:
    """The RL² agent (see the module docstring): Policy protocol + PPO update over trials."""

    def __init__(self, config: RL2Config, env: EnvSpec, seed: int = 0) -> None:
        self.config = config
        actions = action_layout(env.action_space, "rl2")
        self.discrete, self.act_dim = actions.discrete, actions.dim
        self.center, self.half = actions.center, actions.half
        self.obs_dim = flat_dim(env.observation_space)
        # Input (Duan et al. 2016, §2.2): [s_t, a_{t-1} (one-hot if discrete), r_{t-1}, d_{t-1}].
        self.in_dim = self.obs_dim + self.act_dim + 2
        self.net = RecurrentActorCritic(
            self.in_dim, config.gru_hidden, list(config.hidden), self.act_dim
        )
        with torch.no_grad():
            self.net.log_std.fill_(config.init_log_std)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.updates = 0
        self._alloc(0)
        self.last_act: ActRecord | None = None

    # -- per-env recurrent state ------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        self.hidden_NH = torch.zeros(n, self.config.gru_hidden)
        self.prev_action_NA = torch.zeros(n, self.act_dim)
        self.prev_reward_N = torch.zeros(n)
        self.prev_done_N = torch.zeros(n)
        self._hidden_before_act = self.hidden_NH

    def _action_features(self, action: np.ndarray) -> torch.Tensor:
        """Actions as the env received them -> the a_{t-1} input (rescaled box / one-hot)."""
        if self.discrete:
            return F.one_hot(torch.as_tensor(action, dtype=torch.int64), self.act_dim).float()
        return torch.as_tensor((np.asarray(action, np.float32) - self.center) / self.half)

    def reset(self, env_mask: np.ndarray) -> None:
        if len(env_mask) != len(self.hidden_NH):
            self._alloc(len(env_mask))  # a new set of envs (e.g. evaluation): all start
            return
        rows = torch.as_tensor(np.asarray(env_mask, bool))
        self.hidden_NH[rows] = 0.0
        self.prev_action_NA[rows] = 0.0
        self.prev_reward_N[rows] = 0.0
        self.prev_done_N[rows] = 0.0

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del task_class  # meta-RL: the task is inferred from experience, never told
        obs_ND = torch.as_tensor(flatten_obs(obs))
        if len(obs_ND) != len(self.hidden_NH):
            self._alloc(len(obs_ND))
        x = torch.cat(
            [obs_ND, self.prev_action_NA, self.prev_reward_N[:, None], self.prev_done_N[:, None]],
            dim=1,
        )
        with torch.no_grad():
            out, value, hidden = self.net(x[:, None, :], self.hidden_NH)
            self._hidden_before_act, self.hidden_NH = self.hidden_NH, hidden
            params = out[:, 0]
            if self.discrete:
                logp_all = F.log_softmax(params, -1)
                if deterministic:
                    index = params.argmax(-1)
                else:
                    index = torch.multinomial(logp_all.exp(), 1, generator=self.generator)[:, 0]
                log_prob = logp_all.gather(-1, index[:, None])[:, 0]
                sample = index[:, None].float()
            else:
                std = self.net.log_std.exp()
                noise = torch.randn(params.shape, generator=self.generator)
                sample = params if deterministic else params + std * noise
                log_prob = _gaussian_log_prob(sample, params, self.net.log_std)
        self.last_act = ActRecord(sample.numpy(), log_prob.numpy(), value[:, 0].numpy())
        if self.discrete:
            return sample[:, 0].long().numpy()
        return (self.center + self.half * np.clip(sample.numpy(), -1.0, 1.0)).astype(np.float32)

    def observe(self, step: StepBatch) -> None:
        valid = torch.as_tensor(np.asarray(step.valid, bool))
        # A row that was not a transition (NEXT_STEP autoreset dummy, idle env) must leave no
        # trace: its hidden state goes back to what it was before that act.
        self.hidden_NH = torch.where(valid[:, None], self.hidden_NH, self._hidden_before_act)
        rows = np.flatnonzero(step.valid)
        if len(rows) == 0:
            return
        idx = torch.as_tensor(rows)
        self.prev_action_NA[idx] = self._action_features(np.asarray(step.action)[rows])
        self.prev_reward_N[idx] = torch.as_tensor(np.asarray(step.reward, np.float32)[rows])
        self.prev_done_N[idx] = torch.as_tensor(step.done[rows], dtype=torch.float32)

    # -- learning ---------------------------------------------------------------------------
    def sequence_inputs(self, batch: TrialBatch) -> torch.Tensor:
        """[B, L, in] inputs of whole trials: step t sees step t-1's action, reward and done;
        the first step of a trial sees zeros (exactly what `act` saw after `reset`)."""
        n_b, n_l = batch.mask_BL.shape
        flat = (n_b * n_l,) if self.discrete else (n_b * n_l, self.act_dim)
        action = self._action_features(batch.action_BLA.reshape(flat))
        prev = torch.cat(
            [
                action.view(n_b, n_l, self.act_dim),
                torch.as_tensor(batch.reward_BL)[..., None],
                torch.as_tensor(batch.done_BL, dtype=torch.float32)[..., None],
            ],
            dim=-1,
        )
        prev = F.pad(prev, (0, 0, 1, 0))[:, :-1]  # shift right by one step, zeros first
        return torch.cat([torch.as_tensor(batch.obs_BLD), prev], dim=-1)

    def update(self, batch: TrialBatch) -> RL2Update:
        c = self.config
        inputs = self.sequence_inputs(batch)
        adv_np, ret_np = trial_gae(
            batch.reward_BL * c.reward_scale, batch.value_BL, batch.mask_BL, c.gamma, c.gae_lambda
        )
        mask = torch.as_tensor(batch.mask_BL, dtype=torch.float32)
        adv, ret = torch.as_tensor(adv_np), torch.as_tensor(ret_np)
        if c.normalize_advantage and batch.num_steps > 1:
            valid = adv[mask > 0]
            adv = (adv - valid.mean()) / (valid.std() + 1e-8)
        old_logp = torch.as_tensor(batch.log_prob_BL)
        sample = torch.as_tensor(batch.sample_BLA)
        n_b = batch.num_trials
        stats: dict[str, list[float]] = {k: [] for k in RL2Update.names()}
        for _ in range(c.epochs):
            order = torch.randperm(n_b, generator=self.generator)
            for mb in torch.tensor_split(order, min(c.minibatches, n_b)):
                m = mask[mb]
                count = m.sum()
                params, value, _ = self.net(inputs[mb])
                logp, entropy = self._log_prob_entropy(params, sample[mb])
                log_ratio = logp - old_logp[mb]
                ratio = log_ratio.exp()
                a = adv[mb]
                surrogate = torch.min(ratio * a, ratio.clamp(1 - c.clip, 1 + c.clip) * a)
                policy_loss = -(surrogate * m).sum() / count
                value_loss = 0.5 * ((value - ret[mb]).pow(2) * m).sum() / count
                mean_entropy = (entropy * m).sum() / count
                loss = policy_loss + c.value_coef * value_loss - c.entropy_coef * mean_entropy
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.opt.step()
                with torch.no_grad():  # diagnostics (the "k3" KL estimator of J. Schulman)
                    kl = (((ratio - 1) - log_ratio) * m).sum() / count
                    clipped = (((ratio - 1).abs() > c.clip).float() * m).sum() / count
                stats["policy_loss"].append(policy_loss.item())
                stats["value_loss"].append(value_loss.item())
                stats["entropy"].append(mean_entropy.item())
                stats["approx_kl"].append(kl.item())
                stats["clip_fraction"].append(clipped.item())
        self.updates += 1
        valid_ret = ret_np[batch.mask_BL]
        residual = valid_ret - batch.value_BL[batch.mask_BL]
        var = float(np.var(valid_ret))
        stats["explained_variance"] = [1.0 - float(np.var(residual)) / var if var > 0 else 0.0]
        return RL2Update(**{k: float(np.mean(v)) for k, v in stats.items()})

    def _log_prob_entropy(
        self, params: torch.Tensor, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.discrete:
            logp_all = F.log_softmax(params, -1)
            logp = logp_all.gather(-1, sample.long()).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)
        log_std = self.net.log_std
        entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum().expand(params.shape[:-1])
        return _gaussian_log_prob(sample, params, log_std), entropy

    # -- logs and state ---------------------------------------------------------------------
    @staticmethod
    def metric_names() -> list[str]:
        return RL2Update.names()

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """The training envs' hidden states and the sampling generator put back afterwards."""
        with state_restored(self):
            yield

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser, sampling generator, counters and the per-env recurrent state
        (tensors and plain values: stored with torch.save, loaded with weights_only)."""
        return copy.deepcopy(
            {
                "net": self.net.state_dict(),
                "opt": self.opt.state_dict(),
                "generator": self.generator.get_state(),
                "updates": self.updates,
                "hidden": self.hidden_NH,
                "prev_action": self.prev_action_NA,
                "prev_reward": self.prev_reward_N,
                "prev_done": self.prev_done_N,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Copies: two agents (or an agent and a saved snapshot) never share tensors.
        state = copy.deepcopy(state)
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self.hidden_NH = state["hidden"]
        self.prev_action_NA = state["prev_action"]
        self.prev_reward_N = state["prev_reward"]
        self.prev_done_N = state["prev_done"]
        self._hidden_before_act = self.hidden_NH


def _gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    z = (x - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def build_rl2(config: RL2Config, env: EnvSpec, seed: int = 0, device: str = "cpu") -> RL2:
    del device  # RL² runs on the CPU: its GRU steps one env batch at a time
    torch.manual_seed(seed)  # the network's initial weights
    return RL2(config, env, seed)


register_agent(
    AgentSpec(
        "rl2",
        "RL²: GRU actor-critic over trials of K episodes (hidden state kept), trained by PPO",
        "trials",
        RL2Config,
        build_rl2,
    )
)
