"""The tensor helpers every task-conditioned agent acts through (core/networks.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmtl_rl.core.networks import obs_tensor, task_class_tensor


def test_obs_tensor_flattens_a_goal_dict_in_key_order():
    obs = {
        "desired_goal": np.array([[5.0, 6.0]]),
        "observation": np.array([[1.0, 2.0, 3.0]]),
        "achieved_goal": np.array([[9.0, 9.0]]),
    }
    out = obs_tensor(obs, "cpu")
    assert out.dtype == torch.float32
    assert out.tolist() == [[1.0, 2.0, 3.0, 5.0, 6.0]]  # observation, then the goal


@pytest.mark.parametrize("bad", [-1, 4])
def test_a_task_class_the_agent_never_trained_on_is_an_error(bad):
    with pytest.raises(ValueError, match=f"task class {bad} is not one of the 4 classes"):
        task_class_tensor(np.array([0, bad]), 4, checked=True, device="cpu")


def test_an_agent_blind_to_the_task_takes_any_class():
    out = task_class_tensor(np.array([-1, 7]), 4, checked=False, device="cpu")
    assert out.dtype == torch.int64 and out.tolist() == [-1, 7]


def test_rlkit_init_is_oysters():
    """oyster's Mlp: hidden weights U(±1/√out_width) (fanin_init reads size[0] of [out, in]),
    hidden biases 0.1, the last layer U(±init_w); the twin-critic ensemble alike."""
    from gmtl_rl.core.networks import EnsembleMLP, mlp, rlkit_init

    torch.manual_seed(0)
    net = rlkit_init(mlp(7, [300, 300], 2), 3e-3)
    first, second, last = (m for m in net if isinstance(m, torch.nn.Linear))
    for layer in (first, second):
        assert layer.weight.abs().max() <= 1 / 300**0.5
        assert layer.weight.abs().max() > 0.9 / 300**0.5  # spread over the whole bound
        assert torch.all(layer.bias == 0.1)
    assert last.weight.abs().max() <= 3e-3 and last.bias.abs().max() <= 3e-3
    ensemble = rlkit_init(EnsembleMLP(2, 9, [200], 1), 1e-3)
    hidden, out = ensemble.layers
    assert hidden.weight.abs().max() <= 1 / 200**0.5 and torch.all(hidden.bias == 0.1)
    assert out.weight.abs().max() <= 1e-3


def test_pearl_builds_with_oysters_init_by_default():
    import gymnasium as gym

    from gmtl_rl.agents.pearl import PEARLConfig, build_pearl
    from gmtl_rl.core.records import EnvSpec

    box = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    agent = build_pearl(PEARLConfig(hidden=[32], encoder_hidden=[16]), EnvSpec(box, box, 1))
    assert PEARLConfig().init == "rlkit"
    hidden_biases = [m.bias for m in agent.value.modules() if isinstance(m, torch.nn.Linear)][:-1]
    assert all(torch.all(b == 0.1) for b in hidden_biases)
