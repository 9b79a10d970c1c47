"""Every registered family passes Gymnasium's and stable-baselines3's env checkers."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from gmtl_rl.envs import build, families

EXAMPLE = Path(__file__).parents[2] / "configs" / "examples" / "plugin_swimmer.yaml"

# Families that need options to exist at all get them here; the rest use their defaults.
REQUIRED_OPTIONS: dict[str, dict[str, Any]] = {
    "gym": {k: v for k, v in yaml.safe_load(EXAMPLE.read_text())["env"].items() if k != "name"},
}
# Benchmarks whose construction alone takes ~20-35 s on 2 cores run only without `-m "not slow"`.
SLOW = {"metaworld/MT50", "metaworld/ML45"}
VARIANTS = [
    pytest.param(
        name, REQUIRED_OPTIONS.get(name, {}), id=name, marks=[pytest.mark.slow] * (name in SLOW)
    )
    for name in families()
] + [
    pytest.param("point-robot", {"observe_goal": True}, id="point-robot-observe_goal"),
    pytest.param(
        "sparse-point-robot", {"observe_goal": True}, id="sparse-point-robot-observe_goal"
    ),
]


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_family_passes_gymnasium_and_sb3_env_checkers(name, options):
    dist = build(name, options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checkers warn about style (unbounded boxes, ...)
        for split in ("train", "test"):
            task = dist.tasks(split)[0]
            gym_check_env(dist.make_env(task), skip_render_check=True)
            sb3_check_env(dist.make_env(task))


LISTED = [
    pytest.param(name, id=name, marks=[pytest.mark.slow] * (name in SLOW))
    for name, cls in families().items()
    if cls.listing is not None
]


@pytest.mark.parametrize("name", LISTED)
def test_static_listing_matches_the_built_family(name):
    from gmtl_rl.cli import _space

    dist = build(name, {})
    env = dist.make_env()
    listing = type(dist).listing
    assert listing == {
        "split": f"{len(dist.train_tasks())}/{len(dist.test_tasks())}",
        "horizon": str(dist.horizon),
        "observation": _space(env.observation_space),
        "action": _space(env.action_space),
    }
