"""The Meta-World families: splits, the construction cache, goals, class switching, options."""

from __future__ import annotations

import time

import numpy as np
import pytest
from metaworld.policies.sawyer_reach_v3_policy import SawyerReachV3Policy

import gmtl_rl.envs.metaworld_families  # noqa: F401  (registers the families)
from gmtl_rl.envs.metaworld_families import MetaWorldFamily, MetaWorldTaskEnv
from gmtl_rl.envs.registry import build
from gmtl_rl.errors import ConfigError

MT10_CLASSES = [
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
]
ML10_TEST = {"drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3"}


def family(name: str, **options: object) -> MetaWorldFamily:
    dist = build(name, options)
    assert isinstance(dist, MetaWorldFamily)
    return dist


@pytest.fixture(scope="module")
def mt10() -> MetaWorldFamily:
    return family("metaworld/MT10")


@pytest.fixture(scope="module")
def ml10() -> MetaWorldFamily:
    return family("metaworld/ML10")


@pytest.fixture(scope="module")
def mt1() -> MetaWorldFamily:
    return family("metaworld/MT1")


@pytest.fixture(scope="module")
def ml1() -> MetaWorldFamily:
    return family("metaworld/ML1")


def inner(env: MetaWorldTaskEnv):  # the active Meta-World env after a reset
    assert env._inner is not None
    return env._inner


def test_mt10_has_the_reference_classes_and_train_equals_test(mt10):
    assert mt10.class_names == MT10_CLASSES
    assert len(mt10.train_tasks()) == 10 * 50
    assert mt10.test_tasks() == mt10.train_tasks()
    assert [t["class_index"] for t in mt10.train_tasks()[::50]] == list(range(10))


def test_second_distribution_reuses_the_cached_benchmark_and_caps_tasks(mt10):
    start = time.perf_counter()
    capped = family("metaworld/MT10", max_tasks_per_class=3)
    assert time.perf_counter() - start < 0.5
    assert len(capped.train_tasks()) == 30
    assert [t["variation"] for t in capped.train_tasks()[:4]] == [0, 1, 2, 0]


def test_ml10_holds_out_the_reference_test_classes(ml10):
    assert {t["env_name"] for t in ml10.test_tasks()} == ML10_TEST
    assert len({t["env_name"] for t in ml10.train_tasks()}) == 10
    assert len(ml10.test_tasks()) == 5 * 50
    assert min(t["class_index"] for t in ml10.test_tasks()) == 10
    assert len(ml10.class_names) == 15


def test_ml1_test_goals_differ_from_train_goals(ml1):
    train, test = ml1.train_tasks()[0], ml1.test_tasks()[0]
    assert (train["variation"], train["goal_seed"]) == (0, 0)
    assert (test["variation"], test["goal_seed"]) == (0, 1)
    env = ml1.make_env(train)
    env.reset(seed=0)
    goal_train = inner(env)._target_pos.copy()
    ml1.set_task(env, test)
    env.reset(seed=0)
    assert not np.allclose(goal_train, inner(env)._target_pos)


def test_set_task_before_reset_gives_the_tasks_goal(mt1):
    env = mt1.make_env(mt1.train_tasks()[0])
    obs0, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs0[-3:], inner(env)._target_pos, rtol=1e-6)
    mt1.set_task(env, mt1.train_tasks()[1])
    obs1, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs1[-3:], inner(env)._target_pos, rtol=1e-6)
    assert not np.allclose(obs0[-3:], obs1[-3:])


def test_ml_observations_hide_the_goal_and_are_float32(ml1):
    env = ml1.make_env()
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (39,)
    assert np.all(obs[-3:] == 0.0) and env.observation_space.contains(obs)


def test_set_task_switches_class_and_every_class_fits_the_space(mt10):
    env = mt10.make_env(mt10.train_tasks()[0])
    for task in mt10.train_tasks()[::50]:
        mt10.set_task(env, task)
        obs, _ = env.reset(seed=0)
        assert inner(env).__class__ is mt10.env_classes[task["env_name"]]
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs), task["env_name"]


@pytest.mark.filterwarnings("ignore:Constant")  # metaworld's policy warns about its own gains
def test_success_passes_through_as_float(mt1):
    env = mt1.make_env()
    obs, _ = env.reset(seed=0)
    policy = SawyerReachV3Policy()  # metaworld's scripted expert
    successes = []
    for _ in range(100):
        obs, _, _, _, info = env.step(policy.get_action(obs.astype(np.float64)))
        successes.append(info["success"])
    assert {type(s) for s in successes} == {float}
    assert set(successes) == {0.0, 1.0}


def test_truncates_at_the_horizon(mt1):
    env = family("metaworld/MT1", horizon=5).make_env()
    env.reset(seed=0)
    assert [env.step(env.action_space.sample())[3] for _ in range(5)] == [False] * 4 + [True]


def test_default_horizon_truncates_at_500_without_metaworld_raising(mt1):
    env = mt1.make_env()
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(500)]
    assert flags.index(True) == 499
    with pytest.raises(ConfigError, match=r"env\.horizon"):
        family("metaworld/MT1", horizon=501)


def test_one_hot_widens_the_observation_and_marks_the_class(mt10):
    dist = family("metaworld/MT10", one_hot=True, max_tasks_per_class=1)
    env = dist.make_env(dist.train_tasks()[3])
    assert env.observation_space.shape == (49,)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[39:], np.eye(10)[3])
    dist.set_task(env, dist.train_tasks()[7])
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[39:], np.eye(10)[7])


def test_reward_version_reaches_the_env(mt1):
    env = family("metaworld/MT1", reward_version="v1").make_env()
    env.reset(seed=0)
    assert inner(env).reward_function_version == "v1"


def test_unknown_task_name_lists_close_names_first():
    with pytest.raises(ConfigError, match=r"env.task_name: .*'reach-v2'; valid: reach-v3, "):
        family("metaworld/ML1", task_name="reach-v2")


def test_meta_batch_size_must_split_the_goals_evenly(ml1, ml10):
    with pytest.raises(ConfigError, match=r"env.meta_batch_size: 7 .*valid: 1, 2, 5, 10, 25, 50"):
        family("metaworld/ML1", meta_batch_size=7)
    with pytest.raises(ConfigError, match=r"env.meta_batch_size: 15 .*10 train class"):
        family("metaworld/ML10", meta_batch_size=15)


def test_envs_of_a_family_share_idle_inner_envs_by_class() -> None:
    """Envs that switch class hand their inner env to the family's pool: a process builds one
    env per class per concurrent user, not one per (env, class) pair; tasks are unchanged."""
    import pickle

    from gmtl_rl.core.policy import RandomPolicy
    from gmtl_rl.core.rollout import RolloutSampler
    from gmtl_rl.core.schedules import UniformTaskSchedule

    dist = family("metaworld/MT10", max_tasks_per_class=2, horizon=3)
    tasks = dist.train_tasks()
    sampler = RolloutSampler(
        dist, tasks, 4, UniformTaskSchedule(len(tasks), np.random.default_rng(0)), 0
    )
    space = sampler.single_action_space
    policy = RandomPolicy(space.low, space.high, np.random.default_rng(1))
    pairs = set()  # (env, class) pairs run: what one cache per env would have built
    for _ in range(3 * 40):  # 40 episodes per env, each on a random task of the 10 classes
        sampler.step(policy)
        for i, env in enumerate(sampler.vec.envs):
            task = tasks[int(sampler.slots.task_id[i])]
            mw = inner(env.unwrapped)
            assert type(mw) is dist.env_classes[task["env_name"]]  # the slot's task's class
            pairs.add((i, task["env_name"]))
    episodes = sampler.pop_finished()
    assert len(episodes) >= 150
    pool = dist.inner_envs
    assert len(pairs) >= 35 and pool.built <= 0.7 * len(pairs)  # 24 of 40 at this commit
    sampler.close()
    clone = pickle.loads(pickle.dumps(dist))  # a worker's copy starts with an empty pool
    assert isinstance(clone, MetaWorldFamily) and clone.inner_envs.built == 0
