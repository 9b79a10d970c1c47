"""Multi-task architectures on MT-SAC (issue 19): Soft Modularization, CARE, MOORE, PaCo."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn import functional as F
from trees import assert_tree_equal

from gmtl_rl.agents.registry import agent_spec, parse_agent_config
from gmtl_rl.agents.sac import (
    SAC,
    MTSACCAREConfig,
    MTSACConfig,
    MTSACMOOREConfig,
    MTSACPaCoConfig,
    MTSACSoftModulesConfig,
    SACConfig,
)
from gmtl_rl.cli import main
from gmtl_rl.core import mt_architectures as mta
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.core.replay import ReplayBatch
from gmtl_rl.errors import ConfigError

OBS = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
SMOKE = str(Path(__file__).parents[2] / "configs" / "smoke" / "sac_point_robot.yaml")
MT3 = ["reach-v3", "push-v3", "pick-place-v3"]
TINY = {"hidden": [16, 16]}
PRESETS = {  # name -> config keys for a 3-class toy env (CARE: the first three MT10 names)
    "mtsac_softmod": {**TINY, "soft_modules": {"module_width": 8, "routing_width": 8}},
    "mtsac_care": {**TINY, "care": {"task_names": MT3, "num_experts": 3, "encoder_width": 8}},
    "mtsac_moore": {**TINY, "moore": {"num_experts": 3}},
    "mtsac_paco": {**TINY, "paco": {"num_parameter_sets": 3}},
}


def _agent(name: str, classes: int = 3, seed: int = 0, **keys) -> SAC:
    torch.manual_seed(seed)
    config = parse_agent_config({"name": name, **PRESETS[name], **keys})
    agent = agent_spec(name).build(config, EnvSpec(OBS, ACT, classes), seed, "cpu")
    assert isinstance(agent, SAC)
    return agent


def _batch(classes: np.ndarray, seed: int = 0) -> ReplayBatch:
    rng = np.random.default_rng(seed)
    n = len(classes)
    return ReplayBatch(
        obs=rng.uniform(-1, 1, (n, 5)).astype(np.float32),
        action=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        reward=rng.normal(size=n).astype(np.float32),
        next_obs=rng.uniform(-1, 1, (n, 5)).astype(np.float32),
        terminated=np.zeros(n, np.float32),
        task_id=np.asarray(classes, np.int64),
        task_class=np.asarray(classes, np.int64),
        rows=np.arange(n),
    )


def _nets(
    n: int = 2, classes: int = 4, in_dim: int = 6, out: int = 3
) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    meta = torch.randn(classes, 7)
    return {
        "soft_modules": mta.SoftModulesNet(
            n,
            in_dim,
            classes,
            [12, 10],
            out,
            mta.SoftModulesOptions(num_layers=3, num_modules=3, module_width=8, routing_width=9),
            0.1,
        ),
        "care": mta.CARENet(
            n,
            in_dim,
            classes,
            [12],
            out,
            mta.CAREOptions(num_experts=3, encoder_width=8, embedding_dim=5),
            0.1,
            meta,
        ),
        "care_learned": mta.CARENet(
            n,
            in_dim,
            classes,
            [12],
            out,
            mta.CAREOptions(context="learned", num_experts=3, encoder_width=8, embedding_dim=5),
            0.1,
            None,
        ),
        "moore": mta.MOORENet(
            n, in_dim, classes, [12, 10], out, mta.MOOREOptions(num_experts=3), 0.1
        ),
        "paco": mta.PaCoNet(
            n, in_dim, classes, [12, 10], out, mta.PaCoOptions(num_parameter_sets=3), 0.1
        ),
    }


# -- shapes and per-task independence --------------------------------------------------------
@pytest.mark.parametrize("arch", ["soft_modules", "care", "care_learned", "moore", "paco"])
def test_every_member_gives_one_output_per_row_and_rows_do_not_depend_on_each_other(arch):
    net = _nets()[arch]
    x, task = torch.randn(11, 6), torch.tensor([2, 0, 3, 3, 1, 0, 2, 2, 3, 0, 1])
    out = net(x, task)
    assert out.shape == (2, 11, 3) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1]), "twin members have their own parameters"
    for rows in ([4], [0, 5, 9], [2, 3, 8, 1]):  # a row's output, whatever else is in the batch
        torch.testing.assert_close(net(x[rows], task[rows]), out[:, rows], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["soft_modules", "care", "care_learned", "moore", "paco"])
def test_another_tasks_own_parameters_do_not_change_a_tasks_outputs(arch):
    net = _nets()[arch]
    x, task = torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 0, 1, 0, 0])
    before = net(x, task)
    with torch.no_grad():  # task 1's row of its per-task table (and its head, MOORE)
        if arch == "soft_modules":
            net.z.weight[:, 1] += 0.5
        elif arch == "care":
            net.metadata[1] += 0.5
        elif arch == "care_learned":
            net.table.weight[:, 1] += 0.5
        elif arch == "moore":
            net.task_weights.weight[:, 1] += 0.5
            net.heads.weight.view(2, 10, 4, 3)[:, :, 1] += 0.5
        else:
            net.w.weight[:, 1] += 0.5
    after = net(x, task)
    zero, one = task == 0, task == 1
    torch.testing.assert_close(after[:, zero], before[:, zero], rtol=0, atol=0)
    assert not torch.allclose(after[:, one], before[:, one])


@pytest.mark.parametrize("name", list(PRESETS))
def test_actor_and_critic_keep_the_sac_interfaces(name):
    agent = _agent(name)
    obs, act, task = torch.randn(6, 5), torch.rand(6, 2) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    mean, log_std = agent.actor(obs, task)
    assert mean.shape == log_std.shape == (6, 2)
    action, log_prob = agent.actor.sample(obs, task)
    assert action.shape == (6, 2) and log_prob.shape == (6,) and action.abs().max() <= 1
    assert agent.critic(obs, act, task).shape == agent.critic_target(obs, act, task).shape == (2, 6)
    assert agent.act(np.zeros((3, 5), np.float32), np.array([2, 1, 0])).shape == (3, 2)


# -- Soft Modularization ----------------------------------------------------------------------
def _soft_modules_by_hand(net: mta.SoftModulesNet, x: torch.Tensor, task: torch.Tensor, e: int):
    """The authors' ModularGatedCascadeCondNet.forward, one row and one module at a time."""

    def lin(layer, v, i=None):
        w, b = (layer.weight[e], layer.bias[e]) if i is None else (layer.weight[i], layer.bias[i])
        return v @ w + b[0]

    outs = []
    for b in range(len(x)):
        h = x[b]
        for j, layer in enumerate(net.f.layers):
            h = lin(layer, h) if j == len(net.f.layers) - 1 else F.relu(lin(layer, h))
        emb = (net.z.weight[e, task[b]] + net.z.bias[e, 0]) * h
        emb = lin(net.task_fc.layers[1], F.relu(lin(net.task_fc.layers[0], F.relu(emb))))
        weights, flat = [], []
        for i in range(net.L):
            cond = emb if i == 0 else lin(net.route_in[i - 1], torch.cat(flat)) * emb
            p = torch.softmax(lin(net.route_out[i], F.relu(cond)).view(-1, net.m).squeeze(0), -1)
            weights.append(p)
            flat.append(p.flatten())
        inputs = [F.relu(h)] * net.m
        for i in range(net.L):
            mods = [lin(net.modules_[i], inputs[j], e * net.m + j) for j in range(net.m)]
            if i < net.L - 1:
                inputs = [
                    F.relu(sum(weights[i][j, k] * mods[k] for k in range(net.m)))
                    for j in range(net.m)
                ]
        out = F.relu(sum(weights[-1][k] * mods[k] for k in range(net.m)))
        outs.append(lin(net.head, out))
    return torch.stack(outs)


def test_soft_modules_forward_equals_the_authors_loop_over_rows_and_modules():
    net = _nets()["soft_modules"]
    x, task = torch.randn(5, 6), torch.tensor([0, 3, 1, 1, 2])
    out = net(x, task)
    for e in range(2):
        torch.testing.assert_close(
            out[e], _soft_modules_by_hand(net, x, task, e), rtol=1e-5, atol=1e-6
        )


def test_soft_modules_routing_weights_are_distributions_that_depend_on_state_and_task():
    net = _nets()["soft_modules"]
    x, task = torch.randn(6, 6), torch.tensor([0, 1, 2, 3, 0, 1])
    probs = net.routing(x, task)
    assert [p.shape for p in probs] == [(2, 6, 3, 3), (2, 6, 3, 3), (2, 6, 3)]
    for p in probs:
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    same_state = net.routing(x[[0, 0]], torch.tensor([0, 1]))[0]
    same_task = net.routing(x[[0, 1]], torch.tensor([0, 0]))[0]
    assert not torch.allclose(same_state[:, 0], same_state[:, 1], rtol=0, atol=1e-7), "task"
    assert not torch.allclose(same_task[:, 0], same_task[:, 1], rtol=0, atol=1e-7), "state"


def test_temperature_reweighting_is_t_times_softmax_of_minus_log_alpha():
    # log α = (0, ln 2): softmax(-log α) = (1, 1/2) / 1.5 = (2/3, 1/3); times T = 2: (4/3, 2/3).
    weights = mta.temperature_task_weights(
        torch.tensor([0.0, math.log(2.0)]), torch.tensor([1, 0, 1])
    )
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 4 / 3, 2 / 3]))


# -- CARE --------------------------------------------------------------------------------------
def test_care_attention_sums_to_one_and_follows_the_metadata():
    net = _nets()["care"]
    with torch.no_grad():
        net.metadata[3] = net.metadata[1]  # tasks 1 and 3 described alike
    z, attention = net.context()
    assert attention.shape == (2, 4, 3) and z.shape == (2, 4, 5)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 4))
    torch.testing.assert_close(attention[:, 3], attention[:, 1], rtol=0, atol=0)
    assert not torch.allclose(attention[:, 0], attention[:, 1])
    x = torch.randn(3, 6)  # same metadata, same network: the tasks are the same to CARE
    torch.testing.assert_close(
        net(x, torch.full((3,), 3)), net(x, torch.full((3,), 1)), rtol=0, atol=0
    )


def test_care_output_is_the_torso_of_the_attended_mixture_and_the_context():
    net = _nets(n=1)["care"]
    x, task = torch.randn(4, 6), torch.tensor([0, 2, 2, 1])
    z, attention = net.context()
    encodings = [  # expert k's MLP by hand: Linear, ReLU, Linear, ReLU, Linear
        net.experts.layers[2].weight[k].T @ F.relu(net.experts.layers[1].weight[k].T @ F.relu(
            net.experts.layers[0].weight[k].T @ x.T + net.experts.layers[0].bias[k].T)
            + net.experts.layers[1].bias[k].T) + net.experts.layers[2].bias[k].T
        for k in range(3)
    ]  # fmt: skip
    mixed = sum(attention[0, task, k, None] * encodings[k].T for k in range(3))
    expected = net.torso(torch.cat([mixed, z[0, task]], dim=-1))
    torch.testing.assert_close(net(x, task), expected, rtol=1e-5, atol=1e-6)


def test_shipped_care_metadata_is_the_authors_roberta_embeddings_by_task_name():
    names = mta.shipped_task_names()
    assert len(names) == 50 and {"reach", "push", "pick-place", "window-close"} <= set(names)
    rows = mta.care_metadata(mta.CAREOptions(), ["reach-v3", "push-v3"], 2)
    assert rows.shape == (2, 768) and rows.dtype == torch.float32
    # mtrl metadata/task_embedding/roberta_small/metaworld-mt10.json, "reach-v1"[:2], "push-v1"[:2]
    torch.testing.assert_close(
        rows[0, :2], torch.tensor([-0.045648399740457535, 0.08495677262544632])
    )
    torch.testing.assert_close(
        rows[1, :2], torch.tensor([-0.05024164542555809, 0.10476041585206985])
    )


def test_care_reads_a_users_metadata_file(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text('{"left": [1, 0, 0], "right": [0, 1, 0], "up": [0, 0, 1]}')
    opts = mta.CAREOptions(metadata=str(path), task_names=["up", "left"])
    torch.testing.assert_close(
        mta.care_metadata(opts, None, 2), torch.tensor([[0.0, 0, 1], [1, 0, 0]])
    )


def test_care_takes_its_metadata_rows_in_the_envs_class_order_without_task_names():
    env_order = ("pick-place-v3", "reach-v3", "push-v3")
    agent = SAC(MTSACCAREConfig(hidden=[16, 16]), EnvSpec(OBS, ACT, 3, task_class_names=env_order))
    expected = mta.care_metadata(mta.CAREOptions(), list(env_order), 3)
    torch.testing.assert_close(agent.actor.body.metadata, expected)
    torch.testing.assert_close(agent.critic.body.metadata, expected)


def test_env_specs_carry_meta_worlds_class_names_and_none_for_numbered_classes():
    from gmtl_rl.envs.registry import make
    from gmtl_rl.resources import env_spec_of

    mt10 = make("metaworld/MT10")
    names = env_spec_of(mt10).task_class_names
    assert names == tuple(mt10.task_class_names())
    assert names is not None and names[0] == "reach-v3"
    point = make("point-robot")
    assert env_spec_of(point).task_class_names is None  # classes are only numbers there


# -- MOORE -------------------------------------------------------------------------------------
def test_gram_schmidt_by_hand():
    # (3, 4, 0) -> (0.6, 0.8, 0); (1, 0, 0) - 0.6 (0.6, 0.8, 0) = (0.64, -0.48, 0), |.| = 0.8.
    basis = mta.gram_schmidt(torch.tensor([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(basis, torch.tensor([[0.6, 0.8, 0.0], [0.8, -0.6, 0.0]]))


def test_moore_expert_representations_are_orthonormal_per_row():
    net = _nets()["moore"]
    basis = net.representations(torch.randn(9, 6))  # [E, B, k, width]
    assert basis.shape == (2, 9, 3, 10)
    torch.testing.assert_close(basis @ basis.mT, torch.eye(3).expand(2, 9, 3, 3), rtol=0, atol=1e-5)


def test_moore_output_is_the_tasks_head_on_tanh_of_its_weighted_orthonormal_experts():
    net = _nets(n=1)["moore"]
    x, task = torch.randn(5, 6), torch.tensor([3, 0, 1, 3, 2])
    basis = net.representations(x)[0]  # [B, k, w]
    w = net.task_weights.weight[0, task]  # [B, k]
    features = torch.tanh((w.unsqueeze(-1) * basis).sum(1))
    heads_w = net.heads.weight[0].view(10, 4, 3)  # [width, T, out]
    heads_b = net.heads.bias[0, 0].view(4, 3)
    expected = torch.stack([features[b] @ heads_w[:, task[b]] + heads_b[task[b]] for b in range(5)])
    torch.testing.assert_close(net(x, task)[0], expected, rtol=1e-5, atol=1e-6)


def test_moore_update_on_one_class_leaves_the_other_classes_heads_untouched():
    agent = _agent("mtsac_moore")
    before = agent.actor.body.heads.weight.detach().clone().view(1, 16, 3, 4)
    agent.update(_batch(np.zeros(8, np.int64)))
    after = agent.actor.body.heads.weight.detach().view(1, 16, 3, 4)
    assert not torch.equal(after[:, :, 0], before[:, :, 0])
    torch.testing.assert_close(after[:, :, 1:], before[:, :, 1:], rtol=0, atol=0)


def test_moore_actor_clamps_log_std_at_minus_ten():
    agent = _agent("mtsac_moore")
    with torch.no_grad():
        agent.actor.body.heads.bias.fill_(-100.0)
    _, log_std = agent.actor(torch.zeros(2, 5), torch.tensor([0, 1]))
    assert float(log_std.detach().min()) == -10.0


# -- PaCo --------------------------------------------------------------------------------------
def test_paco_task_weights_compose_the_parameter_sets():
    # Meta-World+ / the authors: each layer computes all K outputs and mixes them with w_τ.
    net = _nets()["paco"]
    x, task = torch.randn(7, 6), torch.tensor([1, 1, 0, 3, 2, 1, 0])
    w = net.w.table()[:, task]  # [E, B, K]
    h = x.expand(2, 7, 6)
    for i, layer in enumerate(net.layers):
        outs = torch.einsum("ebi,ekio->ekbo", h, layer.weight) + layer.bias.unsqueeze(2)
        h = torch.einsum("ekbo,ebk->ebo", outs, w)
        h = F.relu(h) if i < len(net.layers) - 1 else h
    torch.testing.assert_close(net(x, task), h, rtol=1e-5, atol=1e-5)


def test_paco_with_a_one_hot_w_is_that_parameter_sets_network():
    net = _nets(n=1)["paco"]
    with torch.no_grad():
        net.w.weight.zero_()
        net.w.bias.zero_()
        net.w.weight[0, 2, 1] = 1.0  # task 2 uses parameter set 1 alone
    x = torch.randn(4, 6)
    h = x
    for i, layer in enumerate(net.layers):
        h = h @ layer.weight[0, 1] + layer.bias[0, 1]
        h = F.relu(h) if i < len(net.layers) - 1 else h
    torch.testing.assert_close(net(x, torch.full((4,), 2))[0], h, rtol=1e-6, atol=1e-6)


def test_paco_masks_out_a_task_over_the_threshold_and_resets_its_w_from_the_others():
    guard = mta.ExtremeTasks(threshold=10.0, reset="copy", num_tasks=3, seed=0)
    sq = torch.tensor([1.0, 50.0, 2.0, 30.0, 1.0, 1.0])  # task 1 mean 40 > 10
    mask = guard.mask(sq, torch.tensor([0, 1, 2, 1, 0, 2]), 3)
    assert mask is not None and mask.tolist() == [1, 0, 1, 0, 1, 1]
    assert guard.counts.tolist() == [0, 1, 0]
    net = _nets(n=2, classes=3)["paco"]
    w = net.w.weight.detach().clone()
    guard.reset([net])
    new = net.w.weight.detach()
    torch.testing.assert_close(new[:, [0, 2]], w[:, [0, 2]], rtol=0, atol=0)
    assert torch.equal(new[:, 1], w[:, 0]) or torch.equal(new[:, 1], w[:, 2]), "a copy of another"
    assert guard.mask(torch.ones(6), torch.tensor([0, 1, 2, 1, 0, 2]), 3) is None


def test_paco_interpolate_reset_is_a_convex_combination_of_the_normal_tasks():
    guard = mta.ExtremeTasks(threshold=1.0, reset="interpolate", num_tasks=3, seed=4)
    guard.mask(torch.tensor([5.0, 5.0, 0.0]), torch.tensor([0, 2, 1]), 3)  # tasks 0, 2 extreme
    net = _nets(n=1, classes=3)["paco"]
    normal = net.w.weight.detach()[0, 1].clone()
    guard.reset([net])
    for t in (0, 2):  # one normal task: the only convex combination is itself
        torch.testing.assert_close(net.w.weight.detach()[0, t], normal)


def test_paco_extreme_task_is_masked_out_of_the_sac_update():
    keys = {"paco": {"num_parameter_sets": 3, "extreme_task_loss": 1e-9}}
    agent = _agent(
        "mtsac_paco", **keys
    )  # every task is extreme: nothing may move but nothing breaks
    before = [p.detach().clone() for p in agent.actor.parameters()]
    result = agent.update(_batch(np.arange(9) % 3))
    assert result.critic_loss == 0.0 and result.actor_loss == 0.0
    assert all(torch.equal(b, p) for b, p in zip(before, agent.actor.parameters(), strict=True))
    assert agent.extreme is not None and agent.extreme.counts.tolist() == [1, 1, 1]


# -- the agent: one update, exact resume, bad input ----------------------------------------------
@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_does_one_sac_update_that_moves_actor_critic_and_temperature(name):
    agent = _agent(name)
    actor = [p.detach().clone() for p in agent.actor.parameters()]
    critic = [p.detach().clone() for p in agent.critic.parameters()]
    result = agent.update(_batch(np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 1, 0, 2])))
    assert all(math.isfinite(v) for v in result.metrics().values())
    assert any(not torch.equal(a, b) for a, b in zip(actor, agent.actor.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(critic, agent.critic.parameters(), strict=True)
    )
    assert (agent.temperature.log_alpha != 0).all() and agent.updates == 1


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        *((n, {}) for n in PRESETS),
        ("mtsac_paco", {"paco": {"num_parameter_sets": 3, "extreme_task_loss": 2.0,
                                 "reset_extreme_tasks": "interpolate"}}),
    ],
)  # fmt: skip
def test_state_dict_round_trip_continues_identically(name, keys):
    batches = [_batch(np.arange(12) % 3, seed=s) for s in range(4)]
    agent = _agent(name, **keys)
    for b in batches[:2]:
        agent.update(b)
    loaded = _agent(name, seed=7, **keys)  # other weights, other streams: all replaced
    loaded.load_state_dict(agent.state_dict())
    for a in (agent, loaded):
        torch.manual_seed(3)
        for b in batches[2:]:
            a.update(b)
    assert_tree_equal(agent.state_dict(), loaded.state_dict())
    if keys:
        assert int(agent.extreme.counts.sum()) > 0, "the guard took part"  # type: ignore[union-attr]


def test_presets_take_meta_world_plus_settings():
    for config in (
        MTSACSoftModulesConfig(),
        MTSACCAREConfig(),
        MTSACMOOREConfig(),
        MTSACPaCoConfig(),
    ):
        assert config.max_grad_norm == 1.0 and config.adam_eps == 1e-5 and config.conditions_on_task
        assert config.per_task_alpha and config.replay_sampler == "task_balanced"
    assert MTSACSoftModulesConfig().temperature_reweight and MTSACSoftModulesConfig().hidden == [
        400,
        400,
    ]
    assert MTSACMOOREConfig().alpha_lr == 1e-4 and MTSACMOOREConfig().log_std_min == -10.0
    assert MTSACConfig().max_grad_norm is None and MTSACConfig().architecture == "mlp"


def test_gradients_are_clipped_to_max_grad_norm():
    agent = _agent("mtsac_moore")
    params = list(agent.actor.parameters())
    for p in params:
        p.grad = torch.full_like(p, 10.0)
    agent._clip(params)
    assert float(
        torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in params]))
    ) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("config", "classes", "key", "message"),
    [
        (MTSACMOOREConfig(), 1, "agent.architecture", "this env has 1, so valid: mlp"),
        (SACConfig(architecture="paco"), 1, "agent.architecture", "valid: mlp"),
        (MTSACMOOREConfig(hidden=[16, 16], moore={"num_experts": 17}), 3, "agent.moore.num_experts",
         "valid: 1 to 16"),
        (MTSACCAREConfig(), 3, "agent.care.task_names", "agent.care.context: learned"),
        (MTSACCAREConfig(care={"task_names": ["reach-v3", "fly-v3", "push-v3"]}), 3,
         "agent.care.task_names", "no metadata for task 'fly-v3'"),
        (MTSACCAREConfig(care={"task_names": MT3[:2]}), 3, "agent.care.task_names",
         "2 names for 3"),
        (MTSACCAREConfig(care={"metadata": "/nonexistent/meta.json", "task_names": MT3}), 3,
         "agent.care.metadata", "cannot read"),
        (MTSACPaCoConfig(multi_head=True), 3, "agent.multi_head", "valid with"),
        (MTSACPaCoConfig(task_encoding="embedding"), 3, "agent.task_encoding", "none, one_hot"),
        (MTSACPaCoConfig(paco={"reset_extreme_tasks": "copy"}), 3, "agent.paco.reset_extreme_tasks",
         "valid: none"),
        (MTSACSoftModulesConfig(per_task_alpha=False), 3, "agent.temperature_reweight",
         "agent.per_task_alpha: true"),
    ],
)  # fmt: skip
def test_bad_input_is_a_one_line_config_error_naming_the_key(config, classes, key, message):
    with pytest.raises(ConfigError) as err:
        SAC(config, EnvSpec(OBS, ACT, classes))
    text = str(err.value)
    assert text.startswith(f"{key}: ") and message in text and "\n" not in text


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["agent.name=mtsac_moore", "env.observe_goal=true"], "agent.architecture"),
        (["agent.name=mtsac_moore", "env.observe_goal=false", "eval.split=train",
          "agent.moore.num_experts=500"],
         "agent.moore.num_experts"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_architecture_settings_in_one_line_with_status_2(
    tmp_path, capsys, args, key
):
    assert main(["train", SMOKE, *args, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and key in err and "valid" in err


def test_gmtl_agents_lists_the_architecture_presets(capsys):
    assert main(["agents"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
