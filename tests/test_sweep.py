"""`gmtl sweep` (issue 8): grid axes x seeds as normal run directories, run by local processes
or as Ray Tune trials on a local Ray; a failed trial is reported without stopping the others;
`--resume` reruns only unfinished trials; the aggregate is computed across seeds."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from gmtl_rl import cli, sweep
from gmtl_rl.evaluation.adaptation import read_csv
from gmtl_rl.run_dir import sweep_lock_file

SMOKE = "configs/smoke/sac_point_robot.yaml"
# The smallest run that still checkpoints mid-way (step 100) and evaluates at the end.
TINY = [
    "total_steps=200",
    "checkpoint.every_steps=100",
    "eval.episodes=1",
    "eval.bootstrap_resamples=200",
]
RUN_FILES = ("config.yaml", "tasks.json", "versions.json", "metrics.csv", "eval/summary.json")


def _sweep(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["sweep", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_complete_run(run_dir: Path, seed: int) -> None:
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), f"{run_dir}/{name} missing"
    assert sweep.trial_state(run_dir) == "finished"
    assert f"seed: {seed}\n" in (run_dir / "config.yaml").read_text()


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> tuple[Path, int, str, str]:
    """Two seeds of a smoke config and a second combination whose runs fail at start-up
    (an unknown torch device passes config validation but not the run's)."""
    path = tmp_path_factory.mktemp("local") / "sweep"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(
            ["sweep", SMOKE, "--seeds", "0-1", "--backend", "local", "--max-concurrent", "2",
             "--sweep-dir", str(path), *TINY, "device=cpu,nosuchdevice"]
        )  # fmt: skip
    return path, code, out.getvalue(), err.getvalue()


def test_local_sweep_gives_complete_run_dirs_and_reports_failed_trials(local_sweep):
    path, code, out, err = local_sweep
    for seed in (0, 1):
        _assert_complete_run(path / "trials" / f"c0-s{seed}", seed)
    assert code == 1  # some trials failed
    for seed in (0, 1):  # each failure named with its exit status and log
        log = path / "logs" / f"c1-s{seed}.log"
        assert f"c1-s{seed} FAILED (exit 2)" in out and str(log) in out
        assert "device: 'nosuchdevice' is not a torch device" in log.read_text()
    assert "2 of 4 trials failed (c1-s0, c1-s1)" in err and "--resume" in err


def test_aggregate_is_the_iqm_over_seeds_and_tasks_of_the_final_episode(local_sweep):
    path = local_sweep[0]
    rows = [r for s in (0, 1) for r in read_csv(path / f"trials/c0-s{s}/eval/adaptation.csv")]
    # eval.repeats is 1: one value per (seed, task).
    expected = scipy.stats.trim_mean([r.episode_return for r in rows], 0.25)
    with open(path / "aggregate.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["label"] for r in table] == ["c0: device=cpu", "c1: device=nosuchdevice"]
    first, failed = table
    assert first["seeds"] == "0 1" and first["missing"] == ""
    assert float(first["return_iqm"]) == pytest.approx(expected)
    low, high = float(first["return_iqm_low"]), float(first["return_iqm_high"])
    assert low <= expected <= high and low < high
    assert failed["return_iqm"] == "" and failed["missing"] == "c1-s0 c1-s1"
    doc = json.loads((path / "aggregate.json").read_text())
    assert doc["combinations"][0]["curve_return"][0]["iqm"] == pytest.approx(expected)
    assert (path / "adaptation.png").stat().st_size > 0


def test_trials_are_ordinary_runs_for_resume_and_plot(local_sweep, capsys, tmp_path):
    path = local_sweep[0]
    assert cli.main(["resume", str(path / "trials/c0-s0")]) == 0
    assert "already finished" in capsys.readouterr().out
    runs = [str(path / f"trials/c0-s{s}") for s in (0, 1)]
    assert cli.main(["plot", *runs, "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_resume_reruns_only_unfinished_trials(local_sweep, capsys, tmp_path):
    path = tmp_path / "sweep"
    shutil.copytree(local_sweep[0], path)
    # c0-s1 was "killed" after its mid-run checkpoint: drop the final one.
    checkpoints = sorted((path / "trials/c0-s1/checkpoints").glob("step-*"))
    shutil.rmtree(checkpoints[-1])
    assert sweep.trial_state(path / "trials/c0-s1") == "resumable"
    finished_log = (path / "logs/c0-s0.log").read_text()
    code, out, _ = _sweep(capsys, "--resume", str(path))
    assert "4 trials (2 combinations x 2 seeds); 1 finished, 3 to run" in out
    assert (path / "logs/c0-s0.log").read_text() == finished_log  # not run again
    assert f"$ gmtl resume {path.resolve()}/trials/c0-s1" in (path / "logs/c0-s1.log").read_text()
    _assert_complete_run(path / "trials/c0-s1", 1)
    assert code == 1  # the device=nosuchdevice trials were rerun and failed again


def test_a_trial_cut_before_its_first_checkpoint_starts_over(tmp_path):
    spec, _ = sweep.plan(SMOKE, TINY, (0,), "local", None, 1)
    path = sweep.create(spec, SMOKE, tmp_path / "sweep")
    partial = path / "trials" / "c0-s0"
    partial.mkdir()
    (partial / "config.yaml").write_text("seed: 0\n")
    assert sweep.trial_state(partial) == "fresh"
    jobs, finished = sweep.jobs_to_run(path, spec)
    assert finished == [] and not partial.exists()  # removed, so `gmtl train` may use it
    assert jobs[0].command[0] == "train" and jobs[0].command[-1] == str(partial.resolve())


# A process that takes a lock and sleeps until killed: a live (or, once SIGKILLed, dead) sweep.
HOLD_LOCK = """
import sys, time
from pathlib import Path
from gmtl_rl.run_dir import WriterLock
with WriterLock(Path(sys.argv[1]), "gmtl sweep --resume (the first one)"):
    print("locked", flush=True)
    time.sleep(600)
"""


def _lock_holder(sweep_dir: Path) -> subprocess.Popen[str]:
    lock = str(sweep_lock_file(sweep_dir))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, lock], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def _failing_sweep(tmp_path: Path) -> Path:
    """A created, never run sweep of one trial that fails at start-up (in seconds)."""
    spec, _ = sweep.plan(SMOKE, [*TINY, "device=nosuchdevice"], (0,), "local", None, 1)
    return sweep.create(spec, SMOKE, tmp_path / "sweep")


@pytest.mark.parametrize("option", ["--resume", "--aggregate"])
def test_a_sweep_another_live_process_runs_is_refused_naming_it(option, capsys, tmp_path):
    path = _failing_sweep(tmp_path)
    holder = _lock_holder(path)
    try:
        code, out, err = _sweep(capsys, option, str(path))
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and len(err.strip().splitlines()) == 1 and out == ""
    assert f"is in use by process {holder.pid} (gmtl sweep --resume (the first one))" in err
    assert not any((path / "trials").iterdir()) and not (path / "aggregate.csv").exists()


def test_a_lock_left_by_a_killed_sweep_is_taken_over(capsys, tmp_path):
    path = _failing_sweep(tmp_path)
    holder = _lock_holder(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = sweep_lock_file(path)
    assert f'"pid": {holder.pid}' in lock.read_text()  # the dead owner's record stays behind
    code, out, err = _sweep(capsys, "--resume", str(path))
    assert "in use" not in err and "0 finished, 1 to run" in out
    assert code == 1  # the trial ran (and failed, as this sweep's trials do)
    assert lock.read_text() == ""  # taken over, and released at the end


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_gives_complete_run_dirs_and_the_aggregate(local_ray, capsys, tmp_path):
    path = tmp_path / "sweep"
    code, out, _ = _sweep(
        capsys, SMOKE, "--seeds", "0-1", "--backend", "ray", "--sweep-dir", str(path), *TINY
    )
    assert code == 0, out
    for seed in (0, 1):
        _assert_complete_run(path / "trials" / f"c0-s{seed}", seed)
    assert json.loads((path / "sweep.json").read_text())["backend"] == "ray"
    with open(path / "aggregate.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["seeds"] == "0 1" and np.isfinite(float(row["return_iqm"]))
    assert local_ray.is_initialized()  # a Ray the sweep did not start is left running


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["agent.lrr=1,2"], "agent.lrr"),
        (["--seeds", "3-1"], "--seeds '3-1': range 3-1 runs backwards"),
        (["--seeds", "0-x"], "--seeds '0-x': expected a range like 0-9"),
        (["seed=1,2"], "give seeds with --seeds"),
        (["experiment=a,b"], "experiment cannot be a grid axis"),
        (["agent.hidden=[64,64"], "unclosed"),
        (["agent.lr=0.1,"], "an empty value in a grid axis"),
        (["agent.lr=1", "agent.lr=2"], "agent.lr is given twice"),
        (["agent.lr=0.001,-1"], "trial c1-s0 (agent.lr=-1): agent.lr"),
        (["--max-concurrent", "0"], "--max-concurrent must be >= 1"),
    ],
)
def test_bad_input_is_a_one_line_exit_2_before_anything_runs(capsys, tmp_path, args, message):
    path = tmp_path / "sweep"
    code, _, err = _sweep(capsys, SMOKE, "--backend", "local", "--sweep-dir", str(path), *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not path.exists()


def test_ray_backend_without_ray_names_the_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, _, err = _sweep(capsys, SMOKE, "--backend", "ray", "--sweep-dir", str(tmp_path / "s"))
    assert code == 2 and "pip install 'gmtl-rl[ray]'" in err
    assert len(err.strip().splitlines()) == 1


def test_grid_values_split_on_top_level_commas_only():
    assert sweep.split_values("agent.hidden=[64,64],[256,256]") == ["[64,64]", "[256,256]"]
    assert sweep.split_values("env.goal={x: 1, y: 2}") == ["{x: 1, y: 2}"]
    assert sweep.split_values("env.note='a,b'") == ["'a,b'"]
    assert sweep.parse_seeds("0-2,7") == (0, 1, 2, 7)


@pytest.mark.slow  # ~1 min: a whole trial, then a SIGKILLed sweep mid-way through the second
def test_a_sigkilled_sweep_resumes_and_reruns_only_the_unfinished_trial(tmp_path, capsys):
    path = tmp_path / "sweep"
    args = ["total_steps=600", "checkpoint.every_steps=100", "eval.episodes=1"]
    sweep_proc = subprocess.Popen(
        [sys.executable, "-m", "gmtl_rl.cli", "sweep", SMOKE, "--seeds", "0-1", "--backend",
         "local", "--max-concurrent", "1", "--sweep-dir", str(path), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    first, second = path / "trials/c0-s0", path / "trials/c0-s1"
    deadline = time.monotonic() + 300
    while not (sweep.trial_state(first) == "finished" and any(second.glob("checkpoints/step-*"))):
        assert time.monotonic() < deadline and sweep_proc.poll() is None
        time.sleep(0.2)
    sweep_proc.send_signal(signal.SIGKILL)
    sweep_proc.wait()
    log = path / "logs/c0-s1.log"
    while "checkpoint written" not in log.read_text():  # its trial got SIGTERM from the kernel
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert sweep.trial_state(second) == "resumable"
    finished_log = (path / "logs/c0-s0.log").read_text()
    code, out, _ = _sweep(capsys, "--resume", str(path))
    assert code == 0 and "1 finished, 1 to run" in out
    assert (path / "logs/c0-s0.log").read_text() == finished_log
    _assert_complete_run(second, 1)
