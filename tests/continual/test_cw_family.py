"""The Continual World family `metaworld/CW` (issue 18): CW10's classes on Meta-World v3,
random initial positions at every reset (CW's random_init_all), 200-step episodes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gmtl_rl.cli import main
from gmtl_rl.envs import make
from gmtl_rl.envs.metaworld_families import CW10, v3_task_names
from gmtl_rl.errors import ConfigError

TWO = ["push-wall-v3", "hammer-v3"]


@pytest.fixture(scope="module")
def cw():
    return make("metaworld/CW", task_names=TWO)


def test_default_task_names_are_cw10_in_the_papers_order_as_v3_classes():
    # continualworld/tasks.py TASK_SEQS["CW10"], with -v3 for -v1
    assert list(CW10) == [
        "hammer-v3", "push-wall-v3", "faucet-close-v3", "push-back-v3", "stick-pull-v3",
        "handle-press-side-v3", "push-v3", "shelf-place-v3", "window-close-v3",
        "peg-unplug-side-v3",
    ]  # fmt: skip
    assert set(CW10) <= set(v3_task_names())


def test_one_class_per_name_with_one_randomised_task_each(cw):
    assert cw.task_class_names() == TWO and cw.num_task_classes == 2
    train = cw.train_tasks()
    assert [t["env_name"] for t in train] == TWO and cw.test_tasks() == train
    assert cw.task_classes(train).tolist() == [0, 1]
    assert cw.horizon == 200 and cw.randomizes_init


def test_every_reset_draws_new_positions_from_the_seeded_generator(cw):
    env = cw.make_env(cw.train_tasks()[0])
    first, _ = env.reset(seed=3)
    second, _ = env.reset()
    again, _ = cw.make_env(cw.train_tasks()[0]).reset(seed=3)
    assert not np.allclose(first[-3:], second[-3:])  # the goal (observed) moved
    np.testing.assert_array_equal(first, again)
    env.close()


def test_switching_class_keeps_the_positions_a_function_of_the_seed(cw):
    def goals() -> list[np.ndarray]:
        env = cw.make_env(cw.train_tasks()[0])
        out = [env.reset(seed=5)[0][-3:]]
        cw.set_task(env, cw.train_tasks()[1])
        out.append(env.reset()[0][-3:])  # a pooled env of the other class, reseeded
        env.close()
        return out

    for a, b in zip(goals(), goals(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_episodes_are_truncated_at_200_steps(cw):
    env = cw.make_env(cw.train_tasks()[1])
    env.reset(seed=0)
    for t in range(200):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(info["success"], float) and not terminated
        assert truncated == (t == 199)
    env.close()


def test_fixed_goals_are_the_classes_goal_variations():
    fixed = make("metaworld/CW", task_names=TWO, randomization="fixed_goals", max_tasks_per_class=3)
    assert len(fixed.train_tasks()) == 6 and not fixed.randomizes_init
    assert fixed.task_classes(fixed.train_tasks()).tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_names": ["hammer-v3", "hamer-v3"]}, r"env.task_names\[1\]: unknown .* hammer-v3"),
        ({"task_names": ["hammer-v3", "hammer-v3"]}, r"env.task_names\[1\]: hammer-v3 .* twice"),
        ({"max_tasks_per_class": 2}, "env.max_tasks_per_class: only with"),
    ],
)
def test_bad_options_are_one_line_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        make("metaworld/CW", **options)


def test_a_continual_run_on_two_cw_classes(tmp_path: Path):
    """The family under the continual loop: each element acts and is evaluated as its
    position; the sequence names Meta-World classes (one repeated, as CW20 repeats CW10)."""
    config = {
        "experiment": "cw-smoke",
        "threads": 1,
        "env": {"name": "metaworld/CW", "task_names": TWO, "horizon": 20},
        "agent": {
            "name": "cl_sac",
            "hidden": [16],
            "batch_size": 8,
            "buffer_size": 500,
            "learning_starts": 10,
            "update_after": 10,
        },
        "sequence": {"tasks": ["hammer-v3", "push-wall-v3", "hammer-v3"], "steps_per_task": 20},
        "eval": {"every_steps": 0, "n_envs": 1},
        "checkpoint": {"every_steps": 0},
        "logging": {"every_steps": 20, "tensorboard": False},
    }
    path = tmp_path / "cw.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run)]) == 0
    record = json.loads((run / "sequence.json").read_text())
    assert [(t["name"], t["class_id"]) for t in record["tasks"]] == [
        ("hammer-v3", 1), ("push-wall-v3", 0), ("hammer-v3", 1),
    ]  # fmt: skip
    assert record["family"] == "metaworld/CW"
    with open(run / "continual.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [20, 40, 60]
    assert all(0 <= float(r[f"success_{k}"]) <= 1 for r in rows for k in range(3))
