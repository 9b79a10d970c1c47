"""Our agents under Meta-World's own MT evaluation (`metaworld.evaluation.evaluation`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from metaworld.policies import ENV_POLICY_MAP

from gmtl_rl.agents.sac import SAC, MTSACConfig
from gmtl_rl.core.policy import StatelessPolicy
from gmtl_rl.core.records import EnvSpec, Obs
from gmtl_rl.envs import make
from gmtl_rl.errors import ConfigError
from gmtl_rl.evaluation.metaworld_protocol import evaluate_multitask


class ScriptedExperts(StatelessPolicy):
    """Meta-World's hand-written expert of each class, picked by the task class id we are
    told: the success rate is high only if every env is told its own class."""

    def __init__(self, class_names: list[str]) -> None:
        self.experts = [ENV_POLICY_MAP[name]() for name in class_names]
        self.seen: set[int] = set()

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        assert isinstance(obs, np.ndarray) and obs.dtype == np.float32
        self.seen.update(task_class.tolist())
        rows = [
            self.experts[c].get_action(o.astype(np.float64))
            for o, c in zip(obs, task_class, strict=True)
        ]
        return np.clip(np.stack(rows), -1.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def mt10():
    return make("metaworld/MT10")


def test_scripted_experts_succeed_under_the_benchmark_protocol(mt10):
    experts = ScriptedExperts(mt10.class_names)
    result = evaluate_multitask(experts, mt10, num_episodes=1)
    assert experts.seen == set(range(10))
    assert sorted(result.success_per_class) == sorted(mt10.class_names)
    # Meta-World's experts solve every MT10 class at least 9 times in 10 (its own tests).
    assert result.mean_success >= 0.8, result.success_per_class


def test_a_shuffled_class_id_breaks_the_experts(mt10):
    """The check above can fail: telling each env another class's id ruins success."""
    experts = ScriptedExperts(mt10.class_names[1:] + mt10.class_names[:1])
    assert evaluate_multitask(experts, mt10, num_episodes=1).mean_success <= 0.4


def test_an_mtsac_agent_runs_under_the_protocol(mt10):
    space = mt10.make_env()
    agent = SAC(
        MTSACConfig(hidden=[32, 32]),
        EnvSpec(space.observation_space, space.action_space, mt10.num_task_classes),
    )
    result = evaluate_multitask(agent, mt10, num_episodes=1)
    assert 0.0 <= result.mean_success <= 1.0 and len(result.success_per_class) == 10
    assert result.reward_version == "v2"


def test_meta_learning_families_are_refused():
    with pytest.raises(ConfigError, match="needs metaworld/MT1, MT10 or MT50"):
        evaluate_multitask(ScriptedExperts([]), make("metaworld/ML1"), num_episodes=1)


def test_cli_runs_the_metaworld_protocol_on_a_trained_run(tmp_path, capsys):
    from gmtl_rl.cli import main

    smoke = Path(__file__).parents[2] / "configs" / "smoke" / "mtsac_mt10.yaml"
    run = tmp_path / "run"
    assert main(["train", str(smoke), "--run-dir", str(run)]) == 0
    assert main(["eval", str(run), "--protocol", "metaworld", "--episodes", "1"]) == 0
    result = json.loads((run / "eval-metaworld" / "metaworld.json").read_text())
    assert result["benchmark"] == "metaworld/MT10" and result["num_episodes"] == 1
    assert len(result["success_per_class"]) == 10
    assert "mean success" in capsys.readouterr().out


# -- meta-learning protocol (ML1) ------------------------------------------------------------
class RecordingMetaLearner:
    """Random actions; records the trial starts and every transition it is shown."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.resets: list[np.ndarray] = []
        self.steps: list = []

    def reset(self, env_mask: np.ndarray) -> None:
        self.resets.append(env_mask.copy())

    def act(self, obs: Obs, task_class: np.ndarray, deterministic: bool = False) -> np.ndarray:
        assert (task_class == -1).all()  # meta-RL is never told the task
        return self.rng.uniform(-1, 1, size=(len(task_class), 4)).astype(np.float32)

    def observe(self, step) -> None:
        self.steps.append(step)


def test_a_meta_learner_sees_whole_trials_under_metalearning_evaluation():
    from gmtl_rl.evaluation.metaworld_protocol import evaluate_metalearning

    ml1 = make("metaworld/ML1", task_name="reach-v3", meta_batch_size=2)
    policy = RecordingMetaLearner()
    result = evaluate_metalearning(
        policy, ml1, num_evals=2, adaptation_episodes=1, evaluation_episodes=1,
        meta_batch_size=2, tasks_per_class=40,
    )  # fmt: skip
    assert result.benchmark == "metaworld/ML1" and 0.0 <= result.mean_success <= 1.0
    # One trial per round: reset for every env at init(), never at episode boundaries.
    assert len(policy.resets) == 2 and all(m.all() for m in policy.resets)
    rewards = np.stack([s.reward for s in policy.steps])
    assert rewards.shape[1] == 2 and np.abs(rewards).sum() > 0  # Meta-World's rewards reach it
    done = np.stack([s.terminated | s.truncated for s in policy.steps])
    assert done.sum(axis=0).min() >= 2  # >= 1 adaptation + 1 scored episode per env and round
    # At an episode end the agent gets the true successor, not the next episode's reset obs.
    t, i = map(int, np.argwhere(done)[0])
    assert not np.allclose(policy.steps[t].next_obs[i], policy.steps[t + 1].obs[i])


def test_metalearning_evaluation_refuses_a_multitask_family(mt10):
    from gmtl_rl.evaluation.metaworld_protocol import evaluate_metalearning

    with pytest.raises(ConfigError, match="ML1, ML10 or ML45"):
        evaluate_metalearning(RecordingMetaLearner(), mt10)


def test_the_protocol_reuses_the_familys_benchmark_instead_of_building_it_again(mt10, monkeypatch):
    """Meta-World's env builder constructs `metaworld.MT10(seed=...)` itself (5 s for MT10,
    about 19 s for MT50); the protocol hands it the family's, so it is built once."""
    import metaworld

    from gmtl_rl.evaluation.metaworld_protocol import make_benchmark_envs

    builds: list[int | None] = []
    original = metaworld.MT10

    def counting(*args, seed=None, **kwargs):
        builds.append(seed)
        return original(*args, seed=seed, **kwargs)

    monkeypatch.setattr(metaworld, "MT10", counting)
    envs = make_benchmark_envs(mt10)
    try:
        assert envs.num_envs == 10
    finally:
        envs.close()
    assert builds == []  # the family's benchmark was used
    assert metaworld.MT10 is counting  # and the module is left as it was
