"""Continual World's metrics on continual runs (Wołczyk et al. 2021, §4 and Appendix;
awarelab/continual_world results_processing/tables.py, plots.py): average performance at the
end, forgetting and forward transfer per element and on average, 90% bootstrap intervals over
seeds (4000 resamples), written as CSV + JSON with the plot of every element's success over
the whole sequence.

A continual run directory holds `sequence.json` (the elements, their windows, the method) and
`continual.csv` (one row per evaluation: `step, position, success_k, return_k` for every
element k; gmtl_rl/training/continual.py writes both). With T elements, E evaluations and
`success[e, k]` the success of element k at evaluation e, per run:

    final_k       = mean of success[:, k] over the last 5 evaluations of the run
    performance   = mean_k final_k
    end_k         = mean of success[:, k] over the last 5 evaluations with position == k
    forgetting_k  = end_k - final_k;          forgetting = mean over all T elements
    AUC_k         = mean of success[:, k] over the evaluations with position == k
and against reference runs (single-element sequences, matched to elements by name):
    AUC_k^b       = mean of success[:, 0] over every evaluation of a reference run
    FT_k          = (mean_seeds AUC_k - mean_refs AUC_k^b) / (1 - mean_refs AUC_k^b)
    forward transfer = mean_k FT_k
The "last 5 evaluations" is CW's `groupby(...).tail(5)` (tables.py calculate_data_at_the_end,
calculate_forgetting_individual); AUC as the mean of the evaluations inside the window is
CW's `calculate_forward_transfer` (the area under the success curve divided by the window);
FT is normalised with the means over seeds and over reference runs, as CW's `normalized_ft`.
Forgetting averages all T elements, the last one included (its forgetting is 0 by definition),
as CW's `compute_mean_and_ci` does. The multi-task upper bound has no windows: only its
performance is reported.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from gmtl_rl.errors import UsageError
from gmtl_rl.evaluation.plots import curve_colors, save_figure
from gmtl_rl.evaluation.stats import stratified_bootstrap_ci
from gmtl_rl.run_dir import RunDir

METRICS_CSV = "continual_metrics.csv"
METRICS_JSON = "continual_metrics.json"
PLOT_PNG = "continual.png"

LAST_EVALUATIONS = 5  # CW tables.py: "at the end" = the mean of the last 5 evaluations
CONFIDENCE = 0.9  # CW tables.py BootstrapCI(confidence=0.9, num_bootstrap=4000, seed=0)
RESAMPLES = 4000
BOOTSTRAP_SEED = 0
MULTITASK = "multitask"  # the upper bound trains on every element at once: no windows
# Table order of the methods (CW results_processing/utils.py METHODS_ORDER, our names).
METHOD_ORDER = ("finetune", "l2", "ewc", "mas", "packnet", "perfect_memory", "agem", MULTITASK)


@dataclass(frozen=True)
class SequenceElement:
    """One element of a task sequence: what was trained, and in which env-step window."""

    position: int
    name: str
    class_id: int
    start_step: int
    end_step: int


@dataclass(frozen=True)
class TaskSequence:
    """A run's sequence.json."""

    elements: tuple[SequenceElement, ...]
    steps_per_task: int
    task_identity: str
    method: str
    family: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.elements)

    @property
    def total_steps(self) -> int:
        return len(self.elements) * self.steps_per_task


@dataclass(frozen=True)
class ContinualRun:
    """The evaluations of one continual run: E rows, T elements."""

    path: Path
    seed: int | None
    experiment: str
    env: dict[str, Any] | None  # the run's resolved env section (None without config.yaml)
    sequence: TaskSequence
    step_E: np.ndarray  # env steps of each evaluation, strictly increasing
    position_E: np.ndarray  # the element being trained when evaluated
    success_ET: np.ndarray
    return_ET: np.ndarray


@dataclass(frozen=True)
class Estimate:
    """A metric's value (the mean over runs) with its bootstrap interval over runs."""

    value: float
    ci: tuple[float, float]
    n: int  # runs (seeds) the value is over


@dataclass(frozen=True)
class ElementResult:
    """The metrics of one sequence element for one method."""

    position: int
    name: str
    final_success: Estimate
    end_of_task_success: Estimate | None
    forgetting: Estimate | None
    auc: Estimate | None
    reference_auc: Estimate | None
    forward_transfer: Estimate | None


@dataclass(frozen=True)
class SuccessCurves:
    """Success against env steps, mean over seeds with a band (90% bootstrap over seeds)."""

    step_S: np.ndarray
    mean_ST: np.ndarray  # every element
    low_ST: np.ndarray
    high_ST: np.ndarray
    average_S: np.ndarray  # mean over elements (CW's average-performance curve)
    average_low_S: np.ndarray
    average_high_S: np.ndarray


@dataclass(frozen=True)
class MethodResult:
    """Every metric of one method (its runs pooled over seeds)."""

    label: str
    method: str
    task_identity: str
    runs: tuple[str, ...]
    seeds: tuple[int | None, ...]
    performance: Estimate
    forgetting: Estimate | None
    forward_transfer: Estimate | None
    elements: tuple[ElementResult, ...]
    curves: SuccessCurves


@dataclass(frozen=True)
class ContinualReport:
    """The metrics of several methods on one sequence."""

    family: str
    names: tuple[str, ...]
    steps_per_task: int
    methods: tuple[MethodResult, ...]
    references: dict[str, tuple[str, ...]]  # element name -> reference run directories
    warnings: tuple[str, ...]
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES


# -- reading runs ------------------------------------------------------------------------------


def read_run(path: str | os.PathLike[str]) -> ContinualRun:
    """A continual run's sequence.json and continual.csv, checked; UsageError if it is not a
    continual run, is unreadable, or has not finished its sequence."""
    run = RunDir(path)
    seq_file = run.sequence
    if not seq_file.is_file():
        hint = "not a run directory" if not run.is_run() else "not a continual run"
        raise UsageError(f"{run}: {hint} (no {run.sequence.name}; train a config with a sequence: "
                         "section and agent cl_sac, e.g. configs/continual/cw10.yaml)")  # fmt: skip
    sequence = _read_sequence(seq_file)
    table = run.continual_csv
    if not table.is_file():
        raise UsageError(f"{run}: no {run.continual_csv.name} (the run has not evaluated yet)")
    step, position, success, returns = _read_table(table, len(sequence.elements))
    if step[-1] < sequence.total_steps:
        raise UsageError(
            f"{run}: the sequence is not finished (last evaluation at step {step[-1]} of "
            f"{sequence.total_steps}); continue it with `gmtl resume {run}`"
        )
    if step[-1] > sequence.total_steps:
        raise UsageError(
            f"{table}: evaluations past the sequence's end (step {step[-1]} > "
            f"{sequence.total_steps}), which {run.sequence.name} does not hold"
        )
    config = run.read_config_mapping() if run.is_run() else {}
    seed = config.get("seed")
    env = config.get("env")
    return ContinualRun(
        path=run.path,
        seed=int(seed) if isinstance(seed, int) else None,
        experiment=str(config.get("experiment", run.path.parent.name)),
        env=env if isinstance(env, dict) else None,
        sequence=sequence,
        step_E=step,
        position_E=position,
        success_ET=success,
        return_ET=returns,
    )


def _read_sequence(path: Path) -> TaskSequence:
    try:
        data = json.loads(path.read_text())
        elements = tuple(
            SequenceElement(
                int(t["position"]),
                str(t["name"]),
                int(t["class_id"]),
                int(t["start_step"]),
                int(t["end_step"]),
            )
            for t in data["tasks"]
        )
        sequence = TaskSequence(
            elements,
            int(data["steps_per_task"]),
            str(data["task_identity"]),
            str(data["method"]),
            str(data["family"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path}: unreadable ({err!r}); expected the keys tasks[{{position, "
                         "name, class_id, start_step, end_step}}], steps_per_task, "
                         "task_identity, method, family") from None  # fmt: skip
    if not elements or [e.position for e in elements] != list(range(len(elements))):
        raise UsageError(f"{path}: tasks must list positions 0..T-1 in order")
    if sequence.steps_per_task < 1:
        raise UsageError(f"{path}: steps_per_task must be >= 1")
    return sequence


def _read_table(
    path: Path, n_elements: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    expected = ["step", "position"]
    for k in range(n_elements):
        expected += [f"success_{k}", f"return_{k}"]
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if header != expected:
            raise UsageError(
                f"{path}: header {','.join(header) or '(empty)'} does not match the sequence's "
                f"{n_elements} elements (expected {','.join(expected[:6])}...)"
            )
        try:
            rows = np.array([[float(v) for v in row] for row in reader if row], dtype=np.float64)
        except ValueError as err:
            raise UsageError(f"{path}: unreadable ({err})") from None
    if rows.size == 0:
        raise UsageError(f"{path}: no evaluations")
    if rows.shape[1] != len(expected) or not np.all(np.isfinite(rows)):
        raise UsageError(f"{path}: rows must hold {len(expected)} finite numbers each")
    # A boundary evaluation may coincide with a scheduled one: keep the last row of each step.
    order = np.argsort(rows[:, 0], kind="stable")
    rows = rows[order]
    last_of_step = np.append(rows[1:, 0] != rows[:-1, 0], True)
    rows = rows[last_of_step]
    step, position = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    return step, position, rows[:, 2::2], rows[:, 3::2]


# -- per-run metrics (CW's definitions) -------------------------------------------------------


def final_success(run: ContinualRun) -> np.ndarray:
    """Success of each element at the end: its mean over the run's last 5 evaluations."""
    return np.asarray(run.success_ET[-LAST_EVALUATIONS:].mean(axis=0))


def end_of_task_success(run: ContinualRun) -> np.ndarray:
    """Success of element k at the end of its own window: the mean of its last 5 evaluations
    while k was trained (NaN where no evaluation fell in the window)."""
    out = np.full(run.success_ET.shape[1], np.nan)
    for k in range(out.size):
        inside = run.success_ET[run.position_E == k, k]
        if inside.size:
            out[k] = inside[-LAST_EVALUATIONS:].mean()
    return out


def forgetting(run: ContinualRun) -> np.ndarray:
    """Per element: success at the end of its window minus success at the end of the run."""
    return end_of_task_success(run) - final_success(run)


def window_auc(run: ContinualRun) -> np.ndarray:
    """Per element: mean success over the evaluations of its own window (the area under its
    success curve while it was trained, over the window's length); NaN without any."""
    out = np.full(run.success_ET.shape[1], np.nan)
    for k in range(out.size):
        inside = run.success_ET[run.position_E == k, k]
        if inside.size:
            out[k] = inside.mean()
    return out


def reference_auc(run: ContinualRun) -> float:
    """A single-element reference run's area: mean success over all its evaluations."""
    return float(run.success_ET[:, 0].mean())


# -- aggregation over seeds --------------------------------------------------------------------


def mean_estimate(
    values: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES
) -> Estimate:
    """Mean over runs with its percentile bootstrap interval (runs resampled with replacement,
    the project's `stratified_bootstrap_ci` with a single stratum)."""
    x = np.asarray(values, dtype=np.float64)
    ci = stratified_bootstrap_ci(
        x, np.zeros(x.size, np.int64), "mean", confidence, resamples, BOOTSTRAP_SEED
    )
    return Estimate(float(np.mean(x)), ci, int(x.size))


def forward_transfer_estimates(
    auc_NT: np.ndarray,
    names: Sequence[str],
    reference_aucs: Mapping[str, np.ndarray],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
) -> tuple[list[Estimate | None], Estimate | None]:
    """FT of each element and their mean, with CW's two-sample bootstrap (tables.py
    BootstrapCI): the method's runs are resampled together across elements, the reference runs
    of each element name independently of them. An element without reference runs (or with a
    perfect reference, AUC^b = 1) has no FT, and then the mean is absent too. Intervals are the
    percentiles of the resampled statistic ("midpoint", as CW's np.quantile call)."""
    n, t = auc_NT.shape
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    method_means = _resample_weights(n, resamples, rng) @ auc_NT / n  # (B, T)
    ref_means = np.full((resamples, t), np.nan)
    point_refs = np.full(t, np.nan)
    constant = np.ptp(auc_NT, axis=0) == 0  # (T,): no spread to resample
    # Elements that repeat (CW20 is CW10 twice) share one reference sample and its resamples.
    for name in dict.fromkeys(names):
        refs = reference_aucs.get(name)
        if refs is None:
            continue
        refs = np.asarray(refs, np.float64)
        at = np.array([m == name for m in names])
        ref_means[:, at] = (_resample_weights(refs.size, resamples, rng) @ refs / refs.size)[
            :, None
        ]
        point_refs[at] = refs.mean()
        constant[at] &= np.ptp(refs) == 0
    constant &= np.isfinite(point_refs)
    point_ft = _normalized_ft(auc_NT.mean(axis=0), point_refs)
    boot_ft = _normalized_ft(method_means, ref_means)  # (B, T)
    per_element: list[Estimate | None] = []
    for k in range(t):
        if not np.isfinite(point_ft[k]):
            per_element.append(None)
            continue
        ci = (point_ft[k], point_ft[k]) if constant[k] else _percentiles(boot_ft[:, k], confidence)
        per_element.append(Estimate(float(point_ft[k]), (float(ci[0]), float(ci[1])), n))
    if any(e is None for e in per_element):
        return per_element, None
    total = float(point_ft.mean())
    ci = (total, total) if constant.all() else _percentiles(boot_ft.mean(axis=1), confidence)
    return per_element, Estimate(total, ci, n)


def _normalized_ft(method_auc: np.ndarray, ref_auc: np.ndarray) -> np.ndarray:
    """CW's normalized_ft: (AUC - AUC^b) / (1 - AUC^b); NaN where the reference is perfect."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ft = (method_auc - ref_auc) / (1.0 - ref_auc)
    return np.where(ref_auc < 1.0, ft, np.nan)


def _resample_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n runs is drawn in each resample, (resamples, n): a resample's mean
    is `weights @ x / n`."""
    draws = rng.integers(n, size=(resamples, n))
    weights = np.zeros((resamples, n))
    np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
    return weights


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(samples, [tail, 1.0 - tail], method="midpoint")
    return float(lo), float(hi)


def success_curves(runs: Sequence[ContinualRun], resamples: int = 1000) -> SuccessCurves:
    """Mean success of every element (and their average) over the runs at each evaluation
    step, with a 90% percentile bootstrap band over runs; the runs must share their steps."""
    steps = runs[0].step_E
    for run in runs[1:]:
        if not np.array_equal(run.step_E, steps):
            raise UsageError(f"{run.path} and {runs[0].path} evaluated at different steps; "
                             "runs of one method need the same eval.every_steps")  # fmt: skip
    success_NST = np.stack([r.success_ET for r in runs])
    n = len(runs)
    weights = _resample_weights(n, resamples, np.random.default_rng(BOOTSTRAP_SEED))
    tail = (1.0 - CONFIDENCE) / 2.0

    def band(x_NS: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = x_NS.mean(axis=0)
        if n == 1:
            return mean, mean, mean
        boot = weights @ x_NS / n  # (B, S)
        lo, hi = np.quantile(boot, [tail, 1.0 - tail], axis=0, method="midpoint")
        return mean, lo, hi

    parts = [band(success_NST[:, :, k]) for k in range(success_NST.shape[2])]
    avg, avg_lo, avg_hi = band(success_NST.mean(axis=2))
    return SuccessCurves(
        steps,
        np.stack([p[0] for p in parts], axis=1),
        np.stack([p[1] for p in parts], axis=1),
        np.stack([p[2] for p in parts], axis=1),
        avg,
        avg_lo,
        avg_hi,
    )


# -- the report --------------------------------------------------------------------------------


def evaluate(
    run_dirs: Sequence[str | os.PathLike[str]],
    reference_dirs: Sequence[str | os.PathLike[str]] = (),
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
) -> ContinualReport:
    """CW's metrics of every method among `run_dirs` (grouped by sequence.json's method),
    forward transfer against `reference_dirs`. UsageError for runs that are not continual, not
    finished, or ran different sequences, and for references that do not fit the sequence."""
    if not run_dirs:
        raise UsageError("give at least one continual RUN_DIR")
    runs = [read_run(p) for p in run_dirs]
    first = runs[0]
    for run in runs[1:]:
        _check_same_sequence(first, run)
    references = _read_references(reference_dirs, first)
    warnings: list[str] = []
    missing = [n for n in dict.fromkeys(first.sequence.names) if n not in references]
    if reference_dirs and missing:
        warnings.append(
            f"no reference run for {', '.join(missing)}: forward transfer of those elements, "
            "and its mean, are reported as absent"
        )
    ref_aucs = {n: np.array([reference_auc(r) for r in refs]) for n, refs in references.items()}
    perfect = [n for n, aucs in ref_aucs.items() if aucs.mean() >= 1.0]
    if perfect:
        warnings.append(
            f"the reference runs of {', '.join(perfect)} succeed at every evaluation (AUC 1): "
            "forward transfer, (AUC - 1) / 0, is undefined there and reported as absent"
        )
    methods = [
        _method_result(label, group, ref_aucs, confidence, resamples)
        for label, group in _groups(runs).items()
    ]
    return ContinualReport(
        family=first.sequence.family,
        names=first.sequence.names,
        steps_per_task=first.sequence.steps_per_task,
        methods=tuple(methods),
        references={k: tuple(str(r.path) for r in v) for k, v in references.items()},
        warnings=tuple(warnings),
        confidence=confidence,
        resamples=resamples,
    )


def _check_same_sequence(a: ContinualRun, b: ContinualRun) -> None:
    sa, sb = a.sequence, b.sequence
    for what, x, y in (
        ("family", sa.family, sb.family),
        ("tasks", list(sa.names), list(sb.names)),
        ("steps_per_task", sa.steps_per_task, sb.steps_per_task),
    ):
        if x != y:
            raise UsageError(f"{b.path} ran another sequence than {a.path}: {what} {y} vs {x}; "
                             "compare runs of one sequence")  # fmt: skip
    if a.env is not None and b.env is not None and a.env != b.env:
        key = _first_difference(a.env, b.env)
        raise UsageError(f"{b.path} ran another env than {a.path} (env.{key} differs); "
                         "compare runs of one sequence")  # fmt: skip


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    return next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _read_references(
    paths: Sequence[str | os.PathLike[str]], run: ContinualRun
) -> dict[str, list[ContinualRun]]:
    """Reference runs by element name, each checked against the sequence of `run`."""
    out: dict[str, list[ContinualRun]] = {}
    for path in paths:
        ref = read_run(path)
        seq = ref.sequence
        where = f"--reference {ref.path}"
        if len(seq.elements) != 1:
            raise UsageError(f"{where}: a reference runs one element, this one runs "
                             f"{len(seq.elements)} ({', '.join(seq.names)})")  # fmt: skip
        name = seq.names[0]
        if name not in run.sequence.names:
            raise UsageError(f"{where}: element {name!r} is not in the sequence "
                             f"({', '.join(dict.fromkeys(run.sequence.names))})")  # fmt: skip
        if seq.family != run.sequence.family:
            raise UsageError(f"{where}: family {seq.family} vs the sequence's "
                             f"{run.sequence.family}")  # fmt: skip
        if seq.steps_per_task != run.sequence.steps_per_task:
            raise UsageError(f"{where}: trained {seq.steps_per_task} steps, the sequence "
                             f"{run.sequence.steps_per_task} per element; forward transfer "
                             "compares equal budgets")  # fmt: skip
        if ref.env is not None and run.env is not None and ref.env != run.env:
            key = _first_difference(ref.env, run.env)
            raise UsageError(f"{where}: env.{key} differs from the sequence's runs; the "
                             "reference must train the same element")  # fmt: skip
        out.setdefault(name, []).append(ref)
    return out


def _groups(runs: Iterable[ContinualRun]) -> dict[str, list[ContinualRun]]:
    """Runs by method, in CW's table order; a method run under several experiments or task
    identities is split and labelled `method [experiment, task identity]`."""
    keyed: dict[tuple[str, str, str], list[ContinualRun]] = {}
    for run in runs:
        key = (run.sequence.method, run.experiment, run.sequence.task_identity)
        keyed.setdefault(key, []).append(run)
    per_method: dict[str, int] = {}
    for method, _, _ in keyed:
        per_method[method] = per_method.get(method, 0) + 1
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    ordered = sorted(keyed.items(), key=lambda kv: rank.get(kv[0][0], len(rank)))  # stable
    return {
        (m if per_method[m] == 1 else f"{m} [{e}, task {i}]"): group for (m, e, i), group in ordered
    }


def _method_result(
    label: str,
    runs: list[ContinualRun],
    ref_aucs: dict[str, np.ndarray],
    confidence: float,
    resamples: int,
) -> MethodResult:
    sequence = runs[0].sequence
    names = sequence.names
    windows = sequence.method != MULTITASK

    def estimate(values: np.ndarray) -> Estimate:
        return mean_estimate(values, confidence, resamples)

    final_NT = np.stack([final_success(r) for r in runs])
    end_NT = np.stack([end_of_task_success(r) for r in runs])
    auc_NT = np.stack([window_auc(r) for r in runs])
    has_window = windows & ~np.isnan(end_NT).any(axis=0)  # (T,)
    forget_NT = end_NT - final_NT

    ft_elements: list[Estimate | None] = [None] * len(names)
    ft_total: Estimate | None = None
    if windows and has_window.all() and any(name in ref_aucs for name in names):
        ft_elements, ft_total = forward_transfer_estimates(
            auc_NT, names, ref_aucs, confidence, resamples
        )
    elements = tuple(
        ElementResult(
            position=k,
            name=name,
            final_success=estimate(final_NT[:, k]),
            end_of_task_success=estimate(end_NT[:, k]) if has_window[k] else None,
            forgetting=estimate(forget_NT[:, k]) if has_window[k] else None,
            auc=estimate(auc_NT[:, k]) if has_window[k] else None,
            reference_auc=estimate(ref_aucs[name]) if name in ref_aucs else None,
            forward_transfer=ft_elements[k],
        )
        for k, name in enumerate(names)
    )
    return MethodResult(
        label=label,
        method=sequence.method,
        task_identity=sequence.task_identity,
        runs=tuple(str(r.path) for r in runs),
        seeds=tuple(r.seed for r in runs),
        performance=estimate(final_NT.mean(axis=1)),
        forgetting=estimate(forget_NT.mean(axis=1)) if has_window.all() else None,
        forward_transfer=ft_total,
        elements=elements,
        curves=success_curves(runs),
    )


# -- output ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "method", "metric", "position", "element", "value", "ci_low", "ci_high", "n_runs",
)  # fmt: skip


def write_report(report: ContinualReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """continual_metrics.csv (long form: one metric of one method, overall or per element, a
    row), continual_metrics.json (everything, with the definitions) and continual.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / METRICS_CSV, out / METRICS_JSON
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for m in report.methods:
            for metric in ("performance", "forgetting", "forward_transfer"):
                _csv_row(writer, m.label, metric, "", "all", getattr(m, metric))
            for e in m.elements:
                for metric in (
                    "final_success", "end_of_task_success", "forgetting", "auc",
                    "reference_auc", "forward_transfer",
                ):  # fmt: skip
                    _csv_row(writer, m.label, metric, e.position, e.name, getattr(e, metric))
    json_path.write_text(json.dumps(report_json(report), indent=2))
    png = plot_report(report, out / PLOT_PNG)
    return [csv_path, json_path, png]


def _csv_row(
    writer: Any, label: str, metric: str, position: int | str, name: str, est: Estimate | None
) -> None:
    if est is None:
        writer.writerow([label, metric, position, name, "", "", "", ""])
    else:
        writer.writerow([label, metric, position, name, est.value, *est.ci, est.n])


def report_json(report: ContinualReport) -> dict[str, Any]:
    """The report as JSON (absent metrics are null); curves are left to the plot."""

    def est(e: Estimate | None) -> dict[str, Any] | None:
        return None if e is None else {"value": e.value, "ci": list(e.ci), "n": e.n}

    return {
        "family": report.family,
        "tasks": list(report.names),
        "steps_per_task": report.steps_per_task,
        "confidence": report.confidence,
        "bootstrap_resamples": report.resamples,
        "definitions": DEFINITIONS,
        "references": {k: list(v) for k, v in report.references.items()},
        "warnings": list(report.warnings),
        "methods": [
            {
                "label": m.label,
                "method": m.method,
                "task_identity": m.task_identity,
                "runs": list(m.runs),
                "seeds": list(m.seeds),
                "performance": est(m.performance),
                "forgetting": est(m.forgetting),
                "forward_transfer": est(m.forward_transfer),
                "elements": [
                    {"position": e.position, "name": e.name}
                    | {k: est(getattr(e, k)) for k in _ESTIMATE_FIELDS}
                    for e in m.elements
                ],
            }
            for m in report.methods
        ],
    }


_ESTIMATE_FIELDS = (
    "final_success", "end_of_task_success", "forgetting", "auc", "reference_auc",
    "forward_transfer",
)  # fmt: skip

DEFINITIONS = {
    "final_success": f"mean success of the element over the last {LAST_EVALUATIONS} "
    "evaluations of the run",
    "performance": "mean over elements of final_success (CW's average performance)",
    "end_of_task_success": f"mean success over the last {LAST_EVALUATIONS} evaluations "
    "while the element was trained",
    "forgetting": "end_of_task_success - final_success; the mean is over all elements",
    "auc": "mean success of the element over the evaluations of its own window",
    "reference_auc": "mean success over every evaluation of a single-element reference run",
    "forward_transfer": "(mean_seeds auc - mean_refs reference_auc) / (1 - mean_refs "
    "reference_auc); the mean is over all elements",
    "intervals": "percentile bootstrap over runs (seeds), 90%, 4000 resamples; forward "
    "transfer resamples method runs and reference runs independently (CW tables.py)",
}


def plot_report(report: ContinualReport, out_path: str | os.PathLike[str]) -> Path:
    """The average success of the elements (top, CW's average-performance curve) and one panel
    per element with its success over the whole sequence (CW's individual_tasks.png, methods
    overlaid), the element's own window shaded; mean over seeds, 90% bootstrap band."""
    names = report.names
    t = len(names)
    cols = min(t, 5)
    rows = 1 + math.ceil(t / cols)
    fig = Figure(figsize=(3.6 * cols, 2.6 * rows + 0.6), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    colors = curve_colors(m.label for m in report.methods)
    spt, total = report.steps_per_task, report.steps_per_task * t
    top = fig.add_subplot(grid[0, :])
    for m in report.methods:
        c = m.curves
        _line(top, c.step_S, c.average_S, c.average_low_S, c.average_high_S, colors[m.label],
              m.label)  # fmt: skip
    _windows(top, t, spt, shade=None)
    top.set_title("average success over the sequence's elements")
    top.set_xlabel("env steps")
    top.legend(fontsize="small", loc="upper left", title="shaded: 90% bootstrap CI",
               title_fontsize="small")  # fmt: skip
    for k, name in enumerate(names):
        ax = fig.add_subplot(grid[1 + k // cols, k % cols])
        for m in report.methods:
            c = m.curves
            _line(ax, c.step_S, c.mean_ST[:, k], c.low_ST[:, k], c.high_ST[:, k],
                  colors[m.label], None)  # fmt: skip
        _windows(ax, t, spt, shade=k)
        ax.set_title(f"{k}: {name}", fontsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(4))
    for ax in fig.axes:
        ax.set_xlim(0, total)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 1M rather than 1000000
    fig.suptitle(f"success of every element of {report.family} ({t} × {spt} steps)")
    return save_figure(fig, Path(out_path))


def _line(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    color: str,
    label: str | None,
) -> None:
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
    ax.plot(x, y, color=color, label=label, linewidth=1.2)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(True, alpha=0.3)


def _windows(ax: Axes, t: int, steps_per_task: int, shade: int | None) -> None:
    """Task boundaries as thin dashed lines; element `shade`'s training window shaded."""
    for k in range(1, t):
        ax.axvline(k * steps_per_task, color="gray", linestyle="--", linewidth=0.5)
    if shade is not None:
        start = shade * steps_per_task
        ax.axvspan(start, start + steps_per_task, color="gray", alpha=0.15, linewidth=0)


# -- the CLI's table ---------------------------------------------------------------------------


def summary_lines(report: ContinualReport) -> list[str]:
    """A fixed-width table of the three metrics per method, e.g. for the CLI."""

    def cell(e: Estimate | None) -> str:
        return "-" if e is None else f"{e.value:.2f} [{e.ci[0]:.2f}, {e.ci[1]:.2f}]"

    rows = [("method", "runs", "performance", "forgetting", "forward transfer")]
    rows += [
        (m.label, str(len(m.runs)), cell(m.performance), cell(m.forgetting),
         cell(m.forward_transfer))
        for m in report.methods
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
