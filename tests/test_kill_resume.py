"""SIGKILL at arbitrary moments loses nothing: resume completes and ends where a run that was
never interrupted ends (CPU, deterministic; parameters within 1e-6)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from trees import assert_tree_equal

from gmtl_rl import checkpoint
from gmtl_rl.cli import main

SMOKE = str(Path(__file__).parent.parent / "configs" / "smoke" / "sac_point_robot.yaml")
COMMON = ["total_steps=700", "checkpoint.every_steps=100", "logging.every_steps=50"]


def _kill_when(run: Path, cmd: list[str], metrics_rows: int) -> None:
    """Start `cmd`, SIGKILL it once metrics.csv has `metrics_rows` data rows (or it ends)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.csv"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) > metrics_rows:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)


def test_run_killed_twice_then_resumed_matches_an_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    assert main(["train", SMOKE, *COMMON, "--run-dir", str(straight)]) == 0

    run = tmp_path / "killed"
    cli = [sys.executable, "-m", "gmtl_rl.cli"]
    _kill_when(run, [*cli, "train", SMOKE, *COMMON, "--run-dir", str(run)], metrics_rows=5)
    after_first = checkpoint.load_latest(run / "checkpoints")
    assert not after_first.state["finished"]  # it really was killed mid-run
    _kill_when(run, [*cli, "resume", str(run)], metrics_rows=9)
    after_second = checkpoint.load_latest(run / "checkpoints")
    assert not after_second.state["finished"] and after_second.step > after_first.step
    assert main(["resume", str(run)]) == 0

    final = checkpoint.load_latest(run / "checkpoints")
    assert final.state["finished"] and final.step == 700
    expected = checkpoint.load_latest(straight / "checkpoints")
    assert_tree_equal(expected.agent["agent"], final.agent["agent"], atol=1e-6)
    steps = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) + 1  # + the final eval row


LAUNCHER = """
import sys, time
from pathlib import Path
import gmtl_rl.checkpoint as ckpt

marker, pause_at = Path(sys.argv[1]), int(sys.argv[2])
write = ckpt._fsync_write
seen = {"state": 0}

def write_then_hang(path, data):
    write(path, data)
    if path.name == "state.json":
        seen["state"] += 1
        if seen["state"] == pause_at:  # inside a checkpoint: files half written, no manifest
            marker.write_text(str(path.parent))
            time.sleep(600)

ckpt._fsync_write = write_then_hang
from gmtl_rl.cli import main
sys.exit(main(sys.argv[3:]))
"""


def test_kill_during_a_checkpoint_write_keeps_the_previous_one_and_resume_matches(tmp_path):
    straight = tmp_path / "straight"
    assert main(["train", SMOKE, *COMMON, "--run-dir", str(straight)]) == 0

    run, marker = tmp_path / "killed", tmp_path / "inside-checkpoint"
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    cmd = [sys.executable, str(launcher), str(marker), "3", "train", SMOKE, *COMMON,
           "--run-dir", str(run)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the run never reached its third checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    half_written = Path(marker.read_text())
    assert half_written.name.startswith(".tmp-step-") and half_written.exists()
    latest = checkpoint.load_latest(run / "checkpoints")  # the previous one, whole
    assert latest.step == 200 and not latest.state["finished"]
    assert main(["resume", str(run)]) == 0
    assert not half_written.exists()  # the stale temp dir is cleaned up
    final = checkpoint.load_latest(run / "checkpoints")
    assert final.state["finished"] and final.step == 700
    expected = checkpoint.load_latest(straight / "checkpoints")
    assert_tree_equal(expected.agent["agent"], final.agent["agent"], atol=1e-6)
