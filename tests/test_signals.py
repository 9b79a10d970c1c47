"""SIGINT/SIGTERM: finish the update, write a checkpoint, exit 128 + signal; resume continues."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gmtl_rl import checkpoint
from gmtl_rl.cli import main

SMOKE = str(Path(__file__).parent.parent / "configs" / "smoke" / "sac_point_robot.yaml")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_a_checkpoint_and_the_run_resumes(tmp_path, sig):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gmtl_rl.cli", "train", SMOKE, "total_steps=1000000",
         "logging.every_steps=50", "checkpoint.every_steps=0", "--run-dir", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    metrics = run / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until training has logged past the warm-up
        if metrics.exists() and len(metrics.read_text().splitlines()) > 3:
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by signal {sig.name}" in err and "Traceback" not in err
    ckpt = checkpoint.load_latest(run / "checkpoints")
    assert 150 <= ckpt.step < 1_000_000 and not ckpt.state["finished"]
    assert main(["resume", str(run), f"total_steps={ckpt.step + 100}"]) == 0
    assert checkpoint.load_latest(run / "checkpoints").state["finished"]
