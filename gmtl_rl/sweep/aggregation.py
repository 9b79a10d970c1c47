"""The cross-seed aggregate of a sweep: per combination, IQM and mean of the final evaluation
episode over (seed, task) values with stratified bootstrap intervals, written as
aggregate.csv / aggregate.json with the overlaid adaptation and training curves."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gmtl_rl.sweep.spec import SweepDir, SweepSpec, load
from gmtl_rl.sweep.trials import Report, trial_state

if TYPE_CHECKING:
    from gmtl_rl.evaluation.stats import CurvePoint


@dataclass(frozen=True)
class Estimate:
    """A statistic over (seed, task) values of the final evaluation episode, with its interval."""

    iqm: float
    iqm_ci: tuple[float, float]
    mean: float
    mean_ci: tuple[float, float]


@dataclass(frozen=True)
class CombinationResult:
    combination: int
    label: str
    seeds: tuple[int, ...]  # seeds whose trial finished and was evaluated
    missing: tuple[str, ...]  # trials without an evaluation (failed, unfinished)
    episode: int  # K: the final episode of the adaptation curve the estimates are taken at
    final_return: Estimate | None
    final_success: Estimate | None


def aggregate(sweep_dir: str | Path, report: Report = print) -> list[CombinationResult]:
    """Per combination: IQM and mean of the final evaluation's return and success over seeds
    and tasks, with stratified bootstrap intervals (seeds resampled within task strata, Agarwal
    et al. 2021; a single seed: the evaluation protocol's single-run rule);
    writes aggregate.csv, aggregate.json, adaptation.png and (when runs logged scheduled
    evaluations) training.png into the sweep directory. Refused while another process runs
    the sweep (`RunInUse`)."""
    root = SweepDir(sweep_dir)
    spec = load(root.path)
    with root.writer_lock():
        return _aggregate(root, spec, report)


def _aggregate(root: SweepDir, spec: SweepSpec, report: Report) -> list[CombinationResult]:
    # Not at the top: Ray workers import this package, and evaluation brings in torch.
    from gmtl_rl.evaluation.adaptation import read_csv, summarize
    from gmtl_rl.evaluation.plots import plot_adaptation
    from gmtl_rl.evaluation.training import read_eval_points, write_training_plot

    results: list[CombinationResult] = []
    curves: dict[str, Any] = {}
    training: dict[str, list[Any]] = {}
    confidence, resamples = 0.95, 2000
    for index in range(spec.num_combinations):
        label = f"c{index}: {spec.combination_label(index)}" if spec.axes else "base"
        rows, seeds, missing = [], [], []
        for trial in (t for t in spec.trials if t.combination == index):
            run = root.trial(trial.name)
            if trial_state(run.path) != "finished" or not run.adaptation_csv.is_file():
                missing.append(trial.name)
                continue
            evaluation = run.read_config_mapping().get("eval", {})
            confidence = float(evaluation.get("confidence", confidence))
            resamples = int(evaluation.get("bootstrap_resamples", resamples))
            rows.extend(read_csv(run.adaptation_csv))
            seeds.append(trial.seed)
            points = read_eval_points(run.metrics, trial.seed)
            if points:
                training.setdefault(label, []).extend(points)
        if not rows:
            results.append(CombinationResult(index, label, (), tuple(missing), 0, None, None))
            continue
        # The final point of the pooled curve: the evaluation protocol's one interval rule.
        summary = summarize(rows, confidence, resamples)
        curves[label] = summary
        final_return, final_success = summary.episode_return[-1], summary.success[-1]
        results.append(
            CombinationResult(
                index,
                label,
                tuple(seeds),
                tuple(missing),
                final_return.episode,
                _estimate(final_return),
                _estimate(final_success),
            )
        )
    _write_aggregate(root, spec, results, curves)
    name = root.path.name
    if curves:
        plot_adaptation(
            {k: s.episode_return for k, s in curves.items()},
            {k: s.success for k, s in curves.items()},
            root.adaptation_png,
            title=f"sweep {name}: adaptation on held-out tasks (IQM, 95% CI)",
            statistic="iqm",
        )
    if training:
        write_training_plot(
            training, root.training_png, title=f"sweep {name}: evaluation during training"
        )
    for result in results:
        report(_result_line(result))
    report(f"wrote {root.aggregate_csv}, {root.aggregate_json}, {root.adaptation_png}")
    return results


def _estimate(point: CurvePoint) -> Estimate:
    """The estimates of one `CurvePoint`: over (seed, task) scores, each a seed's mean over
    repeats, with seeds resampled within task strata (`evaluation.stats.pooled_units`)."""
    return Estimate(iqm=point.iqm, iqm_ci=point.iqm_ci, mean=point.mean, mean_ci=point.mean_ci)


AGGREGATE_COLUMNS = (
    "combination", "label", "seeds", "missing", "episode",
    "return_iqm", "return_iqm_low", "return_iqm_high", "return_mean",
    "success_iqm", "success_iqm_low", "success_iqm_high", "success_mean",
)  # fmt: skip


def _write_aggregate(
    root: SweepDir, spec: SweepSpec, results: Sequence[CombinationResult], curves: dict[str, Any]
) -> None:
    with open(root.aggregate_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(AGGREGATE_COLUMNS)
        for r in results:
            numbers: list[Any] = []
            for est in (r.final_return, r.final_success):
                numbers += [""] * 4 if est is None else [est.iqm, *est.iqm_ci, est.mean]
            seeds = " ".join(map(str, r.seeds))
            writer.writerow(
                [r.combination, r.label, seeds, " ".join(r.missing), r.episode or "", *numbers]
            )
    doc = {
        "sweep": root.path.name,
        "axes": [asdict(a) for a in spec.axes],
        "overrides": list(spec.overrides),
        "seeds": list(spec.seeds),
        "statistic": "IQM over (seed, task) values of the final episode; stratified bootstrap "
        "percentile intervals with tasks as strata",
        "combinations": [
            {
                **asdict(r),
                "curve_return": [p.to_json() for p in curves[r.label].episode_return]
                if r.label in curves
                else [],
                "curve_success": [p.to_json() for p in curves[r.label].success]
                if r.label in curves
                else [],
            }
            for r in results
        ],
    }
    root.aggregate_json.write_text(json.dumps(doc, indent=2))


def _result_line(r: CombinationResult) -> str:
    if r.final_return is None or r.final_success is None:
        return f"  {r.label}: no finished trial ({', '.join(r.missing)})"
    ret, suc = r.final_return, r.final_success
    missing = f"; missing {', '.join(r.missing)}" if r.missing else ""
    return (
        f"  {r.label}: return IQM {ret.iqm:.3g} (95% CI {ret.iqm_ci[0]:.3g}..{ret.iqm_ci[1]:.3g}),"
        f" success IQM {suc.iqm:.2f} ({suc.iqm_ci[0]:.2f}..{suc.iqm_ci[1]:.2f})"
        f" at k={r.episode} over seeds {', '.join(map(str, r.seeds))}{missing}"
    )
