"""Property-based hostile input: whatever a user feeds the config layer, the answer is a
RunConfig or a one-line ConfigError / UsageError, never another exception (issue 7)."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
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
