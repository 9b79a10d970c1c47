"""Transfer (issue 18): a run started from another run's checkpoint (`init_from`), copying
the parts `init_parts` names (networks, normalizers, replay); bad sources are one-line
errors with exit status 2 before any run directory is made."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from trees import assert_tree_equal

from gmtl_rl import checkpoint
from gmtl_rl.cli import main
from gmtl_rl.config import load_config
from gmtl_rl.core.normalization import RunningMeanStd
from gmtl_rl.errors import ConfigError
from gmtl_rl.training.base import TrainingRun

SMOKE = str(Path(__file__).parent.parent.parent / "configs" / "smoke" / "sac_point_robot.yaml")
QUIET = ["threads=1", "eval.max_tasks=1", "eval.episodes=1"]
# A fine-tuning run that stops before its first update: what it ends with is what it began.
NO_UPDATES = [*QUIET, "total_steps=20", "agent.learning_starts=1000"]
NETWORKS = ("actor", "critic", "critic_target", "temperature")


def _final(run: Path) -> checkpoint.Checkpoint:
    return checkpoint.load_latest(run / "checkpoints")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("source") / "run"
    assert main(["train", SMOKE, *QUIET, "total_steps=200", "--run-dir", str(run)]) == 0
    return run


def test_networks_are_copied_without_optimiser_state_or_counters(tmp_path, source):
    run = tmp_path / "run"
    assert main(["train", SMOKE, *NO_UPDATES, f"init_from={source}", "--run-dir", str(run)]) == 0
    theirs, ours = _final(source).agent["agent"], _final(run).agent["agent"]
    assert theirs["updates"] > 0 and ours["updates"] == 0
    for key in NETWORKS:
        assert_tree_equal(theirs[key], ours[key])
    assert theirs["actor_opt"]["state"] and not ours["actor_opt"]["state"]  # fresh Adam
    assert _final(run).state["counters"]["env_steps"] == 20  # fine-tuning counts from 0
    record = json.loads((run / "init_from.json").read_text())
    assert record == {
        "init_from": str(source.resolve()),
        "checkpoint": "step-200",
        "step": 200,
        "parts": ["networks"],
        "agent": "sac",
        "env": "point-robot",
    }


def test_from_scratch_the_networks_differ(tmp_path, source):
    run = tmp_path / "run"
    assert main(["train", SMOKE, *NO_UPDATES, "--run-dir", str(run)]) == 0
    assert not (run / "init_from.json").exists()
    theirs, ours = _final(source).agent["agent"], _final(run).agent["agent"]
    assert not torch.equal(theirs["actor"]["net.0.weight"], ours["actor"]["net.0.weight"])


def test_a_checkpoint_directory_names_the_checkpoint_itself(tmp_path, source):
    step = _final(source).path
    run = tmp_path / "run"
    assert main(["train", SMOKE, *NO_UPDATES, f"init_from={step}", "--run-dir", str(run)]) == 0
    record = json.loads((run / "init_from.json").read_text())
    assert record["checkpoint"] == "step-200" and record["init_from"] == str(source.resolve())


def test_replay_contents_are_copied(tmp_path, source):
    run = tmp_path / "run"
    args = [*NO_UPDATES, "total_steps=2", f"init_from={source}", "init_parts=[replay]"]
    assert main(["train", SMOKE, *args, "--run-dir", str(run)]) == 0
    theirs, ours = _final(source), _final(run)
    assert theirs.replay_path is not None and ours.replay_path is not None
    with np.load(theirs.replay_path) as a, np.load(ours.replay_path) as b:
        n = len(a["col.reward"])
        assert len(b["col.reward"]) == n + 2  # the source's transitions, then 2 of its own
        for key in a.files:
            if key.startswith("col."):
                np.testing.assert_array_equal(a[key], b[key][:n], err_msg=key)
    # only the replay: the networks are this run's own
    assert not torch.equal(theirs.agent["agent"]["actor"]["net.0.weight"],
                           ours.agent["agent"]["actor"]["net.0.weight"])  # fmt: skip


def test_a_resumed_transfer_run_no_longer_needs_its_source(tmp_path, source):
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    run = tmp_path / "run"
    assert main(["train", SMOKE, *NO_UPDATES, f"init_from={copy}", "--run-dir", str(run)]) == 0
    shutil.rmtree(copy)
    assert main(["resume", str(run), "total_steps=40"]) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["init_from=/no/such/run"], "init_from: /no/such/run does not exist"),
        (["init_from={empty}"], "is neither a run directory"),
        (
            ["init_from={source}", "agent.hidden=[16,16]"],
            r"init_from: agent.actor.net.0.weight has shape \[32, \d+\] in .* but \[16, \d+\] "
            "here",
        ),
        (["init_from={source}", "init_parts=[normalizers]"], "keeps no running normalisers"),
        (
            ["init_from={source}", "init_parts=[replay]", "agent.buffer_size=50"],
            "holds 200 transitions, more than this run's replay capacity 50",
        ),
        (
            ["init_from={source}", "init_parts=[replay]", "env.observe_goal=false"],
            "its replay has no column 'obs'",
        ),
        (["init_parts=[replay]"], "init_parts: given without init_from"),
        (["init_from={source}", "init_parts=[replay,replay]"], "names a part twice"),
    ],
)
def test_bad_sources_are_one_line_errors_with_exit_2(tmp_path, source, capsys, overrides, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [o.format(source=source, empty=empty) for o in overrides]
    run = tmp_path / "run"
    assert main(["train", SMOKE, *QUIET, *args, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert re.search(message, err), err
    assert not run.exists()  # refused before the run directory is made


def test_a_source_without_replay_cannot_give_one(tmp_path, capsys):
    bare = tmp_path / "bare"
    no_replay = [*NO_UPDATES, "checkpoint.replay=false"]
    assert main(["train", SMOKE, *no_replay, "--run-dir", str(bare)]) == 0
    args = [*QUIET, f"init_from={bare}", "init_parts=[replay]", "--run-dir", str(tmp_path / "r")]
    assert main(["train", SMOKE, *args]) == 2
    assert "holds no replay.npz" in capsys.readouterr().err


# -- which tensors each part takes -----------------------------------------------------------
class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rms = RunningMeanStd(3)
        self.body = nn.Linear(3, 2)


def _copies(networks: bool, normalizers: bool) -> dict[str, torch.Tensor]:
    """The state `_module_copies` would load into a fresh _Net from a source _Net."""
    torch.manual_seed(0)
    ours, theirs = _Net(), _Net()
    with torch.no_grad():
        theirs.rms.mean.fill_(5.0)
    run = SimpleNamespace(
        network_modules=lambda: {"net": ours},
        config=SimpleNamespace(agent=SimpleNamespace(name="fake")),
    )
    source = {"net": theirs.state_dict()}
    copies = TrainingRun._module_copies(run, source, "src", networks, normalizers)  # type: ignore[arg-type]
    ((module, state),) = copies
    assert module is ours
    return {k: torch.equal(v, theirs.state_dict()[k]) for k, v in state.items()}


def test_networks_leave_the_normalisers_and_normalizers_take_only_them():
    assert _copies(True, False) == {
        "rms.mean": False, "rms.var": True, "rms.count": True,  # same initial values
        "body.weight": True, "body.bias": True,
    }  # fmt: skip
    assert _copies(False, True) == {
        "rms.mean": True, "rms.var": True, "rms.count": True,
        "body.weight": False, "body.bias": False,
    }  # fmt: skip
    assert all(_copies(True, True).values())


def test_init_parts_need_init_from():
    with pytest.raises(ConfigError, match="init_parts: given without init_from"):
        load_config(SMOKE, ["init_parts=[networks]"])
