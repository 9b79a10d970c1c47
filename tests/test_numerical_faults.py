"""A non-finite loss stops training with an error naming it; the offending batch is saved and
the checkpoints stay the last good ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gmtl_rl import checkpoint
from gmtl_rl.cli import main
from gmtl_rl.core.replay import ReplayStorage

SMOKE = str(Path(__file__).parent.parent / "configs" / "smoke" / "sac_point_robot.yaml")


def test_nan_reward_stops_training_naming_the_loss_and_keeps_good_checkpoints(
    tmp_path, monkeypatch, capsys
):
    real_batch = ReplayStorage.batch
    calls = {"n": 0}

    def poisoned(self, rows):
        calls["n"] += 1
        batch = real_batch(self, rows)
        if calls["n"] == 250:  # after the checkpoint at 200 env steps (learning starts at 100)
            batch = batch._replace(reward=np.full_like(batch.reward, np.nan))
        return batch

    monkeypatch.setattr(ReplayStorage, "batch", poisoned)
    run = tmp_path / "run"
    assert main(["train", SMOKE, "total_steps=400", "--run-dir", str(run)]) == 3
    err = capsys.readouterr().err
    assert "numerical fault" in err and "critic_loss" in err and "Traceback" not in err
    assert "last good checkpoint" in err

    saved = list((run / "faults").glob("batch-update-*.npz"))
    assert len(saved) == 1
    with np.load(saved[0], allow_pickle=False) as data:
        assert np.isnan(data["reward"]).all() and "obs.desired_goal" in data.files

    latest = checkpoint.load_latest(run / "checkpoints")
    assert latest.step == 200
    for value in latest.agent["agent"]["actor"].values():
        assert torch.isfinite(value).all()
