"""Property-based hostile input: whatever a user feeds the config layer, the answer is a
RunConfig or a one-line ConfigError / UsageError, never another exception (issue 7); and what
the config layer accepts, the run builds (issue 13, item 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gmtl_rl.config import apply_overrides, load_config, parse_config, read_yaml
from gmtl_rl.errors import ConfigError, UsageError

SMOKE = Path(__file__).parent.parent / "configs" / "smoke" / "sac_point_robot.yaml"
BASE = read_yaml(SMOKE)

# Real key paths (so values reach the validators), plus made-up and malformed ones.
KEYS = [
    "seed", "total_steps", "threads", "device", "experiment", "runs_dir",
    "env.name", "env.n_train", "env.horizon", "env.observe_goal", "env.split_seed",
    "agent.name", "agent.hidden", "agent.lr", "agent.gamma", "agent.batch_size",
    "agent.her.strategy", "agent.her.relabel_ratio", "agent.task_encoding",
    "sampler.n_envs", "sampler.autoreset_mode", "eval.split", "eval.episodes",
    "eval.max_tasks", "eval.confidence", "checkpoint.every_steps", "checkpoint.keep",
    "logging.every_steps", "nope", "env.nope", "agent.her.nope.deeper", "", ".", "a..b",
    "seed.sub", "env.name.x",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["sac", "mtsac", "sac_her", "sb3", "point-robot", "train", "cuda", "1e-3"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=8,
)
# Derandomized: the same examples every run, so CI is repeatable; widen the search locally
# with more examples and derandomize=False (30k random examples passed on 2026-11-27).
FAST = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _accepts_or_explains(build) -> None:
    try:
        build()
    except (ConfigError, UsageError) as err:
        message = str(err)
        assert message and "\n" not in message.strip(), message
        assert "Traceback" not in message


@FAST
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_any_override_value_gives_a_config_or_a_one_line_error(key, value):
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    _accepts_or_explains(lambda: load_config(SMOKE, [f"{key}={text}"]))


@FAST
@given(raw=st.text(max_size=60))
def test_any_raw_override_string_gives_a_config_or_a_one_line_error(raw):
    _accepts_or_explains(lambda: load_config(SMOKE, [raw]))


@FAST
@given(section=st.sampled_from(["env", "agent", "eval", "sampler", "checkpoint", "logging"]),
       body=VALUES)  # fmt: skip
def test_any_section_body_gives_a_config_or_a_one_line_error(section, body):
    data = {**BASE, section: body}
    _accepts_or_explains(lambda: parse_config(data))


@FAST
@given(doc=st.text(max_size=200))
def test_any_yaml_text_gives_a_config_or_a_one_line_error(doc, tmp_path_factory):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_text(doc)
    _accepts_or_explains(lambda: load_config(path))


@FAST
@given(n=st.integers(min_value=2**31, max_value=2**80))
def test_huge_numbers_are_range_errors_not_crashes(n):
    for key in ("total_steps", "sampler.n_envs", "agent.batch_size", "env.n_train", "seed"):
        _accepts_or_explains(lambda key=key: parse_config(apply_overrides(BASE, [f"{key}={n}"])))


def test_python_tags_in_an_override_are_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    _accepts_or_explains(lambda: load_config(SMOKE, [f"seed={tag}"]))
    assert not marker.exists()


# -- a run directory that cannot be written ---------------------------------------------------
def test_run_directory_under_a_file_is_a_one_line_error(tmp_path, capsys):
    from gmtl_rl.cli import main

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert main(["train", str(SMOKE), "--run-dir", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gmtl train: error:") and "\n" not in err and "Traceback" not in err


def test_full_disk_at_a_checkpoint_keeps_the_previous_one_and_resume_finishes(
    tmp_path, capsys, monkeypatch
):
    import errno

    import numpy as np

    from gmtl_rl import checkpoint
    from gmtl_rl.cli import main

    run = tmp_path / "run"
    real_savez = np.savez
    calls = {"n": 0}

    def savez_until_full(file, *args, **kwargs):
        calls["n"] += 1
        # Two arrays files per checkpoint (state arrays, replay): the first checkpoint is
        # written whole, the second finds the disk full.
        if calls["n"] >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(file, *args, **kwargs)

    monkeypatch.setattr(checkpoint.np, "savez", savez_until_full)
    args = ["total_steps=400", "checkpoint.every_steps=200", "--run-dir", str(run)]
    assert main(["train", str(SMOKE), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "step-000000000200" in err and "\n" not in err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000000000200"]
    checkpoint.load_latest(run / "checkpoints")  # whole: every checksum matches

    monkeypatch.setattr(checkpoint.np, "savez", real_savez)  # space freed
    assert main(["resume", str(run)]) == 0
    assert checkpoint.load_latest(run / "checkpoints").path.name == "step-000000000400"


def test_keys_with_newlines_or_dots_are_quoted_on_one_line():
    data = {**BASE, "eval": {"\n": None, "a.b": 1}}
    try:
        parse_config(data)
    except ConfigError as err:
        assert str(err) == "eval['\\n']: unknown key; eval['a.b']: unknown key"
    else:
        raise AssertionError("unknown keys were accepted")


# -- nesting depth ------------------------------------------------------------------------------
def _nested(kind: str, levels: int) -> str:
    return "[" * levels + "]" * levels if kind == "list" else "{a: " * levels + "1" + "}" * levels


@settings(FAST, max_examples=12)
@given(levels=st.integers(min_value=1, max_value=1000), kind=st.sampled_from(["list", "map"]))
@example(levels=3000, kind="list")
@example(levels=3000, kind="map")
def test_any_nesting_depth_in_a_file_gives_a_config_or_a_one_line_error(
    levels, kind, tmp_path_factory
):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_text(SMOKE.read_text() + f"extra: {_nested(kind, levels)}\n")
    _accepts_or_explains(lambda: load_config(path))


@settings(FAST, max_examples=12)
@given(
    levels=st.integers(min_value=1, max_value=1000),
    kind=st.sampled_from(["list", "map"]),
    key=st.sampled_from(["agent.hidden", "env.parameters", "eval", "a.b.c.d.e.f.g.h.i.j.k"]),
)
@example(levels=3000, kind="list", key="agent.hidden")
def test_any_nesting_depth_in_an_override_gives_a_config_or_a_one_line_error(levels, kind, key):
    _accepts_or_explains(lambda: load_config(SMOKE, [f"{key}={_nested(kind, levels)}"]))


# -- from parsing to building the run -----------------------------------------------------------
SMOKE_DIR = SMOKE.parent
# (config, key) pairs whose values size what the run allocates or seeds.
SIZED = [
    *((SMOKE, key) for key in (
        "agent.hidden", "agent.batch_size", "agent.buffer_size", "agent.task_embedding_dim",
        "env.n_train", "env.n_test", "env.split_seed", "seed", "threads", "sampler.n_envs",
        "eval.n_envs", "eval.bootstrap_resamples",
    )),
    *((SMOKE_DIR / "pearl_point_robot.yaml", key) for key in (
        "agent.hidden", "agent.encoder_hidden", "agent.latent_dim", "agent.meta_batch",
        "agent.batch_size", "agent.context_batch", "agent.buffer_size",
    )),
    *((SMOKE_DIR / "rl2_point_robot.yaml", key) for key in (
        "agent.gru_hidden", "agent.hidden", "agent.trials_per_update", "agent.minibatches",
        "agent.episodes_per_trial",
    )),
]  # fmt: skip
LIST_KEYS = {"agent.hidden", "agent.encoder_hidden"}
# Mostly plausible sizes (so many runs build), and anything an int can hold.
NUMBER = st.one_of(st.integers(min_value=-2, max_value=300), st.integers(-(2**70), 2**70))


@st.composite
def sized_values(draw: st.DrawFn) -> tuple[Path, str, Any]:
    path, key = draw(st.sampled_from(SIZED))
    value = draw(st.lists(NUMBER, min_size=1, max_size=3) if key in LIST_KEYS else NUMBER)
    return path, key, value


@settings(FAST, max_examples=30)
@given(sized=sized_values())
@example(sized=(SMOKE, "agent.hidden", [0]))
@example(sized=(SMOKE, "agent.batch_size", 10**9))
@example(sized=(SMOKE, "seed", 2 * 10**13))
@example(sized=(SMOKE_DIR / "pearl_point_robot.yaml", "agent.meta_batch", 10**9))
def test_any_size_gives_a_built_run_or_a_one_line_error_before_the_run_directory(
    sized, tmp_path_factory, monkeypatch
):
    from gmtl_rl import resources, runner
    from gmtl_rl.run_dir import RunDir

    # A small machine, so what is accepted builds in moments; the test process keeps its threads.
    monkeypatch.setattr(resources, "machine_memory", lambda: 2**31)
    monkeypatch.setattr(runner, "set_threads", lambda config: None)
    path, key, value = sized
    run = tmp_path_factory.mktemp("build") / "run"

    def build() -> None:
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        config = load_config(path, [f"{key}={text}"])
        built = runner._build_run(config, RunDir(run), config.env.build())
        built.close()

    try:
        build()
    except (ConfigError, UsageError) as err:
        assert str(err) and "\n" not in str(err).strip(), err
        assert not run.exists()
