"""VariBAD (Zintgraf et al. 2020): variational Bayes-adaptive deep RL, as the authors' code runs
it (lmzintgraf/varibad @57e1795; file:line references below are of that commit).

A recurrent encoder reads every transition (a_t, s_{t+1}, r_t) of a trial and outputs the belief
q(m | τ:t) = N(μ_t, diag σ²_t) over a task embedding m; decoders reconstruct the whole trial from
every belief, and the VAE is trained on Σ_t ELBO_t (§3.2; `gmtl_rl.core.belief`). The policy
acts on the state and the belief's mean and log-variance (§3.1: π(a | s, q)), and is trained by
PPO (or A2C) on the BAMDP return of a trial of K episodes (§3.4; `gmtl_rl.core.belief_policy`);
by default the RL loss does not reach the encoder (`rl_loss_through_encoder`).

This module is the config, the agent and its registration. The belief is kept across the K
episodes of a trial and reset when a trial starts (`reset`). It is updated in `observe`, which
sees the true successor s' of every step also at episode ends; the BAMDP wrapper's done bit
(environments/wrappers.py:55-63, 124-125) is rebuilt here from `StepBatch.done` and appended to
the policy's state and the encoder's s' (`done_bit`). The agent keeps, per env, the trial in
flight (the VAE's running storage, storage_vae.py:41-51) with the belief the policy acted on at
every step; a finished trial goes to the VAE buffer (`gmtl_rl.core.trial_store`) and to the
queue `update` takes its PPO data from (the loop's `TrialBatch` has no terminal s').
Deliberate deviations are listed in docs/varibad.md.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core.belief import belief_kl
from gmtl_rl.core.belief_policy import (
    BeliefPolicy,
    PolicySteps,
    ThroughEncoder,
    ppo_update,
    varibad_gae,
)
from gmtl_rl.core.belief_vae import BeliefVAE, CellGrid
from gmtl_rl.core.networks import action_layout, flat_dim, flatten_obs
from gmtl_rl.core.normalization import ReturnNormalizer
from gmtl_rl.core.records import EnvSpec, Obs, StepBatch, UpdateResult
from gmtl_rl.core.trial_store import RunningTrials, TrialStore, pad_trials
from gmtl_rl.core.trials import ActRecord, TrialBatch
from gmtl_rl.errors import ConfigError

__all__ = [  # belief_kl, TrialStore and varibad_gae: their home is core/, named here too
    "VARIBAD_COMMIT", "TrialStore", "VariBAD", "VariBADConfig", "VariBADUpdate", "belief_kl",
    "build_varibad", "varibad_gae",
]  # fmt: skip

VARIBAD_COMMIT = "57e1795be142ace52d0c353097acf193d9067200"
Tensor = torch.Tensor


class VariBADConfig(AgentConfig):
    """VariBAD; defaults: the authors' gridworld (config/gridworld/args_grid_varibad.py)."""

    name: Literal["varibad"] = "varibad"
    # -- trials and the BAMDP ----------------------------------------------------------------
    episodes_per_trial: int = Field(4, ge=1, description="K (max_rollouts_per_task)")
    trials_per_update: int = Field(
        16, ge=1, description="trials per update (num_processes · policy_num_steps / trial length)"
    )
    precollect_steps: int = Field(5000, ge=0, description="env steps before the first update")
    done_bit: bool | None = Field(
        None, description="episode-end bit on the state (BAMDP wrapper); None: when K > 1"
    )
    # -- policy (models/policy.py) -----------------------------------------------------------
    policy_layers: list[PositiveInt] = Field([32], description="actor and critic hidden sizes")
    policy_activation: Literal["tanh", "relu"] = "tanh"
    policy_init: Literal["normc", "orthogonal"] = "normc"
    policy_state_embedding: PositiveInt | None = Field(16, description="None: the raw state")
    policy_latent_embedding: PositiveInt | None = Field(16, description="None: the raw belief")
    norm_state: bool = Field(True, description="state normalised by running statistics")
    norm_latent: bool = Field(True, description="belief normalised by running statistics")
    norm_rewards: bool = Field(True, description="RL rewards ÷ running std of the return")
    tanh_action_mean: bool = Field(False, description="Box: tanh on the Gaussian's mean")
    init_std: float = Field(1.0, gt=0, description="Box: initial std of the Gaussian")
    # -- RL (algorithms/ppo.py, a2c.py) ------------------------------------------------------
    algorithm: Literal["ppo", "a2c"] = "ppo"
    lr: float = Field(7e-4, gt=0, description="policy Adam learning rate")
    adam_eps: float = Field(1e-8, gt=0, description="policy Adam ε")
    epochs: int = Field(2, ge=1, description="PPO epochs")
    minibatches: int = Field(4, ge=1, description="PPO minibatches of steps per epoch")
    clip: float = Field(0.05, gt=0, description="PPO ratio (and value) clip")
    huber_value_loss: bool = True
    clipped_value_loss: bool = True
    value_coef: float = Field(0.5, ge=0)
    entropy_coef: float = Field(0.01, ge=0)
    gamma: float = Field(0.95, gt=0, le=1, description="discount over the trial")
    gae_lambda: float = Field(0.95, ge=0, le=1)
    proper_time_limits: bool = Field(
        False, description="zero the GAE at inner time-limit ends (online_storage.py:179-187)"
    )
    max_grad_norm: float = Field(0.5, gt=0, description="policy gradient clipping")
    rl_loss_through_encoder: bool = Field(False, description="RL loss reaches the encoder")
    vae_loss_coef: float = Field(1.0, ge=0, description="VAE loss weight with the RL loss")
    # -- encoder (models/encoder.py) ----------------------------------------------------------
    latent_dim: int = Field(5, ge=1)
    gru_hidden: int = Field(64, ge=1)
    state_embedding: int = Field(8, ge=0, description="encoder (and decoder) state embedding")
    action_embedding: int = Field(0, ge=0, description="0: actions not encoded")
    reward_embedding: int = Field(8, ge=0)
    encoder_layers_before_gru: list[PositiveInt] = Field([])
    encoder_layers_after_gru: list[PositiveInt] = Field([])
    # -- decoders (models/decoder.py) ---------------------------------------------------------
    decode_reward: bool = True
    reward_decoder_layers: list[PositiveInt] = Field([32, 32])
    multihead_reward: bool = Field(True, description="one output per grid cell (Box of cells)")
    reward_prediction: Literal["bernoulli", "deterministic"] = Field(
        "bernoulli", description="bernoulli: p(r = 1 | s), BCE; deterministic: MSE"
    )
    reward_input_prev_state: bool = False
    reward_input_action: bool = False
    reward_loss_coef: float = Field(1.0, ge=0)
    decode_state: bool = False
    state_decoder_layers: list[PositiveInt] = Field([32, 32])
    state_loss_coef: float = Field(1.0, ge=0)
    # -- VAE training (vae.py, utils/storage_vae.py) ------------------------------------------
    vae_lr: float = Field(1e-3, gt=0)
    vae_buffer_trials: int = Field(100_000, ge=1, description="trials kept for the VAE")
    vae_buffer_add_prob: float = Field(1.0, gt=0, le=1)
    vae_batch_trials: int = Field(25, ge=1, description="trials per VAE update")
    vae_updates: int = Field(3, ge=0, description="VAE updates per iteration")
    kl_weight: float = Field(0.01, ge=0)
    kl_to_gauss_prior: bool = Field(False, description="KL to N(0, I) at every t instead")
    decode_only_past: bool = False
    tbptt_steps: PositiveInt | None = Field(None, description="None: backprop the whole trial")
    subsample_elbos: PositiveInt | None = Field(None, description="ELBO terms drawn per trial")
    subsample_decodes: PositiveInt | None = Field(None, description="decodes drawn per ELBO")
    avg_elbo_terms: bool = False
    avg_reconstruction_terms: bool = False
    encoder_max_grad_norm: float | None = Field(None, gt=0)
    decoder_max_grad_norm: float | None = Field(None, gt=0)

    def trial_episodes(self) -> int:
        return self.episodes_per_trial

    @model_validator(mode="after")
    def _supported(self) -> VariBADConfig:
        if self.decode_only_past and (self.subsample_elbos or self.subsample_decodes):
            raise ValueError("decode_only_past cannot be combined with subsampled ELBOs/decodes")
        if not (self.decode_reward or self.decode_state or self.kl_weight > 0):
            raise ValueError("nothing to train the encoder: decode_reward, decode_state or KL")
        return self


@dataclass(frozen=True)
class VariBADUpdate(UpdateResult):
    updated: float  # 0 while pre-collecting (metalearner.py:269, 332)
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    explained_variance: float
    vae_loss: float
    reward_loss: float
    state_loss: float
    kl_loss: float


# -- the agent --------------------------------------------------------------------------------
class VariBAD:
    """The VariBAD agent (see the module docstring): Policy protocol, PPO/A2C and VAE updates."""

    def __init__(self, config: VariBADConfig, env: EnvSpec, seed: int = 0) -> None:
        c = self.config = config
        actions = action_layout(env.action_space, "varibad")
        self.discrete, self.act_dim = actions.discrete, actions.dim
        self.center, self.half = actions.center, actions.half
        self.enc_action_dim = 1 if self.discrete else self.act_dim  # the encoder's action input
        self.obs_dim = flat_dim(env.observation_space)
        self.done_bit = c.done_bit if c.done_bit is not None else c.episodes_per_trial > 1
        self.state_dim = self.obs_dim + int(self.done_bit)
        grid = CellGrid.of(env.observation_space)
        if c.decode_reward and c.multihead_reward and grid is None:
            raise ConfigError(
                f"agent.multihead_reward: needs a Box of integer grid coordinates (gridworld), "
                f"not {env.observation_space}; set multihead_reward: false for a per-state decoder"
            )
        self.vae = BeliefVAE(c, self.state_dim, self.enc_action_dim, grid)
        self.encoder = self.vae.encoder
        self.reward_decoder, self.state_decoder = self.vae.reward_decoder, self.vae.state_decoder
        self.policy = BeliefPolicy(c, self.state_dim, self.act_dim, self.discrete)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=c.lr, eps=c.adam_eps)
        self.vae_opt = torch.optim.Adam(self.vae.parameters(), lr=c.vae_lr)  # vae.py:52-60
        self.generator = torch.Generator().manual_seed(seed)
        self.store = TrialStore(c.vae_buffer_trials)
        self.pending: list[dict[str, Tensor]] = []  # finished trials not yet updated on
        self.iterations = 0  # update calls (metalearner.py iter_idx + 1)
        self.updates = 0  # updates that trained (after pre-collection)
        self.env_steps = 0  # transitions recorded for training
        self.returns = ReturnNormalizer(c.gamma)  # VecNormalize's, over trials
        self.recording = True  # off while evaluating: nothing is stored, no statistics move
        self.last_act: ActRecord | None = None
        self.running = RunningTrials({
            "state": (self.state_dim,), "next_state": (self.state_dim,),
            "action": (self.enc_action_dim,), "reward": (), "reward_norm": (),
            "latent": (2 * c.latent_dim,),
        })  # fmt: skip
        self._alloc(0)

    # -- per-env state ----------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        self.hidden_NH = torch.zeros(n, self.config.gru_hidden)
        self.prev_done_N = torch.zeros(n)
        self.episodes_N = torch.zeros(n, dtype=torch.int64)
        self.returns.resize(n)
        self.running.alloc(n)
        self._acted: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def run_len_N(self) -> Tensor:
        """Steps so far of each env's trial in flight."""
        return self.running.length_N

    def reset(self, env_mask: np.ndarray) -> None:
        if len(env_mask) != len(self.hidden_NH):
            self._alloc(len(env_mask))  # a new set of envs (e.g. evaluation): all start
            return
        rows = torch.as_tensor(np.asarray(env_mask, bool))
        self.hidden_NH[rows] = 0.0  # the prior q(m | τ:0) (encoder.py:93-113)
        self.prev_done_N[rows] = 0.0
        self.episodes_N[rows] = 0
        self.running.length_N[rows] = 0
        self.returns.reset(rows.numpy())

    def _state(self, obs_ND: Tensor, done_N: Tensor) -> Tensor:
        """The BAMDP state: the observation and, with `done_bit`, whether an episode just
        ended (wrappers.py:124-125)."""
        return torch.cat([obs_ND, done_N[:, None]], 1) if self.done_bit else obs_ND

    def belief(self, hidden_NH: Tensor | None = None) -> Tensor:
        """[N, 2Z] the policy's view of the belief: [μ, log σ²] (helpers.py:108-126)."""
        mean, logvar = self.encoder.heads(self.hidden_NH if hidden_NH is None else hidden_NH)
        return torch.cat([mean, logvar], -1)

    def goal_belief(self, prior: bool = False) -> np.ndarray | None:
        """[N, *grid] per env, the reward decoder's reading of the belief's mean as a
        distribution over goal cells (`BeliefVAE.goal_cells`), indexed by cell coordinates;
        `prior`: of the prior q(m | τ:0). None without a multi-head Bernoulli reward decoder."""
        hidden = torch.zeros_like(self.hidden_NH) if prior else self.hidden_NH
        with torch.no_grad():
            p = self.vae.goal_cells(self.encoder.heads(hidden)[0])
        if p is None or self.vae.grid is None:
            return None
        return p.reshape(len(p), *self.vae.grid.shape).numpy()

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        del task_class  # meta-RL: the task is inferred from experience, never told
        obs_ND = torch.as_tensor(flatten_obs(obs))
        if len(obs_ND) != len(self.hidden_NH):
            self._alloc(len(obs_ND))
        state = self._state(obs_ND, self.prev_done_N)
        with torch.no_grad():
            latent = self.belief()
            params, value = self.policy(state, latent)
            sample, log_prob = self.policy.draw(params, deterministic, self.generator)
        self._acted = (state, latent, sample)
        self.last_act = ActRecord(sample.numpy(), log_prob.numpy(), value.numpy())
        if self.discrete:
            return sample[:, 0].long().numpy()
        return (self.center + self.half * np.clip(sample.numpy(), -1.0, 1.0)).astype(np.float32)

    def observe(self, step: StepBatch) -> None:
        """The belief update with (a_t, s_{t+1}, r_t) (metalearner.py:212-220); in training,
        the transition also goes into the trial in flight."""
        rows = np.flatnonzero(step.valid)
        if len(rows) == 0 or self._acted is None:
            return
        idx = torch.as_tensor(rows)
        state, latent, sample = self._acted
        done = torch.as_tensor(np.asarray(step.done)[rows], dtype=torch.float32)
        next_obs = torch.as_tensor(flatten_obs(step.next_obs))[idx]
        next_state = self._state(next_obs, done)
        action = sample[idx]  # the raw draw, as varibad's encoder gets it (metalearner.py:214)
        reward = torch.as_tensor(np.asarray(step.reward, np.float32)[rows])
        with torch.no_grad():
            self.hidden_NH[idx] = self.encoder.step(self.hidden_NH[idx], action, next_state, reward)
        self.prev_done_N[idx] = done
        if not self.recording:
            return
        self.episodes_N[idx] += done.long()
        trial_done = self.episodes_N[idx] >= self.config.episodes_per_trial
        reward_norm = self._normalise(rows, reward.numpy(), trial_done.numpy())
        self.running.append(idx, {
            "state": state[idx], "next_state": next_state, "action": action, "reward": reward,
            "reward_norm": torch.as_tensor(reward_norm, dtype=torch.float32),
            "latent": latent[idx],
        })  # fmt: skip
        self.env_steps += len(rows)
        for i in rows[trial_done.numpy()]:
            self._finish_trial(int(i))

    def _normalise(
        self, rows: np.ndarray, reward: np.ndarray, trial_done: np.ndarray
    ) -> np.ndarray:
        """VecNormalize: r ÷ the running std of the discounted return, which restarts when the
        trial (the BAMDP episode) ends; the statistics move also without `norm_rewards`."""
        return self.returns(rows, reward, trial_done, self.config.norm_rewards)

    def _finish_trial(self, i: int) -> None:
        """A trial ended in env i: to the update queue and (with prob. p) the VAE buffer."""
        trial = self.running.pop(i)
        self.pending.append(trial)
        p = self.config.vae_buffer_add_prob
        if p >= 1.0 or float(torch.rand(1, generator=self.generator)) < p:
            self.store.add(trial)
        self.episodes_N[i] = 0

    # -- learning ---------------------------------------------------------------------------
    def update(self, batch: TrialBatch) -> VariBADUpdate:
        c = self.config
        trials = self._take(batch)
        self.iterations += 1
        # No update in the first iteration nor before `precollect_steps` (metalearner.py:269,
        # 332): the trials only fill the VAE buffer.
        if self.iterations == 1 or self.env_steps < c.precollect_steps:
            return VariBADUpdate(*([0.0] * len(VariBADUpdate.names())))
        stats = self._rl_update(batch, trials)
        if not c.rl_loss_through_encoder:  # ppo.py:174-176: the VAE after the policy
            vae = [
                self.vae.update(self.vae_opt, self.store, self.generator)
                for _ in range(c.vae_updates)
            ]
            if vae:
                stats.update({k: float(np.mean([v[k] for v in vae])) for k in vae[0]})
        self.updates += 1
        self._reencode_running()
        names = VariBADUpdate.names()
        return VariBADUpdate(updated=1.0, **{k: stats.get(k, 0.0) for k in names[1:]})

    def _take(self, batch: TrialBatch) -> dict[str, Tensor]:
        """The batch's trials from the queue, padded [B, L, ...], checked against the batch."""
        n_b, n_l = batch.mask_BL.shape
        if len(self.pending) < n_b:
            raise RuntimeError(
                f"varibad: the loop returned {n_b} trials but the agent recorded "
                f"{len(self.pending)}; it must observe every step of the trials it updates on"
            )
        taken, self.pending = self.pending[:n_b], self.pending[n_b:]
        for b, trial in enumerate(taken):
            n = len(trial["reward"])
            if n != int(batch.mask_BL[b].sum()) or not np.array_equal(
                trial["reward"].numpy(), batch.reward_BL[b, :n]
            ):
                raise RuntimeError(
                    f"varibad: trial {b} of the batch differs from the agent's record of it "
                    "(length or rewards); the agent and the TrialBuffer are out of step"
                )
        return pad_trials(taken, n_l)

    def _rl_update(self, batch: TrialBatch, trials: dict[str, Tensor]) -> dict[str, float]:
        """PPO or A2C (`ppo_update`) on every step of the trials, as one shuffled set of
        (state, belief) inputs: the policy is feed-forward given the belief."""
        c = self.config
        mask = torch.as_tensor(batch.mask_BL)
        reward = trials["reward_norm"].numpy() if c.norm_rewards else batch.reward_BL
        truncated = batch.done_BL & ~batch.terminated_BL
        adv_np, ret_np = varibad_gae(
            reward, batch.value_BL, batch.mask_BL, truncated, c.gamma, c.gae_lambda,
            c.proper_time_limits,
        )  # fmt: skip
        steps = PolicySteps(
            trials["state"][mask], trials["latent"][mask], torch.as_tensor(batch.sample_BLA)[mask],
            torch.as_tensor(batch.value_BL)[mask], torch.as_tensor(adv_np)[mask],
            torch.as_tensor(ret_np)[mask],
        )  # fmt: skip
        joint = None
        if c.rl_loss_through_encoder:
            # PPO clips the encoder at encoder_max_grad_norm, A2C at the policy's.
            limit = c.encoder_max_grad_norm if c.algorithm == "ppo" else c.max_grad_norm
            joint = ThroughEncoder(
                lambda: self._trial_beliefs(trials)[mask],
                lambda: self.vae.sampled_loss(self.store, self.generator), self.vae_opt,
                self.encoder, c.vae_loss_coef, limit,
            )  # fmt: skip
        return ppo_update(self.policy, self.opt, steps, c, self.generator, joint)

    def _trial_beliefs(self, trials: dict[str, Tensor]) -> Tensor:
        """[B, L, 2Z] beliefs the policy saw, recomputed by the encoder from the prior (with
        grad); the prior itself is detached as in helpers.py:176-183."""
        hidden = self.encoder.sequence(
            trials["action"], trials["next_state"], trials["reward"], self.config.tbptt_steps
        )[:, :-1]
        beliefs = self.belief(hidden)
        return torch.cat([beliefs[:, :1].detach(), beliefs[:, 1:]], 1)

    def elbo_loss(
        self, data: dict[str, Tensor], length_B: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """-Σ_t ELBO_t of whole trials (`BeliefVAE.loss`), drawing from the agent's generator."""
        return self.vae.loss(data, length_B, self.generator)

    def _reencode_running(self) -> None:
        """The trials in flight, re-encoded by the updated encoder (metalearner.py:175-184)."""
        n = int(self.run_len_N.max()) if len(self.run_len_N) else 0
        if n == 0:
            return
        run = self.running.data
        with torch.no_grad():
            hidden = self.encoder.sequence(
                run["action"][:, :n], run["next_state"][:, :n], run["reward"][:, :n]
            )
        self.hidden_NH = hidden[torch.arange(len(hidden)), self.run_len_N].clone()

    # -- logs and state ---------------------------------------------------------------------
    @staticmethod
    def metric_names() -> list[str]:
        return VariBADUpdate.names()

    def _acting_state(self) -> dict[str, Any]:
        return copy.deepcopy({
            "hidden": self.hidden_NH, "prev_done": self.prev_done_N, "episodes": self.episodes_N,
            "ret": torch.as_tensor(self.returns.ret_N), "run_len": self.running.length_N,
            "run": self.running.data, "generator": self.generator.get_state(),
        })  # fmt: skip

    def _load_acting_state(self, s: dict[str, Any]) -> None:
        s = copy.deepcopy(s)
        self.hidden_NH, self.prev_done_N = s["hidden"], s["prev_done"]
        self.episodes_N = s["episodes"]
        self.returns.ret_N = s["ret"].numpy().copy()
        self.running.length_N, self.running.data = s["run_len"], s["run"]
        self.generator.set_state(s["generator"])
        self._acted = None

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Nothing recorded or normalised; the training envs' beliefs, trials in flight and the
        sampling generator are put back afterwards (the networks are not touched)."""
        saved = self._acting_state()
        self.recording = False
        try:
            yield
        finally:
            self.recording = True
            self._load_acting_state(saved)

    def _networks(self) -> dict[str, nn.Module]:
        nets = {"encoder": self.encoder, "policy": self.policy}
        decoders = {"reward_decoder": self.reward_decoder, "state_decoder": self.state_decoder}
        return nets | {k: d for k, d in decoders.items() if d is not None}

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimisers, generator, counters, normalisers, the VAE buffer, finished
        trials not yet updated on and the per-env state (tensors and plain values)."""
        return {
            **{k: copy.deepcopy(m.state_dict()) for k, m in self._networks().items()},
            "opt": copy.deepcopy(self.opt.state_dict()),
            "vae_opt": copy.deepcopy(self.vae_opt.state_dict()),
            "updates": self.updates,
            "iterations": self.iterations,
            "env_steps": self.env_steps,
            "ret_rms": torch.as_tensor(self.returns.rms.copy()),
            "store": self.store.state_dict(),
            "pending": copy.deepcopy(self.pending),
            **self._acting_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        for name, net in self._networks().items():
            net.load_state_dict(state[name])
        self.opt.load_state_dict(state["opt"])
        self.vae_opt.load_state_dict(state["vae_opt"])
        self.updates, self.iterations = int(state["updates"]), int(state["iterations"])
        self.env_steps = int(state["env_steps"])
        self.returns.rms = state["ret_rms"].numpy().copy()
        self.store = TrialStore(self.config.vae_buffer_trials)
        self.store.load_state_dict(state["store"])
        self.pending = state["pending"]
        self._load_acting_state(state)


def build_varibad(
    config: VariBADConfig, env: EnvSpec, seed: int = 0, device: str = "cpu"
) -> VariBAD:
    del device  # CPU: the encoder steps one env batch at a time
    torch.manual_seed(seed)  # the networks' initial weights
    return VariBAD(config, env, seed)


register_agent(
    AgentSpec(
        "varibad",
        "VariBAD: RNN belief q(m|τ:t) trained as a VAE on whole trials + PPO on [s, belief]",
        "trials",
        VariBADConfig,
        build_varibad,
    )
)
