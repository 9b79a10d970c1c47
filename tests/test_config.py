from pathlib import Path

import pytest

from gmtl_rl.config import apply_overrides, load_config, parse_config, read_yaml
from gmtl_rl.errors import ConfigError, UsageError

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke" / "sac_point_robot.yaml"


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


MINIMAL = """\
total_steps: 10
env:
  name: point-robot
agent:
  name: sac
"""


def test_smoke_config_round_trips_through_to_yaml_dict():
    config = load_config(SMOKE)

    assert config.env.name == "point-robot"
    assert config.agent.name == "sac"
    assert parse_config(config.to_yaml_dict()) == config


def test_smoke_config_round_trips_through_dumped_yaml(tmp_path):
    config = load_config(SMOKE)
    assert load_config(write_yaml(tmp_path, config.dump_yaml())) == config


def test_sections_left_out_of_the_file_get_their_defaults(tmp_path):
    config = read_yaml(write_yaml(tmp_path, MINIMAL))
    config = parse_config(config)

    assert config.total_steps == 10
    assert config.sampler.n_envs == 1
    assert config.eval.episodes == 1
    assert config.checkpoint.keep == 2


def test_overrides_apply_with_the_right_types():
    config = load_config(SMOKE, ["total_steps=123", "agent.lr=1e-3", "env.n_train=5"])

    assert config.total_steps == 123 and type(config.total_steps) is int
    assert config.agent.lr == 1e-3 and type(config.agent.lr) is float
    assert config.env.options.n_train == 5 and type(config.env.options.n_train) is int


def test_override_can_create_a_section_the_file_leaves_out(tmp_path):
    config = load_config(write_yaml(tmp_path, MINIMAL), ["sampler.n_envs=3"])
    assert config.sampler.n_envs == 3


def test_apply_overrides_does_not_modify_its_input():
    data = {"total_steps": 1, "agent": {"name": "sac"}}
    apply_overrides(data, ["agent.lr=0.1", "total_steps=2"])
    assert data == {"total_steps": 1, "agent": {"name": "sac"}}


@pytest.mark.parametrize("key", ["totl_steps", "agent.lrr", "env.n_trian", "sampler.nenvs"])
def test_unknown_key_names_its_full_dotted_path(key):
    with pytest.raises(ConfigError, match="unknown key") as err:
        load_config(SMOKE, [f"{key}=1"])
    assert f"{key}: unknown key" in str(err.value)


def test_unknown_key_in_a_yaml_file_names_its_full_dotted_path(tmp_path):
    path = write_yaml(tmp_path, MINIMAL + "eval:\n  episodez: 3\n")
    with pytest.raises(ConfigError, match=r"eval\.episodez: unknown key"):
        load_config(path)


def test_wrong_type_names_its_key():
    with pytest.raises(ConfigError, match=r"^total_steps: .*integer"):
        load_config(SMOKE, ["total_steps=abc"])


def test_out_of_range_value_names_its_key():
    with pytest.raises(ConfigError, match=r"^sampler\.n_envs: .*greater than or equal to 1"):
        load_config(SMOKE, ["sampler.n_envs=0"])


def test_unknown_env_name_lists_valid_names_closest_first():
    with pytest.raises(ConfigError) as err:
        load_config(SMOKE, ["env.name=point-robt"])
    message = str(err.value)
    assert message.startswith("env.name: unknown env family 'point-robt'")
    assert message.split("valid: ", 1)[1].startswith("point-robot")


def test_unknown_agent_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        load_config(SMOKE, ["agent.name=sacc"])
    message = str(err.value)
    assert message.startswith("agent.name: unknown agent 'sacc'")
    assert message.split("valid: ", 1)[1].startswith("sac")


def test_yaml_python_tag_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = write_yaml(
        tmp_path, MINIMAL + f'seed: !!python/object/apply:os.system ["touch {marker}"]\n'
    )

    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)
    assert not marker.exists()


def test_missing_file_raises_usage_error_naming_the_path(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(UsageError, match="not found") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_yaml_that_is_not_a_mapping_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write_yaml(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("override", ["total_steps", "agent..lr=1", "1seed=2", "agent-lr=1", "=3"])
def test_malformed_override_raises_config_error(override):
    with pytest.raises(ConfigError, match=r"expected key\.sub=value"):
        load_config(SMOKE, [override])


def test_override_through_a_scalar_raises_config_error():
    with pytest.raises(ConfigError, match="total_steps is a value, not a section"):
        load_config(SMOKE, ["total_steps.x=1"])


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ({"name": "sac"}, 1),
        ({"name": "pearl", "eval_exploration_episodes": 1}, 3),  # 1 exploration + 2 posterior
        ({"name": "pearl", "eval_exploration_episodes": 5}, 7),
        ({"name": "rl2", "episodes_per_trial": 4}, 4),  # its whole trial
    ],
)
def test_eval_episodes_default_to_what_the_agent_adapts_over(agent, expected):
    """A PEARL run scored with one episode was scored on its exploration episode only, and
    RL² on part of its trial; when the config leaves eval.episodes out, the agent decides."""
    config = parse_config({"total_steps": 10, "env": {"name": "point-robot"}, "agent": agent})
    assert config.eval.episodes == expected
    given = {"total_steps": 10, "env": {"name": "point-robot"}, "agent": agent,
             "eval": {"episodes": 2}}  # fmt: skip
    assert parse_config(given).eval.episodes == 2  # a value given is kept


def test_device_auto_is_the_default_and_picks_cuda_only_where_there_is_one(monkeypatch):
    import torch

    from gmtl_rl.config import RunConfig
    from gmtl_rl.training.common import resolve_device

    assert RunConfig.model_fields["device"].default == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no usable CUDA GPU; use cpu or auto"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cpu") == "cpu"
