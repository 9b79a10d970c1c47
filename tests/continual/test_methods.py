"""Continual World's methods on SAC (agents/continual_sac.py, core/continual/): each
regulariser or constraint against a hand-computed case, the state round trip of each method,
and the config errors."""

from __future__ import annotations

import copy
import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from gmtl_rl.agents.continual_sac import (
    METHODS,
    ContinualSAC,
    ContinualSACConfig,
    build_continual_sac,
)
from gmtl_rl.agents.registry import agent_spec, parse_agent_config
from gmtl_rl.core.continual import agem
from gmtl_rl.core.continual.packnet import PackNet
from gmtl_rl.core.continual.params import (
    LEAKY_SLOPE,
    FlatParams,
    cw_mlp,
    output_layer,
    reset_adam_moments,
    shared_parameters,
)
from gmtl_rl.core.continual.regularizers import (
    Regularizer,
    critic_importance,
    policy_importance,
)
from gmtl_rl.core.networks import TanhGaussianActor, TwinQ
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.core.replay import ReplayStorage, UniformSampler
from gmtl_rl.errors import ConfigError

OBS = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
N_TASKS = 3


def _config(method: str, **overrides) -> ContinualSACConfig:
    small = {
        "hidden": [16, 16],
        "batch_size": 8,
        "importance_samples": 32,
        "packnet_retrain_steps": 3,
        "agem_episodic_mem_per_task": 20,
        "agem_episodic_batch_size": 8,
    }
    return ContinualSACConfig.model_validate({"method": method, **small, **overrides})


def _agent(method: str, seed: int = 0, **overrides) -> ContinualSAC:
    torch.manual_seed(seed)
    env = EnvSpec(OBS, ACT, num_task_classes=N_TASKS)
    return build_continual_sac(_config(method, **overrides), env, seed)


def _replay(position: int, n: int = 64, seed: int = 0) -> ReplayStorage:
    """A replay holding `n` random transitions of sequence element `position`."""
    rng = np.random.default_rng(seed + 100 * position)
    replay = ReplayStorage(1000, OBS, ACT)
    for i in range(n // 4):
        replay.add(
            StepBatch(
                obs=rng.uniform(-1, 1, (4, 4)).astype(np.float32),
                action=rng.uniform(-1, 1, (4, 2)).astype(np.float32),
                reward=rng.normal(size=4).astype(np.float32),
                next_obs=rng.uniform(-1, 1, (4, 4)).astype(np.float32),
                terminated=np.zeros(4, bool),
                truncated=np.zeros(4, bool),
                task_id=np.full(4, position),
                task_class=np.full(4, position),
                episode_id=np.arange(4) + 4 * i,
                step_index=np.zeros(4, np.int64),
                success=np.zeros(4, np.float32),
                valid=np.ones(4, bool),
            )
        )
    return replay


def _train(
    agent: ContinualSAC, position: int, updates: int, rng: np.random.Generator
) -> ReplayStorage:
    agent.start_task(position)
    replay = _replay(position)
    for _ in range(updates):
        agent.update(replay.batch(UniformSampler().rows(replay, 8, rng)))
    return replay


# -- L2, EWC, MAS ---------------------------------------------------------------------------------
def _tiny_actor(w: list[float], b: list[float]) -> TanhGaussianActor:
    """One linear layer, obs 1 -> (mean, log σ): mean = w0 x + b0, log σ = w1 x + b1."""
    actor = TanhGaussianActor(1, 1, [])
    with torch.no_grad():
        actor.net[0].weight.copy_(torch.tensor(w).view(2, 1))
        actor.net[0].bias.copy_(torch.tensor(b))
    return actor


def test_ewc_policy_fisher_matches_hand_computation():
    w, b, scale = [0.5, -0.3], [0.2, -0.1], 2.0
    actor = _tiny_actor(w, b)
    flat = FlatParams(actor, list(actor.named_parameters()))  # order: w0, w1, b0, b1
    xs = [0.0, 1.5, -2.0]
    rows = []
    for x in xs:
        t = math.tanh(w[0] * x + b[0])
        sigma = math.exp(w[1] * x + b[1])
        inv = 1.0 / (sigma**2 + 1e-6)
        d_mu = (1 - t * t) * scale  # ∂μ/∂mean, μ = tanh(mean)·scale
        fisher = [
            d_mu**2 * x * x * inv,
            2 * sigma**2 * x * x * inv,
            d_mu**2 * inv,
            2 * sigma**2 * inv,
        ]
        rows.append([max(f, 1e-5) for f in fisher])  # clipped below per row (ewc.py)
    expected = torch.tensor(rows, dtype=torch.float64).mean(dim=0)
    obs = torch.tensor(xs).view(-1, 1)
    got = policy_importance(
        "ewc", actor, flat, obs, torch.zeros(3, dtype=torch.long), torch.tensor([scale])
    )
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-9)
    # At x = 0 the weights have no Fisher information: ewc.py's clip puts them at 1e-5.
    at_zero = policy_importance(
        "ewc", actor, flat, torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.ones(1)
    )
    assert at_zero[:2].tolist() == pytest.approx([1e-5, 1e-5], rel=1e-6)


def test_mas_policy_sensitivity_matches_hand_computation():
    w, b = [0.5, -0.3], [0.2, -0.1]
    actor = _tiny_actor(w, b)
    flat = FlatParams(actor, list(actor.named_parameters()))
    xs = [0.5, -1.0]
    rows = []
    for x in xs:
        t = math.tanh(w[0] * x + b[0])
        log_std = w[1] * x + b[1]
        d_mean = 2 * t * (1 - t * t)  # ∂(μ²)/∂mean with scale 1
        rows.append([abs(d_mean * x), abs(2 * log_std * x), abs(d_mean), abs(2 * log_std)])
    expected = torch.tensor(rows).mean(dim=0)
    got = policy_importance(
        "mas",
        actor,
        flat,
        torch.tensor(xs).view(-1, 1),
        torch.zeros(2, dtype=torch.long),
        torch.ones(1),
    )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", ["ewc", "mas"])
def test_critic_importance_matches_hand_computation(method):
    critic = TwinQ(1, 1, [])  # q_m = [o, a] · W_m + b_m, two members
    with torch.no_grad():
        critic.net.layers[0].weight.copy_(torch.tensor([[[0.5], [-1.0]], [[2.0], [0.25]]]))
        critic.net.layers[0].bias.copy_(torch.tensor([[[0.1]], [[-0.2]]]))
    flat = FlatParams(critic, list(critic.named_parameters()))  # W [2, 2, 1], then b [2, 1, 1]
    obs, act = torch.tensor([[1.0], [-0.5]]), torch.tensor([[0.3], [0.8]])
    W, bias = critic.net.layers[0].weight.detach(), critic.net.layers[0].bias.detach()
    per_row = []
    for o, a in zip(obs[:, 0].tolist(), act[:, 0].tolist(), strict=True):
        grads = []
        for m in range(2):
            q = o * float(W[m, 0, 0]) + a * float(W[m, 1, 0]) + float(bias[m, 0, 0])
            factor = 2 * q if method == "mas" else 1.0  # ∂Q²/∂θ = 2Q ∂Q/∂θ
            grads.append([factor * o, factor * a, factor])
        dw = [grads[0][0], grads[0][1], grads[1][0], grads[1][1]]
        db = [grads[0][2], grads[1][2]]
        g = torch.tensor(dw + db)
        per_row.append(g.abs() if method == "mas" else g.pow(2))
    expected = torch.stack(per_row).mean(dim=0)
    got = critic_importance(method, critic, flat, obs, act, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_regularizer_penalty_and_its_gradient_on_known_weights():
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.bias.fill_(0.5)
    reg = Regularizer(FlatParams(layer, list(layer.named_parameters())), coef=10.0)
    assert reg.penalty() is None  # no task has ended: CW's coefficient is 0 on the first
    reg.consolidate(torch.tensor([1.0, 2.0, 3.0]))  # anchor (1, 2, 0.5)
    reg.consolidate(torch.tensor([1.0, 0.0, 1.0]))  # importances add up (regularization.py)
    torch.testing.assert_close(reg.importance, torch.tensor([2.0, 2.0, 4.0]))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, 0.0]]))  # diff (1, -2, 0.5)
        layer.bias.fill_(1.0)
    penalty = reg.penalty()
    assert penalty is not None
    assert float(penalty.detach()) == pytest.approx(10.0 * (2 * 1 + 2 * 4 + 4 * 0.25))
    penalty.backward()
    torch.testing.assert_close(
        layer.weight.grad, torch.tensor([[2 * 10.0 * 2 * 1, 2 * 10.0 * 2 * -2]])
    )
    torch.testing.assert_close(layer.bias.grad, torch.tensor([2 * 10.0 * 4 * 0.5]))


def test_l2_penalises_the_actor_body_by_tasks_seen_times_the_squared_distance():
    agent = _agent("l2")  # multi-head: the heads are not regularised (common_variables)
    rng = np.random.default_rng(0)
    for position in range(2):
        replay = _train(agent, position, 2, rng)
        agent.end_task(position, replay, rng)
    reg = agent.regularizers["actor"]
    heads = {id(p) for p in agent.actor.net[-1].parameters()}
    body = [p for p in agent.actor.parameters() if id(p) not in heads]
    assert reg.flat.numel == sum(p.numel() for p in body)
    assert "critic" not in agent.regularizers  # CW's default: actor only
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.01)
    penalty = agent._penalty("actor")
    assert penalty is not None and agent._penalty("critic") is None
    # Weight 2 after two tasks (summed ones), coefficient 1e5 (paper_cl_experiments.sh).
    assert float(penalty.detach()) == pytest.approx(1e5 * 2 * reg.flat.numel * 0.01**2, rel=1e-4)


def test_regularised_update_reports_the_penalty_it_adds():
    agent = _agent("ewc", regularize_critic=True)
    rng = np.random.default_rng(1)
    replay = _train(agent, 0, 2, rng)
    agent.end_task(0, replay, rng)
    assert set(agent.regularizers) == {"actor", "critic"}
    assert agent.regularizers["critic"].importance.sum() > 0
    replay = _train(agent, 1, 2, rng)
    result = agent.update(replay.batch(UniformSampler().rows(replay, 8, rng)))
    assert result.reg_loss > 0


# -- PackNet ----------------------------------------------------------------------------------
def test_packnet_prunes_cw_fraction_of_the_task_weights_per_matrix():
    w = torch.nn.Parameter(torch.randperm(100).float().add(1).view(10, 10))  # |w| = 1..100
    packnet = PackNet([w], [])
    packnet.prune(0, 0.5)
    # Threshold at sorted index ⌊100·0.5⌋ = 50, i.e. |w| = 51, pruned inclusive (packnet.py).
    pruned = packnet.owner[0] == 1
    assert int(pruned.sum()) == 51
    assert torch.all(w[pruned] == 0) and torch.all(w[~pruned] > 51)
    with torch.no_grad():  # task 1 trains what it got: 51 distinct magnitudes
        w[pruned] = torch.arange(1, 52, dtype=torch.float32)
    packnet.prune(1, 0.5)  # ⌊51·0.5⌋ + 1 = 26 of task 1's entries go to task 2
    assert int((packnet.owner[0] == 2).sum()) == 26
    assert int((packnet.owner[0] == 0).sum()) == 49  # task 0's weights are never touched again


def test_packnet_freezes_earlier_tasks_weights_bit_for_bit():
    agent = _agent("packnet")
    rng = np.random.default_rng(2)
    replay = _train(agent, 0, 3, rng)
    agent.end_task(0, replay, rng)  # prune 2/3 of task 0's kernel entries, retrain 3 steps
    packnet = agent.packnets["actor"]
    for k, owner in zip(packnet.kernels, packnet.owner, strict=True):
        mine = int((owner == 0).sum())
        assert mine == k.numel() - (int(k.numel() * 2 / 3) + 1)
        assert torch.all(k[owner == 1] == 0)  # pruned and held at zero while retraining
    before = {n: p.detach().clone() for n, p in agent.actor.named_parameters()}
    _train(agent, 1, 5, rng)
    heads = {id(p) for p in output_layer(agent.actor).parameters()}
    changed = False
    for (name, p), owner in zip(agent.actor.named_parameters(), _owners(agent), strict=True):
        if id(p) in heads:  # not managed with a head per task; trained by its own rows
            continue
        if owner is None:  # biases and layer norms: frozen once task 0 has ended
            assert torch.equal(p, before[name]), name
        else:
            assert torch.equal(p[owner == 0], before[name][owner == 0]), name
            changed |= not torch.equal(p[owner == 1], before[name][owner == 1])
    assert changed  # task 1 trains the entries it owns


def _owners(agent: ContinualSAC) -> list[torch.Tensor | None]:
    """Each actor parameter's owner tensor (None where PackNet assigns no owner)."""
    packnet = agent.packnets["actor"]
    by_id = {id(k): o for k, o in zip(packnet.kernels, packnet.owner, strict=True)}
    return [by_id.get(id(p)) for p in agent.actor.parameters()]


def test_packnet_acts_on_an_earlier_task_with_later_weights_zeroed():
    agent = _agent("packnet")
    rng = np.random.default_rng(3)
    replay = _train(agent, 0, 2, rng)
    agent.end_task(0, replay, rng)
    _train(agent, 1, 3, rng)
    obs = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
    weights = {n: p.detach().clone() for n, p in agent.actor.named_parameters()}
    got = agent.act(obs, np.array([0, 1]), deterministic=True)
    for n, p in agent.actor.named_parameters():
        assert torch.equal(p, weights[n])  # the view is put back
    reference = copy.deepcopy(agent.actor)
    with torch.no_grad():
        for p, owner in zip(reference.parameters(), _owners(agent), strict=True):
            if owner is not None:
                p.masked_fill_(owner > 0, 0.0)
        mean0, _ = reference(torch.as_tensor(obs[:1]), torch.tensor([0]))
        mean1, _ = agent.actor(torch.as_tensor(obs[1:]), torch.tensor([1]))
    np.testing.assert_allclose(got[0], torch.tanh(mean0)[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(got[1], torch.tanh(mean1)[0].numpy(), rtol=1e-6)


# -- A-GEM ------------------------------------------------------------------------------------
def test_agem_projects_a_conflicting_gradient_onto_the_reference_normal_plane():
    g = [torch.tensor([1.0]), torch.tensor([1.0])]  # g = (1, 1) as two parameter tensors
    ref = [torch.tensor([-1.0]), torch.tensor([0.0])]  # g_ref = (-1, 0): g·g_ref = -1 < 0
    assert agem.project(g, ref)
    # g - (g·g_ref / g_ref·g_ref) g_ref = (1, 1) - (-1)(-1, 0) = (0, 1)
    assert [float(x) for x in g] == [0.0, 1.0]


@pytest.mark.parametrize("ref_x", [1.0, 0.0])  # g·g_ref = 1 and 0: CW projects only when < 0
def test_agem_leaves_a_non_conflicting_gradient_as_it_is(ref_x):
    g = [torch.tensor([1.0, 0.5])]
    ref = [torch.tensor([ref_x, 0.0])]
    assert not agem.project(g, ref)
    assert torch.equal(g[0], torch.tensor([1.0, 0.5]))


def test_agem_memory_keeps_each_finished_task_and_samples_without_replacement():
    agent = _agent("agem")
    rng = np.random.default_rng(4)
    replay = _train(agent, 0, 2, rng)
    agent.end_task(0, replay, rng)
    memory = agent.memory
    assert memory is not None and memory.capacity == 20 * N_TASKS and memory.size == 20
    batch = memory.sample(50, torch.Generator().manual_seed(0))
    assert len(batch.rows) == 20 and len(set(batch.rows.tolist())) == 20
    assert set(batch.task_class.tolist()) == {0}
    replay = _train(agent, 1, 0, rng)
    seen = [agent.update(replay.batch(UniformSampler().rows(replay, 8, rng))) for _ in range(20)]
    assert all(r.agem_projected_actor in (0.0, 1.0) for r in seen)
    agent.end_task(1, replay, rng)
    assert memory.size == 40
    agent.end_task(2, _replay(2), rng)  # the last task is never stored (CW: no next start)
    assert memory.size == 40


def test_agem_update_steps_on_gradients_that_do_not_conflict_with_the_memory(monkeypatch):
    agent = _agent("agem")
    rng = np.random.default_rng(8)
    replay = _train(agent, 0, 3, rng)
    agent.end_task(0, replay, rng)
    replay = _train(agent, 1, 0, rng)
    seen: list[tuple[float, bool]] = []
    project = agem.project

    def checked(grads, ref):
        projected = project(grads, ref)
        g_P = torch.cat([g.reshape(-1) for g in grads])
        ref_P = torch.cat([r.reshape(-1) for r in ref])
        seen.append((float(g_P @ ref_P) / float(g_P.norm() * ref_P.norm()), projected))
        return projected

    monkeypatch.setattr(agem, "project", checked)
    for _ in range(10):
        agent.update(replay.batch(UniformSampler().rows(replay, 8, rng)))
    assert len(seen) == 20  # critic and actor, every update from the second task on
    assert all(cosine >= -1e-5 for cosine, _ in seen)  # zero up to rounding once projected
    assert any(projected for _, projected in seen)  # random memories conflict now and then


# -- shared pieces ----------------------------------------------------------------------------
def test_cw_body_is_layernorm_tanh_then_leaky_relu():
    torch.manual_seed(0)
    net = cw_mlp(3, [5, 4], 2)
    x = torch.randn(6, 3)
    h = torch.tanh(
        torch.nn.functional.layer_norm(net[0](x), (5,), net[1].weight, net[1].bias, 1e-3)
    )
    h = torch.nn.functional.leaky_relu(net[3](h), 0.2)
    torch.testing.assert_close(net(x), net[5](h))
    assert LEAKY_SLOPE == 0.2 and torch.all(net[0].bias == 0)  # Keras Dense: zero biases


def test_shared_parameters_leave_out_the_heads_only_with_several():
    one = TanhGaussianActor(3, 2, [4], heads=1)
    many = TanhGaussianActor(3, 2, [4], heads=3)
    assert len(shared_parameters(one)) == 4 and len(shared_parameters(many)) == 2


def test_task_start_zeroes_adam_moments_and_keeps_step_counts():
    agent = _agent("finetune")
    rng = np.random.default_rng(5)
    _train(agent, 0, 2, rng)
    agent.start_task(1)
    for opt in (agent.actor_opt, agent.critic_opt, agent.alpha_opt):
        for state in opt.state.values():
            assert float(state["step"]) == 2
            assert not state["exp_avg"].any() and not state["exp_avg_sq"].any()
    reset_adam_moments(agent.actor_opt)  # no state at all: nothing to do


def test_cw_temperature_settings():
    agent = _agent("finetune")
    assert agent.target_entropy == pytest.approx(
        2 * math.log(0.089 * math.sqrt(2 * math.pi * math.e))
    )
    assert agent.temperature.log_alpha.detach().tolist() == pytest.approx([1.0] * N_TASKS)


# -- state ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_state_round_trip_resumes_exactly(method):
    rng = np.random.default_rng(6)
    agent = _agent(method)
    replay = _train(agent, 0, 2, rng)
    agent.end_task(0, replay, rng)
    replay = _train(agent, 1, 2, rng)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # as checkpoints load it: no pickle
    other = _agent(method, seed=1)
    other.load_state_dict(state)
    _assert_same(agent.state_dict(), other.state_dict())
    batch = replay.batch(UniformSampler().rows(replay, 8, rng))
    torch.manual_seed(7)
    a = agent.update(batch)
    torch.manual_seed(7)
    b = other.update(batch)
    assert a == b
    _assert_same(agent.state_dict(), other.state_dict())


def _assert_same(a, b, path="state"):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


# -- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (
            "finetune",
            {
                "lr": 1e-3,
                "batch_size": 128,
                "buffer_size": 1_000_000,
                "reset_buffer": True,
                "reset_optimizer": True,
                "learning_starts": 10_000,
                "random_steps_every_task": True,
                "update_after": 1000,
                "update_every": 50,
                "gamma": 0.99,
                "tau": 0.005,
                "adam_eps": 1e-7,
                "max_grad_norm": None,
                "regularize_critic": False,
            },
        ),
        ("l2", {"reg_coef": 1e5}),
        ("ewc", {"reg_coef": 1e4}),
        ("mas", {"reg_coef": 1e4}),
        ("packnet", {"max_grad_norm": 2e-5, "packnet_retrain_steps": 100_000}),
        ("agem", {"agem_episodic_mem_per_task": 10_000, "agem_episodic_batch_size": 128}),
        ("perfect_memory", {"batch_size": 512, "buffer_size": 20_000_000, "reset_buffer": False}),
        ("multitask", {"lr": 1e-4, "reset_buffer": False}),
    ],
)
def test_method_defaults_are_continual_worlds(method, expected):
    config = parse_agent_config({"name": "cl_sac", "method": method})
    assert {k: getattr(config, k) for k in expected} == expected
    assert config.hidden == [256] * 4 and config.multi_head and config.task_encoding == "none"


def test_a_config_value_wins_over_the_method_default():
    assert parse_agent_config({"name": "cl_sac", "method": "l2", "reg_coef": 3.0}).reg_coef == 3.0


def test_registered_in_the_continual_family():
    assert agent_spec("cl_sac").family == "continual"


def test_unknown_method_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"agent\.method.*finetune"):
        parse_agent_config({"name": "cl_sac", "method": "ewc2"})


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"method": "packnet", "multi_head": False},
            r"agent\.method: packnet .*valid there: finetune, l2",
        ),
        ({"method": "ewc"}, r"agent\.multi_head: .*valid there: false"),
        (
            {"method": "ewc", "multi_head": False, "task_encoding": "one_hot"},
            r"agent\.task_encoding",
        ),
    ],
)
def test_hidden_task_identity_rejects_what_needs_it(overrides, match):
    config = parse_agent_config({"name": "cl_sac", **overrides})
    with pytest.raises(ConfigError, match=match):
        config.check_sequence("hidden", 3)
    config.check_sequence("visible", 3)


def test_hidden_task_identity_accepts_a_single_head():
    parse_agent_config({"name": "cl_sac", "method": "agem", "multi_head": False}).check_sequence(
        "hidden", 3
    )


def test_perfect_memory_needs_a_replay_for_the_whole_sequence():
    config = parse_agent_config({"name": "cl_sac", "method": "perfect_memory", "buffer_size": 100})
    with pytest.raises(ConfigError, match=r"agent\.buffer_size: 100 .*valid: >= 150"):
        config.check_sequence("visible", 3, steps_per_task=50)


@pytest.mark.parametrize(
    ("key", "value"),
    [("architecture", "moore"), ("gradient_surgery", "pcgrad"), ("task_encoding", "embedding")],
)
def test_settings_the_methods_cannot_run_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=rf"agent\.{key}"):
        parse_agent_config({"name": "cl_sac", key: value})
