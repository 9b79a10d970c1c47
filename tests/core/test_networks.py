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
