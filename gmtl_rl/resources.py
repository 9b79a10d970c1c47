"""Will a run fit in this machine's memory? A rough estimate, checked before a run is built.

Config validation bounds what has a natural bound (widths >= 1, seeds, threads, split sizes).
What has none (network widths, batch and meta-batch sizes, replay capacity, env counts) is
judged here against the machine: `check_memory(config, env)` estimates the bytes the run will
allocate and refuses, with a one-line ConfigError naming the key path of the biggest part, a
run that would need more than MEMORY_FRACTION of the machine's memory (MemTotal, or a lower
cgroup limit). The runner calls it before the agent is built and before the run directory is
written, so `agent.batch_size=1000000000` costs a second, not 8 GiB and a traceback.

The estimate is of the upper order (the right power of two, not the exact count), per agent
family, float32 throughout:
- networks: parameters x 4 (weights, gradients, Adam's two moments; RMSprop's one: 3) plus
  target copies;
- replay (SAC family, PEARL): `buffer_size` rows of obs + next_obs + action plus ~100 bytes
  of reward, flags, ids and per-task / per-episode indices; the storage is preallocated;
- one update: the sampled rows (x4: numpy, tensors, relabelled copies) plus the activations
  kept for the backward pass: rows x (input + sum of layer widths + output) x the network
  passes of one update x 4 (each layer's output, its ReLU and both gradients). SAC makes 8
  passes (actor on s and s', twin critics on two action sets, twin targets), PEARL 7 on
  `meta_batch x batch_size` rows plus its encoder on `meta_batch x context_batch`;
- RL²: the trials of one PPO update (`trials_per_update` + the envs' trials in flight, each
  `episodes_per_trial x horizon` steps, stored as float64 and padded) and the GRU's
  activations over one minibatch of them;
- VariBAD: its networks, the VAE's buffer of whole trials (`vae_buffer_trials`, or as many as
  the run collects; x2 for the checkpoint's copy), the trials of one update, and one ELBO's
  belief x step pairs through the reward decoder (`vae_batch_trials` x (L + 1) x L unless
  subsampled);
- MAML: the trials of one meta-update (stored as for RL², and the agent's own copy of the
  blocks in flight) and the activations of the outer step over all of them, the inner steps'
  graphs differentiated up to three times (x3); evaluation: every eval env's block of steps
  kept for its inner step;
- option-critic: tabular arrays options x states x actions (x3, float64) or the deep net;
- SB3: its replay (`kwargs.buffer_size`, SB3's default 1e6) or rollout buffer
  (`kwargs.n_steps` x envs), networks from `kwargs.policy_kwargs.net_arch` (SB3's defaults
  otherwise), the task one-hot included in the observation;
- envs: ENV_BYTES per sampler and per evaluation env (measured: Meta-World ~22 MiB, Fetch
  ~10 MiB, MuJoCo locomotion ~1.2 MiB, plain-Python envs a few kB);
- the final evaluation's bootstrap: `eval.bootstrap_resamples` floats, a few copies;
plus BASE_BYTES for the interpreter, torch and the env libraries. Evaluating a checkpoint
(`training=False`) counts only the agent, the evaluation envs and the bootstrap: a run trained
on a large machine can be evaluated on a small one.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from gmtl_rl.agents.registry import agent_spec
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.errors import ConfigError

if TYPE_CHECKING:
    from gmtl_rl.config import RunConfig
    from gmtl_rl.envs.task import TaskDistribution

__all__ = ["MEMORY_FRACTION", "check_memory", "env_spec_of", "estimate_memory", "machine_memory"]

MEMORY_FRACTION = 0.8  # the rest is the OS's, the page cache's and the estimate's error's
MiB = 2**20
BASE_BYTES = 512 * MiB  # Python, torch, gymnasium, MuJoCo: an empty run's resident size
FLOAT = 4  # float32
ROW_OVERHEAD = 104  # replay: reward, 2 flags, 5 int64 ids, episode and task index entries
BATCH_COPIES = 4  # sampled rows: numpy gather, relabelled copy, tensors, their device copy
TENSORS_PER_UNIT = 4  # per unit of a layer: output, ReLU output, and both their gradients
SAC_PASSES = 8  # actor(s), actor(s'), twin critics x (batch actions, actor actions), targets
PEARL_PASSES = 7  # actor, twin critics x 2 action sets, value, target value
ADAM = 4  # weights, gradients, two moments
RMSPROP = 3  # weights, gradients, square average
DEFAULT_HORIZON = 1000  # families whose options give no episode length
DEFAULT_ENV_BYTES = 2 * MiB
ENV_BYTES = {"metaworld/": 24 * MiB, "fetch-": 12 * MiB}  # env family name prefix -> bytes


@dataclass(frozen=True)
class Part:
    """One sizeable allocation of a run: the key path(s) that size it, what it is, bytes."""

    key: str  # "agent.buffer_size", or factors joined by " × "
    what: str
    nbytes: int
    evaluation: bool = False  # also allocated when a checkpoint is only evaluated


# -- the machine ------------------------------------------------------------------------------
def machine_memory() -> int | None:
    """Bytes of memory this process may use: MemTotal, or a lower cgroup limit (a container);
    os.sysconf where /proc is missing; None when nothing says."""
    total: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        total = None
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = None
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < (total or int(text) + 1):
            total = int(text)
    return total if total is not None and total > 0 else None


def env_spec_of(distribution: TaskDistribution) -> EnvSpec:
    """The spaces of one env of the distribution and its task classes (the env is closed)."""
    from gmtl_rl.envs.task import named_classes

    env = distribution.make_env(distribution.train_tasks()[0])
    try:
        return EnvSpec(
            env.observation_space,
            env.action_space,
            distribution.num_task_classes,
            horizon=distribution.horizon,
            task_class_names=named_classes(distribution),
        )
    finally:
        env.close()


# -- the check --------------------------------------------------------------------------------
def check_memory(config: RunConfig, env: EnvSpec, *, training: bool = True) -> None:
    """Refuse a run whose estimated memory exceeds MEMORY_FRACTION of the machine's (see the
    module docstring for what is counted). `training=False` (evaluating a checkpoint) counts
    only what evaluation builds: the agent, the evaluation envs, the bootstrap. A machine
    that does not say its memory passes."""
    memory = machine_memory()
    if memory is None:
        return
    parts = [p for p in estimate_memory(config, env) if training or p.evaluation]
    total = BASE_BYTES + sum(p.nbytes for p in parts)
    if total <= memory * MEMORY_FRACTION:
        return
    top = max(parts, key=lambda p: p.nbytes)
    lower = " or ".join(top.key.split(" × "))
    raise ConfigError(
        f"{top.key}: this run would need about {_size(total)} of memory ({_size(top.nbytes)} "
        f"for {top.what}), more than {MEMORY_FRACTION:.0%} of this machine's {_size(memory)}; "
        f"lower {lower}"
    )


def estimate_memory(config: RunConfig, env: EnvSpec) -> list[Part]:
    """The run's sizeable allocations, by what sizes them (BASE_BYTES not included)."""
    family = agent_spec(config.agent.name).family
    by_family = {
        "off_policy": _sac,
        "continual": _continual,
        "pearl": _pearl,
        "trials": _rl2,
        "online": _option_critic,
        "sb3": _sb3,
    }
    by_agent = {"varibad": _varibad, "maml": _maml}  # on the trials loop, not sized like RL²
    parts = by_agent.get(config.agent.name, by_family.get(family, _generic))(config, env)
    per_env = next(
        (b for prefix, b in ENV_BYTES.items() if config.env.name.startswith(prefix)),
        DEFAULT_ENV_BYTES,
    )
    parts += [
        Part("sampler.n_envs", "the training envs", config.sampler.n_envs * per_env),
        Part("eval.n_envs", "the evaluation envs", config.eval.n_envs * per_env, True),
        Part(
            "eval.bootstrap_resamples",
            "the bootstrap intervals of the final evaluation",
            config.eval.bootstrap_resamples * 8 * 4,
            True,
        ),
    ]
    return parts


# -- per agent family -------------------------------------------------------------------------
def _sac(config: RunConfig, env: EnvSpec) -> list[Part]:
    c: Any = config.agent
    obs, act = _features(env.observation_space), _features(env.action_space)
    classes = max(1, env.num_task_classes)
    encoding = getattr(c, "task_encoding", "none")
    embedding = getattr(c, "task_embedding_dim", 0) if encoding == "embedding" else 0
    task_in = {"one_hot": classes, "embedding": embedding}.get(encoding, 0)
    heads = classes if getattr(c, "multi_head", False) else 1
    hidden = list(c.hidden)
    actor = _mlp_params(obs + task_in, hidden, 2 * act * heads)
    critic = 2 * _mlp_params(obs + task_in + act, hidden, heads)
    if getattr(c, "architecture", "mlp") != "mlp":  # MOORE's experts, PaCo's parameter sets, ...
        actor, critic = _architecture_params(c, env, obs, act)
    tables = classes * embedding  # one embedding table per encoder (actor, critic, target)
    params = ADAM * (actor + critic + 2 * tables) + critic + tables
    width = obs + task_in + act + sum(hidden) + 2 * act * heads
    rows = c.batch_size
    transition = _transition_bytes(env)
    return [
        Part("agent.hidden", "actor, twin critics, targets and Adam", FLOAT * params, True),
        Part("agent.buffer_size", "the replay buffer", c.buffer_size * transition),
        Part("agent.batch_size", "one sampled batch", rows * transition * BATCH_COPIES),
        Part(
            "agent.batch_size × agent.hidden",
            "one update's activations",
            rows * width * FLOAT * SAC_PASSES * TENSORS_PER_UNIT,
        ),
    ]


def _architecture_params(c: Any, env: EnvSpec, obs: int, act: int) -> tuple[int, int]:
    """Exact parameter counts of a multi-task architecture's actor and twin critic, built on
    the meta device (shapes only, no memory). Activations stay sized as the plain network's."""
    import torch

    from gmtl_rl.core.mt_architectures import build_networks, check

    check(c, env.num_task_classes)  # its own one-line errors before any shape arithmetic
    with torch.device("meta"):
        actor, critic, _ = build_networks(c, env, obs, act)
    return (
        sum(p.numel() for p in actor.parameters()),
        sum(p.numel() for p in critic.parameters()),
    )


def continual_replay_capacity(config: RunConfig) -> int:
    """Rows a continual run's replay holds: `agent.buffer_size`, never more than the run has
    steps (perfect memory's 2e7, CW20's 20 x 1M, would otherwise be allocated whole for a
    sequence that fills a fraction of it)."""
    agent: Any = config.agent  # a continual agent: SAC's config
    return min(int(agent.buffer_size), config.total_steps)


def _continual(config: RunConfig, env: EnvSpec) -> list[Part]:
    """SAC's parts, with the replay a continual run allocates."""
    rows = continual_replay_capacity(config) * _transition_bytes(env)
    return [
        replace(p, nbytes=rows) if p.key == "agent.buffer_size" else p for p in _sac(config, env)
    ]


def _pearl(config: RunConfig, env: EnvSpec) -> list[Part]:
    c: Any = config.agent
    obs, act = _features(env.observation_space), _features(env.action_space)
    latent = c.latent_dim
    context = obs + act + 1 + (obs if c.next_obs_in_context else 0)
    x = obs + latent
    hidden, encoder_hidden = list(c.hidden), list(c.encoder_hidden)
    sac = (
        _mlp_params(x, hidden, 2 * act)
        + 2 * _mlp_params(x + act, hidden, 1)
        + _mlp_params(x, hidden, 1)
    )
    encoder = _mlp_params(context, encoder_hidden, 2 * latent)
    target = _mlp_params(x, hidden, 1)
    rows = c.meta_batch * c.batch_size
    context_rows = c.meta_batch * c.context_batch
    transition = _transition_bytes(env)
    return [
        Part(
            "agent.hidden",
            "actor, critics, value nets and Adam",
            FLOAT * (ADAM * sac + target),
            True,
        ),
        Part("agent.encoder_hidden", "the context encoder and Adam", FLOAT * ADAM * encoder, True),
        Part("agent.buffer_size", "the replay buffer", c.buffer_size * transition),
        Part(
            "agent.meta_batch × agent.batch_size",
            "one meta-batch of transitions",
            rows * transition * BATCH_COPIES,
        ),
        Part(
            "agent.meta_batch × agent.batch_size × agent.hidden",
            "one update's activations",
            rows * (x + act + sum(hidden)) * FLOAT * PEARL_PASSES * TENSORS_PER_UNIT,
        ),
        Part(
            "agent.meta_batch × agent.context_batch × agent.encoder_hidden",
            "the context encoder's activations",
            context_rows * (context + sum(encoder_hidden) + 2 * latent) * FLOAT * TENSORS_PER_UNIT
            + context_rows * context * FLOAT * BATCH_COPIES,
        ),
    ]


def _rl2(config: RunConfig, env: EnvSpec) -> list[Part]:
    c: Any = config.agent
    obs, act = _features(env.observation_space), _features(env.action_space)
    x, h = obs + act + 2, c.gru_hidden
    hidden = list(c.hidden)
    gru = 3 * (x * h + h * h + 2 * h)
    heads = _mlp_params(h, hidden, act) + _mlp_params(h, hidden, 1) + act
    steps = c.episodes_per_trial * _horizon(config, env)
    trials = c.trials_per_update + config.sampler.n_envs  # one update's + those in flight
    per_step = (obs + 3 * act + 8) * 8 * 3  # float64 columns, held, stacked and padded
    minibatch = -(-c.trials_per_update // c.minibatches)
    # GRU: input, 3 gates, new state per step (and gradients); heads: both MLPs.
    units = x + 5 * h + 2 * (sum(hidden) + act + 1)
    return [
        Part(
            "agent.gru_hidden" if gru >= heads else "agent.hidden",
            "the GRU actor-critic and Adam",
            FLOAT * ADAM * (gru + heads),
            True,
        ),
        Part(
            "agent.trials_per_update × agent.episodes_per_trial",
            "the trials of one PPO update",
            trials * steps * per_step,
        ),
        Part(
            "agent.trials_per_update × agent.gru_hidden",
            "one PPO minibatch's activations",
            minibatch * steps * units * FLOAT * TENSORS_PER_UNIT,
        ),
    ]


def _varibad(config: RunConfig, env: EnvSpec) -> list[Part]:
    c: Any = config.agent
    obs, act = _features(env.observation_space), _features(env.action_space)
    a = 1 if isinstance(env.action_space, gym.spaces.Discrete) else act  # encoder's action
    s, z, h = obs + 1, c.latent_dim, c.gru_hidden  # the state carries the done bit
    embed = c.action_embedding + c.state_embedding + c.reward_embedding
    encoder = 3 * (embed * h + h * h + 2 * h) + 2 * (h * z + z) + (a + s + 1) * embed
    policy_in = (c.policy_state_embedding or s) + (c.policy_latent_embedding or 2 * z)
    policy = 2 * _mlp_params(policy_in, c.policy_layers, act)
    decoder_in = z + 2 * c.state_embedding + c.action_embedding
    space = env.observation_space
    grid = c.multihead_reward and isinstance(space, gym.spaces.Box)
    cells = int(np.prod(space.high - space.low + 1)) if grid else 1  # one head per cell
    decoder = _mlp_params(decoder_in, c.reward_decoder_layers, cells)
    steps = c.episodes_per_trial * _horizon(config, env)
    per_step = (2 * s + a + 2 + 2 * z) * FLOAT  # s, s', action, r, r normalised, belief
    held = min(c.vae_buffer_trials, -(-config.total_steps // steps) + config.sampler.n_envs)
    pairs = c.vae_batch_trials * (c.subsample_elbos or steps + 1) * (c.subsample_decodes or steps)
    # Multi-head: one logit gathered per pair; otherwise every pair runs the decoder MLP.
    width = 4 if c.multihead_reward else decoder_in + sum(c.reward_decoder_layers) + 2
    return [
        Part(
            "agent.gru_hidden",
            "encoder, decoders, policy and their Adam",
            FLOAT * ADAM * (encoder + policy + decoder),
            True,
        ),
        Part(
            "agent.vae_buffer_trials",
            "the VAE's buffer of past trials (and a checkpoint's copy)",
            2 * held * steps * (2 * s + a + 1) * FLOAT,
        ),
        Part(
            "agent.trials_per_update × agent.episodes_per_trial",
            "the trials of one update and those in flight",
            (c.trials_per_update + config.sampler.n_envs) * steps * per_step * 3,
        ),
        Part(
            "agent.vae_batch_trials × agent.episodes_per_trial",
            "one ELBO's belief × step pairs",
            pairs * width * FLOAT * TENSORS_PER_UNIT,
        ),
    ]


def _maml(config: RunConfig, env: EnvSpec) -> list[Part]:
    c: Any = config.agent
    obs, act = _features(env.observation_space), _features(env.action_space)
    hidden = list(c.hidden)
    horizon = _horizon(config, env)
    per_step = (obs + 3 * act + 8) * 8 * 3  # float64 columns, held, stacked and padded
    steps = c.trial_episodes() * horizon
    trials = c.trials_per_update + config.sampler.n_envs  # one update's + the agent's own copy
    units = obs + sum(hidden) + act
    eval_steps = c.eval_episodes_per_step * horizon
    policy = _mlp_params(obs, hidden, act) + act
    return [
        Part("agent.hidden", "the policy and Adam", FLOAT * ADAM * policy, True),
        Part(
            "agent.trials_per_update × agent.episodes_per_step",
            "the trials of one meta-update",
            trials * steps * per_step,
        ),
        Part(
            "agent.trials_per_update × agent.episodes_per_step × agent.hidden",
            "the outer step's activations through the inner steps",
            c.trials_per_update * steps * units * FLOAT * TENSORS_PER_UNIT * 3,
        ),
        Part(
            "eval.n_envs × agent.eval_episodes_per_step",
            "the evaluation envs' blocks and inner steps",
            config.eval.n_envs * eval_steps * (per_step + units * FLOAT * TENSORS_PER_UNIT),
            True,
        ),
    ]


def _option_critic(config: RunConfig, env: EnvSpec) -> list[Part]:
    c: Any = config.agent
    obs, act = _features(env.observation_space), _features(env.action_space)
    options = c.num_options
    if not hasattr(c, "hidden"):  # tabular: θ, Q_U [O,S,A], ϑ, Q_Ω [O,S]: ≤ 3·O·S·A float64
        return [
            Part("agent.num_options", "the option tables", 3 * 8 * options * obs * act, True),
        ]
    hidden = list(c.hidden)
    last = hidden[-1]
    net = (
        _mlp_params(obs, hidden[:-1], last)
        + 2 * (last * options + options)
        + last * options * act
        + options * act
        + 2 * options * act
    )
    width = obs + sum(hidden) + options * (2 + act)
    return [
        Part("agent.hidden", "the option-critic net and RMSprop", FLOAT * RMSPROP * net, True),
        Part(
            "sampler.n_envs × agent.hidden",
            "one update's activations",
            config.sampler.n_envs * width * FLOAT * TENSORS_PER_UNIT * 3,
        ),
    ]


# SB3's defaults (stable-baselines3 2.x): batch size, replay / rollout length, net_arch.
_SB3_BATCH = {"SAC": 256, "TD3": 256, "DDPG": 256, "DQN": 32, "PPO": 64, "A2C": 5}
_SB3_STEPS = {"PPO": 2048, "A2C": 5}
_SB3_NET = {
    "SAC": [256, 256],
    "TD3": [400, 300],
    "DDPG": [400, 300],
    "DQN": [64, 64],
    "PPO": [64, 64],
    "A2C": [64, 64],
}


def _sb3(config: RunConfig, env: EnvSpec) -> list[Part]:
    c: Any = config.agent
    kwargs: dict[str, Any] = dict(c.kwargs)
    algo = str(c.algo)
    classes = max(1, env.num_task_classes)
    obs = _features(env.observation_space) + classes  # the task class one-hot
    act = _features(env.action_space)
    obs_bytes = _stored_bytes(env.observation_space) + FLOAT * classes
    act_bytes = _stored_bytes(env.action_space)
    n_envs = -(-max(config.sampler.n_envs, classes) // classes) * classes
    net_key = "agent.kwargs.policy_kwargs.net_arch"
    widths = _net_arch(kwargs.get("policy_kwargs"), _SB3_NET.get(algo, [256, 256]))
    nets = _mlp_params(obs, widths, 2 * act) + 2 * _mlp_params(obs + act, widths, 1)
    batch = _count(kwargs.get("batch_size"), _SB3_BATCH.get(algo, 256))
    parts = [
        Part(
            net_key, "the policy, critics, targets and optimisers", FLOAT * (ADAM + 1) * nets, True
        ),
        Part(
            f"agent.kwargs.batch_size × {net_key}",
            "one update's activations",
            batch * (obs + act + sum(widths)) * FLOAT * SAC_PASSES * TENSORS_PER_UNIT,
        ),
    ]
    if algo in _SB3_STEPS:
        steps = _count(kwargs.get("n_steps"), _SB3_STEPS[algo])
        row = obs_bytes + act_bytes + 6 * FLOAT
        parts.append(
            Part(
                "agent.kwargs.n_steps × sampler.n_envs", "the rollout buffer", steps * n_envs * row
            )
        )
    else:
        capacity = _count(kwargs.get("buffer_size"), 1_000_000)
        row = 2 * obs_bytes + act_bytes + 3 * FLOAT + 16  # + HER's episode bookkeeping
        parts.append(Part("agent.kwargs.buffer_size", "the replay buffer", capacity * row))
    return parts


def _generic(config: RunConfig, env: EnvSpec) -> list[Part]:
    """A plug-in agent: whatever of hidden / buffer_size / batch_size its config has."""
    c: Any = config.agent
    obs, act = _features(env.observation_space), _features(env.action_space)
    hidden = [h for h in getattr(c, "hidden", []) if isinstance(h, int)]
    nets = FLOAT * ADAM * _mlp_params(obs, hidden, act)
    parts = [Part("agent.hidden", "the networks", nets, True)]
    if isinstance(getattr(c, "buffer_size", None), int):
        parts.append(
            Part("agent.buffer_size", "the replay buffer", c.buffer_size * _transition_bytes(env))
        )
    if isinstance(getattr(c, "batch_size", None), int):
        parts.append(
            Part(
                "agent.batch_size",
                "one update's batch and activations",
                c.batch_size * (obs + act + sum(hidden)) * FLOAT * TENSORS_PER_UNIT,
            )
        )
    return parts


# -- helpers ----------------------------------------------------------------------------------
def _mlp_params(in_dim: int, hidden: Sequence[int], out_dim: int) -> int:
    dims = [in_dim, *hidden, out_dim]
    return sum(a * b + b for a, b in itertools.pairwise(dims))


def _features(space: gym.Space[Any]) -> int:
    """Inputs a network sees for one value of `space` (a Discrete one-hot: n)."""
    if isinstance(space, gym.spaces.Dict):
        return sum(_features(s) for s in space.spaces.values())
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return math.prod(space.shape)
    try:
        return int(gym.spaces.flatdim(space))
    except (NotImplementedError, TypeError, ValueError):
        return 1


def _stored_bytes(space: gym.Space[Any]) -> int:
    """Bytes of one value of `space` in the replay (float32 Boxes; int64 indices)."""
    if isinstance(space, gym.spaces.Dict):
        return sum(_stored_bytes(s) for s in space.spaces.values())
    if isinstance(space, gym.spaces.Discrete):
        return 8
    if isinstance(space, gym.spaces.Box):
        floating = np.issubdtype(space.dtype, np.floating)
        return math.prod(space.shape) * (FLOAT if floating else np.dtype(space.dtype).itemsize)
    return 8 * _features(space)


def _transition_bytes(env: EnvSpec) -> int:
    observation, action = env.observation_space, env.action_space
    return 2 * _stored_bytes(observation) + _stored_bytes(action) + ROW_OVERHEAD


def _horizon(config: RunConfig, env: EnvSpec | None = None) -> int:
    """The episode length: the family's own where the spec carries it, else an option that
    sets it, else DEFAULT_HORIZON."""
    if env is not None and env.horizon is not None:
        return env.horizon
    options = config.env.options
    for name in ("horizon", "max_episode_steps", "n_bits"):
        value = getattr(options, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_HORIZON


def _count(value: Any, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


def _net_arch(policy_kwargs: Any, default: list[int]) -> list[int]:
    """Layer widths of SB3's `net_arch` (a list, or a dict of lists per network), all nets'."""
    arch = policy_kwargs.get("net_arch") if isinstance(policy_kwargs, dict) else None
    lists = list(arch.values()) if isinstance(arch, dict) else [arch]
    widths = [
        w
        for layers in lists
        if isinstance(layers, list)
        for w in layers
        if isinstance(w, int) and not isinstance(w, bool) and w > 0
    ]
    return widths or default


def _size(nbytes: int) -> str:
    """Human units, by integer steps (a width of 10**400 must not overflow a float)."""
    if nbytes.bit_length() > 200:
        return f"2^{nbytes.bit_length() - 1} bytes"
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = 0
    while nbytes >= 1024**2 and i < len(units) - 2:
        nbytes //= 1024
        i += 1
    return f"{nbytes} {units[i]}" if nbytes < 1024 else f"{nbytes / 1024:.3g} {units[i + 1]}"
