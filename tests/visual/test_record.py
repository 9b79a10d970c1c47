"""`gmtl record`: a trial of a smoke run as a video (MuJoCo, Meta-World) or a picture (point
robot, Four Rooms, gridworld), the evaluator's own trial, what agents expose (PEARL's posterior,
VariBAD's belief over goal cells), and one-line usage errors."""

from __future__ import annotations

import csv
import itertools
import math
import os
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection
from PIL import Image, ImageSequence

from gmtl_rl import checkpoint
from gmtl_rl.agents.varibad import VariBAD, build_varibad
from gmtl_rl.cli import main
from gmtl_rl.core.records import EnvSpec
from gmtl_rl.envs import make
from gmtl_rl.errors import UsageError
from gmtl_rl.runner import load_run_config
from gmtl_rl.visual import offscreen  # MUJOCO_GL was chosen by tests/conftest.py
from gmtl_rl.visual.beliefs import CellBelief, LatentBelief
from gmtl_rl.visual.frames import EnvFrames, frame_source
from gmtl_rl.visual.pictures import trial_figure
from gmtl_rl.visual.record import RecordRequest, parse_size, record
from gmtl_rl.visual.trial import TrialRecording, task_text
from gmtl_rl.visual.video import GifWriter, Mp4Writer, label_frame, option_hex

SMOKE = Path(__file__).parents[2] / "configs" / "smoke"
HORIZON = 20  # the smoke configs' episode length (cheetah-vel, ML1, point robot)


def _train(factory: pytest.TempPathFactory, config: str) -> Path:
    run = factory.mktemp(config) / "run"
    assert main(["train", str(SMOKE / f"{config}.yaml"), "--run-dir", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def point_robot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory, "pearl_point_robot")


@pytest.fixture(scope="module")
def cheetah(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory, "pearl_cheetah_vel")


@pytest.fixture(scope="module")
def metaworld(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory, "pearl_ml1")


@pytest.fixture(scope="module")
def four_rooms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory, "option_critic_four_rooms")


@pytest.fixture(scope="module")
def varibad_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory, "varibad_gridworld")


@pytest.fixture
def rendering() -> None:
    reason = offscreen.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no offscreen OpenGL for MuJoCo on this machine: {reason}")


def _mp4_frames(path: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return [np.frombuffer(b, np.uint8).reshape(height, width, 3) for b in reader]


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]


def _assert_filmed(frames: list[np.ndarray], count: int, size: tuple[int, int]) -> None:
    """`count` frames of `size`, none blank, each labelled, and the scene moving."""
    width, height = size
    assert len(frames) == count
    for i, frame in enumerate(frames):
        assert frame.shape == (height, width, 3), i
        assert frame.std() > 10, f"frame {i} is blank"
        # The label: white text on a dark band, top left (the scenes have no white there).
        band = frame[: height // 5, : 2 * width // 3].astype(int)
        assert (band.min(-1) > 200).sum() >= 20, f"frame {i} has no label"
    below = [f[height // 4 :].astype(int) for f in frames]
    assert max(np.abs(a - b).max() for a, b in itertools.pairwise(below)) > 30


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["record", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gmtl record: error: "), err
    return err


# -- videos of the MuJoCo and Meta-World families ---------------------------------------------
def test_mujoco_trial_is_filmed_one_labelled_frame_per_state(rendering, cheetah, tmp_path, capsys):
    out = tmp_path / "cheetah.mp4"
    assert main(["record", str(cheetah), "--out", str(out), "--episodes", "2"]) == 0
    # Each episode: its reset state and the state after each of its 20 steps.
    _assert_filmed(_mp4_frames(out), 2 * (HORIZON + 1), (320, 240))
    assert f"wrote {out} ({2 * (HORIZON + 1)} frames" in capsys.readouterr().out


def test_every_nth_step_is_filmed_and_each_final_state(rendering, cheetah, tmp_path):
    out = tmp_path / "cheetah.gif"
    argv = ["--out", str(out), "--episodes", "1", "--every", "7", "--size", "160x120"]
    assert main(["record", str(cheetah), *argv]) == 0
    # t = 0, 7, 14 and the final state t = 20.
    _assert_filmed(_gif_frames(out), math.ceil(HORIZON / 7) + 1, (160, 120))


def test_metaworld_trial_is_filmed(rendering, metaworld, tmp_path):
    out = tmp_path / "push.gif"
    assert main(["record", str(metaworld), "--out", str(out), "--episodes", "1"]) == 0
    _assert_filmed(_gif_frames(out), HORIZON + 1, (320, 240))


# -- the evaluator's trial ----------------------------------------------------------------------
def test_recorded_trial_is_the_evaluators_trial(point_robot, tmp_path):
    with open(point_robot / "eval" / "adaptation.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["repeat"] == "0"]
    for index in (0, 1):  # task 1 runs beside task 0, in the evaluation's second env
        outcome = record(RecordRequest(point_robot, tmp_path / f"t{index}.png", task=index))
        evaluated = [float(r["return"]) for r in rows if r["task_index"] == str(index)]
        np.testing.assert_allclose(outcome.returns, evaluated, rtol=0, atol=1e-9)
        assert not outcome.recording.alone


def test_pearl_trial_records_its_posterior_after_every_episode(point_robot, tmp_path):
    outcome = record(RecordRequest(point_robot, tmp_path / "trial.png"))
    beliefs = outcome.recording.beliefs
    assert [b.episode for b in beliefs] == list(range(1, outcome.recording.episodes + 1))
    assert all(isinstance(b, LatentBelief) for b in beliefs)
    # eval_exploration_episodes = 1: the first episode acts on a prior z, the rest on posteriors.
    assert [b.z_source for b in beliefs] == ["prior"] + ["posterior"] * (len(beliefs) - 1)


def _varibad_agent(run: Path) -> VariBAD:
    config = load_run_config(run)
    env = config.env.build().make_env()
    agent = build_varibad(config.agent, EnvSpec(env.observation_space, env.action_space, 1))
    agent.load_state_dict(checkpoint.load_latest(run / "checkpoints").agent["agent"])
    return agent


def _decoded_goal_cells(agent: VariBAD, recording: TrialRecording, k: int) -> np.ndarray:
    """By hand: the encoder over the trial's transitions up to the end of episode k (s' with the
    done bit, the action index, r), then p(r = 1 | m = μ, cell) over the cells, normalised."""
    steps = [s for s in recording.steps if s.episode <= k]
    next_state = torch.tensor([[*s.next_obs, float(s.done)] for s in steps], dtype=torch.float32)
    action = torch.tensor([[float(np.asarray(s.action).reshape(-1)[0])] for s in steps])
    reward = torch.tensor([s.reward for s in steps], dtype=torch.float32)
    with torch.no_grad():
        hidden = agent.encoder.sequence(action[None], next_state[None], reward[None])[0, -1]
        assert agent.reward_decoder is not None
        p = torch.sigmoid(agent.reward_decoder.net(agent.encoder.heads(hidden)[0]).double())
    return (p / p.sum()).numpy()


def test_varibad_trial_records_its_belief_over_goal_cells(varibad_grid, tmp_path):
    outcome = record(RecordRequest(varibad_grid, tmp_path / "trial.png"))
    recording, size = outcome.recording, load_run_config(varibad_grid).env.build().options.size
    beliefs = recording.beliefs
    # The prior (k = 0), then one belief after every episode: distributions over the cells.
    assert [b.episode for b in beliefs] == list(range(recording.episodes + 1))
    for b in beliefs:
        assert isinstance(b, CellBelief) and b.p.shape == (size, size)
        assert (b.p >= 0).all() and b.p.sum() == pytest.approx(1.0, abs=1e-9)
    # Each is the reward decoder at the belief's mean after the trial's transitions so far.
    agent = _varibad_agent(varibad_grid)
    for b in beliefs[1:]:
        expected = _decoded_goal_cells(agent, recording, b.episode).reshape(size, size)
        np.testing.assert_allclose(b.p, expected, rtol=1e-5, atol=1e-9)
    # Reading the belief draws nothing: the trial is still the evaluator's.
    with open(varibad_grid / "eval" / "adaptation.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["repeat"] == "0" and r["task_index"] == "0"]
    np.testing.assert_allclose(outcome.returns, [float(r["return"]) for r in rows], atol=1e-9)


# -- pictures -----------------------------------------------------------------------------------
def test_point_robot_picture_draws_each_episode_path_and_the_goal(point_robot, tmp_path):
    out = tmp_path / "trial.png"
    recording = record(RecordRequest(point_robot, out, episodes=3)).recording
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape[0] > 400 and picture.std() > 20
    distribution = load_run_config(point_robot).env.build()
    fig = trial_figure(recording, distribution, "title")
    plane, belief = fig.axes  # the paths, and PEARL's posterior spread
    paths = [line for line in plane.lines if line.get_label().startswith("k=")]
    assert [p.get_label().split(":")[0] for p in paths] == ["k=1", "k=2", "k=3"]
    for k, line in enumerate(paths, start=1):
        steps = recording.episode(k)
        expected = np.array([steps[0].obs, *[s.next_obs for s in steps]])
        assert len(steps) == HORIZON
        np.testing.assert_allclose(np.asarray(line.get_xydata()), expected, atol=1e-6)
    goal = recording.task.array("goal")
    markers = [c for c in plane.collections if c.get_label().startswith("hidden goal")]
    np.testing.assert_allclose(markers[0].get_offsets()[0], goal)
    assert "PEARL" in belief.get_title()


def test_option_critic_picture_colours_each_step_by_its_option(four_rooms, tmp_path):
    out = tmp_path / "rooms.png"
    outcome = record(RecordRequest(four_rooms, out, episodes=2))
    steps = outcome.recording.steps
    assert steps and all(s.option is not None and s.option >= 0 for s in steps)
    distribution = load_run_config(four_rooms).env.build()
    fig = trial_figure(outcome.recording, distribution, "title")
    assert len(fig.axes) == 2  # one panel per episode
    for k, ax in enumerate(fig.axes, start=1):
        (segments,) = [c for c in ax.collections if isinstance(c, LineCollection)]
        expected = [option_hex(int(s.option)) for s in outcome.recording.episode(k)]
        drawn = ["#{:02x}{:02x}{:02x}".format(*(np.round(c[:3] * 255).astype(int)))
                 for c in segments.get_colors()]  # fmt: skip
        assert drawn == expected
    assert any("learning frozen" in n for n in outcome.notes)


def test_gridworld_picture_draws_each_episode_over_varibads_belief(varibad_grid, tmp_path):
    out = tmp_path / "grid.png"
    recording = record(RecordRequest(varibad_grid, out)).recording
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape[1] > 1000 and picture.std() > 20
    fig = trial_figure(recording, load_run_config(varibad_grid).env.build(), "title")
    # One heat map per belief: the prior's panel, then one panel per episode; a colour bar.
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == recording.episodes + 1 == len(fig.axes) - 1
    assert "prior" in maps[0].get_title()
    for ax, belief in zip(maps, recording.beliefs, strict=True):
        assert isinstance(belief, CellBelief)
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), belief.p.T)
        goal = [c for c in ax.collections if c.get_label().startswith("goal")]
        np.testing.assert_allclose(goal[0].get_offsets()[0], recording.task["goal"])
    for k, ax in enumerate(maps[1:], start=1):
        (path,) = [line for line in ax.lines if line.get_label() == f"k={k}"]
        steps = recording.episode(k)
        cells = np.array([steps[0].obs, *[s.next_obs for s in steps]])
        np.testing.assert_array_equal(np.asarray(path.get_xydata()), cells)
        assert ax.get_title().startswith(f"k={k}: return")


# -- usage errors: one line, exit status 2, nothing written --------------------------------------
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--out", "{tmp}/trial.avi"], "unknown format '.avi'; valid: .mp4 or .gif"),
        (["--out", "{tmp}/trial.png", "--task", "99"], "--task 99: the test split of point-robot"),
        (["--out", "{tmp}/trial.png", "--split", "val"], "--split val: valid splits are test"),
        (["--out", "{tmp}/trial.mp4"], "point-robot has no renderer; write a picture"),
        (["--out", "{tmp}/trial.png", "--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["--out", "{tmp}/trial.gif", "--size", "big"], "--size 'big': expected WIDTHxHEIGHT"),
    ],
)
def test_bad_request_is_one_line_and_exit_2(point_robot, tmp_path, capsys, argv, says):
    err = _error(capsys, [str(point_robot), *[a.format(tmp=tmp_path) for a in argv]])
    assert says in err
    assert not list(tmp_path.iterdir())


def test_run_without_a_checkpoint_is_refused(point_robot, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "tasks.json"):
        shutil.copy(point_robot / name, bare / name)
    err = _error(capsys, [str(bare), "--out", str(tmp_path / "t.png")])
    assert "no complete checkpoint to record" in err


def test_a_directory_that_is_no_run_is_refused(tmp_path, capsys):
    assert "is not a run directory" in _error(capsys, [str(tmp_path), "--out", "t.png"])


# -- pieces ---------------------------------------------------------------------------------------
def test_label_is_drawn_in_the_top_left_band_only():
    image = np.full((120, 160, 3), 90, np.uint8)
    labelled = label_frame(image, ["k=1/3  t=0  return 0.00", "test task 0"], swatch=(255, 0, 0))
    changed = np.argwhere((labelled != image).any(-1))
    assert len(changed) > 100
    assert changed[:, 0].max() < 40  # two lines of a 9-pixel font, with padding
    assert (labelled == (255, 0, 0)).all(-1).any()  # the swatch


def test_gif_keeps_size_and_frame_rate(tmp_path):
    writer = GifWriter(tmp_path / "a.gif", (64, 48), fps=10)
    for shade in (0, 120, 240):
        writer.append(np.full((48, 64, 3), shade, np.uint8))
    path = writer.close()
    with Image.open(path) as gif:
        assert (gif.n_frames, gif.size, gif.info["duration"]) == (3, (64, 48), 100)


def test_mp4_round_trips_and_needs_an_even_size(tmp_path):
    writer = Mp4Writer(tmp_path / "a.mp4", (64, 48), fps=10)
    for shade in (0, 120, 240):
        writer.append(np.full((48, 64, 3), shade, np.uint8))
    frames = _mp4_frames(writer.close())
    # H.264 is lossy (and maps RGB to limited-range YUV): shades come back within a few levels.
    np.testing.assert_allclose([f.mean() for f in frames], [0, 120, 240], atol=8)
    with pytest.raises(UsageError, match="even width and height"):
        Mp4Writer(tmp_path / "b.mp4", (65, 48), fps=10)
    assert not (tmp_path / "b.mp4").exists()


def test_an_env_with_its_own_rgb_render_is_letterboxed_to_the_size():
    env = gym.make("CartPole-v1")  # draws itself (600x400), no MuJoCo, no OpenGL
    env.reset(seed=0)
    source = frame_source(env, 160, 160)
    assert isinstance(source, EnvFrames)
    image = source.render()
    assert image.shape == (160, 160, 3) and image.std() > 10
    # 600x400 into 160x160: 160x107 centred, black bars above and below.
    assert not image[:20].any() and not image[-20:].any() and image[60:100].any()


def test_task_text_shows_what_the_task_asks():
    assert task_text(make("cheetah-vel").test_tasks()[0]).startswith("velocity=")
    assert task_text(make("point-robot").test_tasks()[0]).startswith("goal=(")
    assert set(task_text(make("bit-flip").test_tasks()[0])[5:]) <= {"0", "1"}
    assert task_text(make("four-rooms").test_tasks()[0]).startswith("goal_rc=(")


def test_size_is_width_x_height():
    assert parse_size("480x360") == (480, 360)
    with pytest.raises(UsageError, match=r"16\.\.4096"):
        parse_size("8x8")


def test_configure_keeps_the_users_backend(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    assert offscreen.configure() == "egl"


def test_configure_leaves_machines_with_a_display_alone(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    assert offscreen.configure() is None
    assert "MUJOCO_GL" not in os.environ


def test_no_display_and_glfw_says_what_to_install(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(offscreen, "active_backend", lambda: "glfw")
    reason = offscreen.unavailable_reason()
    assert reason is not None and "\n" not in reason and "apt-get install libosmesa6" in reason
