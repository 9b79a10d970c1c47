from pathlib import Path

import matplotlib.image
import pytest

from gmtl_rl.evaluation.plots import plot_adaptation, plot_curves
from gmtl_rl.evaluation.stats import CurvePoint

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
