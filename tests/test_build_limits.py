"""Config values that passed validation but broke building the run (issue 13, item 8): each is
now a one-line error with exit status 2, given before any run directory is written."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from gmtl_rl import resources
from gmtl_rl.cli import main
from gmtl_rl.config import MAX_THREADS, load_config, read_yaml
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.envs.metaworld_families import v3_task_names
from gmtl_rl.envs.registry import family
from gmtl_rl.envs.task import MAX_SEED, MAX_TASKS
from gmtl_rl.errors import ConfigError
from gmtl_rl.evaluation.adaptation import AdaptationRow, summarize
from gmtl_rl.training.common import Seeds, set_threads

CONFIGS = Path(__file__).parent.parent / "configs"
SMOKE = CONFIGS / "smoke"
SAC = SMOKE / "sac_point_robot.yaml"
PEARL = SMOKE / "pearl_point_robot.yaml"
RL2 = SMOKE / "rl2_point_robot.yaml"
OPTIONS = SMOKE / "option_critic_four_rooms.yaml"
SB3 = SMOKE / "sb3_sac_point_robot.yaml"
GiB = 2**30
MACHINE = 16 * GiB  # the memory check is judged against this machine, whatever runs the tests
REAL_MACHINE_MEMORY = resources.machine_memory


@pytest.fixture(autouse=True)
def _a_16_gib_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "machine_memory", lambda: MACHINE)


def _refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> str:
    """`gmtl train ARGS`: exit 2, one line on stderr, no run directory; returns the line."""
    run = tmp_path / "run"
    code = main(["train", *args, "--run-dir", str(run)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("gmtl train: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not run.exists()
    return err.strip()


# -- bounds in the config models ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "overrides", "key"),
    [
        (SAC, ["agent.hidden=[0]"], "agent.hidden[0]"),
        (SAC, ["agent.hidden=[32,-5]"], "agent.hidden[1]"),
        (SAC, ["agent.name=mtsac", "agent.hidden=[0]"], "agent.hidden[0]"),
        (SAC, ["agent.name=sac_her", "agent.hidden=[0]"], "agent.hidden[0]"),
        (PEARL, ["agent.hidden=[0]"], "agent.hidden[0]"),
        (PEARL, ["agent.encoder_hidden=[-1]"], "agent.encoder_hidden[0]"),
        (OPTIONS, ["agent.name=deep_option_critic", "agent.hidden=[0]"], "agent.hidden[0]"),
    ],
)
def test_a_layer_width_below_one_is_a_range_error(capsys, tmp_path, config, overrides, key):
    err = _refused(capsys, tmp_path, str(config), *overrides)
    assert f"{key}: Input should be greater than 0" in err


@pytest.mark.parametrize("key", ["env.n_train", "env.n_test"])
def test_a_split_larger_than_the_maximum_is_a_range_error(capsys, tmp_path, key):
    err = _refused(capsys, tmp_path, str(SAC), f"{key}=1000000000")
    assert f"{key}: Input should be less than or equal to {MAX_TASKS}" in err


def test_a_seed_beyond_what_its_derived_streams_accept_is_a_range_error(capsys, tmp_path):
    err = _refused(capsys, tmp_path, str(SAC), "seed=20000000000000")
    assert f"seed: Input should be less than or equal to {MAX_SEED}" in err


def test_a_negative_split_seed_is_a_range_error(capsys, tmp_path):
    err = _refused(capsys, tmp_path, str(SAC), "env.split_seed=-1")
    assert "env.split_seed: Input should be greater than or equal to 0" in err


def test_threads_beyond_the_maximum_are_a_range_error(capsys, tmp_path, monkeypatch):
    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)  # never make 100000 threads
    err = _refused(capsys, tmp_path, str(SAC), "threads=100000")
    assert f"threads: Input should be less than or equal to {MAX_THREADS}" in err
    assert asked == []


@pytest.mark.parametrize(
    ("variable", "threads"), [(None, None), ("1", 1), (" 3 ", 3)], ids=["unset", "1", "3"]
)
def test_gmtl_threads_sets_the_default_threads(monkeypatch, variable, threads):
    if variable is None:
        monkeypatch.delenv("GMTL_THREADS", raising=False)
    else:
        monkeypatch.setenv("GMTL_THREADS", variable)
    expected = threads or min(2, os.cpu_count() or 1)
    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    set_threads(load_config(SAC, []))
    set_threads(load_config(SAC, ["threads=5"]))  # a config's own value wins
    assert asked == [expected, 5]


@pytest.mark.parametrize("variable", ["0", "two", "-1", "²", str(MAX_THREADS + 1)])
def test_a_bad_gmtl_threads_is_a_one_line_error_naming_the_variable(
    capsys, tmp_path, monkeypatch, variable
):
    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    monkeypatch.setenv("GMTL_THREADS", variable)
    err = _refused(capsys, tmp_path, str(SAC))
    assert f"GMTL_THREADS={variable!r}" in err and f"from 1 to {MAX_THREADS}" in err
    assert asked == []


def test_a_deeply_nested_config_file_is_a_one_line_error_naming_it(capsys, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(SAC.read_text() + "extra: " + "[" * 3000 + "]" * 3000 + "\n")
    err = _refused(capsys, tmp_path, str(path))
    assert f"{path}: mappings and lists nest more than 32 levels deep" in err


def test_a_deeply_nested_override_is_a_one_line_error_naming_its_key(capsys, tmp_path):
    err = _refused(capsys, tmp_path, str(SAC), "agent.hidden=" + "[" * 3000 + "]" * 3000)
    assert "override agent.hidden=...: mappings and lists nest more than 32 levels" in err


def test_an_eval_of_a_run_saved_with_an_overflowing_seed_is_a_one_line_error(capsys, tmp_path):
    run = tmp_path / "run"
    tiny = ["total_steps=40", "agent.learning_starts=20", "checkpoint.every_steps=0"]
    tiny += ["env.n_test=2", "eval.episodes=1", "eval.bootstrap_resamples=100"]
    assert main(["train", str(SAC), *tiny, "--run-dir", str(run)]) == 0
    config = read_yaml(run / "config.yaml")
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "seed": 20000000000000}))
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed: Input should be less than or equal to" in err, err


def test_the_largest_seed_is_accepted_by_every_stream_derived_from_it():
    Seeds.from_seed(MAX_SEED)
    random.Random(MAX_SEED)
    np.random.RandomState(MAX_SEED)  # the legacy range (np.random.seed: Meta-World, SB3)
    torch.Generator().manual_seed(MAX_SEED)
    rows = [
        AdaptationRow("run", MAX_SEED, task, task, repeat, 1, float(task + repeat), 0.0, 20)
        for task in range(3)
        for repeat in range(2)
    ]
    summary = summarize(rows, resamples=100)  # (seed, task) strata stay int64
    assert summary.episode_return[0].n == 6


# -- the memory estimate -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "override", "key"),
    [
        (SAC, "agent.hidden=[100000000000]", "agent.hidden"),
        (PEARL, "agent.encoder_hidden=[100000000000]", "agent.encoder_hidden"),
        (RL2, "agent.gru_hidden=100000000000", "agent.gru_hidden"),
        (SB3, "agent.kwargs.policy_kwargs={net_arch: [100000000000]}", "net_arch"),
    ],
)
def test_a_width_needing_more_memory_than_the_machine_is_refused(
    capsys, tmp_path, config, override, key
):
    err = _refused(capsys, tmp_path, str(config), override)
    assert key in err.split(": this run")[0] and "of this machine's 16 GiB" in err


@pytest.mark.parametrize(
    ("config", "override", "key"),
    [
        (SAC, "agent.batch_size=1000000000", "agent.batch_size"),
        (SAC, "agent.buffer_size=10000000000", "agent.buffer_size"),
        (PEARL, "agent.meta_batch=1000000000", "agent.meta_batch"),
        (PEARL, "agent.batch_size=1000000000", "agent.batch_size"),
        (RL2, "agent.trials_per_update=1000000000", "agent.trials_per_update"),
        (SB3, "agent.kwargs.buffer_size=10000000000", "agent.kwargs.buffer_size"),
    ],
)
def test_a_batch_or_buffer_needing_more_memory_than_the_machine_is_refused(
    capsys, tmp_path, config, override, key
):
    err = _refused(capsys, tmp_path, str(config), override)
    assert key in err.split(": this run")[0], err
    assert re.search(r"would need about [\d.]+ [KMGTPE]iB of memory", err), err


def test_option_tables_needing_more_memory_than_the_machine_are_refused(capsys, tmp_path):
    err = _refused(capsys, tmp_path, str(OPTIONS), "agent.num_options=1000000000")
    assert err.startswith("gmtl train: error: agent.num_options: this run would need")


def _spec(path: Path) -> EnvSpec:
    return resources.env_spec_of(load_config(path).env.build())


def test_bootstrap_resamples_needing_more_memory_than_the_machine_are_refused():
    config = load_config(SAC, ["eval.bootstrap_resamples=1000000000000"])
    with pytest.raises(ConfigError, match=r"^eval\.bootstrap_resamples: this run would need"):
        resources.check_memory(config, _spec(SAC))


def test_evaluating_a_checkpoint_counts_only_what_evaluation_builds():
    config = load_config(SAC, ["agent.buffer_size=10000000000"])  # no replay when evaluating
    resources.check_memory(config, _spec(SAC), training=False)
    with pytest.raises(ConfigError, match=r"^agent\.buffer_size: "):
        resources.check_memory(config, _spec(SAC))


def test_a_machine_that_does_not_say_its_memory_skips_the_check(monkeypatch):
    monkeypatch.setattr(resources, "machine_memory", lambda: None)
    config = load_config(SAC, ["agent.buffer_size=10000000000"])
    resources.check_memory(config, _spec(SAC))


def test_the_machine_memory_is_at_most_memtotal():
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        pytest.skip("no /proc/meminfo here")
    total = int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), re.M)[1]) * 1024
    assert 0 < REAL_MACHINE_MEMORY() <= total  # a cgroup limit may be lower


# Meta-World families take up to 35 s to build: their spaces come from the family's listing
# (the same spaces every v3 class has, checked against a build in tests/envs) and the train
# class counts of the benchmarks.
_METAWORLD_CLASSES = {"MT1": 1, "ML1": 1, "MT10": 10, "ML10": 10, "MT50": 50, "ML45": 45}


def _shipped_spec(path: Path) -> EnvSpec:
    config = load_config(path)
    if not config.env.name.startswith("metaworld/"):
        return _spec(path)
    listing = family(config.env.name, "env.name").listing
    assert listing is not None
    kind = config.env.name.split("/")[1]
    options = config.env.options
    classes = len(options.task_names) if kind == "CW" else _METAWORLD_CLASSES[kind]  # type: ignore[attr-defined]
    match = re.fullmatch(r"Box\((\d+),\)", listing["observation"])
    assert match is not None and listing["action"] == "Box(4,)"
    obs = int(match[1]) + (classes if getattr(config.env.options, "one_hot", False) else 0)
    box = gym.spaces.Box(-np.inf, np.inf, (obs,), np.float32)
    names = tuple(v3_task_names()[:classes])  # v3 names (CARE's metadata), not the family's order
    return EnvSpec(
        box, gym.spaces.Box(-1.0, 1.0, (4,), np.float32), classes, task_class_names=names
    )


SHIPPED = sorted(CONFIGS.rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_fits_a_16_gib_machine(path):
    resources.check_memory(load_config(path), _shipped_spec(path))


@pytest.mark.parametrize("architecture", ["moore", "paco", "soft_modules"])
def test_a_multi_task_architecture_is_sized_by_its_own_parameters(architecture):
    from gmtl_rl.agents.sac import SAC as SACAgent

    keys = ["env.observe_goal=false", "eval.split=train", "agent.hidden=[64, 64]"]
    config = load_config(SAC, [*keys, f"agent.architecture={architecture}"])
    spec = resources.env_spec_of(config.env.build())
    agent = SACAgent(config.agent, spec)
    actor = sum(p.numel() for p in agent.actor.parameters())
    critic = sum(p.numel() for p in agent.critic.parameters())
    weights = next(p for p in resources.estimate_memory(config, spec) if p.key == "agent.hidden")
    # Adam's four copies of actor and critic, and the target critic (FLOAT bytes each)
    assert weights.nbytes == resources.FLOAT * (resources.ADAM * (actor + critic) + critic)
    mlp = load_config(SAC, keys)
    plain = next(p for p in resources.estimate_memory(mlp, spec) if p.key == "agent.hidden")
    assert weights.nbytes > 1.5 * plain.nbytes  # experts / parameter sets / modules
