"""Shared test helper: compare nested state (dicts, lists, tensors, arrays, plain values)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def assert_tree_equal(a: Any, b: Any, where: str = "root", atol: float = 0.0) -> None:
    """Equal structure and values; tensors and arrays within `atol` (exact by default)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        torch.testing.assert_close(a, b, rtol=0, atol=atol, msg=where)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=where)
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_tree_equal(a[k], b[k], f"{where}/{k}", atol)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_tree_equal(x, y, f"{where}/{i}", atol)
    else:
        assert a == b, where
