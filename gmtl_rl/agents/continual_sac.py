"""Continual-learning SAC as Continual World runs it (Wołczyk et al. 2021; awarelab/
continual_world @73f63bb): one SAC trained on a sequence of tasks, one after another, with a
method against forgetting. Methods: finetune (plain SAC, the lower bound), l2, ewc, mas
(parameter regularisers), packnet (per-task weight masks), agem (gradient projection on an
episodic memory), perfect_memory (a replay that keeps every task), multitask (the upper
bound: all tasks at once; the loop does that). The machinery is gmtl_rl/core/continual/; the
loop (gmtl_rl/training/continual.py) calls `start_task`, `set_task_progress` and `end_task`.

Defaults are CW's (continualworld/sac/sac.py, input_args.py `cl_parse_args`,
examples/paper_cl_experiments.sh); where a default depends on the method, `_METHOD_DEFAULTS`
below is the one place that says how. Deviations from CW, each marked where it is made:
the critics step before the actor (SAC's shared update; CW takes every gradient at the
same parameters), so A-GEM projects the critic's and the actor's gradients each against its own
reference gradient rather than with one joint dot product; separate Adam optimisers for actor,
critics and temperature (CW: one Keras Adam for all three); PackNet's retraining and the
importances read the finished task's own rows of the replay (CW: the whole replay, which with
its default reset holds only that task).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from pydantic import Field, PositiveInt, model_validator

from gmtl_rl.agents.registry import AgentSpec, register_agent
from gmtl_rl.agents.sac import SAC, SACConfig, SACUpdate
from gmtl_rl.core.continual import agem
from gmtl_rl.core.continual.packnet import PackNet
from gmtl_rl.core.continual.params import (
    CWActor,
    CWTwinQ,
    FlatParams,
    is_kernel,
    reset_adam_moments,
    shared_parameters,
)
from gmtl_rl.core.continual.regularizers import (
    Regularizer,
    critic_importance,
    policy_importance,
)
from gmtl_rl.core.networks import TanhGaussianActor, TaskEncoder, TwinQ
from gmtl_rl.core.records import EnvSpec, Obs, obs_index
from gmtl_rl.core.replay import ReplayBatch, ReplayStorage
from gmtl_rl.errors import ConfigError

Method = Literal["finetune", "l2", "ewc", "mas", "packnet", "agem", "perfect_memory", "multitask"]
METHODS: tuple[str, ...] = get_args(Method)
REGULARISERS = ("l2", "ewc", "mas")
Net = Literal["critic", "actor"]

# Settings whose Continual World value depends on the method: a config that leaves one out
# gets this method's value (the field's own default is the value of every other method).
_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "l2": {"reg_coef": 1e5},  # paper_cl_experiments.sh: --cl_reg_coef=100000.0
    "ewc": {"reg_coef": 1e4},  # --cl_reg_coef=10000.0
    "mas": {"reg_coef": 1e4},  # --cl_reg_coef=10000.0
    "packnet": {"max_grad_norm": 2e-5},  # --packnet_retrain_steps=100000 --clipnorm=2e-05
    # --batch_size=512 --buffer_type=reservoir --reset_buffer_on_task_change=False
    # --replay_size=20000000 (a reservoir that never fills is a FIFO that keeps everything)
    "perfect_memory": {"batch_size": 512, "buffer_size": 20_000_000, "reset_buffer": False},
    # paper_mt_experiments.sh: run_mt.py --lr=0.0001 (its SAC never resets its replay)
    "multitask": {"lr": 1e-4, "reset_buffer": False},
}


class ContinualSACConfig(SACConfig):
    """SAC on a task sequence with a continual-learning method; CW's settings by default."""

    name: Literal["cl_sac"] = "cl_sac"  # type: ignore[assignment]
    method: Method = Field(
        "finetune", description="finetune, l2, ewc, mas, packnet, agem, perfect_memory, multitask"
    )
    # -- CW's SAC (sac.py, input_args.py) ------------------------------------------------------
    hidden: list[PositiveInt] = Field(
        [256, 256, 256, 256], min_length=1, description="MLP sizes (CW --hidden_sizes)"
    )
    cw_network: bool = Field(
        True,
        description="CW's body: Linear-LayerNorm-tanh, then Linear-leaky ReLU(0.2), Keras "
        "init (models.py mlp); false: the shared SAC's ReLU MLP",
    )
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (CW --lr; multitask 1e-4)")
    batch_size: int = Field(128, ge=1, description="rows per update (perfect_memory: 512)")
    buffer_size: int = Field(1_000_000, ge=1, description="replay capacity (perfect_memory: 2e7)")
    learning_starts: int = Field(
        10_000,
        ge=0,
        description="env steps of uniform random actions at the start of every task (CW "
        "start_steps; of the first task only when random_steps_every_task is false)",
    )
    random_steps_every_task: bool = Field(
        True, description="random actions open every task (CW agent_policy_exploration=False)"
    )
    update_after: int = Field(
        1000, ge=0, description="env steps into each task before its first update (CW)"
    )
    update_every: int = Field(
        50,
        ge=1,
        description="updates come in bursts: this many after every this many env steps "
        "(CW; times updates_per_step; 1: one update per step)",
    )
    init_alpha: float = Field(
        math.e, gt=0, description="initial temperature (CW: log α starts at 1, so α = e)"
    )
    per_task_alpha: bool = Field(True, description="one temperature per element (CW)")
    target_output_std: float | None = Field(
        0.089,
        gt=0,
        description="with target_entropy auto: target entropy A·log(σ√(2πe)), CW's tuning "
        "for a per-dimension std σ (None: -A)",
    )
    multi_head: bool = Field(True, description="one actor and critic head per element (CW)")
    task_encoding: Literal["none", "one_hot"] = Field(
        "none", description="task input to the body (CW hide_task_id: none)"
    )
    adam_eps: float = Field(1e-7, gt=0, description="Adam's ε (Keras' default, as CW runs)")
    architecture: Literal["mlp"] = Field("mlp", description="mlp only")
    gradient_surgery: Literal["none"] = Field("none", description="none only")
    temperature_reweight: Literal[False] = Field(False, description="off")
    # -- task changes --------------------------------------------------------------------------
    reset_buffer: bool = Field(
        True, description="empty the replay at each task change (perfect_memory, multitask: no)"
    )
    reset_optimizer: bool = Field(
        True, description="zero Adam's moments at each task start (CW; step counts kept)"
    )
    # -- methods -------------------------------------------------------------------------------
    regularize_critic: bool = Field(
        False, description="l2/ewc/mas/packnet also act on the critics (CW: actor only)"
    )
    reg_coef: float = Field(
        1e4, ge=0, description="l2/ewc/mas penalty coefficient (CW: l2 1e5, ewc and mas 1e4)"
    )
    importance_samples: int = Field(
        2560, ge=1, description="replay rows per EWC/MAS importance (CW: 10 batches of 256)"
    )
    packnet_retrain_steps: int = Field(
        100_000, ge=0, description="updates after each pruning, on the pruned task's data"
    )
    agem_episodic_mem_per_task: int = Field(
        10_000, ge=1, description="transitions of each finished task kept by A-GEM"
    )
    agem_episodic_batch_size: int = Field(
        128, ge=1, description="A-GEM's reference batch from the episodic memory"
    )

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        """Fill in `_METHOD_DEFAULTS` for the keys a config leaves out."""
        if isinstance(data, dict) and isinstance(data.get("method", "finetune"), str):
            return {**_METHOD_DEFAULTS.get(data.get("method", "finetune"), {}), **data}
        return data

    @property
    def needs_task_identity(self) -> bool:
        """PackNet chooses each element's weights by its position."""
        return self.method == "packnet"

    def check_sequence(
        self, task_identity: str, n_tasks: int, steps_per_task: int | None = None
    ) -> None:
        """One-line ConfigErrors for this method on a sequence of `n_tasks` elements whose
        identity is `task_identity` (visible or hidden); the loop's config check calls it."""
        if task_identity == "hidden":
            if self.needs_task_identity:
                valid = ", ".join(m for m in METHODS if m != "packnet")
                raise ConfigError(
                    f"agent.method: {self.method} picks each element's weights by its position, "
                    f"and sequence.task_identity is hidden; valid there: {valid}"
                )
            if self.multi_head:
                raise ConfigError(
                    "agent.multi_head: a head per element needs its position, and "
                    "sequence.task_identity is hidden; valid there: false"
                )
            if self.task_encoding != "none":
                raise ConfigError(
                    f"agent.task_encoding: {self.task_encoding} shows the position, and "
                    "sequence.task_identity is hidden; valid there: none"
                )
        if self.method == "perfect_memory" and steps_per_task is not None:
            need = n_tasks * steps_per_task
            if self.buffer_size < need:
                raise ConfigError(
                    f"agent.buffer_size: {self.buffer_size} is too small for perfect_memory, "
                    f"which keeps all {n_tasks} × {steps_per_task} = {need} transitions; "
                    f"valid: >= {need}"
                )


@dataclass(frozen=True)
class ContinualSACUpdate(SACUpdate):
    """SAC's diagnostics plus the method's (CW logs train/loss_reg, train/agem_violation)."""

    reg_loss: float  # the penalty added to actor and critic losses (l2, ewc, mas)
    agem_projected_critic: float  # 1 when A-GEM projected that gradient
    agem_projected_actor: float


class ContinualSAC(SAC):
    """SAC plus the config's continual-learning method (the loop's ContinualAgent)."""

    config: ContinualSACConfig

    def __init__(
        self, config: ContinualSACConfig, env: EnvSpec, device: str = "cpu", seed: int = 0
    ) -> None:
        super().__init__(config, env, device, seed)
        c = config
        self.n_tasks = env.num_task_classes  # the loop: one class per sequence element
        self.position = 0
        if c.target_entropy == "auto" and c.target_output_std is not None:
            # sac.py: target_1d_entropy = log(σ √(2πe)), target = A × that (≈ -A at σ 0.089)
            act_dim = len(self.action_half_range)
            self.target_entropy = act_dim * math.log(
                c.target_output_std * math.sqrt(2 * math.pi * math.e)
            )
        self.action_scale = torch.as_tensor(self.action_half_range, device=self.device)
        nets: dict[Net, TanhGaussianActor | TwinQ] = {"actor": self.actor}
        if c.regularize_critic:
            nets["critic"] = self.critic
        self.regularizers: dict[Net, Regularizer] = {}
        self.packnets: dict[Net, PackNet] = {}
        for key, net in nets.items():
            named = shared_parameters(net)
            if c.method in REGULARISERS:
                self.regularizers[key] = Regularizer(FlatParams(net, named), c.reg_coef)
            elif c.method == "packnet":  # with a head per task the heads are left alone
                kernels = [p for n, p in named if is_kernel(net, n)]
                others = [p for n, p in named if not is_kernel(net, n)]
                self.packnets[key] = PackNet(kernels, others)
        self.memory = (
            agem.EpisodicMemory(c.agem_episodic_mem_per_task * self.n_tasks)
            if c.method == "agem"
            else None
        )
        stream = np.random.SeedSequence([seed, 18]).generate_state(1)[0]  # 18: issue number
        self.generator = torch.Generator().manual_seed(int(stream))  # A-GEM's memory batches
        self._actor_ref: list[torch.Tensor] | None = None  # A-GEM, within one update
        self._metrics = {"reg_loss": 0.0, "agem_projected_critic": 0.0, "agem_projected_actor": 0.0}

    def _networks(self, env: EnvSpec, obs_dim: int, act_dim: int) -> tuple[Any, Any, Any]:
        c, n = self.config, env.num_task_classes
        if not c.cw_network:
            return super()._networks(env, obs_dim, act_dim)
        heads = n if c.multi_head else 1

        def encoder() -> TaskEncoder:
            return TaskEncoder(n, c.task_encoding, c.task_embedding_dim)

        actor = CWActor(obs_dim, act_dim, c.hidden, encoder(), heads, c.log_std_min)
        critic = CWTwinQ(obs_dim, act_dim, c.hidden, encoder(), heads)
        return actor, critic, CWTwinQ(obs_dim, act_dim, c.hidden, encoder(), heads)

    # -- the loop's ContinualAgent protocol ------------------------------------------------------
    def start_task(self, position: int) -> None:
        """Before the first env step of sequence element `position` (sac.py
        `_handle_task_change`: Adam's moments zeroed when reset_optimizer)."""
        self.position = position
        if self.config.reset_optimizer:
            reset_adam_moments(self.actor_opt, self.critic_opt, self.alpha_opt)
        for packnet in self.packnets.values():
            packnet.set_task(position)

    def set_task_progress(self, position: int, step_in_task: int, steps_per_task: int) -> None:
        """Before every collection step. CW's methods act at task boundaries only (PackNet
        prunes and retrains after the task's last step, in `end_task`)."""
        del position, step_in_task, steps_per_task

    def end_task(self, position: int, replay: ReplayStorage, rng: np.random.Generator) -> None:
        """After element `position`'s last env step and update. CW acts at the next task's
        start, before its replay reset, and never after the last task: the same here."""
        c = self.config
        if position >= self.n_tasks - 1:
            return
        if c.method in REGULARISERS:
            self._consolidate(position, replay, rng)
        elif c.method == "packnet":
            self._prune_and_retrain(position, replay, rng)
        elif self.memory is not None:  # agem.py on_task_start: drawn with replacement
            rows = self._task_rows(replay, position, c.agem_episodic_mem_per_task, rng)
            self.memory.add(replay.batch(rows))

    def _task_rows(
        self, replay: ReplayStorage, position: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """`n` replay rows of element `position`, uniformly with replacement."""
        count = replay.class_index.count.get(position, 0)
        if count == 0:
            raise ValueError(f"the replay holds no transitions of sequence element {position}")
        return replay.class_index.pick(position, rng.integers(count, size=n))

    def _consolidate(self, position: int, replay: ReplayStorage, rng: np.random.Generator) -> None:
        """L2/EWC/MAS: anchor at the current weights, add this task's importance."""
        method = self.config.method
        if method == "l2":
            for reg in self.regularizers.values():
                reg.consolidate(torch.ones_like(reg.anchor))
            return
        assert method in ("ewc", "mas")
        batch = replay.batch(self._task_rows(replay, position, self.config.importance_samples, rng))
        obs, task = self._obs_tensor(batch.obs), self._task_tensor(batch.task_class)
        action = torch.as_tensor(self._to_unit_action(batch.action), device=self.device)
        for key, reg in self.regularizers.items():
            if key == "actor":
                imp = policy_importance(method, self.actor, reg.flat, obs, task, self.action_scale)
            else:
                imp = critic_importance(method, self.critic, reg.flat, obs, action, task)
            reg.consolidate(imp)

    def _prune_and_retrain(
        self, position: int, replay: ReplayStorage, rng: np.random.Generator
    ) -> None:
        """packnet.py on_task_end: prune so each later task gets an equal share, retrain with
        Adam's moments zeroed before and after."""
        left = self.n_tasks - position - 1
        for packnet in self.packnets.values():
            if position == 0:
                packnet.end_first_task()
            packnet.prune(position, left / (left + 1))
        optimizers = (self.actor_opt, self.critic_opt, self.alpha_opt)
        reset_adam_moments(*optimizers)
        for _ in range(self.config.packnet_retrain_steps):
            self.update(
                replay.batch(self._task_rows(replay, position, self.config.batch_size, rng))
            )
        reset_adam_moments(*optimizers)

    # -- hooks on SAC's update ---------------------------------------------------------------------
    def _penalty(self, net: Net) -> torch.Tensor | None:
        reg = self.regularizers.get(net)
        penalty = None if reg is None else reg.penalty()
        if penalty is not None:
            self._metrics["reg_loss"] += float(penalty.detach())
        return penalty

    def _adjust_gradients(self, net: Net) -> None:
        packnet = self.packnets.get(net)
        if packnet is not None:
            packnet.mask_gradients()
        if self.memory is None or self.position == 0 or self.memory.size == 0:
            return
        params = self._critic_params if net == "critic" else self._actor_params
        if net == "critic":
            # Both reference gradients at the parameters before this update's steps, as CW
            # takes them (agem.py adjust_gradients -> get_gradients on the episodic batch).
            ref_batch = self.memory.sample(self.config.agem_episodic_batch_size, self.generator)
            critic_loss, actor_loss = self.losses(ref_batch)
            ref = _grads(critic_loss, self._critic_params)
            self._actor_ref = _grads(actor_loss, self._actor_params)
        else:
            assert self._actor_ref is not None
            ref, self._actor_ref = self._actor_ref, None
        # Deviation: one projection per network (the critics step before the actor's gradient
        # exists); CW projects both with one dot product over actor and critic gradients.
        grads = [p.grad for p in params]
        assert all(g is not None for g in grads)
        projected = agem.project(grads, ref)  # type: ignore[arg-type]
        self._metrics[f"agem_projected_{net}"] = float(projected)

    def _after_step(self, net: Net) -> None:
        packnet = self.packnets.get(net)
        if packnet is not None:
            packnet.restore()

    def update(self, batch: ReplayBatch) -> ContinualSACUpdate:
        self._metrics = dict.fromkeys(self._metrics, 0.0)
        result = super().update(batch)
        return ContinualSACUpdate(**result.metrics(), **self._metrics)

    def metric_names(self) -> list[str]:
        return ContinualSACUpdate.names()

    # -- acting ------------------------------------------------------------------------------------
    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """PackNet acts on element k with the weights of elements after k zeroed (packnet.py
        `_set_view`); rows are grouped by element."""
        packnet = self.packnets.get("actor")
        task_class = np.asarray(task_class)
        if packnet is None or not np.any(task_class < packnet.last):
            return super().act(obs, task_class, deterministic)
        actions = np.zeros((len(task_class), len(self.action_half_range)), np.float32)
        for k in np.unique(task_class).tolist():
            rows = np.flatnonzero(task_class == k)
            with packnet.view(k) if k < packnet.last else nullcontext():
                actions[rows] = super().act(obs_index(obs, rows), task_class[rows], deterministic)
        return actions

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """SAC's state plus the position, the method's anchors, importances, owners or
        episodic memory, and the A-GEM batch generator."""
        return {
            **super().state_dict(),
            "continual": {
                "position": self.position,
                "generator": self.generator.get_state(),
                "regularizers": {k: r.state_dict() for k, r in self.regularizers.items()},
                "packnet": {k: p.state_dict() for k, p in self.packnets.items()},
                **({} if self.memory is None else {"memory": self.memory.state_dict()}),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # weights first: PackNet reads its frozen values
        cont = state["continual"]
        self.position = int(cont["position"])
        self.generator.set_state(cont["generator"].clone())
        for key, reg in self.regularizers.items():
            reg.load_state_dict(cont["regularizers"][key])
        for key, packnet in self.packnets.items():
            packnet.load_state_dict(cont["packnet"][key])
        if self.memory is not None:
            self.memory.load_state_dict(cont["memory"])


def _grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def build_continual_sac(
    config: ContinualSACConfig, env: EnvSpec, seed: int = 0, device: str = "cpu"
) -> ContinualSAC:
    return ContinualSAC(config, env, device, seed)


register_agent(
    AgentSpec(
        "cl_sac",
        "Continual World SAC on a task sequence: finetune, l2, ewc, mas, packnet, agem, "
        "perfect_memory, multitask",
        "continual",
        ContinualSACConfig,
        build_continual_sac,
    )
)
