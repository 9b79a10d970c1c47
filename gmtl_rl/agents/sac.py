"""Soft Actor-Critic (Haarnoja et al. 2018, "SAC: Algorithms and Applications").

Twin critics with target networks, a tanh-Gaussian actor, and an automatically tuned entropy
temperature. The pieces are separate so MT-SAC (per-task temperature, task-balanced batches),
SAC+HER (a replay strategy) and PEARL (SAC on [obs, z]) reuse them. `agent.architecture`
swaps the MLPs for a multi-task network (Soft Modularization, CARE, MOORE, PaCo;
gmtl_rl/core/mt_architectures.py, docs/multitask_architectures.md) on the same update.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn

from gmtl_rl.agents.registry import AgentConfig, AgentSpec, register_agent
from gmtl_rl.core import mt_architectures as mta
from gmtl_rl.core.gradient_surgery import GradientSurgery, PCGrad
from gmtl_rl.core.mt_architectures import (
    Architecture,
    CAREOptions,
    MOOREOptions,
    PaCoOptions,
    SoftModulesOptions,
)
from gmtl_rl.core.networks import (
    TanhGaussianActor,
    TaskEncoder,
    TaskEncoding,
    TwinQ,
    flat_dim,
    obs_tensor,
    task_class_tensor,
)
from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.records import EnvSpec, Obs, UpdateResult
from gmtl_rl.core.replay import ReplayBatch
from gmtl_rl.errors import ConfigError


class HERConfig(BaseModel):
    """Hindsight relabelling of replay batches (gmtl_rl.core.her); goal envs only."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy: Literal["none", "future", "final", "episode"] = Field(
        "none", description="where relabelled goals come from (none = HER off)"
    )
    relabel_ratio: float = Field(
        0.8, ge=0, le=1, description="share of a batch relabelled: k/(k+1) for k goals (HER)"
    )


class SACConfig(AgentConfig):
    """SAC hyperparameters; defaults follow the paper's Table 1 and stable-baselines3."""

    name: Literal["sac"] = "sac"
    hidden: list[PositiveInt] = Field(
        [256, 256], min_length=1, description="MLP sizes of actor and critics"
    )
    lr: float = Field(
        3e-4, gt=0, description="Adam learning rate of actor, critics and temperature"
    )
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    tau: float = Field(0.005, gt=0, le=1, description="Polyak factor of the target critics")
    batch_size: int = Field(256, ge=1, description="transitions per gradient step")
    buffer_size: int = Field(1_000_000, ge=1, description="replay capacity (transitions)")
    learning_starts: int = Field(
        1000, ge=0, description="env steps of uniform random actions first"
    )
    updates_per_step: float = Field(1.0, gt=0, description="gradient steps per env step")
    init_alpha: float = Field(1.0, gt=0, description="initial entropy temperature")
    learn_alpha: bool = Field(True, description="tune the temperature to the target entropy")
    target_entropy: float | Literal["auto"] = Field("auto", description="'auto' = -dim(A)")
    per_task_alpha: bool = Field(False, description="one temperature per task class (MT-SAC)")
    reward_scale: float = Field(1.0, gt=0, description="rewards are multiplied by this")
    task_encoding: TaskEncoding = Field(
        "none", description="task class id fed to actor and critics: none, one_hot, embedding"
    )
    task_embedding_dim: int = Field(
        32, ge=1, description="size of the learned task embedding (task_encoding=embedding)"
    )
    multi_head: bool = Field(
        False, description="one output head per task class on actor and critics"
    )
    replay_sampler: Literal["uniform", "task_balanced"] = Field(
        "uniform", description="how replay batches are drawn (task_balanced: per task class)"
    )
    her: HERConfig = Field(HERConfig(), description="hindsight experience replay (goal envs)")
    gradient_surgery: GradientSurgery = Field(
        "none", description="how per-task actor and critic gradients combine: none, pcgrad"
    )
    architecture: Architecture = Field(
        "mlp", description="actor and critic networks: mlp, soft_modules, care, moore, paco"
    )
    soft_modules: SoftModulesOptions = Field(SoftModulesOptions(), description="soft_modules")
    care: CAREOptions = Field(CAREOptions(), description="architecture care")
    moore: MOOREOptions = Field(MOOREOptions(), description="architecture moore")
    paco: PaCoOptions = Field(PaCoOptions(), description="architecture paco")
    temperature_reweight: bool = Field(
        False, description="weigh each row's losses by T·softmax(-log α)[task] (Soft-Module)"
    )
    max_grad_norm: float | None = Field(
        None, gt=0, description="clip actor and critic gradients to this global norm"
    )
    alpha_lr: float | None = Field(None, gt=0, description="temperature learning rate (None: lr)")
    adam_eps: float = Field(1e-8, gt=0, description="Adam's epsilon")
    log_std_min: float = Field(-20.0, ge=-20.0, lt=2.0, description="lower clamp of log σ")

    @property
    def conditions_on_task(self) -> bool:
        """True when actions depend on the task class id (so every class must be known)."""
        return self.task_encoding != "none" or self.multi_head or self.architecture != "mlp"


class HERSACConfig(SACConfig):
    """SAC + HER with the SB3 zoo's Fetch settings (REFERENCE.md): `future` goals at ratio
    0.8 (k = 4), γ 0.95, lr 1e-3, τ 0.05, 3×512 networks, batch 256 (FetchReach)."""

    name: Literal["sac_her"] = "sac_her"  # type: ignore[assignment]
    hidden: list[PositiveInt] = Field([512, 512, 512], min_length=1, description="MLP sizes")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    gamma: float = Field(0.95, gt=0, le=1, description="discount")
    tau: float = Field(0.05, gt=0, le=1, description="Polyak factor of the target critics")
    her: HERConfig = Field(HERConfig(strategy="future"), description="hindsight replay")


class MTSACConfig(SACConfig):
    """Multi-task SAC (Meta-World paper; mtrl): one-hot task input, one temperature per task
    class, task-balanced batches. Defaults: Meta-World MT10 settings of REFERENCE.md."""

    name: Literal["mtsac"] = "mtsac"  # type: ignore[assignment]
    hidden: list[PositiveInt] = Field([400, 400, 400], min_length=1, description="MLP sizes")
    task_encoding: TaskEncoding = Field("one_hot", description="none, one_hot, embedding")
    per_task_alpha: bool = Field(True, description="one temperature per task class")
    replay_sampler: Literal["uniform", "task_balanced"] = Field(
        "task_balanced", description="equal share of each batch per task class"
    )


class MHSACConfig(MTSACConfig):
    """Multi-head multi-task SAC: MT-SAC plus one actor and critic output head per class."""

    name: Literal["mhsac"] = "mhsac"  # type: ignore[assignment]
    multi_head: bool = Field(True, description="one output head per task class")


class MTSACPCGradConfig(MTSACConfig):
    """MT-SAC + PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"): the
    per-task gradients of the actor and critic losses are projected, then summed."""

    name: Literal["mtsac_pcgrad"] = "mtsac_pcgrad"  # type: ignore[assignment]
    gradient_surgery: GradientSurgery = Field("pcgrad", description="none, pcgrad")


class _MetaWorldPlusMTSACConfig(MTSACConfig):
    """MT-SAC as Meta-World+ runs its architectures (metaworld-algorithms rl/algorithms/mtsac.py,
    config/optim.py): the network reads the task class itself, actor and critic gradients are
    clipped to global norm 1, Adam's ε is 1e-5."""

    task_encoding: TaskEncoding = Field("none", description="the network reads the class")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Meta-World+ max_grad_norm")
    adam_eps: float = Field(1e-5, gt=0, description="Meta-World+ Adam epsilon")


class MTSACSoftModulesConfig(_MetaWorldPlusMTSACConfig):
    """Soft Modularization (Yang et al. 2020) with its temperature loss re-weighting; MT10
    sizes: encoder f 2×400, 2 layers of 2 modules of 256, routing width 256."""

    name: Literal["mtsac_softmod"] = "mtsac_softmod"  # type: ignore[assignment]
    hidden: list[PositiveInt] = Field([400, 400], min_length=1, description="encoder f")
    architecture: Architecture = Field("soft_modules", description="network")
    temperature_reweight: bool = Field(True, description="Soft-Module's temp_reweight")


class MTSACCAREConfig(_MetaWorldPlusMTSACConfig):
    """CARE (Sodhani et al. 2021): attention over 6 encoders from the task's metadata (the
    authors' RoBERTa embeddings of Meta-World's task descriptions), torso 3×400."""

    name: Literal["mtsac_care"] = "mtsac_care"  # type: ignore[assignment]
    architecture: Architecture = Field("care", description="network")


class MTSACMOOREConfig(_MetaWorldPlusMTSACConfig):
    """MOORE (Hendawy et al. 2024): 4 orthogonal 3×400 experts, per-task heads; temperature
    lr 1e-4 and log σ ≥ -10 as the authors and Meta-World+ run it."""

    name: Literal["mtsac_moore"] = "mtsac_moore"  # type: ignore[assignment]
    architecture: Architecture = Field("moore", description="network")
    alpha_lr: float | None = Field(1e-4, gt=0, description="MOORE's lr_alpha")
    log_std_min: float = Field(-10.0, ge=-20.0, lt=2.0, description="MOORE's log_std_min")


class MTSACPaCoConfig(_MetaWorldPlusMTSACConfig):
    """PaCo (Sun et al. 2022): 5 parameter sets of a 3×400 network composed per task, as
    Meta-World+ runs it (the authors' mask-out / w-reset: agent.paco.extreme_task_loss)."""

    name: Literal["mtsac_paco"] = "mtsac_paco"  # type: ignore[assignment]
    architecture: Architecture = Field("paco", description="network")


@dataclass(frozen=True)
class SACUpdate(UpdateResult):
    """Diagnostics of one gradient step."""

    critic_loss: float
    actor_loss: float
    alpha_loss: float
    alpha: float
    q_mean: float
    entropy: float  # -E[log pi(a|s)]


@dataclass(frozen=True)
class PCGradSACUpdate(SACUpdate):
    """SAC diagnostics plus the share of task pairs whose gradients conflict (PCGrad)."""

    critic_conflicts: float
    actor_conflicts: float


class EntropyTemperature(nn.Module):
    """log α, one per task or shared; tuned so E[-log π] tracks the target (SAC eq. 18)."""

    def __init__(self, init_alpha: float, num: int) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((num,), float(np.log(init_alpha))))

    def forward(self, task_B: torch.Tensor) -> torch.Tensor:
        """α per row [B], or [1] (broadcasts over the batch) when the temperature is shared."""
        if self.log_alpha.numel() == 1:
            return self.log_alpha.exp()
        return self.log_alpha[task_B].exp()

    def loss(
        self,
        task_B: torch.Tensor,
        log_prob_B: torch.Tensor,
        target: float,
        mask_B: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if mask_B is not None:  # rows masked out of this update (PaCo's extreme tasks)
            log_alpha = self.log_alpha if self.log_alpha.numel() == 1 else self.log_alpha[task_B]
            return -(log_alpha * (log_prob_B.detach() + target) * mask_B).mean()
        if self.log_alpha.numel() == 1:  # same value and gradient, no gather/scatter
            return -(self.log_alpha * (log_prob_B.detach().mean() + target)).sum()
        return -(self.log_alpha[task_B] * (log_prob_B.detach() + target)).mean()


class SAC(StatelessPolicy):
    """The SAC agent: acts through the Policy protocol and updates from replay batches."""

    def __init__(self, config: SACConfig, env: EnvSpec, device: str = "cpu", seed: int = 0) -> None:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ConfigError(
                f"agent.name: sac needs a continuous (Box) action space; this env's is "
                f"{env.action_space} (a discrete-action agent is needed)"
            )
        self.config = config
        self.device = torch.device(device)
        self.num_task_classes = env.num_task_classes
        obs_dim = flat_dim(env.observation_space)
        act_dim = int(np.prod(env.action_space.shape))
        low = np.asarray(env.action_space.low, np.float32)
        high = np.asarray(env.action_space.high, np.float32)
        self.action_center = (high + low) / 2
        self.action_half_range = (high - low) / 2
        c = config
        n_classes = env.num_task_classes

        mta.check(c, n_classes)
        self.actor, self.critic, self.critic_target = self._networks(env, obs_dim, act_dim)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.temperature = EntropyTemperature(c.init_alpha, n_classes if c.per_task_alpha else 1)
        for module in (self.actor, self.critic, self.critic_target, self.temperature):
            module.to(self.device)
        # Fused Adam: one kernel per step instead of ~10 ops per parameter tensor (CPU and CUDA).
        fused = True if self.device.type in ("cpu", "cuda") else None
        eps = c.adam_eps
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr, eps=eps, fused=fused)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr, eps=eps, fused=fused)
        alpha_lr = c.lr if c.alpha_lr is None else c.alpha_lr
        self.alpha_opt = torch.optim.Adam(
            self.temperature.parameters(), lr=alpha_lr, eps=eps, fused=fused
        )
        self.target_entropy = -float(act_dim) if c.target_entropy == "auto" else c.target_entropy
        self._critic_params: list[torch.Tensor] = list(self.critic.parameters())
        self._target_params: list[torch.Tensor] = list(self.critic_target.parameters())
        self._actor_params: list[torch.Tensor] = list(self.actor.parameters())
        self.surgery = self._gradient_surgery(n_classes, seed)
        self.extreme = mta.ExtremeTasks.of(c, n_classes, seed)  # PaCo's mask-out and w-reset
        self.updates = 0

    def _networks(
        self, env: EnvSpec, obs_dim: int, act_dim: int
    ) -> tuple[TanhGaussianActor, TwinQ, TwinQ]:
        """Actor, critic and target critic: MLPs (SAC, MT-SAC, multi-head) or a multi-task
        architecture (gmtl_rl.core.mt_architectures)."""
        c, n_classes = self.config, env.num_task_classes
        if c.architecture != "mlp":
            return mta.build_networks(c, env, obs_dim, act_dim)

        def encoder() -> TaskEncoder:
            return TaskEncoder(n_classes, c.task_encoding, c.task_embedding_dim)

        heads = n_classes if c.multi_head else 1
        if c.log_std_min == -20.0:
            actor = TanhGaussianActor(obs_dim, act_dim, c.hidden, encoder(), heads)
        else:
            actor = mta.BoundedTanhGaussianActor(
                obs_dim, act_dim, c.hidden, encoder(), heads, log_std_min=c.log_std_min
            )
        critic = TwinQ(obs_dim, act_dim, c.hidden, encoder(), heads)
        return actor, critic, TwinQ(obs_dim, act_dim, c.hidden, encoder(), heads)

    def _gradient_surgery(self, n_classes: int, seed: int) -> PCGrad | None:
        if self.config.gradient_surgery == "none":
            return None
        if not self.config.conditions_on_task:
            raise ConfigError(
                f"agent.gradient_surgery: pcgrad needs an agent given the task class "
                f"(agent.task_encoding one_hot or embedding, or multi_head, as mtsac and mhsac "
                f"are); agent {self.config.name!r} here is single-task, so valid: none"
            )
        if n_classes < 2:
            raise ConfigError(
                f"agent.gradient_surgery: pcgrad needs an env with at least 2 task classes "
                f"(per-task gradients); this env has {n_classes}, so valid: none"
            )
        return PCGrad(seed)

    # -- acting (Policy protocol) ---------------------------------------------------------------
    def _obs_tensor(self, obs: Obs) -> torch.Tensor:
        return obs_tensor(obs, self.device)

    def _task_tensor(self, task_class: np.ndarray) -> torch.Tensor:
        return task_class_tensor(
            task_class, self.num_task_classes, self.config.conditions_on_task, self.device
        )

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        with torch.inference_mode():
            action, _ = self.actor.sample(
                self._obs_tensor(obs), self._task_tensor(task_class), deterministic
            )
        return self.action_center + self.action_half_range * action.cpu().numpy()

    # -- learning -------------------------------------------------------------------------------
    def _to_unit_action(self, action: np.ndarray) -> np.ndarray:
        return (action - self.action_center) / self.action_half_range

    def _critic_errors(
        self, batch: ReplayBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """obs [B, D], task [B], α ([B] or [1]), Q(s, a) [2, B] and the squared soft Bellman
        errors [2, B] (SAC eq. 3, 5); truncation bootstraps, termination not."""
        c, dev = self.config, self.device
        obs = self._obs_tensor(batch.obs)
        next_obs = self._obs_tensor(batch.next_obs)
        action = torch.as_tensor(self._to_unit_action(batch.action), device=dev)
        reward = torch.as_tensor(batch.reward, device=dev) * c.reward_scale
        not_done = 1.0 - torch.as_tensor(batch.terminated, device=dev)
        task = self._task_tensor(batch.task_class)
        with torch.no_grad():
            alpha = self.temperature(task)
            next_action, next_log_prob = self.actor.sample(next_obs, task)
            next_q = self.critic_target(next_obs, next_action, task).min(dim=0).values
            target = reward + c.gamma * not_done * (next_q - alpha * next_log_prob)
        q = self.critic(obs, action, task)  # [2, B]
        return obs, task, alpha, q, (q - target).pow(2)

    def losses(self, batch: ReplayBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The critic and actor losses of `update` (no row weights, no penalty) on `batch` at
        the current parameters, nothing stepped: reference gradients (A-GEM)."""
        obs, task, alpha, _, sq = self._critic_errors(batch)
        new_action, log_prob = self.actor.sample(obs, task)
        q_pi = self.critic(obs, new_action, task).min(dim=0).values
        return 0.5 * sq.mean(dim=1).sum(), (alpha * log_prob - q_pi).mean()

    # Hooks for methods on this update (agents.continual_sac): `net` is "critic" or "actor".
    # Without an override the update is exactly plain SAC's.
    def _penalty(self, net: Literal["critic", "actor"]) -> torch.Tensor | None:
        """A term added to that network's loss (L2, EWC, MAS); None: nothing."""
        del net
        return None

    def _adjust_gradients(self, net: Literal["critic", "actor"]) -> None:
        """Change that network's `.grad` after backward, before clipping and the optimiser
        step (A-GEM's projection, PackNet's masks)."""
        del net

    def _after_step(self, net: Literal["critic", "actor"]) -> None:
        """Act on that network right after its optimiser step (PackNet's frozen weights)."""
        del net

    def update(self, batch: ReplayBatch) -> SACUpdate:
        """One gradient step on critics, actor and temperature, then the Polyak target step."""
        c = self.config
        obs, task, alpha, q, sq = self._critic_errors(batch)
        # Row weights of critic and actor losses, and PaCo's mask for the temperature loss:
        # both None for SAC and MT-SAC, whose update is then exactly as it was.
        weight, mask = mta.row_weights(c, self.temperature.log_alpha, self.extreme, sq, task)
        critic_loss = 0.5 * (sq if weight is None else sq * weight).mean(dim=1).sum()
        critic_conflicts = actor_conflicts = 0.0  # PCGrad's diagnostics
        self.critic_opt.zero_grad(set_to_none=True)
        if self.surgery is None:
            penalty = self._penalty("critic")
            (critic_loss if penalty is None else critic_loss + penalty).backward()
        else:  # the same loss, row by row: each task's rows give its gradient (PCGrad)
            critic_conflicts = self.surgery.backward(
                0.5 * (sq if weight is None else sq * weight).sum(dim=0), self._critic_params, task
            )
        self._adjust_gradients("critic")
        self._clip(self._critic_params)
        self.critic_opt.step()
        self._after_step("critic")

        # Actor (SAC eq. 7): critics are frozen for this pass, so no critic gradients are built.
        self.critic.requires_grad_(False)
        new_action, log_prob = self.actor.sample(obs, task)
        q_pi = self.critic(obs, new_action, task).min(dim=0).values
        actor_rows = (
            alpha * log_prob - q_pi if weight is None else weight * (alpha * log_prob - q_pi)
        )
        actor_loss = actor_rows.mean()
        # Temperature (SAC eq. 18). Its loss sees log π detached and the actor loss sees α
        # detached, so one backward pass gives both gradients exactly.
        alpha_loss = self.temperature.loss(task, log_prob, self.target_entropy, mask)
        self.actor_opt.zero_grad(set_to_none=True)
        self.alpha_opt.zero_grad(set_to_none=True)
        if self.surgery is None:
            penalty = self._penalty("actor")
            loss = actor_loss if penalty is None else actor_loss + penalty
            (loss + alpha_loss if c.learn_alpha else loss).backward()
        else:
            actor_conflicts = self.surgery.backward(actor_rows, self._actor_params, task)
            # No surgery on the temperature: one log α per task gets gradient from its own
            # rows only, so task gradients never conflict and PCGrad would return them as they
            # are; a shared α steps as in SAC (projecting one scalar would zero it whenever
            # two tasks disagree in sign).
            if c.learn_alpha:
                alpha_loss.backward()
        if c.learn_alpha:
            self.alpha_opt.step()
        self._adjust_gradients("actor")
        self._clip(self._actor_params)
        self.actor_opt.step()
        self._after_step("actor")
        self.critic.requires_grad_(True)

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, c.tau)
        if self.extreme is not None:  # PaCo: after the update, as the authors' after_update
            self.extreme.reset(mta.paco_nets(self.actor, self.critic, self.critic_target))
        self.updates += 1
        result = SACUpdate(
            critic_loss=float(critic_loss.detach()),
            actor_loss=float(actor_loss.detach()),
            alpha_loss=float(alpha_loss.detach()),
            alpha=float(alpha.mean()),
            q_mean=float(q.detach().mean()),
            entropy=float(-log_prob.detach().mean()),
        )
        if self.surgery is None:
            return result
        return PCGradSACUpdate(
            **result.metrics(), critic_conflicts=critic_conflicts, actor_conflicts=actor_conflicts
        )

    def _clip(self, params: list[torch.Tensor]) -> None:
        if self.config.max_grad_norm is not None:  # Meta-World+: optax.clip_by_global_norm
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)

    def metric_names(self) -> list[str]:
        return (SACUpdate if self.surgery is None else PCGradSACUpdate).names()

    def set_progress(self, env_steps: int, total_steps: int) -> None:
        """SAC explores through its entropy: no schedule follows the env step."""
        del env_steps, total_steps

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, temperature, optimisers and counters (tensors + plain values)."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "temperature": self.temperature.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "updates": self.updates,
            **({} if self.surgery is None else {"gradient_surgery": self.surgery.state_dict()}),
            **({} if self.extreme is None else {"paco_extreme_tasks": self.extreme.state_dict()}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # torch optimisers keep the loaded tensors themselves (no copy when dtype and device
        # already match): copy, so two agents never share Adam moments or step counts.
        state = copy.deepcopy(state)
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.temperature.load_state_dict(state["temperature"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.updates = int(state["updates"])
        if self.surgery is not None:  # the order stream: resume draws the orders it would have
            self.surgery.load_state_dict(state["gradient_surgery"])
        if self.extreme is not None:
            self.extreme.load_state_dict(state["paco_extreme_tasks"])


def build_sac(config: SACConfig, env: EnvSpec, seed: int = 0, device: str = "cpu") -> SAC:
    # The run seeds torch before building (training.base), so weights follow it; the seed
    # itself seeds PCGrad's order stream.
    return SAC(config, env, device, seed)


for _name, _config, _description in (
    ("sac", SACConfig, "Soft Actor-Critic; optional task encoding, heads and temperatures"),
    ("mtsac", MTSACConfig, "multi-task SAC: one-hot task class, per-class temperature"),
    ("mhsac", MHSACConfig, "multi-head multi-task SAC: MT-SAC with one head per task class"),
    ("mtsac_pcgrad", MTSACPCGradConfig, "MT-SAC + PCGrad: conflicting task gradients projected"),
    ("mtsac_softmod", MTSACSoftModulesConfig, "MT-SAC on Soft Modularization: routed modules"),
    ("mtsac_care", MTSACCAREConfig, "MT-SAC on CARE: metadata-attended mixture of encoders"),
    ("mtsac_moore", MTSACMOOREConfig, "MT-SAC on MOORE: orthogonal experts, per-task heads"),
    ("mtsac_paco", MTSACPaCoConfig, "MT-SAC on PaCo: per-task compositions of parameter sets"),
    ("sac_her", HERSACConfig, "SAC + hindsight experience replay for goal envs (Fetch, mazes)"),
):
    register_agent(AgentSpec(_name, _description, "off_policy", _config, build_sac))
