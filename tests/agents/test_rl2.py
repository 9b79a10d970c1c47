"""RL² (Duan et al. 2016): trial GAE, recurrent state handling, whole-trial buffering, config
errors, bit-exact resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from benchmark_modules import load_benchmark
from metaworld_rounds import ml1_reach, two_rounds
from trees import assert_tree_equal

from gmtl_rl import checkpoint, envs
from gmtl_rl.agents.registry import parse_agent_config
from gmtl_rl.agents.rl2 import RL2, RL2Config, build_rl2
from gmtl_rl.cli import main
from gmtl_rl.core.records import EnvSpec, StepBatch
from gmtl_rl.core.rollout import RolloutSampler
from gmtl_rl.core.schedules import UniformTaskSchedule
from gmtl_rl.core.trials import ActRecord, TrialBuffer, trial_gae
from gmtl_rl.errors import ConfigError

ROOT = Path(__file__).parents[2]
SMOKE = str(ROOT / "configs" / "smoke" / "rl2_point_robot.yaml")
LEARNING_STEPS = 600_000  # RL² env steps of the learning test
BOX = gym.spaces.Box(-0.1, 0.1, shape=(2,), dtype=np.float32)
OBS = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)


def _agent(action_space: gym.Space = BOX, **overrides) -> RL2:
    config = RL2Config(gru_hidden=8, hidden=[8], **overrides)
    return build_rl2(config, EnvSpec(OBS, action_space, 1), seed=0)


def _step(n: int, reward, done, valid=None, action=None) -> StepBatch:
    zeros = np.zeros(n, np.int64)
    return StepBatch(
        obs=np.zeros((n, 2), np.float32),
        action=np.zeros((n, 2), np.float32) if action is None else action,
        reward=np.asarray(reward, np.float32),
        next_obs=np.zeros((n, 2), np.float32),
        terminated=np.asarray(done, bool),
        truncated=np.zeros(n, bool),
        task_id=zeros,
        task_class=zeros,
        episode_id=zeros,
        step_index=zeros,
        success=np.zeros(n, np.float32),
        valid=np.ones(n, bool) if valid is None else np.asarray(valid, bool),
    )


# -- GAE over a trial ---------------------------------------------------------------------
def test_gae_crosses_an_inner_episode_end_and_stops_at_the_trial_end():
    # Trial 0: K = 2 episodes, the first terminated after 2 steps; trial 1: 2 steps, padded.
    reward = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 9.0, 9.0]], np.float32)
    value = np.array([[0.5, 1.0, 1.5, 2.0], [0.0, 1.0, 7.0, 7.0]], np.float32)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    adv, ret = trial_gae(reward, value, mask, gamma=0.9, lam=0.8)
    # By hand, γλ = 0.72. Trial 0: the last step has no successor; step 1 (the inner episode
    # end) bootstraps from step 2, the next episode's first state, not from its own terminal
    # observation, and the recursion runs on through it.
    # δ = [1 + .9·1 - .5, 2 + .9·1.5 - 1, 3 + .9·2 - 1.5, 4 - 2] = [1.4, 2.35, 3.3, 2]
    # A3 = 2, A2 = 3.3 + .72·2 = 4.74, A1 = 2.35 + .72·4.74 = 5.7628, A0 = 1.4 + .72·5.7628
    expected_0 = [5.549216, 5.7628, 4.74, 2.0]
    # Trial 1 ends at step 1 (padding after it is ignored): δ = [1 + .9 - 0, 1 - 1] = [1.9, 0]
    expected_1 = [1.9, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(adv, [expected_0, expected_1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ret[0], np.array(expected_0) + value[0], rtol=1e-6)
    np.testing.assert_allclose(ret[1], [1.9, 1.0, 0.0, 0.0], rtol=1e-6, atol=1e-6)


# -- the Policy protocol ------------------------------------------------------------------
def test_reset_zeroes_hidden_state_and_previous_inputs_only_of_masked_envs():
    agent = _agent()
    obs = np.array([[0.3, -0.2], [0.5, 0.5], [-0.4, 0.9]], np.float32)
    agent.reset(np.ones(3, bool))
    agent.act(obs, np.zeros(3, np.int64))
    agent.observe(_step(3, [-1.0, -2.0, -3.0], [False, True, False], action=obs * 0.1))
    before = agent.state_dict()
    agent.reset(np.array([True, False, True]))
    for name in ("hidden", "prev_action", "prev_reward", "prev_done"):
        now, then = agent.state_dict()[name], before[name]
        assert (now[[0, 2]] == 0).all(), name
        assert torch.equal(now[1], then[1]) and (then[1] != 0).any(), name


def test_act_ignores_the_task_class():
    obs = np.array([[0.3, -0.2], [0.5, 0.5]], np.float32)
    a, b = _agent(), _agent()
    for agent in (a, b):
        agent.reset(np.ones(2, bool))
    act_a = a.act(obs, np.array([0, 1]), deterministic=True)
    act_b = b.act(obs, np.array([-1, 7]), deterministic=True)
    np.testing.assert_array_equal(act_a, act_b)
    assert torch.equal(a.hidden_NH, b.hidden_NH)


def test_invalid_rows_leave_the_recurrent_state_untouched():
    agent = _agent()
    agent.reset(np.ones(2, bool))
    obs = np.array([[0.3, -0.2], [0.5, 0.5]], np.float32)
    agent.act(obs, np.zeros(2, np.int64))
    agent.observe(_step(2, [-1.0, -1.0], [False, False]))
    before = agent.state_dict()
    agent.act(obs, np.zeros(2, np.int64))
    agent.observe(_step(2, [-5.0, -5.0], [True, True], valid=[True, False]))
    after = agent.state_dict()
    assert not torch.equal(after["hidden"][0], before["hidden"][0])
    for name in ("hidden", "prev_action", "prev_reward", "prev_done"):
        assert torch.equal(after[name][1], before[name][1]), name


def test_gaussian_actions_stay_in_the_box_and_discrete_ones_in_range():
    agent = _agent(init_log_std=2.0)  # σ ≈ 7.4 box half-widths: most draws fall outside
    agent.reset(np.ones(64, bool))
    actions = agent.act(np.random.default_rng(0).normal(size=(64, 2)), np.zeros(64, np.int64))
    assert actions.dtype == np.float32 and (np.abs(actions) <= 0.1).all()
    assert (np.abs(actions) == np.float32(0.1)).any()  # the draws really were clipped
    discrete = _agent(gym.spaces.Discrete(4))
    discrete.reset(np.ones(64, bool))
    chosen = discrete.act(np.zeros((64, 2), np.float32), np.zeros(64, np.int64))
    assert chosen.shape == (64,) and set(chosen.tolist()) <= {0, 1, 2, 3}
    assert len(set(chosen.tolist())) > 1


@pytest.mark.parametrize(
    ("family", "autoreset"),
    [
        ("point-robot", "disabled"),
        ("four-rooms", "disabled"),
        ("four-rooms", "next_step"),  # dummy rows inside trials: not transitions
        ("four-rooms", "same_step"),
    ],
)
def test_recomputed_trials_reproduce_what_act_saw(family, autoreset):
    """The update re-runs the GRU over stored trials: its inputs (zeros at a trial start,
    previous action/reward/done after) must rebuild the values and log-probs of `act`."""
    if family == "point-robot":
        dist = envs.make(family, n_train=4, n_test=1, horizon=5)
    else:  # discrete actions; episodes end early at the goal, so trials differ in length
        dist = envs.make(family, horizon=6, observation="onehot")
    sampler = RolloutSampler(
        dist, dist.train_tasks(), 3, UniformTaskSchedule(len(dist.train_tasks()),
        np.random.default_rng(0)), seed=0, episodes_per_trial=2, autoreset_mode=autoreset,
    )  # fmt: skip
    agent = RL2(
        RL2Config(gru_hidden=8, hidden=[8], episodes_per_trial=2, reward_scale=0.5),
        EnvSpec(sampler.single_observation_space, sampler.single_action_space, 1),
    )
    buffer = TrialBuffer(3, 2)
    invalid = 0
    for _ in range(40):
        step = sampler.step(agent)
        invalid += int((~step.valid).sum())
        assert agent.last_act is not None
        buffer.add(step, agent.last_act)
    sampler.close()
    assert (invalid > 0) == (autoreset == "next_step")
    batch = buffer.pop_trials()
    assert batch.num_trials >= 3
    inputs = agent.sequence_inputs(batch)
    assert (inputs[:, 0, agent.obs_dim :] == 0).all()  # a trial starts from zero inputs
    with torch.no_grad():
        params, value, _ = agent.net(inputs)
        logp, _ = agent._log_prob_entropy(params, torch.as_tensor(batch.sample_BLA))
    m = torch.as_tensor(batch.mask_BL)
    torch.testing.assert_close(value[m], torch.as_tensor(batch.value_BL)[m], atol=1e-5, rtol=0)
    torch.testing.assert_close(logp[m], torch.as_tensor(batch.log_prob_BL)[m], atol=1e-4, rtol=0)


# -- whole-trial buffering ----------------------------------------------------------------
def _record(n: int, value: float) -> ActRecord:
    return ActRecord(np.full((n, 2), value, np.float32), np.zeros(n, np.float32), np.zeros(n))


def test_buffer_pads_uneven_trials_and_carries_trials_in_flight():
    buffer = TrialBuffer(2, episodes_per_trial=2)
    # env 0: episodes of 1 step; env 1: episodes of 3 transitions, with an invalid row at t = 1
    # (a NEXT_STEP dummy), so its first trial is t = 0, 2, 3 | 4, 5, 6.
    done_1 = {3, 6}
    for t in range(7):
        done = [True, t in done_1]
        valid = [True, t != 1]
        buffer.add(_step(2, [t, 10 + t], done, valid), _record(2, t))
        if t == 1:  # env 0 has finished one trial; env 1's is in flight: checkpoint here
            first = buffer.pop_trials()
            restored = TrialBuffer(2, episodes_per_trial=2)
            restored.load_state_dict(buffer.state_dict())
            buffer = restored
    np.testing.assert_array_equal(first.reward_BL, [[0, 1]])
    rest = buffer.pop_trials()  # in completion order: env 0 at t = 3 and 5, env 1 at t = 6
    np.testing.assert_array_equal(rest.reward_BL[:2, :2], [[2, 3], [4, 5]])
    np.testing.assert_array_equal(rest.mask_BL[:2].sum(1), [2, 2])
    np.testing.assert_array_equal(rest.reward_BL[2], [10, 12, 13, 14, 15, 16])
    np.testing.assert_array_equal(rest.done_BL[2], [False, False, True, False, False, True])
    np.testing.assert_array_equal(rest.sample_BLA[2, :, 0], [0, 2, 3, 4, 5, 6])
    assert rest.num_steps == 2 + 2 + 6
    assert len(buffer) == 1  # env 0's trial that started at t = 6 is still in flight


# -- config -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"name": "rl2", "gru_size": 64}, "agent.gru_size"),
        ({"name": "rl2", "clip": 0}, "agent.clip"),
        ({"name": "rl2", "episodes_per_trial": 0}, "agent.episodes_per_trial"),
        ({"name": "rl2", "hidden": [64, 0]}, r"agent\.hidden\[1\]"),
    ],
)
def test_config_mistakes_name_the_key(data, where):
    with pytest.raises(ConfigError, match=where):
        parse_agent_config(data)


def test_unbounded_box_actions_are_a_config_error():
    unbounded = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    with pytest.raises(ConfigError, match="bounded"):
        _agent(unbounded)


# -- runs -----------------------------------------------------------------------------------
def _final_agent(run_dir: Path) -> dict:
    return checkpoint.load_latest(run_dir / "checkpoints").agent["agent"]


# Four Rooms: discrete actions, and episodes that end at the goal, so trials differ in length
# and some are in flight at the split.
FOUR_ROOMS_ENV = {"name": "four-rooms", "horizon": 12, "observation": "onehot"}


@pytest.mark.parametrize("family", ["point-robot", "four-rooms"])
def test_split_run_resumed_in_a_new_process_matches_the_straight_run_bit_for_bit(tmp_path, family):
    config = SMOKE
    if family == "four-rooms":
        data = yaml.safe_load(Path(SMOKE).read_text())
        data["env"] = FOUR_ROOMS_ENV
        config = str(tmp_path / "four_rooms.yaml")
        Path(config).write_text(yaml.safe_dump(data))
    common = [
        "total_steps=320", "checkpoint.every_steps=0", "eval.max_tasks=2",
        "eval.bootstrap_resamples=100",
    ]  # fmt: skip
    assert main(["train", config, *common, "--run-dir", str(tmp_path / "straight")]) == 0
    # 230 env steps: mid-trial and mid-collection (an update every 160 steps on point-robot).
    split = tmp_path / "split"
    assert main(["train", config, *common, "total_steps=230", "--run-dir", str(split)]) == 0
    held = checkpoint.load_latest(split / "checkpoints").state["loop"]["buffer"]["steps"]["valid"]
    assert len(held) > 0  # the checkpoint holds trials in flight
    done = subprocess.run(
        [sys.executable, "-m", "gmtl_rl.cli", "resume", str(split), "total_steps=320"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    straight, resumed = _final_agent(tmp_path / "straight"), _final_agent(split)
    assert straight["updates"] == resumed["updates"] >= 2
    assert_tree_equal(straight, resumed)  # exact: atol 0


def test_rl2_keeps_its_hidden_state_through_metaworld_metalearning_evaluation():
    """Under Meta-World's own protocol a trial spans the adaptation and scored episodes: the
    agent is reset once per round and sees every inner episode end as its done input."""
    ml1 = ml1_reach()
    env = ml1.make_env()
    agent = build_rl2(
        RL2Config(gru_hidden=8, hidden=[8]), EnvSpec(env.observation_space, env.action_space, 1)
    )
    env.close()
    resets, boundary_hidden = [], []
    reset, act = agent.reset, agent.act

    def recording_reset(mask):
        resets.append(mask.copy())
        reset(mask)

    def recording_act(obs, task_class, deterministic=False):
        assert (task_class == -1).all()
        if len(agent.prev_done_N) == len(obs) and agent.prev_done_N.any():
            boundary_hidden.append(agent.hidden_NH[agent.prev_done_N > 0].abs().sum().item())
        return act(obs, task_class, deterministic)

    agent.reset, agent.act = recording_reset, recording_act
    result = two_rounds(agent, ml1)
    assert 0.0 <= result.mean_success <= 1.0
    assert len(resets) == 2  # one trial per round
    assert boundary_hidden and min(boundary_hidden) > 0  # the state crossed episode ends


# -- learning -------------------------------------------------------------------------------
@pytest.mark.slow
def test_rl2_adapts_on_held_out_goals(tmp_path):
    """benchmarks/rl2_point_robot.py's check at a reduced budget (minutes on 2 cores): on the
    test goals, RL²'s last episode of a trial beats its first, and beats SAC with the goal
    hidden (memoryless, so it cannot adapt), both by a 95% bootstrap interval above 0."""
    bench = load_benchmark("rl2_point_robot")
    result = bench.run("point-robot", steps=LEARNING_STEPS, runs=tmp_path)
    assert result.adaptation_gain.low > 0, bench.report(result)
    assert result.gain_over_sac.low > 0, bench.report(result)
