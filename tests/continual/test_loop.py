"""The continual loop (issue 18): a task sequence trained element by element, its files,
its evaluation of every element, its bad input, and resume in the middle of a sequence."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from trees import assert_tree_equal

from gmtl_rl import checkpoint
from gmtl_rl.agents.continual_sac import ContinualSAC
from gmtl_rl.cli import main
from gmtl_rl.config import parse_config
from gmtl_rl.core.replay import ReplayStorage
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.common import Counters
from gmtl_rl.training.continual import ContinualRun, sequence_elements


@dataclass
class Record:
    """What the loop told the agent: start/end calls and the latest progress."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    progress: list[int] = field(default_factory=lambda: [0, -1, -1, -1])  # n, k, step, span


@contextmanager
def recording() -> Iterator[Record]:
    """Spy on cl_sac's ContinualAgent hooks: ("start", k, updates so far) and ("end", k,
    replay rows, rows told class k, updates so far)."""
    record = Record()
    start, end = ContinualSAC.start_task, ContinualSAC.end_task
    progress = ContinualSAC.set_task_progress

    def start_spy(self: ContinualSAC, position: int) -> None:
        record.calls.append(("start", position, self.updates))
        start(self, position)

    def end_spy(self: ContinualSAC, position: int, replay: ReplayStorage, rng: Any) -> None:
        told = replay.columns["task_class"][: len(replay)]
        own = int((told == position).sum())
        record.calls.append(("end", position, len(replay), own, self.updates))
        end(self, position, replay, rng)

    def progress_spy(self: ContinualSAC, position: int, step: int, span: int) -> None:
        record.progress = [record.progress[0] + 1, position, step, span]
        progress(self, position, step, span)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(ContinualSAC, "start_task", start_spy)
        m.setattr(ContinualSAC, "end_task", end_spy)
        m.setattr(ContinualSAC, "set_task_progress", progress_spy)
        yield record


STEPS = 60  # per element; 2 envs, horizon 10
BASE: dict[str, Any] = {
    "experiment": "continual-test",
    "seed": 0,
    "threads": 1,  # tests share 2 cores with other work: no torch thread pool to wait on
    "env": {"name": "point-robot", "n_train": 3, "n_test": 2, "horizon": 10},
    "agent": {
        "name": "cl_sac",
        "method": "finetune",
        "hidden": [16, 16],
        "batch_size": 16,
        "buffer_size": 5000,
        "learning_starts": 20,  # random steps at the start of every element (CW start_steps)
        "update_after": 20,  # updates from 20 steps into every element (CW update_after)
        "update_every": 1,  # one update per env step (CW: bursts of 50 every 50)
    },
    # By name and by id; point-robot's classes are its train goals "0", "1", "2".
    "sequence": {"tasks": ["0", 2, "1"], "steps_per_task": STEPS},
    "sampler": {"n_envs": 2},
    "eval": {"split": "train", "every_steps": 40, "episodes": 1, "n_envs": 2},
    "checkpoint": {"every_steps": 0},
    "logging": {"every_steps": 20, "tensorboard": False},
}


def _config(tmp_path: Path, **changes: Any) -> str:
    data = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _final(run: Path) -> checkpoint.Checkpoint:
    return checkpoint.load_latest(run / "checkpoints")


def _csv(run: Path) -> list[dict[str, str]]:
    with open(run / "continual.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Record]:
    tmp = tmp_path_factory.mktemp("straight")
    run = tmp / "run"
    with recording() as record:
        assert main(["train", _config(tmp), "--run-dir", str(run)]) == 0
    return run, record


def test_each_element_is_started_trained_and_ended_in_order(straight):
    run, record = straight
    # Updates from step 20 of each element to its end, one per env step: 40 per element.
    assert record.calls == [
        ("start", 0, 0), ("end", 0, STEPS, STEPS, 40),
        ("start", 1, 40), ("end", 1, STEPS, STEPS, 80),
        ("start", 2, 80), ("end", 2, STEPS, STEPS, 120),
    ]  # fmt: skip
    # reset_buffer: at each end the replay holds that element's transitions only, all told
    # their position as task class. The last collection step was told its element and where
    # it stood in it (2 envs).
    assert record.progress == [3 * STEPS // 2, 2, STEPS - 2, STEPS]
    ckpt = _final(run)
    assert ckpt.state["loop"]["position"] == 3 and ckpt.agent["agent"]["updates"] == 120


def test_replay_keeps_each_elements_position_and_its_tasks(straight):
    ckpt = _final(straight[0])
    assert ckpt.replay_path is not None
    with np.load(ckpt.replay_path) as data:
        classes, tasks = data["col.task_class"], data["col.task_id"]
    # The last element (family class 1) is the sampler's third task; told class 2.
    assert set(classes.tolist()) == {2} and set(tasks.tolist()) == {2}


def test_sequence_json_names_the_elements_and_their_windows(straight):
    record = json.loads((straight[0] / "sequence.json").read_text())
    assert [(t["position"], t["name"], t["class_id"]) for t in record["tasks"]] == [
        (0, "0", 0), (1, "2", 2), (2, "1", 1),
    ]  # fmt: skip
    assert [(t["start_step"], t["end_step"]) for t in record["tasks"]] == [
        (0, 60), (60, 120), (120, 180),
    ]  # fmt: skip
    assert record["steps_per_task"] == STEPS and record["task_identity"] == "visible"
    assert record["family"] == "point-robot" and record["method"] == "finetune"


def test_every_element_is_evaluated_on_schedule_at_boundaries_and_at_the_end(straight):
    run = straight[0]
    rows = _csv(run)
    assert list(rows[0]) == [
        "step", "position", "success_0", "return_0", "success_1", "return_1",
        "success_2", "return_2",
    ]  # fmt: skip
    # every 40 steps, at the boundaries 60 and 120, at the end 180 (each step once)
    assert [int(r["step"]) for r in rows] == [40, 60, 80, 120, 160, 180]
    assert [int(r["position"]) for r in rows] == [0, 0, 1, 1, 2, 2]
    assert all(float(r["return_1"]) < 0 for r in rows)  # point-robot: -distance per step
    # The final evaluation's report holds every element's task.
    with open(run / "eval" / "adaptation.csv", newline="") as f:
        assert sorted({int(r["task"]) for r in csv.DictReader(f)}) == [0, 1, 2]


def test_evaluation_acts_with_each_elements_position(tmp_path, monkeypatch):
    seen: list[int] = []
    act = ContinualSAC.act

    def spy(self, obs, task_class, deterministic=False):
        if deterministic:
            seen.extend(np.unique(task_class).tolist())
        return act(self, obs, task_class, deterministic)

    monkeypatch.setattr(ContinualSAC, "act", spy)
    cfg = _config(tmp_path, **{"sequence.steps_per_task": 20, "eval.every_steps": 0})
    assert main(["train", cfg, "--run-dir", str(tmp_path / "run")]) == 0
    # evaluations at the boundaries 20 and 40 and at the end: every element, as its position
    runs = [k for i, k in enumerate(seen) if i == 0 or seen[i - 1] != k]
    assert runs == [0, 1, 2] * 3


def test_without_buffer_reset_the_replay_keeps_earlier_elements(tmp_path):
    cfg = _config(tmp_path, **{"agent.reset_buffer": False, "eval.every_steps": 0})
    with recording() as record:
        assert main(["train", cfg, "--run-dir", str(tmp_path / "run")]) == 0
    ends = [c[2:4] for c in record.calls if c[0] == "end"]
    assert ends == [(60, 60), (120, 60), (180, 60)]


def test_multitask_trains_every_element_at_once(tmp_path):
    cfg = _config(tmp_path, **{"agent.method": "multitask", "eval.every_steps": 0})
    run = tmp_path / "run"
    with recording() as record:
        assert main(["train", cfg, "--run-dir", str(run)]) == 0
    assert record.calls == [("start", 0, 0)]  # started once, never ended
    assert record.progress[1:] == [0, 3 * STEPS - 2, 3 * STEPS]
    ckpt = _final(run)
    assert ckpt.replay_path is not None
    with np.load(ckpt.replay_path) as data:
        assert set(data["col.task_class"].tolist()) == {0, 1, 2}
    record_json = json.loads((run / "sequence.json").read_text())
    assert record_json["method"] == "multitask"
    assert [int(r["step"]) for r in _csv(run)] == [180]


@pytest.mark.parametrize(
    ("after", "every", "clock", "n", "owed"),
    [
        # CW (sac.py run): after storing transition t of an element, update_every updates
        # when t >= update_after and t % update_every == 0.
        (20, 50, 0, 2, 0.0),
        (20, 50, 48, 2, 0.0),
        (20, 50, 50, 2, 50.0),  # t = 50
        (0, 50, 0, 1, 50.0),  # t = 0
        (20, 50, 98, 4, 50.0),  # t = 100
        (20, None, 18, 4, 2.0),  # one per step from t = 20: t = 20, 21
        (None, None, 18, 4, 2.0),  # no update_after: from learning_starts (20)
    ],
)
def test_updates_owed_follow_cws_timing(after, every, clock, n, owed):
    cfg = SimpleNamespace(
        update_after=after, update_every=every, learning_starts=20, updates_per_step=1.0
    )
    run = SimpleNamespace(agent=SimpleNamespace(config=cfg), counters=Counters())
    ContinualRun._owe_updates(run, clock, clock, n)  # type: ignore[arg-type]
    assert run.counters.update_debt == owed


RESUMED_METHODS = {
    "finetune": {},
    # end_task keeps state (importances and anchors, masks, an episodic memory drawn with
    # the method generator) that the second element trains with
    "ewc": {"agent.importance_samples": 64},
    "packnet": {"agent.packnet_retrain_steps": 10},
    "agem": {"agent.agem_episodic_mem_per_task": 50, "agent.agem_episodic_batch_size": 16},
}


@pytest.mark.parametrize("method", list(RESUMED_METHODS))
def test_run_interrupted_mid_sequence_resumes_to_the_straight_run(tmp_path, straight, method):
    """Stopped in the middle of the second element (step 90: mid-episode, between its
    boundary evaluation and the next), checkpointed, resumed (in a new process, or in this
    one from a newly built run): the same agent, method state, RNG streams, sampler and
    evaluations as the straight run."""
    changes = {"agent.method": method, **RESUMED_METHODS[method]}
    if method == "finetune":
        reference = straight[0]
    else:
        reference = tmp_path / "straight"
        cfg = _config(tmp_path, **changes)
        assert main(["train", cfg, "--run-dir", str(reference)]) == 0
    stop = ContinualRun.stop_if_signalled

    def stop_at_90(self: ContinualRun) -> None:
        if self.counters.env_steps == 90:
            self._stop_signal = signal.SIGINT
        stop(self)

    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ContinualRun, "stop_if_signalled", stop_at_90)
        cfg = _config(tmp_path, **changes)
        assert main(["train", cfg, "--run-dir", str(run)]) == 128 + signal.SIGINT
    middle = _final(run)
    assert middle.step == 90 and middle.state["loop"]["position"] == 1
    assert [int(r["step"]) for r in _csv(run)] == [40, 60, 80]
    if method == "finetune":  # a new process once (seconds of imports); in-process after
        done = subprocess.run(
            [sys.executable, "-m", "gmtl_rl.cli", "resume", str(run)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    else:
        assert main(["resume", str(run)]) == 0
    straight_ckpt, resumed = _final(reference), _final(run)
    assert straight_ckpt.agent["agent"]["updates"] == resumed.agent["agent"]["updates"] > 0
    assert_tree_equal(straight_ckpt.agent["agent"], resumed.agent["agent"], atol=1e-6)
    assert straight_ckpt.state["rng"] == resumed.state["rng"]
    assert straight_ckpt.state["sampler"]["schedule"] == resumed.state["sampler"]["schedule"]
    assert _csv(run) == _csv(reference)


# -- bad input ----------------------------------------------------------------------------------
def _raw(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(BASE))
    data.update(changes)
    return data


def _build(data: dict[str, Any]) -> None:
    """Parse, then build the run's elements (where names are resolved against the family)."""
    config = parse_config(data)
    assert config.sequence is not None
    sequence_elements(config.sequence, config.env.build(), config.eval)


def test_total_steps_must_match_the_sequence():
    with pytest.raises(ConfigError, match=r"total_steps: 100 must equal .* 3 × 60 = 180"):
        parse_config(_raw(total_steps=100))
    assert parse_config(_raw()).total_steps == 180  # left out: the sequence's budget
    assert parse_config(_raw(total_steps=180)).total_steps == 180


def test_elements_must_split_evenly_over_the_envs():
    with pytest.raises(ConfigError, match=r"sequence.steps_per_task: 61 is not a multiple"):
        parse_config(_raw(sequence={"tasks": ["0"], "steps_per_task": 61}))


def test_unknown_task_name_lists_the_familys_classes():
    unknown = r"sequence.tasks\[1\]: unknown task class of point-robot '7'; valid: "
    with pytest.raises(ConfigError, match=unknown):
        _build(_raw(sequence={"tasks": ["0", "7"], "steps_per_task": 10}))
    with pytest.raises(ConfigError, match=r"sequence.tasks\[0\]: class id 5 is out of range"):
        _build(_raw(sequence={"tasks": [5], "steps_per_task": 10}))


@pytest.mark.parametrize(
    "sequence",
    [{"tasks": ["0"], "steps_per_task": 0}, {"tasks": [], "steps_per_task": 10}],
)
def test_zero_budget_is_rejected(sequence):
    with pytest.raises(ConfigError, match="sequence"):
        parse_config(_raw(sequence=sequence, total_steps=10))


def test_sequence_goes_with_continual_agents_only():
    plain = _raw(agent={"name": "sac", "hidden": [16]}, total_steps=180)
    with pytest.raises(ConfigError, match="sequence: only continual agents"):
        parse_config(plain)
    missing = _raw(total_steps=180)
    del missing["sequence"]
    with pytest.raises(ConfigError, match="sequence: missing"):
        parse_config(missing)


def test_hidden_task_identity_refuses_an_agent_that_acts_on_it():
    hidden = {"tasks": ["0", "1"], "steps_per_task": 10, "task_identity": "hidden"}
    with pytest.raises(ConfigError, match=r"agent.multi_head: .* hidden"):
        parse_config(_raw(sequence=hidden))  # cl_sac: a head per element by default
    single_head = _raw(sequence=hidden)
    single_head["agent"] = {**BASE["agent"], "multi_head": False}
    assert parse_config(single_head).sequence.task_identity == "hidden"
    packnet = _raw(sequence=hidden)
    packnet["agent"] = {**BASE["agent"], "multi_head": False, "method": "packnet"}
    with pytest.raises(ConfigError, match=r"agent.method: packnet .* hidden"):
        parse_config(packnet)


def test_eval_split_without_the_elements_tasks_is_refused():
    # point-robot's test goals are held out: no test task has a train class.
    data = _raw()
    data["eval"] = {**BASE["eval"], "split": "test"}
    data["agent"] = {**BASE["agent"], "multi_head": False}
    with pytest.raises(ConfigError, match=r"eval.split: .* set eval.split=train"):
        _build(data)


def test_cli_gives_one_line_and_exit_2_on_a_bad_sequence(tmp_path, capsys):
    cfg = _config(tmp_path, **{"sequence.tasks": ["0", "nope"]})
    assert main(["train", cfg, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sequence.tasks[1]: unknown task class" in err
    assert not (tmp_path / "run").exists()  # refused before the run directory is made
    zero = ["sequence.tasks=[0]", "sequence.steps_per_task=0"]
    assert main(["train", cfg, *zero, "--run-dir", str(tmp_path / "run")]) == 2
    assert "sequence.steps_per_task" in capsys.readouterr().err
    smoke = Path(__file__).parents[2] / "configs" / "smoke" / "sac_point_robot.yaml"
    with_sac = ["sequence={tasks: [0], steps_per_task: 10}", "total_steps=10"]
    assert main(["train", str(smoke), *with_sac, "--run-dir", str(tmp_path / "run")]) == 2
    assert "sequence: only continual agents (cl_sac)" in capsys.readouterr().err
