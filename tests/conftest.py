"""Session-wide test setup.

MuJoCo fixes its OpenGL backend when it is first imported, and collecting the test modules
imports it (through `gmtl_rl.envs`) long before a recording test runs: choose the offscreen
backend here, first. Without a display this sets MUJOCO_GL=osmesa where OSMesa is installed
(`make test` installs it where it can) and changes nothing elsewhere.
"""

import pytest

from gmtl_rl.visual import offscreen

offscreen.configure()


def pytest_configure(config: pytest.Config) -> None:
    """`make test` runs two workers at GMTL_THREADS=1: the tests that build networks directly
    (without a run, which sets its own threads) get the same count."""
    import os

    import torch

    from gmtl_rl.training.common import THREADS_VARIABLE, default_threads

    if os.environ.get(THREADS_VARIABLE):
        torch.set_num_threads(default_threads())
