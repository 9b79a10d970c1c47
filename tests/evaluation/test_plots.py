from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from gmtl_rl.config import load_config
from gmtl_rl.errors import UsageError
from gmtl_rl.evaluation.adaptation import AdaptationRow, write_csv
from gmtl_rl.evaluation.plots import Reference, adaptation_figure, plot_adaptation, plot_curves
from gmtl_rl.evaluation.runs import NON_ADAPTIVE, ORACLE, bound_references, reference_level
from gmtl_rl.evaluation.stats import CurvePoint
from gmtl_rl.run_dir import RunDir

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _curve(offset: float, k_max: int = 5) -> list[CurvePoint]:
    """A rising curve with a band of +-0.1 around it."""
    points = []
    for k in range(1, k_max + 1):
        y = offset + 0.1 * k
        points.append(CurvePoint(k, 10, y, y, (y - 0.1, y + 0.1), (y - 0.1, y + 0.1)))
    return points


def _assert_readable_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width = matplotlib.image.imread(path).shape[:2]
    assert height > 200 and width > 200


def test_plot_curves_writes_png_with_one_label(tmp_path):
    out = plot_curves({"sac": _curve(0.0)}, tmp_path / "curve.png", ylabel="return")
    assert out == tmp_path / "curve.png"
    _assert_readable_png(out)


def test_plot_curves_writes_png_with_several_labels(tmp_path):
    curves = {"pearl": _curve(0.0), "rl2": _curve(0.2), "mtsac": _curve(0.4)}
    out = plot_curves(curves, tmp_path / "curve.png", ylabel="return", title="ML1", statistic="iqm")
    _assert_readable_png(out)


def test_plot_curves_creates_parent_directory(tmp_path):
    out = plot_curves({"sac": _curve(0.0)}, str(tmp_path / "a" / "b" / "c.png"), ylabel="r")
    assert out.is_file()


def test_plot_curves_rejects_empty_curve(tmp_path):
    with pytest.raises(ValueError, match="'sac' has no points"):
        plot_curves({"sac": []}, tmp_path / "curve.png", ylabel="return")


def test_plot_adaptation_with_success_has_two_panels(tmp_path):
    one = plot_adaptation({"pearl": _curve(0.0)}, None, tmp_path / "one.png")
    two = plot_adaptation(
        {"pearl": _curve(0.0), "rl2": _curve(0.3)},
        {"pearl": _curve(0.0), "rl2": _curve(0.3)},
        tmp_path / "eval" / "adaptation.png",
        title="adaptation",
    )
    _assert_readable_png(two)
    # Side-by-side panels make the figure about twice as wide at the same height.
    w_one, w_two = (matplotlib.image.imread(p).shape[1] for p in (one, two))
    assert w_two > 1.8 * w_one


def test_plot_adaptation_without_success_writes_png(tmp_path):
    out = plot_adaptation({"pearl": _curve(0.0)}, None, tmp_path / "adaptation.png")
    _assert_readable_png(out)


# -- reference levels: the bounds of a meta-learner's curve (issue 14) --------------------------
def _level(mean: float, half: float = 0.5, iqm: float | None = None) -> CurvePoint:
    m = mean if iqm is None else iqm
    return CurvePoint(0, 40, mean, m, (mean - half, mean + half), (m - half, m + half))


def _lines(ax) -> dict[str, list[float]]:
    return {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}


def _bands(ax) -> dict[str, tuple[float, float]]:
    """label -> (lo, hi) in data coordinates of each axhspan band (Rectangle or Polygon)."""
    out = {}
    for patch in ax.patches:
        y = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 1]
        out[patch.get_label().removeprefix("_band ")] = (float(y.min()), float(y.max()))
    return out


REFS = {
    "oracle (task visible)": Reference(_level(-5.0, iqm=-4.5), _level(0.9, 0.05)),
    "non-adaptive (task hidden)": Reference(_level(-15.0, iqm=-14.0), _level(0.1, 0.05)),
}


def test_references_are_dashed_lines_at_their_levels_over_their_intervals():
    fig = adaptation_figure({"pearl": _curve(-10.0)}, {"pearl": _curve(0.0)}, references=REFS)
    ret, suc = fig.axes[:2]
    for ax, attr in ((ret, "episode_return"), (suc, "success")):
        lines, bands = _lines(ax), _bands(ax)
        for label, ref in REFS.items():
            level: CurvePoint = getattr(ref, attr)
            assert lines[label] == [level.mean, level.mean]
            assert bands[label] == pytest.approx(level.mean_ci)
            line = next(x for x in ax.get_lines() if x.get_label() == label)
            assert line.get_linestyle() == "--"
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert set(REFS) <= set(legend) and "pearl" in legend
        assert not any(t.startswith("_band") for t in legend)


def test_references_follow_the_statistic():
    fig = adaptation_figure({"pearl": _curve(-10.0)}, None, statistic="iqm", references=REFS)
    lines, bands = _lines(fig.axes[0]), _bands(fig.axes[0])
    assert lines["oracle (task visible)"] == [-4.5, -4.5]
    assert bands["non-adaptive (task hidden)"] == pytest.approx((-14.5, -13.5))


def test_a_reference_without_success_draws_on_the_return_panel_only():
    refs = {"oracle (task visible)": Reference(_level(-5.0))}
    fig = adaptation_figure({"pearl": _curve(-10.0)}, {"pearl": _curve(0.0)}, references=refs)
    assert "oracle (task visible)" in _lines(fig.axes[0])
    assert "oracle (task visible)" not in _lines(fig.axes[1])


def test_plot_adaptation_with_references_writes_png(tmp_path):
    out = plot_adaptation(
        {"pearl": _curve(-10.0)}, {"pearl": _curve(0.0)}, tmp_path / "b.png", references=REFS
    )
    _assert_readable_png(out)


def _run(path: Path, seed: int, returns: list[list[float]], experiment: str = "x") -> Path:
    """A run directory with config.yaml and eval/adaptation.csv: returns[task][k - 1]."""
    run = RunDir(path)
    run.path.mkdir(parents=True)
    run.config.write_text(f"experiment: {experiment}\nseed: {seed}\n")
    rows = [
        AdaptationRow("r", seed, task, task, 0, k + 1, value, float(value > -3), 20)
        for task, per_k in enumerate(returns)
        for k, value in enumerate(per_k)
    ]
    write_csv(rows, run.adaptation_csv)
    return run.path


def test_reference_level_pools_seeds_tasks_and_episodes(tmp_path):
    a = _run(tmp_path / "a", 0, [[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    b = _run(tmp_path / "b", 1, [[-2.0, -2.0, -2.0], [-8.0, -9.0, -1.0]], experiment="y")
    level = reference_level([a, b], resamples=200)
    values = [-1, -2, -3, -4, -5, -6, -2, -2, -2, -8, -9, -1]
    assert level.episode_return.mean == pytest.approx(np.mean(values))
    lo, hi = level.episode_return.mean_ci
    assert lo < np.mean(values) < hi
    assert level.success is not None
    assert level.success.mean == pytest.approx(np.mean([v > -3 for v in values]))


def test_bound_references_are_labelled_and_name_a_bound_without_a_table(tmp_path):
    a = _run(tmp_path / "a", 0, [[-1.0, -2.0]])
    refs = bound_references(oracle=[a], non_adaptive=[])
    assert list(refs) == [ORACLE] == ["oracle (task visible)"]
    assert NON_ADAPTIVE == "non-adaptive (task hidden)"
    (tmp_path / "c").mkdir()
    with pytest.raises(UsageError, match=r"^non-adaptive bound: .*c: no eval/adaptation\.csv"):
        bound_references(oracle=[a], non_adaptive=[tmp_path / "c"])


CONFIGS = Path(__file__).parents[2] / "configs"
BOUNDED = [
    "point_robot", "sparse_point_robot", "cheetah_vel", "cheetah_dir", "ant_dir", "ant_goal",
    "humanoid_dir", "walker_params", "hopper_params",
]  # fmt: skip


@pytest.mark.parametrize("family", BOUNDED)
def test_bound_configs_line_up_with_the_meta_learner_config(family):
    """oracle_* and nonadaptive_* run the same SAC on PEARL's tasks, budget and protocol, and
    differ only in whether the task is observed, so their lines belong on PEARL's plot."""
    pearl = load_config(CONFIGS / f"pearl_{family}.yaml")
    reference = pearl.env.options.model_dump()
    flag = "observe_goal" if "observe_goal" in reference else "observe_task"
    assert reference.pop(flag) is False
    agents = []
    for kind, shown in (("oracle", True), ("nonadaptive", False)):
        bound = load_config(CONFIGS / f"{kind}_{family}.yaml")
        options = bound.env.options.model_dump()
        assert bound.env.name == pearl.env.name and options.pop(flag) is shown
        assert options == reference
        assert bound.total_steps == pearl.total_steps
        for key in ("split", "episodes", "repeats", "max_tasks", "every_steps", "deterministic"):
            assert getattr(bound.eval, key) == getattr(pearl.eval, key), key
        assert bound.experiment == f"{kind}-{family.replace('_', '-')}"
        agents.append(bound.agent)
    assert agents[0].name == "sac" and agents[0] == agents[1]
