"""The stable-baselines3 adapter: SB3 algorithms trained on our task distributions, evaluated by
our evaluator, checkpointed in our pickle-free format, resumed, and configured with one-line
errors. Real SB3 on tiny budgets (seconds each)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gmtl_rl import checkpoint, runner
from gmtl_rl.cli import main
from gmtl_rl.config import load_config
from gmtl_rl.training.sb3 import SB3Run

ROOT = Path(__file__).parent.parent.parent
SMOKE = str(ROOT / "configs" / "smoke" / "sb3_sac_point_robot.yaml")


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def summary(run: Path) -> dict:
    return json.loads((run / "eval" / "summary.json").read_text())


def latest_checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-*"))[-1]


def train(tmp_path: Path, *overrides: str) -> Path:
    config = load_config(SMOKE, ["checkpoint.every_steps=0", *overrides])
    return runner.train(config, tmp_path / "run")


# -- training through runner.train ------------------------------------------------------------
def test_sac_on_hidden_goals_writes_eval_summary(tmp_path):
    # Goals hidden: only the class one-hot tells the policy which of the 4 tasks it is on.
    run = train(tmp_path, "env.observe_goal=false")
    s = summary(run)
    assert s["num_tasks"] == 4 and s["split"] == "train"
    rows = metrics(run)
    assert int(rows[-1]["step"]) == 400 and rows[-1]["eval_return_last"]
    assert any(r["critic_loss"] for r in rows)  # SB3's own losses reach metrics.csv


def test_ppo_on_hidden_goals_writes_eval_summary(tmp_path):
    run = train(
        tmp_path,
        "env.observe_goal=false",
        "agent.algo=PPO",
        "agent.kwargs={n_steps: 25, batch_size: 50, n_epochs: 2}",
    )
    assert summary(run)["num_tasks"] == 4
    assert any(r["value_loss"] for r in metrics(run))
    assert not (latest_checkpoint(run) / "replay.npz").exists()  # rollouts are refilled anyway


def test_dqn_trains_on_discrete_four_rooms(tmp_path):
    run = train(
        tmp_path,
        "env={name: four-rooms, horizon: 30}",
        "agent.algo=DQN",
        "agent.kwargs={learning_starts: 50, buffer_size: 1000, batch_size: 16, "
        "target_update_interval: 50, policy_kwargs: {net_arch: [16]}}",
        "total_steps=200",
        "eval.episodes=1",
    )
    assert summary(run)["num_tasks"] == 1
    assert any(r["loss"] for r in metrics(run))


def test_sac_runs_on_metaworld_mt10_smoke(tmp_path):
    config = load_config(str(ROOT / "configs" / "smoke" / "sb3_sac_mt10.yaml"))
    run = runner.train(config, tmp_path / "run")
    assert summary(run)["num_tasks"] == 10  # one goal per class, each its own env
    assert int(metrics(run)[-1]["step"]) == 400


@pytest.mark.parametrize("algo", ["TD3", "DDPG", "A2C"])
def test_checkpoint_restores_every_parameter(algo, tmp_path):
    kwargs = "{n_steps: 10}" if algo == "A2C" else "{learning_starts: 50, buffer_size: 1000}"
    run = train(tmp_path, "env.observe_goal=false", f"agent.algo={algo}", f"agent.kwargs={kwargs}",
                "total_steps=120")  # fmt: skip
    config = runner.load_run_config(run)
    fresh = SB3Run(config, run, config.env.build())
    fresh.load_checkpoint(checkpoint.load_latest(run / "checkpoints"))
    saved = torch.load(latest_checkpoint(run) / "agent.pt", weights_only=True)["parameters"]
    for name, tensor in saved["policy"].items():
        torch.testing.assert_close(fresh.model.get_parameters()["policy"][name], tensor)
    assert fresh.model.num_timesteps == fresh.counters.env_steps == 120
    fresh.close()


# -- checkpoints, resume, offline eval (one run trained to 200, resumed to 400) ----------------
@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """SAC+HER on the goal-observing point robot: trained to 200 steps, then resumed to 400."""
    run = tmp_path_factory.mktemp("sb3") / "run"
    assert main(["train", SMOKE, "total_steps=200", "--run-dir", str(run)]) == 0
    with np.load(latest_checkpoint(run) / "replay.npz", allow_pickle=False) as data:
        first = {k: data[k] for k in data.files}
    assert main(["resume", str(run), "total_steps=400"]) == 0
    return run, first


def test_resume_continues_to_the_new_total(split_run):
    run, _ = split_run
    steps = [int(r["step"]) for r in metrics(run)]
    assert steps[-1] == 400 and steps == sorted(steps)
    assert latest_checkpoint(run).name == "step-000000000400"


def test_resume_keeps_the_replay_buffer(split_run):
    run, first = split_run
    with np.load(latest_checkpoint(run) / "replay.npz", allow_pickle=False) as data:
        # 4 envs: 200 steps are 50 rows; after resume all 100 rows, the first 50 unchanged.
        assert int(first["pos"]) == 50 and int(data["pos"]) == 100
        for key in ("observations.observation", "actions", "rewards"):
            np.testing.assert_array_equal(data[key][:50], first[key][:50])


def test_goal_env_trains_with_her_and_resume_restarts_episodes_in_flight(split_run):
    run, _ = split_run
    with np.load(latest_checkpoint(run) / "replay.npz", allow_pickle=False) as data:
        length = data["ep_length"]  # HerReplayBuffer's episode bookkeeping [rows, envs]
    # Horizon 20, 4 envs: the checkpoint at row 50 cut the third episodes at 10 steps; resume
    # closed them there and started new ones; the last episodes (rows 90-99) are in flight.
    assert (length[:40] == 20).all() and (length[40:50] == 10).all()
    assert (length[50:90] == 20).all() and (length[90:] == 0).all()


def test_checkpoints_never_pickle(split_run):
    run, _ = split_run
    ckpt = latest_checkpoint(run)
    agent = torch.load(ckpt / "agent.pt", weights_only=True)
    assert {"policy", "actor.optimizer", "critic.optimizer"} <= set(agent["parameters"])
    assert "log_ent_coef" in agent["variables"]
    for name in ("arrays.npz", "replay.npz"):
        np.load(ckpt / name, allow_pickle=False).close()
    written = {p.suffix for p in run.rglob("*") if p.is_file()}
    assert not written & {".pkl", ".zip", ".pickle"}


def test_gmtl_eval_writes_the_report(split_run, capsys):
    run, _ = split_run
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert (run / "eval-train-k1" / "summary.json").is_file()


def test_goal_env_run_evaluates_on_held_out_goals(split_run):
    # The goal is observed, so every goal is the one class the policy knows.
    run, _ = split_run
    assert main(["eval", str(run), "--split", "test"]) == 0
    assert json.loads((run / "eval-test-k2" / "summary.json").read_text())["num_tasks"] == 4


def test_held_out_tasks_without_a_class_are_refused(tmp_path, capsys):
    args = ["env.observe_goal=false", "eval.split=test", "--run-dir", str(tmp_path / "run")]
    assert main(["train", SMOKE, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "eval.split" in err and "set eval.split=train" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


# -- config errors: one line, exit 2, nothing written -----------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.algo=SACC", "agent.algo: unknown stable-baselines3 algorithm 'SACC'; valid: SAC"),
        ("agent.kwargs.learnig_rate=0.1", "agent.kwargs.learnig_rate: unknown argument"),
        ("agent.kwargs.learning_starts=[1]", "agent.kwargs.learning_starts: Input should be"),
        ("agent.kwargs.seed=1", "agent.kwargs.seed: set by gmtl_rl; use seed instead"),
        ("agent.policy=MlpPolicyy", "agent.policy: unknown SB3 SAC policy"),
        ("agent.her=maybe", "agent.her: expected true, false or auto"),
    ],
)
def test_config_mistakes_exit_2_with_one_line(override, message, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", SMOKE, override, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not run.exists()


def test_her_without_goal_env_is_a_config_error(tmp_path, capsys):
    args = ["train", SMOKE, "env.observe_goal=false", "agent.her=true"]
    assert main([*args, "--run-dir", str(tmp_path / "run")]) == 2
    assert "agent.her: true needs a goal env" in capsys.readouterr().err


def test_sampler_autoreset_mode_is_refused(tmp_path, capsys):
    args = ["sampler.autoreset_mode=same_step", "--run-dir", str(tmp_path / "run")]
    assert main(["train", SMOKE, *args]) == 2
    assert "sampler.autoreset_mode: SB3 resets its envs itself" in capsys.readouterr().err


@pytest.mark.parametrize(("observe_goal", "n_envs", "expected"), [(False, 6, 8), (True, 3, 3)])
def test_envs_are_spread_evenly_over_task_classes(tmp_path, observe_goal, n_envs, expected):
    config = load_config(SMOKE, [f"env.observe_goal={observe_goal}", f"sampler.n_envs={n_envs}"])
    run = SB3Run(config, tmp_path, config.env.build())
    try:
        assert run.vec.num_envs == expected  # hidden goals: 4 classes -> a multiple of 4
    finally:
        run.close()


def test_algorithm_that_cannot_act_in_the_env_is_a_config_error(tmp_path, capsys):
    args = ["train", SMOKE, "agent.algo=DQN", "agent.kwargs={}"]
    assert main([*args, "--run-dir", str(tmp_path / "run")]) == 2
    assert "stable-baselines3 DQN rejected" in capsys.readouterr().err


# -- learning -----------------------------------------------------------------------------------
def test_sac_learns_goal_reaching(tmp_path):
    """SB3 SAC (+HER) on the goal-observing point robot, 2000 steps, 4 train goals.

    Measured (eval on the 4 train goals, 5 repeats): seed 0 return -8.6 / success 0.90; seeds
    1, 2: -8.0 / 0.90, -7.2 / 0.95. A uniformly random policy: -22.6 / 0.05.
    """
    run = train(
        tmp_path,
        "total_steps=2000",
        "checkpoint.replay=false",
        "agent.kwargs={learning_starts: 100, batch_size: 64, buffer_size: 10000, "
        "learning_rate: 0.001, gradient_steps: -1, policy_kwargs: {net_arch: [64, 64]}}",
        "eval.episodes=1",
        "eval.repeats=5",
    )
    s = summary(run)
    assert s["return"][0]["mean"] > -15.0
    assert s["success"][0]["mean"] > 0.5


def test_a_worker_backend_is_refused_as_sb3_steps_its_own_envs(tmp_path, capsys):
    args = ["sampler.backend=subprocess", "--run-dir", str(tmp_path / "run")]
    assert main(["train", SMOKE, *args]) == 2
    assert "sampler.backend: 'subprocess' does not apply to sb3" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
