"""configs/continual/cw10.yaml, cw20.yaml and cw_single.yaml hold Continual World's settings,
value by value, as transcribed below from the authors' code (awarelab/continual_world at
dbac45e, the layout of @73f63bb; file and argument named beside each value). The configs are
loaded as `gmtl train` loads them, so a value may come from the file or from the defaults of
agent cl_sac; either way it must be CW's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from gmtl_rl.config import RunConfig, load_config

CONFIGS = Path(__file__).parents[2] / "configs" / "continual"

# continualworld/tasks.py, TASK_SEQS["CW10"] (Meta-World v1 names); ours are the v3 classes.
CW10_V1 = [
    "hammer-v1", "push-wall-v1", "faucet-close-v1", "push-back-v1", "stick-pull-v1",
    "handle-press-side-v1", "push-v1", "shelf-place-v1", "window-close-v1",
    "peg-unplug-side-v1",
]  # fmt: skip
CW10 = [name.replace("-v1", "-v3") for name in CW10_V1]
CW20 = CW10 + CW10  # tasks.py: TASK_SEQS["CW20"] = TASK_SEQS["CW10"] + TASK_SEQS["CW10"]

# (dotted key in the loaded config, CW's value, where CW sets it). Every method.
CW_SETTINGS: list[tuple[str, Any, str]] = [
    ("sequence.steps_per_task", 1_000_000, "input_args.py cl_parse_args --steps_per_task"),
    ("sequence.task_identity", "visible", "input_args.py --multihead_archs (index: head)"),
    ("env.name", "metaworld/CW", "envs.py get_cl_env"),
    ("env.options.horizon", 200, "envs.py META_WORLD_TIME_HORIZON; sac.py max_episode_len"),
    ("env.options.randomization", "random_init_all", "envs.py get_cl_env randomization"),
    ("env.options.task_names", CW10, "tasks.py TASK_SEQS['CW10'] (v1 -> v3)"),
    ("env.options.reward_version", "v1", "tasks.py: Meta-World v1 tasks, their reward"),
    ("agent.name", "cl_sac", "run_cl.py"),
    ("agent.hidden", [256, 256, 256, 256], "input_args.py --hidden_sizes"),
    ("agent.cw_network", True, "input_args.py --use_layer_norm --activation lrelu; models.py"),
    ("agent.gamma", 0.99, "input_args.py --gamma"),
    ("agent.tau", 1 - 0.995, "sac.py SAC(polyak=0.995)"),
    ("agent.learn_alpha", True, "input_args.py --alpha auto"),
    ("agent.target_entropy", "auto", "input_args.py --alpha auto"),
    ("agent.target_output_std", 0.089, "input_args.py --target_output_std"),
    ("agent.init_alpha", math.e, "sac.py all_log_alpha = ones: log α = 1"),
    ("agent.per_task_alpha", True, "sac.py all_log_alpha shape (num_tasks, 1)"),
    ("agent.learning_starts", 10_000, "sac.py SAC(start_steps=10_000)"),
    ("agent.random_steps_every_task", True, "input_args.py --agent_policy_exploration False"),
    ("agent.update_after", 1000, "sac.py SAC(update_after=1000), counted per task"),
    ("agent.updates_per_step", 1.0, "sac.py update_every=50: 50 updates per 50 steps"),
    ("agent.multi_head", True, "input_args.py --multihead_archs True"),
    ("agent.task_encoding", "none", "input_args.py --hide_task_id True"),
    ("agent.reset_optimizer", True, "input_args.py --reset_optimizer_on_task_change True"),
    ("agent.regularize_critic", False, "input_args.py --regularize_critic False"),
    ("agent.importance_samples", 2560, "methods/regularization.py 10 batches of 256"),
    ("agent.adam_eps", 1e-7, "sac.py tf.keras.optimizers.Adam (Keras' epsilon 1e-7)"),
    ("eval.every_steps", 20_000, "input_args.py --log_every"),
    ("eval.split", "train", "run_cl.py test_envs: the sequence's own tasks"),
    ("eval.deterministic", False, "results_processing/tables.py reads test/stochastic/*"),
    ("sampler.n_envs", 1, "envs.py ContinualLearningEnv: one env"),
]  # fmt: skip

# Per method (examples/paper_cl_experiments.sh; input_args.py defaults elsewhere).
CW_METHOD_SETTINGS: dict[str, list[tuple[str, Any, str]]] = {
    "finetune": [
        ("agent.lr", 1e-3, "input_args.py --lr"),
        ("agent.batch_size", 128, "input_args.py --batch_size"),
        ("agent.buffer_size", 1_000_000, "input_args.py --replay_size"),
        ("agent.reset_buffer", True, "input_args.py --reset_buffer_on_task_change True"),
        ("agent.max_grad_norm", None, "input_args.py --clipnorm None"),
    ],
    "l2": [("agent.reg_coef", 1e5, "paper_cl_experiments.sh --cl_reg_coef=100000.0")],
    "ewc": [("agent.reg_coef", 1e4, "paper_cl_experiments.sh --cl_reg_coef=10000.0")],
    "mas": [("agent.reg_coef", 1e4, "paper_cl_experiments.sh --cl_reg_coef=10000.0")],
    "packnet": [
        ("agent.packnet_retrain_steps", 100_000, "paper_cl_experiments.sh"),
        ("agent.max_grad_norm", 2e-5, "paper_cl_experiments.sh --clipnorm=2e-05"),
        ("agent.batch_size", 128, "input_args.py --batch_size"),
    ],
    "perfect_memory": [
        ("agent.batch_size", 512, "paper_cl_experiments.sh --batch_size=512"),
        ("agent.buffer_size", 20_000_000, "paper_cl_experiments.sh --replay_size=20000000"),
        ("agent.reset_buffer", False, "paper_cl_experiments.sh --reset_buffer_on_task_change"),
        ("agent.lr", 1e-3, "input_args.py --lr"),
    ],
    "agem": [
        ("agent.agem_episodic_mem_per_task", 10_000, "paper_cl_experiments.sh"),
        ("agent.agem_episodic_batch_size", 128, "paper_cl_experiments.sh"),
        ("agent.batch_size", 128, "input_args.py --batch_size"),
    ],
    "multitask": [
        ("agent.lr", 1e-4, "paper_mt_experiments.sh --lr=0.0001"),
        ("agent.reset_buffer", False, "run_mt.py: one replay for the whole run"),
        ("agent.batch_size", 128, "input_args.py mt_parse_args --batch_size"),
    ],
}

# Where we knowingly differ (each also said in the config header or the agent's docstring).
KNOWN_DEVIATIONS = {
    "tasks": "Meta-World v3 classes of CW's v1 names; 39-dim observations (CW: 12)",
    "updates": "one update per env step (CW: 50 every 50 steps, the same count)",
    "multitask": "no PopArt (paper_mt_experiments.sh runs both); 1M steps per task (CW's MT "
    "runs 2M: sequence.steps_per_task=2000000)",
    "vcl": "not implemented",
}


def value(config: RunConfig, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def load(name: str, *overrides: str) -> RunConfig:
    return load_config(CONFIGS / name, list(overrides))


@pytest.mark.parametrize("name,tasks", [("cw10.yaml", CW10), ("cw20.yaml", CW20)])
def test_sequence_is_cws_task_order(name, tasks):
    config = load(name)
    assert config.sequence is not None and config.sequence.tasks == tasks
    assert config.total_steps == len(tasks) * 1_000_000


@pytest.mark.parametrize("name", ["cw10.yaml", "cw20.yaml", "cw_single.yaml"])
@pytest.mark.parametrize("key,expected,source", CW_SETTINGS, ids=[s[0] for s in CW_SETTINGS])
def test_setting_is_cws(name, key, expected, source):
    got = value(load(name), key)
    if isinstance(expected, float):
        assert got == pytest.approx(expected), source
    else:
        assert got == expected, source


def test_evaluation_runs_cws_ten_stochastic_episodes_per_element():
    # sac.py SAC(num_test_eps_stochastic=10): 10 episodes on each element at every evaluation.
    for name in ("cw10.yaml", "cw20.yaml", "cw_single.yaml"):
        evaluation = load(name).eval
        assert evaluation.episodes * evaluation.repeats == 10


METHOD_CASES = [(m, *s) for m, settings in CW_METHOD_SETTINGS.items() for s in settings]


@pytest.mark.parametrize("name", ["cw10.yaml", "cw20.yaml"])
@pytest.mark.parametrize(
    "method,key,expected,source", METHOD_CASES, ids=[f"{c[0]}-{c[1]}" for c in METHOD_CASES]
)
def test_method_setting_is_cws(name, method, key, expected, source):
    got = value(load(name, f"agent.method={method}"), key)
    if isinstance(expected, float):
        assert got == pytest.approx(expected), source
    else:
        assert got == expected, source


def test_every_method_has_its_cw_settings_checked():
    from gmtl_rl.agents.continual_sac import METHODS

    assert set(CW_METHOD_SETTINGS) == set(METHODS)


def test_reference_config_trains_one_element_of_the_sequence_with_the_same_env():
    single, cw10 = load("cw_single.yaml"), load("cw10.yaml")
    assert single.sequence is not None and len(single.sequence.tasks) == 1
    assert single.agent.method == "finetune"  # type: ignore[attr-defined]
    # `gmtl continual` accepts a reference whose env section equals the sequence's runs'.
    assert single.env.to_yaml_dict() == cw10.env.to_yaml_dict()
    for task in CW10:
        override = load("cw_single.yaml", f"sequence.tasks=[{task}]")
        assert override.sequence is not None and override.sequence.tasks == [task]


def test_cw20_repeats_cw10_with_a_head_per_element():
    config = load("cw20.yaml")
    assert config.sequence is not None and config.sequence.tasks[:10] == config.sequence.tasks[10:]
    assert config.agent.multi_head  # type: ignore[attr-defined]
    # env.task_names names each class once; the sequence, not the family, repeats them.
    assert value(config, "env.options.task_names") == CW10


def test_target_entropy_of_cws_target_std_is_about_minus_the_action_dims():
    # sac.py: target = A · log(σ √(2πe)) with σ = 0.089: -4.0007 for Meta-World's A = 4.
    target = 4 * math.log(0.089 * math.sqrt(2 * math.pi * math.e))
    assert target == pytest.approx(-4.0, abs=1e-3)
