"""PCGrad (Yu et al. 2020): projection arithmetic, seeded orders, and MT-SAC updates with it."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from trees import assert_tree_equal

from gmtl_rl import checkpoint
from gmtl_rl.agents.sac import SAC, MTSACPCGradConfig, SACConfig
from gmtl_rl.cli import main
from gmtl_rl.core.gradient_surgery import (
    PCGrad,
    other_tasks_in_random_order,
    pcgrad_coefficients,
    per_task_gradients,
)
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.core.replay import ReplayBatch
from gmtl_rl.errors import ConfigError

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
SMOKE = str(Path(__file__).parents[2] / "configs" / "smoke" / "sac_point_robot.yaml")


def _batch(classes: np.ndarray, seed: int = 0) -> ReplayBatch:
    rng = np.random.default_rng(seed)
    n = len(classes)
    return ReplayBatch(
        obs=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        action=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        reward=rng.normal(size=n).astype(np.float32),
        next_obs=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        terminated=np.zeros(n, np.float32),
        task_id=np.asarray(classes, np.int64),
        task_class=np.asarray(classes, np.int64),
        rows=np.arange(n),
    )


def _papers_pcgrad(grads: list[torch.Tensor], order: torch.Tensor) -> torch.Tensor:
    """Algorithm 1 of the paper, one vector at a time, in float64."""
    projected = []
    for i, g_i in enumerate(grads):
        g = g_i.double().clone()
        for j in order[i].tolist():
            g_j = grads[j].double()
            if g @ g_j < 0:
                g = g - (g @ g_j) / (g_j @ g_j) * g_j
        projected.append(g)
    return torch.stack(projected).sum(dim=0)


def test_two_conflicting_gradients_are_projected_as_computed_by_hand():
    # g1 . g2 = -1 < 0. By hand: g1' = g1 - (-1 / 2) g2 = (0.5, 0.5); g2' = g2 - (-1 / 1) g1
    # = (0, 1); the update is their sum (0.5, 1.5), and each g_i' is orthogonal to the other g.
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    update, conflicts = PCGrad(seed=0).combine(grads)
    torch.testing.assert_close(update, torch.tensor([0.5, 1.5]))
    assert conflicts == 1.0
    coef = pcgrad_coefficients(grads.double() @ grads.double().T, torch.tensor([[1], [0]]))
    projected = coef.float() @ grads
    torch.testing.assert_close(projected, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    assert float(projected[0] @ grads[1]) == 0.0 and float(projected[1] @ grads[0]) == 0.0


def test_gradients_that_do_not_conflict_are_summed_unchanged():
    grads = torch.tensor([[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 1.0]])
    pcgrad = PCGrad(seed=0)
    update, conflicts = pcgrad.combine(grads)
    assert torch.equal(update, grads.sum(dim=0)) and conflicts == 0.0
    coef = pcgrad_coefficients(grads.double() @ grads.double().T, torch.tensor([[1, 2, 3]] * 4))
    assert torch.equal(coef, torch.eye(4, dtype=torch.float64))


def test_matrix_projection_equals_the_papers_vector_loop():
    gen = torch.Generator().manual_seed(0)
    grads = torch.randn(6, 40, generator=gen)
    grads[3] = -grads[0] + 0.1 * grads[3]  # a strong conflict, besides the random ones
    pcgrad = PCGrad(seed=5)
    order = other_tasks_in_random_order(6, PCGrad(seed=5).generator)
    update, conflicts = pcgrad.combine(grads)
    expected = _papers_pcgrad(list(grads), order)
    torch.testing.assert_close(update.double(), expected, rtol=1e-5, atol=1e-5)
    gram = grads @ grads.T
    assert conflicts == float((gram < 0).sum()) / 30 > 0


def test_order_is_a_random_permutation_of_the_others_per_task_reproducible_from_the_seed():
    first, again, other = PCGrad(seed=7), PCGrad(seed=7), PCGrad(seed=8)
    draws = [other_tasks_in_random_order(5, first.generator) for _ in range(40)]
    assert all(torch.equal(d, other_tasks_in_random_order(5, again.generator)) for d in draws), (
        "same seed, same orders"
    )
    assert not all(
        torch.equal(d, other_tasks_in_random_order(5, other.generator)) for d in draws
    ), "another seed, other orders"
    for d in draws:  # row i: every task but i
        for i, row in enumerate(d.tolist()):
            assert sorted(row) == [t for t in range(5) if t != i]
    firsts = torch.stack(draws)[:, :, 0]  # [draws, tasks]: who each task is projected on first
    assert all(len(set(firsts[:, i].tolist())) == 4 for i in range(5)), "orders vary per draw"


def test_order_changes_the_update_and_the_seed_fixes_it():
    # Three mutually conflicting gradients: projected onto the other two in either order, a
    # gradient ends in different places, so the update depends on the orders drawn.
    grads = torch.tensor([[1.0, 0.0], [-0.6, 0.8], [-0.6, -0.8]])
    first, again = PCGrad(seed=3), PCGrad(seed=3)
    updates = [first.combine(grads)[0] for _ in range(20)]
    assert all(torch.equal(u, again.combine(grads)[0]) for u in updates)
    assert len({tuple(u.tolist()) for u in updates}) > 1


def test_per_task_gradients_equal_separate_backward_passes():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    unused = torch.nn.Parameter(torch.ones(2))
    x, task = torch.randn(10, 3), torch.tensor([2, 0, 2, 5, 0, 5, 5, 2, 0, 0])
    params = [*net.parameters(), unused]
    grads = per_task_gradients(net(x).squeeze(1).pow(2), params, task)
    assert grads.shape == (3, sum(p.numel() for p in params))
    for row, t in enumerate([0, 2, 5]):  # tasks present, ascending
        loss = (net(x).squeeze(1).pow(2) * (task == t)).sum() / len(task)
        ref = torch.autograd.grad(loss, params[:-1])
        torch.testing.assert_close(grads[row], torch.cat([*(g.flatten() for g in ref), 0 * unused]))


def _pcgrad_agent(**overrides) -> SAC:
    torch.manual_seed(0)
    agent = SAC(MTSACPCGradConfig(hidden=[16, 16], **overrides), EnvSpec(OBS, ACT, 3), seed=11)
    agent.critic_opt = torch.optim.SGD(agent.critic.parameters(), lr=0.1)
    agent.actor_opt = torch.optim.SGD(agent.actor.parameters(), lr=0.1)
    return agent


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _projected_step(losses_B: torch.Tensor, module, task, order) -> torch.Tensor:
    """-lr x PCGrad update, from per-task gradients of separate backward passes."""
    params = list(module.parameters())
    grads = []
    for t in range(3):
        loss = (losses_B * (task == t)).sum() / len(task)
        g = torch.autograd.grad(loss, params, retain_graph=True)
        grads.append(torch.cat([x.flatten() for x in g]))
    return -0.1 * _papers_pcgrad(grads, order).float()


def test_mtsac_update_with_pcgrad_steps_on_the_projected_gradient():
    batch = _batch(np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 1, 0, 2]), seed=3)
    agent, ref = _pcgrad_agent(), _pcgrad_agent()  # same weights
    orders = PCGrad(seed=11).generator  # the agent's order stream, replayed
    torch.manual_seed(5)
    result = agent.update(batch)
    assert result.critic_conflicts >= 0 and result.actor_conflicts > 0  # type: ignore[attr-defined]

    # The reference: SAC's losses row by row, one backward pass per task, the paper's loop.
    torch.manual_seed(5)  # the same noise: next actions first, then the actor's actions
    obs, next_obs = torch.as_tensor(batch.obs), torch.as_tensor(batch.next_obs)
    action, task = torch.as_tensor(batch.action), torch.as_tensor(batch.task_class)
    with torch.no_grad():
        next_action, next_log_prob = ref.actor.sample(next_obs, task)
        next_q = ref.critic_target(next_obs, next_action, task).min(dim=0).values
        target = torch.as_tensor(batch.reward) + 0.99 * (next_q - next_log_prob)  # α = 1
    critic_rows = 0.5 * (ref.critic(obs, action, task) - target).pow(2).sum(dim=0)
    step = _projected_step(critic_rows, ref.critic, task, other_tasks_in_random_order(3, orders))
    torch.testing.assert_close(_flat(agent.critic), _flat(ref.critic) + step)

    ref.critic.load_state_dict(agent.critic.state_dict())  # checked above: the next pass uses it
    ref.critic.requires_grad_(False)
    new_action, log_prob = ref.actor.sample(obs, task)
    actor_rows = log_prob - ref.critic(obs, new_action, task).min(dim=0).values
    step = _projected_step(actor_rows, ref.actor, task, other_tasks_in_random_order(3, orders))
    torch.testing.assert_close(_flat(agent.actor), _flat(ref.actor) + step)


def test_without_conflicts_pcgrad_is_exactly_mtsac():
    # One task in the batch: nothing to project, so critic, actor and temperature follow
    # MT-SAC (within float summation order).
    batch = _batch(np.zeros(8, np.int64))
    torch.manual_seed(0)
    plain = SAC(MTSACPCGradConfig(hidden=[16, 16], gradient_surgery="none"), EnvSpec(OBS, ACT, 3))
    torch.manual_seed(0)
    pcgrad = SAC(MTSACPCGradConfig(hidden=[16, 16]), EnvSpec(OBS, ACT, 3))
    for _ in range(3):
        torch.manual_seed(1)
        plain.update(batch)
        torch.manual_seed(1)
        pcgrad.update(batch)
    state = pcgrad.state_dict()
    del state["gradient_surgery"]
    assert_tree_equal(plain.state_dict(), state, atol=1e-6)


def test_state_dict_carries_the_order_stream_so_a_loaded_agent_continues_identically():
    batch = _batch(np.arange(12) % 3)
    agent = _pcgrad_agent()
    for _ in range(2):
        agent.update(batch)
    torch.manual_seed(0)
    loaded = SAC(MTSACPCGradConfig(hidden=[16, 16]), EnvSpec(OBS, ACT, 3), seed=99)
    loaded.critic_opt = torch.optim.SGD(loaded.critic.parameters(), lr=0.1)
    loaded.actor_opt = torch.optim.SGD(loaded.actor.parameters(), lr=0.1)
    loaded.load_state_dict(agent.state_dict())
    for a in (agent, loaded):
        torch.manual_seed(3)
        for _ in range(3):
            a.update(batch)
    assert_tree_equal(agent.state_dict(), loaded.state_dict())


def test_split_run_resumed_matches_the_straight_run(tmp_path):
    # As tests/test_resume.py, in one process: the order stream travels in the agent's state.
    common = [
        "agent.name=mtsac_pcgrad", "agent.hidden=[16,16]", "env.observe_goal=false",
        "eval.split=train", "eval.max_tasks=2", "checkpoint.every_steps=0", "threads=1",
        "total_steps=300",
    ]  # fmt: skip
    assert main(["train", SMOKE, *common, "--run-dir", str(tmp_path / "straight")]) == 0
    split = tmp_path / "split"  # stops mid-episode (150 steps, 2 envs, horizon 20), updating
    assert main(["train", SMOKE, *common, "total_steps=150", "--run-dir", str(split)]) == 0
    assert main(["resume", str(split), "total_steps=300"]) == 0
    straight = checkpoint.load_latest(tmp_path / "straight" / "checkpoints").agent["agent"]
    resumed = checkpoint.load_latest(split / "checkpoints").agent["agent"]
    assert straight["updates"] == resumed["updates"] > 0 and "gradient_surgery" in resumed
    assert_tree_equal(straight, resumed, atol=1e-6)


@pytest.mark.parametrize(
    ("config", "classes", "message"),
    [
        (SACConfig(gradient_surgery="pcgrad"), 3, "single-task, so valid: none"),
        (MTSACPCGradConfig(), 1, "this env has 1, so valid: none"),
    ],
)
def test_pcgrad_without_task_classes_is_a_config_error_naming_the_key(config, classes, message):
    with pytest.raises(ConfigError, match=r"^agent\.gradient_surgery: pcgrad needs") as err:
        SAC(config, EnvSpec(OBS, ACT, classes))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_refuses_pcgrad_on_single_task_sac_in_one_line(tmp_path, capsys):
    args = ["train", SMOKE, "agent.gradient_surgery=pcgrad", "--run-dir", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "agent.gradient_surgery" in err and "valid: none" in err


def test_gmtl_agents_lists_mtsac_pcgrad(capsys):
    assert main(["agents"]) == 0
    assert "mtsac_pcgrad" in capsys.readouterr().out
