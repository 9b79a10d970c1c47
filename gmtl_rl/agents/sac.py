"""Soft Actor-Critic (Haarnoja et al. 2018, "SAC: Algorithms and Applications").

Twin critics with target networks, a tanh-Gaussian actor, and an automatically tuned entropy
temperature. The pieces are separate so MT-SAC (per-task temperature, task-balanced batches),
SAC+HER (a replay strategy) and PEARL (SAC on [obs, z]) reuse them.
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
from gmtl_rl.core.gradient_surgery import GradientSurgery, PCGrad
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

    @property
    def conditions_on_task(self) -> bool:
        """True when actions depend on the task class id (so every class must be known)."""
        return self.task_encoding != "none" or self.multi_head


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

    def loss(self, task_B: torch.Tensor, log_prob_B: torch.Tensor, target: float) -> torch.Tensor:
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

        def encoder() -> TaskEncoder:
            return TaskEncoder(n_classes, c.task_encoding, c.task_embedding_dim)

        heads = n_classes if c.multi_head else 1
        self.actor = TanhGaussianActor(obs_dim, act_dim, c.hidden, encoder(), heads)
        self.critic = TwinQ(obs_dim, act_dim, c.hidden, encoder(), heads)
        self.critic_target = TwinQ(obs_dim, act_dim, c.hidden, encoder(), heads)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.temperature = EntropyTemperature(c.init_alpha, n_classes if c.per_task_alpha else 1)
        for module in (self.actor, self.critic, self.critic_target, self.temperature):
            module.to(self.device)
        # Fused Adam: one kernel per step instead of ~10 ops per parameter tensor (CPU and CUDA).
        fused = True if self.device.type in ("cpu", "cuda") else None
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr, fused=fused)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr, fused=fused)
        self.alpha_opt = torch.optim.Adam(self.temperature.parameters(), lr=c.lr, fused=fused)
        self.target_entropy = -float(act_dim) if c.target_entropy == "auto" else c.target_entropy
        self._critic_params: list[torch.Tensor] = list(self.critic.parameters())
        self._target_params: list[torch.Tensor] = list(self.critic_target.parameters())
        self._actor_params: list[torch.Tensor] = list(self.actor.parameters())
        self.surgery = self._gradient_surgery(n_classes, seed)
        self.updates = 0

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

    def update(self, batch: ReplayBatch) -> SACUpdate:
        """One gradient step on critics, actor and temperature, then the Polyak target step."""
        c = self.config
        dev = self.device
        obs = self._obs_tensor(batch.obs)
        next_obs = self._obs_tensor(batch.next_obs)
        action = torch.as_tensor(self._to_unit_action(batch.action), device=dev)
        reward = torch.as_tensor(batch.reward, device=dev) * c.reward_scale
        not_done = 1.0 - torch.as_tensor(batch.terminated, device=dev)
        task = self._task_tensor(batch.task_class)

        # Critic: soft Bellman target (SAC eq. 3, 5); truncation bootstraps, termination not.
        with torch.no_grad():
            alpha = self.temperature(task)
            next_action, next_log_prob = self.actor.sample(next_obs, task)
            next_q = self.critic_target(next_obs, next_action, task).min(dim=0).values
            target = reward + c.gamma * not_done * (next_q - alpha * next_log_prob)
        q = self.critic(obs, action, task)  # [2, B]
        critic_loss = 0.5 * (q - target).pow(2).mean(dim=1).sum()
        critic_conflicts = actor_conflicts = 0.0  # PCGrad's diagnostics
        self.critic_opt.zero_grad(set_to_none=True)
        if self.surgery is None:
            critic_loss.backward()
        else:  # the same loss, row by row: each task's rows give its gradient (PCGrad)
            critic_conflicts = self.surgery.backward(
                0.5 * (q - target).pow(2).sum(dim=0), self._critic_params, task
            )
        self.critic_opt.step()

        # Actor (SAC eq. 7): critics are frozen for this pass, so no critic gradients are built.
        self.critic.requires_grad_(False)
        new_action, log_prob = self.actor.sample(obs, task)
        q_pi = self.critic(obs, new_action, task).min(dim=0).values
        actor_loss = (alpha * log_prob - q_pi).mean()
        # Temperature (SAC eq. 18). Its loss sees log π detached and the actor loss sees α
        # detached, so one backward pass gives both gradients exactly.
        alpha_loss = self.temperature.loss(task, log_prob, self.target_entropy)
        self.actor_opt.zero_grad(set_to_none=True)
        self.alpha_opt.zero_grad(set_to_none=True)
        if self.surgery is None:
            (actor_loss + alpha_loss if c.learn_alpha else actor_loss).backward()
        else:
            actor_conflicts = self.surgery.backward(
                alpha * log_prob - q_pi, self._actor_params, task
            )
            # No surgery on the temperature: one log α per task gets gradient from its own
            # rows only, so task gradients never conflict and PCGrad would return them as they
            # are; a shared α steps as in SAC (projecting one scalar would zero it whenever
            # two tasks disagree in sign).
            if c.learn_alpha:
                alpha_loss.backward()
        if c.learn_alpha:
            self.alpha_opt.step()
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, c.tau)
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


def build_sac(config: SACConfig, env: EnvSpec, seed: int = 0, device: str = "cpu") -> SAC:
    # The run seeds torch before building (training.base), so weights follow it; the seed
    # itself seeds PCGrad's order stream.
    return SAC(config, env, device, seed)


for _name, _config, _description in (
    ("sac", SACConfig, "Soft Actor-Critic; optional task encoding, heads and temperatures"),
    ("mtsac", MTSACConfig, "multi-task SAC: one-hot task class, per-class temperature"),
    ("mhsac", MHSACConfig, "multi-head multi-task SAC: MT-SAC with one head per task class"),
    ("mtsac_pcgrad", MTSACPCGradConfig, "MT-SAC + PCGrad: conflicting task gradients projected"),
    ("sac_her", HERSACConfig, "SAC + hindsight experience replay for goal envs (Fetch, mazes)"),
):
    register_agent(AgentSpec(_name, _description, "off_policy", _config, build_sac))
