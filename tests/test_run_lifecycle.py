"""A run's lifecycle around its directory: one writer at a time (a live one refuses the
second, a dead one's lock is taken over), evaluation beside a live trainer, a run killed
before its first checkpoint, corrupt / incomplete / non-finite checkpoints, and a resumed
run's replay equal to a straight run's.

Every test here fails on the code before the run-directory refactor (gmtl_rl.run_dir and
training.base): it had no lock, no `--checkpoint`, no eval-step-N/, no restart of a run
without checkpoint, no non-finite check in the trials and online loops' checkpoints, and
PEARL's replay episode ids restarted from 0 after a resume.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gmtl_rl import checkpoint, runner
from gmtl_rl.cli import main
from gmtl_rl.config import load_config
from gmtl_rl.errors import NumericalFault
from gmtl_rl.run_dir import RunDir

SMOKE_DIR = Path(__file__).parent.parent / "configs" / "smoke"
SAC = str(SMOKE_DIR / "sac_point_robot.yaml")
PEARL = str(SMOKE_DIR / "pearl_point_robot.yaml")
# A finished SAC run with two checkpoints (step-100, step-200; checkpoint.keep is 2).
BASE = ["total_steps=200", "checkpoint.every_steps=100", "logging.every_steps=50",
        "eval.max_tasks=2", "threads=1"]  # fmt: skip

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from gmtl_rl.run_dir import RunDir

    with RunDir(sys.argv[1]).writer_lock("fake trainer"):
        print("locked", flush=True)
        time.sleep(600)
    """
)


# -- helpers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """Trained once per module; tests work on copies (`run`)."""
    path = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", SAC, *BASE, "--run-dir", str(path)]) == 0
    return path


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


@pytest.fixture
def lock_holder(run):
    """A live process that holds `run`'s writer lock, as a trainer would; killed at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # "" if the child died
        assert line.strip() == "locked", proc.stderr.read() if proc.poll() is not None else line
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def _snapshot(path: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `path` (the lock file aside)."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _labels(run: Path) -> list[str]:
    return [p.name for p in RunDir(run).checkpoint_dirs()]


def _step_dir(step: int) -> str:
    return f"step-{step:012d}"


def _metrics_without_time(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        del row["time_s"], row["steps_per_s"]
    return rows


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _first_float_tensor(tree) -> tuple[str, torch.Tensor]:
    """(dotted path, tensor) of the first floating tensor in a nested state dict."""
    for key, value in tree.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return str(key), value
        if isinstance(value, dict):
            try:
                path, tensor = _first_float_tensor(value)
            except LookupError:
                continue
            return f"{key}.{path}", tensor
    raise LookupError("no floating tensor")


# -- one writer -----------------------------------------------------------------------------
def test_resume_is_refused_while_another_process_holds_the_lock_and_taken_over_once_it_dies(
    run, lock_holder, capsys
):
    before = _snapshot(run)
    # Before the lock existed, this resume trained the run a second time.
    assert main(["resume", str(run), "total_steps=300"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"process {lock_holder.pid}" in line and "fake trainer" in line and "in use" in line
    assert _snapshot(run) == before  # config.yaml (no new total_steps), metrics, checkpoints

    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait(timeout=30)
    assert main(["resume", str(run), "total_steps=300"]) == 0  # the dead holder's lock is free
    assert _labels(run)[-1] == _step_dir(300)
    assert RunDir(run).is_finished() and RunDir(run).writer() is None


def test_eval_beside_a_live_trainer_writes_eval_step_n_and_leaves_eval_alone(
    run, lock_holder, capsys
):
    eval_before = _snapshot(run / "eval")
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("evaluated step-200\n"), out
    assert (run / "eval-step-200" / "summary.json").is_file()  # old code: always eval/
    assert (run / "eval-step-200" / "adaptation.csv").is_file()
    assert _snapshot(run / "eval") == eval_before
    assert lock_holder.poll() is None  # eval took nothing from the trainer


# -- killed before the first checkpoint -----------------------------------------------------
class _KilledBeforeTraining(Exception):
    pass


def test_run_killed_before_its_first_checkpoint_starts_over_on_resume(
    finished_run, tmp_path, capsys
):
    path = tmp_path / "run"

    def die(_: Path) -> None:
        raise _KilledBeforeTraining

    with pytest.raises(_KilledBeforeTraining):
        runner.train(load_config(SAC, BASE), path, on_start=die)
    assert {"config.yaml", "tasks.json", "versions.json"} <= {p.name for p in path.iterdir()}
    assert not RunDir(path).checkpoint_dirs()

    assert main(["train", SAC, *BASE, "--run-dir", str(path)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "already exists" in line and f"gmtl resume {path}" in line

    # A checkpoint write killed half-way leaves a step dir without manifest: not a checkpoint.
    half_written = RunDir(path).checkpoints / "step-000000000050"
    half_written.mkdir(parents=True)
    (half_written / "agent.pt").write_bytes(b"partial")

    # Old code: "no complete checkpoint to resume from", exit 2.
    assert main(["resume", str(path)]) == 0
    assert not half_written.exists()  # starting over clears what the stopped attempt wrote
    out = capsys.readouterr().out
    assert "resuming from the start" in out and "starts over" in out, out
    assert RunDir(path).is_finished()
    # The same run as one trained straight through (finished_run has the same config).
    straight = _metrics_without_time(finished_run / "metrics.csv")
    assert _metrics_without_time(path / "metrics.csv") == straight


def _kill_after_rows(run: Path, overrides: list[str], rows: int) -> None:
    """`gmtl train` with no checkpoint before the end, SIGKILLed once metrics.csv has `rows`
    data rows: a run killed before its first checkpoint, after it logged."""
    cmd = [sys.executable, "-m", "gmtl_rl.cli", "train", SAC, *overrides, "--run-dir", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            metrics = run / "metrics.csv"
            if metrics.exists() and len(metrics.read_text().splitlines()) > rows:
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert len((run / "metrics.csv").read_text().splitlines()) > rows
    assert not RunDir(run).checkpoint_dirs()


# A budget it never reaches and no periodic checkpoint; the resume puts BASE's back.
UNREACHED = [*BASE, "total_steps=100000", "checkpoint.every_steps=0"]
BACK_TO_BASE = ["total_steps=200", "checkpoint.every_steps=100"]


def test_a_killed_attempts_metrics_rows_are_dropped_when_the_run_starts_over(
    finished_run, tmp_path
):
    path = tmp_path / "run"
    _kill_after_rows(path, UNREACHED, rows=3)
    assert main(["resume", str(path), *BACK_TO_BASE]) == 0
    straight = _metrics_without_time(finished_run / "metrics.csv")
    assert _metrics_without_time(path / "metrics.csv") == straight


def test_a_killed_attempts_tensorboard_events_are_dropped_when_the_run_starts_over(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = tmp_path / "run"
    _kill_after_rows(path, [*UNREACHED, "logging.tensorboard=true"], rows=3)
    assert main(["resume", str(path), *BACK_TO_BASE]) == 0
    events = EventAccumulator(str(path / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("episodes")]
    assert steps == [50, 100, 150, 200]  # once each, as in a run trained straight through


# -- corrupt, incomplete and non-finite checkpoints -------------------------------------------
def test_corrupt_newest_checkpoint_is_refused_naming_the_older_one_which_resumes(run, capsys):
    agent = run / "checkpoints" / _step_dir(200) / "agent.pt"
    data = bytearray(agent.read_bytes())
    data[len(data) // 2] ^= 0xFF
    agent.write_bytes(bytes(data))

    assert main(["resume", str(run), "total_steps=300"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "checksum mismatch" in line and "--checkpoint step-100" in line, line

    assert main(["resume", str(run), "total_steps=300", "--checkpoint", "step-100"]) == 0
    assert "(resuming from step-100)" in capsys.readouterr().out
    assert _labels(run) == [_step_dir(200), _step_dir(300)]
    checkpoint.load(run / "checkpoints" / _step_dir(200))  # re-written whole
    assert RunDir(run).is_finished()


def test_eval_skips_a_newest_checkpoint_without_manifest_and_says_so(run, capsys):
    (run / "checkpoints" / _step_dir(200) / "manifest.json").unlink()
    assert main(["eval", str(run)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("evaluated step-100; skipped step-200: incomplete"), first


def test_resume_skips_a_newest_checkpoint_without_manifest_and_says_so(run, capsys):
    (run / "checkpoints" / _step_dir(200) / "manifest.json").unlink()
    assert main(["resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "(resuming from step-100; skipped step-200: incomplete" in out, out
    assert _labels(run) == [_step_dir(100), _step_dir(200)]  # step-200 re-written whole
    assert not RunDir(run).incomplete_checkpoints() and RunDir(run).is_finished()


def test_eval_refuses_a_checkpoint_whose_agent_is_non_finite(run, capsys):
    root = run / "checkpoints"
    ckpt = checkpoint.load(root / _step_dir(200))
    name, tensor = _first_float_tensor(ckpt.agent["agent"])
    tensor.view(-1)[0] = float("nan")
    checkpoint.save(root, 201, ckpt.agent, ckpt.state, keep=5)  # a whole, checksummed checkpoint
    before = _snapshot(run)

    # Old code evaluated the NaN agent and wrote its curve.
    assert main(["eval", str(run)]) == 3
    line = _error_line(capsys.readouterr().err)
    assert _step_dir(201) in line and "non-finite" in line and name in line, line
    assert _snapshot(run) == before  # no eval files written, none replaced


# -- every loop checks the agent before checkpointing -----------------------------------------
def _poison_rl2(run) -> str:
    name, param = next(iter(run.agent.net.named_parameters()))
    with torch.no_grad():
        param.view(-1)[0] = float("nan")
    return f"net.{name}"


def _poison_option_critic(run) -> str:
    run.agent.q_u.flat[0] = np.nan  # tabular: numpy arrays in the loop state
    return "agent.q_u"


@pytest.mark.parametrize(
    ("config", "poison"),
    [
        ("rl2_point_robot.yaml", _poison_rl2),
        ("option_critic_four_rooms.yaml", _poison_option_critic),
    ],
)
def test_trials_and_online_loops_refuse_to_checkpoint_a_non_finite_agent(tmp_path, config, poison):
    # Before, the trials (RL²) and online (option-critic) loops wrote such a checkpoint.
    cfg = load_config(SMOKE_DIR / config, [])
    path = RunDir(tmp_path / "run")
    train = runner._build_run(cfg, path, cfg.env.build())
    try:
        name = poison(train)
        with pytest.raises(NumericalFault, match="non-finite") as fault:
            train.save_checkpoint()
        assert name in str(fault.value)
    finally:
        train.close()
    assert not path.checkpoints.exists() or not any(path.checkpoints.iterdir())


# -- a resumed run's replay is the straight run's ----------------------------------------------
REPLAY_CASES = {
    # PEARL restarts its envs at every collection and saves only the sampler's counters;
    # before, replay episode ids restarted from 0 after a resume.
    "pearl": (PEARL, ["checkpoint.every_steps=0", "agent.updates_per_iteration=4"], 120, 200),
    # Off-policy SAC: stopped mid-episode (65 steps per env, horizon 20).
    "sac": (SAC, ["checkpoint.every_steps=0", "eval.max_tasks=2", "threads=1"], 130, 240),
}


@pytest.mark.parametrize("case", list(REPLAY_CASES))
def test_replay_of_a_run_resumed_in_a_new_process_equals_the_straight_runs(tmp_path, case):
    config, common, split_at, total = REPLAY_CASES[case]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", config, *common, f"total_steps={total}", "--run-dir", str(straight)]) == 0
    assert main(["train", config, *common, f"total_steps={split_at}", "--run-dir", str(split)]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "gmtl_rl.cli", "resume", str(split), f"total_steps={total}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    def replay(run: Path) -> tuple[int, dict[str, np.ndarray]]:
        final = checkpoint.load_latest(run / "checkpoints")  # PEARL ends on a whole episode
        assert final.state["finished"] and final.step >= total and final.replay_path is not None
        with np.load(final.replay_path, allow_pickle=False) as data:
            return final.step, {k: data[k] for k in data.files}

    (step, expected), (resumed_step, got) = replay(straight), replay(split)
    assert resumed_step == step
    assert "col.episode_id" in expected and set(got) == set(expected)
    for key, column in expected.items():
        assert got[key].dtype == column.dtype and got[key].shape == column.shape, key
        if np.issubdtype(column.dtype, np.floating):
            np.testing.assert_allclose(got[key], column, rtol=0, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], column, err_msg=key)
    # The ids are really per episode (a restart from 0 would reuse them).
    ids = expected["col.episode_id"]
    assert len(np.unique(ids)) == expected["col.reward"].shape[0] // 20  # horizon 20
