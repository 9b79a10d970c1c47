import hashlib
import json
import os
import uuid

import numpy as np
import pytest
import torch
from torch import nn
from trees import assert_tree_equal

from gmtl_rl import checkpoint
from gmtl_rl.errors import CheckpointError

MANIFEST = checkpoint.MANIFEST


def agent_state() -> dict:
    """A small network and an Adam optimiser after one step, as an agent's state_dict."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 3)).pow(2).mean().backward()
    optim.step()
    return {
        "net": net.state_dict(),
        "optim": optim.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "updates": 1,
    }


def run_state() -> dict:
    """Everything else: nested JSON with numpy arrays, numpy scalars and generator states."""
    rng = np.random.default_rng(12345)
    rng.random(3)
    return {
        "step": 1000,
        "episodes": np.int64(17),
        "rng": {"numpy": rng.bit_generator.state, "tasks": [rng.spawn(1)[0].bit_generator.state]},
        "normaliser": {"mean": np.arange(3.0), "count": np.array([4], np.int64)},
        "history": [np.zeros((2, 2), np.float32), {"returns": np.array([1.5, -2.0])}],
        "logger": {"rows": 12, "name": "metrics.csv"},
    }


def test_agent_tensors_and_optimizer_state_round_trip(tmp_path):
    state = agent_state()
    path = checkpoint.save(tmp_path, 10, state, run_state())

    loaded = checkpoint.load(path)

    assert loaded.step == 10
    assert_tree_equal(state, loaded.agent)


def test_nested_state_with_arrays_and_big_int_rng_state_round_trips(tmp_path):
    state = run_state()
    path = checkpoint.save(tmp_path, 10, agent_state(), state)

    loaded = checkpoint.load(path).state

    assert_tree_equal({**state, "episodes": 17}, loaded)
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded["rng"]["numpy"]
    original = np.random.default_rng()
    original.bit_generator.state = state["rng"]["numpy"]
    np.testing.assert_array_equal(restored.random(5), original.random(5))


def test_split_arrays_leaves_a_json_skeleton_and_join_arrays_restores_the_tree():
    arrays: dict[str, np.ndarray] = {}
    skeleton = checkpoint.split_arrays(run_state(), arrays)

    json.dumps(skeleton)  # no numpy left in it
    assert_tree_equal(checkpoint.join_arrays(skeleton, arrays), {**run_state(), "episodes": 17})


def test_arrays_whose_key_paths_look_alike_stay_distinct(tmp_path):
    state = {"eval/return": np.zeros(2), "eval": {"return": np.ones(2)}}
    path = checkpoint.save(tmp_path, 10, agent_state(), state)

    assert_tree_equal(checkpoint.load(path).state, state)


def test_manifest_is_written_with_a_checksum_for_every_file(tmp_path):
    path = checkpoint.save(tmp_path, 10, agent_state(), run_state())

    manifest = json.loads((path / MANIFEST).read_text())

    assert manifest["step"] == 10
    assert manifest["format_version"] == checkpoint.FORMAT_VERSION
    on_disk = {p.name for p in path.iterdir()} - {MANIFEST}
    assert set(manifest["files"]) == on_disk == {"agent.pt", "arrays.npz", "state.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest
    assert checkpoint.verify(path) == manifest


def test_keep_two_prunes_to_the_two_newest_checkpoints(tmp_path):
    for step in (100, 200, 300, 400):
        checkpoint.save(tmp_path, step, agent_state(), run_state(), keep=2)

    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == [
        "step-000000000300",
        "step-000000000400",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000000000300",
        "step-000000000400",
    ]


def simulate_crash_mid_write(root):
    """What a killed save leaves: a temp dir, and a renamed dir whose manifest never landed."""
    tmp = root / ".tmp-step-000000000200-99999"
    tmp.mkdir()
    (tmp / "agent.pt").write_bytes(b"half a file")
    torn = root / "step-000000000300"
    torn.mkdir()
    (torn / "agent.pt").write_bytes(b"half a file")


def test_list_checkpoints_ignores_temp_dirs_and_dirs_without_manifest(tmp_path):
    whole = checkpoint.save(tmp_path, 100, agent_state(), run_state())
    simulate_crash_mid_write(tmp_path)

    assert checkpoint.list_checkpoints(tmp_path) == [whole]


def test_load_latest_after_a_crash_mid_write_loads_the_previous_whole_checkpoint(tmp_path):
    checkpoint.save(tmp_path, 100, agent_state(), run_state())
    simulate_crash_mid_write(tmp_path)

    loaded = checkpoint.load_latest(tmp_path)

    assert loaded.step == 100
    assert_tree_equal(agent_state(), loaded.agent)


def test_load_latest_without_any_checkpoint_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        checkpoint.load_latest(tmp_path)


def test_load_of_a_dir_without_manifest_raises_checkpoint_error(tmp_path):
    path = checkpoint.save(tmp_path, 100, agent_state(), run_state())
    (path / MANIFEST).unlink()

    with pytest.raises(CheckpointError, match="incomplete"):
        checkpoint.load(path)


@pytest.mark.parametrize("name", ["agent.pt", "arrays.npz", "state.json"])
def test_one_flipped_byte_raises_checksum_mismatch_naming_the_file(tmp_path, name):
    path = checkpoint.save(tmp_path, 100, agent_state(), run_state())
    data = bytearray((path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / name).write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match="checksum mismatch") as err:
        checkpoint.load(path)
    assert name in str(err.value)


def test_manifest_that_is_not_json_raises_checkpoint_error(tmp_path):
    path = checkpoint.save(tmp_path, 100, agent_state(), run_state())
    (path / MANIFEST).write_text('{"format_version": 1, "files": ')

    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load(path)


class _RunsShellOnUnpickle:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_agent_file_with_code_on_unpickle_is_refused_without_running_it(tmp_path):
    path = checkpoint.save(tmp_path, 100, agent_state(), run_state())
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    torch.save({"net": _RunsShellOnUnpickle(marker)}, path / "agent.pt")
    # A tamperer who also fixes the manifest gets past the checksums.
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"]["agent.pt"] = hashlib.sha256((path / "agent.pt").read_bytes()).hexdigest()
    (path / MANIFEST).write_text(json.dumps(manifest))

    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        checkpoint.load(path)
    assert not marker.exists()
