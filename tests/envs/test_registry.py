"""Third-party families plug in through the `gmtl_rl.envs` entry-point group."""

from __future__ import annotations

import gymnasium as gym
import pytest

from gmtl_rl.envs import FamilyOptions, Task, TaskDistribution, make, registry


class ThirdPartyFamily(TaskDistribution):
    name = "third-party-test"
    description = "a family registered only through an entry point"

    def __init__(self, options: FamilyOptions) -> None:
        super().__init__(options)
        self._train = self._test = [Task.create(self.name, 0, goal=(1.0, 0.0))]

    def make_env(self, task: Task | None = None) -> gym.Env:
        return make("point-robot").make_env()

    def set_task(self, env: gym.Env, task: Task) -> None:
        del env, task


class FakeEntryPoint:
    name = "third-party-test"

    def load(self) -> type[TaskDistribution]:
        return ThirdPartyFamily


def test_family_from_an_entry_point_is_buildable_by_name(monkeypatch):
    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()])
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    dist = make("third-party-test")
    assert isinstance(dist, ThirdPartyFamily) and dist.test_tasks() == dist.train_tasks()


def test_registering_a_second_family_under_a_taken_name_fails():
    class Impostor(ThirdPartyFamily):
        name = "point-robot"

    with pytest.raises(ValueError, match="already registered"):
        registry.register_family(Impostor)
