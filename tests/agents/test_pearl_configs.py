"""Every configs/pearl_<family>.yaml against the authors' settings (oyster), value by value.

oyster is katerakelly/oyster at OYSTER_COMMIT: a family's configs/<name>.json deep-updated over
configs/default.py (launch_experiment.py `deep_update_dict`), plus the values oyster's code
fixes outside its configs (OYSTER_CODE, OYSTER_ENV; each names its file). The tables below are
those files' values, copied verbatim; `_rows` maps each oyster key to ours. Configs are loaded
through `gmtl_rl.config.load_config`, so our defaults count.

A deliberate deviation is listed in DEVIATIONS with our value and must be named, by key, in the
config's header under "Deviations from oyster:". Anything else that differs fails, naming the
key, our value and oyster's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from authors_configs import drift, header, named_deviations

from gmtl_rl.config import RunConfig, load_config
from gmtl_rl.envs.task import TaskDistribution

OYSTER_COMMIT = "44e20fddf181d8ca3852bdf9b6927d6b8c6f48fc"
CONFIGS = Path(__file__).parents[2] / "configs"

# configs/default.py (env_params and algo_params flattened; algo_params keys keep their names).
OYSTER_DEFAULT: dict[str, Any] = {
    "n_train_tasks": 2,
    "n_eval_tasks": 2,
    "latent_size": 5,
    "net_size": 300,
    "env_params.n_tasks": 2,
    "env_params.randomize_tasks": True,
    "meta_batch": 16,
    "num_iterations": 500,
    "num_initial_steps": 2000,
    "num_tasks_sample": 5,
    "num_steps_prior": 400,
    "num_steps_posterior": 0,
    "num_extra_rl_steps_posterior": 400,
    "num_train_steps_per_itr": 2000,
    "num_evals": 2,
    "num_steps_per_eval": 600,
    "batch_size": 256,
    "embedding_batch_size": 64,
    "embedding_mini_batch_size": 64,
    "max_path_length": 200,
    "discount": 0.99,
    "soft_target_tau": 0.005,
    "policy_lr": 3e-4,
    "qf_lr": 3e-4,
    "vf_lr": 3e-4,
    "context_lr": 3e-4,
    "reward_scale": 5.0,
    "sparse_rewards": False,
    "kl_lambda": 0.1,
    "use_information_bottleneck": True,
    "use_next_obs_in_context": False,
    "update_post_train": 1,
    "num_exp_traj_eval": 1,
    "recurrent": False,
    "dump_eval_paths": False,
}

# Set in oyster's code, not in its configs.
OYSTER_CODE: dict[str, Any] = {
    # launch_experiment.py: MlpEncoder(hidden_sizes=[200, 200, 200]); Q, V, π [net_size] * 3.
    "encoder_hidden": [200, 200, 200],
    # rl_algorithm.py MetaRLAlgorithm: replay_buffer_size=1000000 for each task's buffer
    # (MultiTaskReplayBuffer), so nothing a run collects is ever evicted.
    "replay_buffer_size": 1_000_000,
    # rl_algorithm.py MetaRLAlgorithm: eval_deterministic=True.
    "eval_deterministic": True,
    # sac.py PEARLSoftActorCritic defaults.
    "policy_mean_reg_weight": 1e-3,
    "policy_std_reg_weight": 1e-3,
    "policy_pre_activation_weight": 0.0,
    # rl_algorithm.py: one env, stepped by InPlacePathSampler one trajectory at a time; in
    # collect_data only the first trajectory has z from the prior, each later one z from the
    # posterior re-inferred after the one before (update_post_train=1).
    "envs": 1,
}

# configs/<name>.json, verbatim (env_params flattened).
OYSTER_JSON: dict[str, dict[str, Any]] = {
    "point-robot": {
        "n_train_tasks": 80,
        "n_eval_tasks": 20,
        "env_params.n_tasks": 100,
        "num_initial_steps": 200,
        "num_steps_prior": 200,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 200,
        "num_train_steps_per_itr": 1000,
        "num_steps_per_eval": 60,
        "max_path_length": 20,
        "reward_scale": 100.0,
        "kl_lambda": 0.1,
    },
    "sparse-point-robot": {
        "n_train_tasks": 80,
        "n_eval_tasks": 20,
        "env_params.n_tasks": 100,
        "num_initial_steps": 200,
        "num_tasks_sample": 10,
        "num_steps_prior": 100,
        "num_steps_posterior": 900,
        "num_extra_rl_steps_posterior": 0,
        "num_train_steps_per_itr": 1000,
        "num_steps_per_eval": 400,
        "embedding_batch_size": 1024,
        "embedding_mini_batch_size": 1024,
        "max_path_length": 20,
        "discount": 0.90,
        "reward_scale": 100.0,
        "sparse_rewards": 1,
        "kl_lambda": 1.0,
        "num_exp_traj_eval": 5,
    },
    "cheetah-vel": {
        "n_train_tasks": 100,
        "n_eval_tasks": 30,
        "env_params.n_tasks": 130,
        "num_initial_steps": 2000,
        "num_steps_prior": 400,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 600,
        "num_evals": 1,
        "num_steps_per_eval": 600,
        "num_exp_traj_eval": 2,
        "embedding_batch_size": 100,
        "embedding_mini_batch_size": 100,
    },
    "cheetah-dir": {
        "n_train_tasks": 2,
        "n_eval_tasks": 2,
        "env_params.n_tasks": 2,
        "meta_batch": 4,
        "num_initial_steps": 2000,
        "num_steps_prior": 1000,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 1000,
        "num_evals": 4,
        "num_steps_per_eval": 600,
        "num_exp_traj_eval": 2,
        "embedding_batch_size": 256,
        "embedding_mini_batch_size": 256,
    },
    "ant-dir": {
        "n_train_tasks": 2,
        "n_eval_tasks": 2,
        "env_params.n_tasks": 2,
        "meta_batch": 4,
        "num_initial_steps": 2000,
        "num_steps_prior": 400,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 600,
        "num_train_steps_per_itr": 4000,
        "num_evals": 4,
        "num_steps_per_eval": 600,
        "num_exp_traj_eval": 2,
        "embedding_batch_size": 256,
        "embedding_mini_batch_size": 256,
    },
    "ant-goal": {
        "n_train_tasks": 150,
        "n_eval_tasks": 30,
        "env_params.n_tasks": 180,
        "meta_batch": 10,
        "num_initial_steps": 2000,
        "num_steps_prior": 400,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 600,
        "num_train_steps_per_itr": 4000,
        "num_evals": 1,
        "num_steps_per_eval": 600,
        "num_exp_traj_eval": 2,
        "embedding_batch_size": 256,
        "embedding_mini_batch_size": 256,
        "kl_lambda": 1.0,
    },
    "humanoid-dir": {
        "n_train_tasks": 100,
        "n_eval_tasks": 30,
        "env_params.n_tasks": 130,
        "num_initial_steps": 2000,
        "num_steps_prior": 400,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 600,
        "num_train_steps_per_itr": 4000,
        "num_evals": 1,
        "num_steps_per_eval": 600,
        "num_exp_traj_eval": 2,
        "embedding_batch_size": 256,
        "embedding_mini_batch_size": 256,
    },
    "walker-rand-params": {
        "n_train_tasks": 40,
        "n_eval_tasks": 10,
        "env_params.n_tasks": 50,
        "use_next_obs_in_context": True,
        "meta_batch": 10,
        "num_initial_steps": 2000,
        "num_steps_prior": 400,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 600,
        "num_train_steps_per_itr": 4000,
        "num_evals": 2,
        "num_steps_per_eval": 600,
        "num_exp_traj_eval": 2,
        "embedding_batch_size": 100,
        "embedding_mini_batch_size": 100,
    },
    "hopper-rand-params": {
        "n_train_tasks": 40,
        "n_eval_tasks": 10,
        "env_params.n_tasks": 50,
        "use_next_obs_in_context": True,
        "meta_batch": 10,
        "num_initial_steps": 2000,
        "num_steps_prior": 400,
        "num_steps_posterior": 0,
        "num_extra_rl_steps_posterior": 600,
        "num_train_steps_per_itr": 4000,
        "num_evals": 2,
        "num_steps_per_eval": 600,
        "num_exp_traj_eval": 2,
        "embedding_batch_size": 100,
        "embedding_mini_batch_size": 100,
    },
}

# The task distributions, from oyster's env code (its configs pass only n_tasks), as our
# family options.
OYSTER_ENV: dict[str, dict[str, Any]] = {
    # rlkit/envs/point_robot.py: goal ~ U[-1, 1]^2, observation = position only; the goals
    # themselves are oyster's seed-1337 draw (tests/envs/test_point_robot.py holds the draw).
    "point-robot": {"env.observe_goal": False, "env.goal_draw": "oyster"},
    # point_robot.py SparsePointEnv(goal_radius=0.2); step() returns the dense reward (the RL
    # reward; sac.py sample_sac: "rewards are always dense"), the sparse one goes to the
    # context and the evaluation returns when sparse_rewards is set.
    "sparse-point-robot": {
        "env.observe_goal": False,
        "env.goal_radius": 0.2,
        "env.goal_draw": "oyster",
    },
    # half_cheetah_vel.py sample_tasks: np.random.uniform(0.0, 3.0) (its docstring says [0, 2]).
    "cheetah-vel": {"env.observe_task": False, "env.vel_high": 3.0},
    # half_cheetah_dir.py: directions [-1, 1], always both (n_tasks is ignored).
    "cheetah-dir": {"env.observe_task": False},
    # ant_dir.py AntDirEnv(forward_backward=False): θ ~ U[0, 2π); the json does not set it.
    "ant-dir": {"env.observe_task": False, "env.directions": "random"},
    # ant_goal.py sample_tasks: r = 3·√U.
    "ant-goal": {"env.observe_task": False, "env.radius": 3.0},
    # humanoid_dir.py: 0.25·Δxy/model.opt.timestep = 1.25·Δxy/dt (frame_skip 5).
    "humanoid-dir": {"env.observe_task": False, "env.velocity_weight": 1.25},
    # rand_param_envs (dennisl88/rand_param_envs) Walker2DRandParamsEnv / HopperRandParamsEnv:
    # log_scale_limit=3.0.
    "walker-rand-params": {"env.observe_task": False, "env.log_scale_limit": 3.0},
    "hopper-rand-params": {"env.observe_task": False, "env.log_scale_limit": 3.0},
}

# configs/pearl_<file>.yaml -> oyster's env_name (its configs/<json> file).
FAMILIES: dict[str, str] = {
    "point_robot": "point-robot",  # point-robot.json
    "sparse_point_robot": "sparse-point-robot",  # sparse-point-robot.json
    "cheetah_vel": "cheetah-vel",  # cheetah-vel.json
    "cheetah_dir": "cheetah-dir",  # cheetah-dir.json
    "ant_dir": "ant-dir",  # ant-dir.json
    "ant_goal": "ant-goal",  # ant-goal.json
    "humanoid_dir": "humanoid-dir",  # humanoid-dir.json
    "walker_params": "walker-rand-params",  # walker_rand_params.json
    "hopper_params": "hopper-rand-params",  # hopper_rand_params.json
}
NO_OYSTER_CONFIG = {"ml1", "ml10", "ml45"}  # Meta-World: garage's settings, oyster has none

# Deliberate deviations: key -> our value. Each is named, with its reason, in the header.
DEVIATIONS: dict[str, dict[str, Any]] = {
    "point_robot": {"eval.every_steps": 50_000},
    "sparse_point_robot": {"eval.every_steps": 50_000},
    "cheetah_vel": {"eval.every_steps": 100_000},
    "cheetah_dir": {"eval.every_steps": 100_000},
    "ant_dir": {"eval.every_steps": 100_000, "env.directions": "forward_back"},
    "ant_goal": {"eval.every_steps": 100_000},
    "humanoid_dir": {"eval.every_steps": 100_000},
    "walker_params": {"eval.every_steps": 100_000},
    "hopper_params": {"eval.every_steps": 100_000},
}


def oyster(env_name: str) -> dict[str, Any]:
    """oyster's settings for one family: its json over default.py, plus the code's values."""
    return {**OYSTER_DEFAULT, **OYSTER_CODE, **OYSTER_JSON[env_name]}


@dataclass(frozen=True)
class AtLeast:
    """A bound rather than a value (oyster's per-task buffers: ours must hold everything)."""

    n: int
    why: str

    def admits(self, ours: int) -> bool:
        return ours >= self.n

    def __repr__(self) -> str:
        return f">= {self.n:,} ({self.why})"


def _collected_at_most(o: dict[str, Any], total_steps: int) -> int:
    """Env steps a run can collect: it starts an iteration while under total_steps, and every
    collection ends with a whole episode (< one horizon past its target)."""
    per_task = o["num_steps_prior"] + o["num_steps_posterior"] + o["num_extra_rl_steps_posterior"]
    h = o["max_path_length"]
    return total_steps + o["num_tasks_sample"] * (per_task + 3 * h) + o["n_train_tasks"] * h


def _shared(dist: TaskDistribution) -> int:
    train = {t.params for t in dist.train_tasks()}
    return sum(t.params in train for t in dist.test_tasks())


def _rows(
    o: dict[str, Any], env: dict[str, Any], cfg: RunConfig, dist: TaskDistribution
) -> list[tuple[str, Any, Any]]:
    """(our key, ours, oyster's) for every oyster setting that has a counterpart here."""
    a, e = cfg.agent, cfg.eval
    per_task = o["num_steps_prior"] + o["num_steps_posterior"] + o["num_extra_rl_steps_posterior"]
    per_iteration = o["num_tasks_sample"] * per_task
    # oyster's train tasks are tasks[:n_train], its eval tasks tasks[-n_eval:] of n_tasks.
    oyster_shared = max(0, o["n_train_tasks"] + o["n_eval_tasks"] - o["env_params.n_tasks"])
    oyster_total = o["num_initial_steps"] * o["n_train_tasks"] + o["num_iterations"] * per_iteration
    lrs = {o["policy_lr"], o["qf_lr"], o["vf_lr"]}
    options = cfg.env.options
    rows: list[tuple[str, Any, Any]] = [
        # tasks (n_train_tasks, n_eval_tasks, env_params.n_tasks, max_path_length)
        ("env.n_train", len(dist.train_tasks()), o["n_train_tasks"]),
        ("env.n_test", len(dist.test_tasks()), o["n_eval_tasks"]),
        ("env: test tasks that are train tasks", _shared(dist), oyster_shared),
        ("env.horizon", dist.horizon, o["max_path_length"]),
        # networks (latent_size, net_size, launch_experiment.py's encoder)
        ("agent.latent_dim", a.latent_dim, o["latent_size"]),
        ("agent.hidden", list(a.hidden), [o["net_size"]] * 3),
        ("agent.encoder_hidden", list(a.encoder_hidden), o["encoder_hidden"]),
        ("agent.information_bottleneck", a.information_bottleneck, o["use_information_bottleneck"]),
        ("agent: recurrent encoder (ours never is)", False, o["recurrent"]),
        # SAC (policy_lr, qf_lr, vf_lr, context_lr, discount, soft_target_tau, reward_scale)
        ("agent.lr", a.lr, lrs.pop() if len(lrs) == 1 else sorted(lrs)),
        ("agent.context_lr", a.context_lr, o["context_lr"]),
        ("agent.gamma", a.gamma, o["discount"]),
        ("agent.tau", a.tau, o["soft_target_tau"]),
        ("agent.reward_scale", a.reward_scale, o["reward_scale"]),
        ("agent.kl_lambda", a.kl_lambda, o["kl_lambda"]),
        ("agent.policy_mean_reg", a.policy_mean_reg, o["policy_mean_reg_weight"]),
        ("agent.policy_std_reg", a.policy_std_reg, o["policy_std_reg_weight"]),
        ("agent: policy pre-activation L2 (ours has none)", 0.0, o["policy_pre_activation_weight"]),
        # context (use_next_obs_in_context, sparse_rewards, embedding_(mini_)batch_size)
        ("agent.next_obs_in_context", a.next_obs_in_context, o["use_next_obs_in_context"]),
        ("agent.sparse_context", a.sparse_context, bool(o["sparse_rewards"])),
        ("agent.context_batch", a.context_batch, o["embedding_batch_size"]),
        # ours backpropagates through the whole context batch: oyster's mini-batch = batch
        (
            "agent.context_batch (embedding_mini_batch_size)",
            a.context_batch,
            o["embedding_mini_batch_size"],
        ),
        # the loop (meta_batch, batch_size, num_* steps, num_train_steps_per_itr)
        ("agent.batch_size", a.batch_size, o["batch_size"]),
        ("agent.meta_batch", a.meta_batch, o["meta_batch"]),
        ("agent.initial_steps", a.initial_steps, o["num_initial_steps"]),
        ("agent.tasks_per_iteration", a.tasks_per_iteration, o["num_tasks_sample"]),
        ("agent.steps_prior", a.steps_prior, o["num_steps_prior"]),
        ("agent.steps_posterior", a.steps_posterior, o["num_steps_posterior"]),
        ("agent.steps_extra_posterior", a.steps_extra_posterior, o["num_extra_rl_steps_posterior"]),
        ("agent.updates_per_iteration", a.updates_per_iteration, o["num_train_steps_per_itr"]),
        (
            "agent: re-infer the posterior every N trajectories (ours: 1)",
            1,
            o["update_post_train"],
        ),
        ("sampler.n_envs", cfg.sampler.n_envs, o["envs"]),
        # num_iterations, as env steps: initial steps on every train task, then iterations
        ("total_steps", cfg.total_steps, oyster_total),
        (
            "agent.buffer_size",
            a.buffer_size,
            AtLeast(_collected_at_most(o, cfg.total_steps), "per-task buffers of 1e6 never evict"),
        ),
        # evaluation (n_eval_tasks, num_evals, num_steps_per_eval, num_exp_traj_eval): after
        # every iteration, each eval task: num_evals trials of num_steps_per_eval steps
        ("eval.split", e.split, "test"),
        ("eval.max_tasks (test tasks evaluated)", len(e.tasks(dist)), o["n_eval_tasks"]),
        ("eval.episodes", e.episodes, o["num_steps_per_eval"] // o["max_path_length"]),
        ("eval.repeats", e.repeats, o["num_evals"]),
        ("eval.deterministic", e.deterministic, o["eval_deterministic"]),
        ("agent.eval_exploration_episodes", a.eval_exploration_episodes, o["num_exp_traj_eval"]),
        ("eval.every_steps", e.every_steps, per_iteration),
    ]
    if hasattr(options, "test_reward"):  # the sparse family: RL reward dense, context sparse
        rows.append(("env.reward", options.reward, "dense"))
        rows.append(
            ("env.test_reward", options.test_reward, "sparse" if o["sparse_rewards"] else "dense")
        )
    for key, value in env.items():
        rows.append((key, getattr(options, key.removeprefix("env.")), value))
    return rows


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_config_equals_oyster(name):
    path = CONFIGS / f"pearl_{name}.yaml"
    cfg = load_config(path)
    env_name = FAMILIES[name]
    rows = _rows(oyster(env_name), OYSTER_ENV[env_name], cfg, cfg.env.build())
    problems = drift(rows, DEVIATIONS[name])
    if problems:
        pytest.fail(f"{path.name} vs oyster @{OYSTER_COMMIT[:7]}:\n" + "\n".join(problems))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_header_names_each_deviation(name):
    text = header(CONFIGS / f"pearl_{name}.yaml")
    named = named_deviations(text, "Deviations from oyster:")
    assert f"oyster @{OYSTER_COMMIT[:7]}" in text, "the header names the oyster commit"
    assert named == set(DEVIATIONS[name]), (
        f"pearl_{name}.yaml: header names deviations {sorted(named)}, "
        f"the test lists {sorted(DEVIATIONS[name])}"
    )


def test_every_pearl_config_is_checked_or_has_no_oyster_config():
    names = {p.stem.removeprefix("pearl_") for p in CONFIGS.glob("pearl_*.yaml")}
    assert names == set(FAMILIES) | NO_OYSTER_CONFIG
    for name in NO_OYSTER_CONFIG:
        assert "no oyster config" in header(CONFIGS / f"pearl_{name}.yaml")


def test_the_table_is_oysters_arithmetic():
    """Spot checks that the mapping reads the table as oyster's code does."""
    point = oyster("point-robot")
    assert point["num_exp_traj_eval"] == 1 and point["meta_batch"] == 16  # from default.py
    assert point["embedding_batch_size"] == 64
    cfg = load_config(CONFIGS / "pearl_point_robot.yaml")
    rows = {k: t for k, _, t in _rows(point, {}, cfg, cfg.env.build())}
    assert rows["total_steps"] == 200 * 80 + 500 * 5 * (200 + 0 + 200)
    assert rows["eval.episodes"] == 3  # 60 steps of 20-step trajectories
    assert rows["env: test tasks that are train tasks"] == 0  # 80 + 20 of 100 tasks
    assert oyster("cheetah-dir")["num_train_steps_per_itr"] == 2000  # default.py
