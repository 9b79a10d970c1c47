"""Continual World's metrics on hand-made continual runs with known answers, and `gmtl
continual`'s output and its bad input (one line, exit 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gmtl_rl.cli import main
from gmtl_rl.errors import UsageError
from gmtl_rl.evaluation import continual as cm

ENV = {"name": "point-robot", "n_train": 4}


def make_run(
    path: Path,
    names: list[str],
    rows: list[list[float]],
    steps_per_task: int,
    method: str = "finetune",
    seed: int = 0,
    env: dict | None = None,
    experiment: str = "seq",
) -> Path:
    """A continual run directory: rows are [step, position, success_0, ..., success_{T-1}]
    (returns are written as 10 x success)."""
    path.mkdir(parents=True)
    tasks = [
        {"position": k, "name": n, "class_id": k, "start_step": k * steps_per_task,
         "end_step": (k + 1) * steps_per_task}
        for k, n in enumerate(names)
    ]  # fmt: skip
    (path / "sequence.json").write_text(
        json.dumps({"tasks": tasks, "steps_per_task": steps_per_task, "task_identity": "visible",
                    "method": method, "family": "point-robot"})
    )  # fmt: skip
    header = ["step", "position"]
    for k in range(len(names)):
        header += [f"success_{k}", f"return_{k}"]
    with open(path / "continual.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for step, position, *success in rows:
            cells: list[float] = [int(step), int(position)]
            for s in success:
                cells += [s, 10 * s]
            writer.writerow(cells)
    (path / "config.yaml").write_text(
        f"experiment: {experiment}\nseed: {seed}\nenv: {json.dumps(env or ENV)}\n"
    )
    return path


def two_element_rows(a_end: float, b_end: float) -> list[list[float]]:
    """Elements a, b of 100 steps each, evaluated every 10 steps (20 rows). Element a learns to
    a_end at step 50 and holds it in its window, then drops to 0 in b's window; b is 0 in a's
    window and learns to b_end."""
    rows = []
    for i in range(1, 21):
        step = 10 * i
        position = 0 if step <= 100 else 1
        if position == 0:
            a = a_end if step >= 50 else 0.0
            b = 0.0
        else:
            a = 0.0
            b = b_end if step >= 150 else 0.0
        rows.append([step, position, a, b])
    return rows


@pytest.fixture
def finetune(tmp_path: Path) -> list[Path]:
    return [
        make_run(tmp_path / f"ft{s}", ["a", "b"], two_element_rows(1.0, 1.0), 100, seed=s)
        for s in range(3)
    ]


def test_performance_is_the_mean_over_elements_of_the_last_five_evaluations(tmp_path):
    run = cm.read_run(make_run(tmp_path / "r", ["a", "b"], two_element_rows(1.0, 0.8), 100))
    np.testing.assert_allclose(cm.final_success(run), [0.0, 0.8])
    report = cm.evaluate([run.path])
    assert report.methods[0].performance.value == pytest.approx(0.4)


def test_forgetting_is_success_at_the_end_of_its_window_minus_at_the_end(tmp_path):
    run = cm.read_run(make_run(tmp_path / "r", ["a", "b"], two_element_rows(1.0, 0.8), 100))
    # a: 1.0 over its last 5 in-window evaluations, 0.0 at the end; b: its window is the end.
    np.testing.assert_allclose(cm.forgetting(run), [1.0, 0.0])
    (method,) = cm.evaluate([run.path]).methods
    assert method.forgetting is not None
    assert method.forgetting.value == pytest.approx(0.5)  # CW averages the last element's 0 too


def test_the_end_of_the_window_averages_its_last_five_evaluations_only(tmp_path):
    rows = two_element_rows(1.0, 1.0)
    rows[4][2] = 0.0  # step 50, the 6th-last evaluation of a's window: outside the last five
    rows[6][2] = 0.0  # step 70: inside
    run = cm.read_run(make_run(tmp_path / "r", ["a", "b"], rows, 100))
    assert cm.end_of_task_success(run)[0] == pytest.approx(0.8)


def test_a_boundary_evaluation_repeated_at_one_step_counts_once(tmp_path):
    rows = two_element_rows(1.0, 1.0)
    rows.insert(10, [100, 0, 1.0, 0.0])  # the loop's boundary row beside the scheduled one
    run = cm.read_run(make_run(tmp_path / "r", ["a", "b"], rows, 100))
    assert run.step_E.size == 20


def test_window_auc_is_the_mean_success_inside_the_window(tmp_path):
    run = cm.read_run(make_run(tmp_path / "r", ["a", "b"], two_element_rows(1.0, 0.8), 100))
    # a: 0 at steps 10..40, 1 at 50..100 -> 6/10; b: 0 at 110..140, 0.8 at 150..200 -> 0.48.
    np.testing.assert_allclose(cm.window_auc(run), [0.6, 0.48])


def test_forward_transfer_against_references_is_cw_normalized_ft(tmp_path, finetune):
    # References learn a at step 30 (AUC 0.8) and b at step 90 (AUC 0.2).
    ref_a = [[10 * i, 0, 1.0 if i >= 3 else 0.0] for i in range(1, 11)]
    ref_b = [[10 * i, 0, 1.0 if i >= 9 else 0.0] for i in range(1, 11)]
    refs = [
        make_run(tmp_path / "ref_a", ["a"], ref_a, 100),
        make_run(tmp_path / "ref_b", ["b"], ref_b, 100),
    ]
    report = cm.evaluate(finetune, refs)
    (method,) = report.methods
    a, b = method.elements
    # The method's AUC is 0.6 on both: FT_a = (0.6 - 0.8) / 0.2 = -1, FT_b = (0.6 - 0.2) / 0.8.
    assert a.forward_transfer is not None and b.forward_transfer is not None
    assert a.forward_transfer.value == pytest.approx(-1.0)
    assert b.forward_transfer.value == pytest.approx(0.5)
    assert method.forward_transfer is not None
    assert method.forward_transfer.value == pytest.approx(-0.25)
    assert report.warnings == ()


def test_forward_transfer_normalizes_with_means_over_seeds_and_references(tmp_path):
    runs = [
        make_run(tmp_path / "m0", ["a"], [[50, 0, 0.2], [100, 0, 0.2]], 100, seed=0),
        make_run(tmp_path / "m1", ["a"], [[50, 0, 0.6], [100, 0, 0.6]], 100, seed=1),
    ]
    refs = [
        make_run(tmp_path / "r0", ["a"], [[50, 0, 0.0], [100, 0, 0.0]], 100, method="finetune"),
        make_run(tmp_path / "r1", ["a"], [[50, 0, 0.5], [100, 0, 0.5]], 100, method="finetune"),
    ]
    ft = cm.evaluate(runs, refs).methods[0].forward_transfer
    # (mean 0.4 - mean 0.25) / (1 - 0.25) = 0.2, not the mean of per-pair ratios.
    assert ft is not None and ft.value == pytest.approx(0.2)
    assert ft.ci[0] <= ft.value <= ft.ci[1] and ft.ci[0] < ft.ci[1]


def test_a_missing_reference_leaves_forward_transfer_absent_with_a_warning(tmp_path, finetune):
    ref_a = make_run(tmp_path / "ref_a", ["a"], [[50, 0, 1.0], [100, 0, 1.0]], 100)
    ref_a2 = make_run(tmp_path / "ref_a2", ["a"], [[50, 0, 0.5], [100, 0, 0.5]], 100, seed=1)
    report = cm.evaluate(finetune, [ref_a, ref_a2])
    (method,) = report.methods
    assert method.elements[0].forward_transfer is not None
    assert method.elements[1].forward_transfer is None
    assert method.forward_transfer is None
    assert len(report.warnings) == 1 and "no reference run for b" in report.warnings[0]


def test_a_perfect_reference_leaves_forward_transfer_absent_with_a_warning(tmp_path, finetune):
    perfect = [[10 * i, 0, 1.0] for i in range(1, 11)]
    refs = [make_run(tmp_path / n, [n[-1]], perfect, 100) for n in ("ra", "rb")]
    report = cm.evaluate(finetune, refs)
    assert report.methods[0].forward_transfer is None
    assert all(e.forward_transfer is None for e in report.methods[0].elements)
    assert any("undefined" in w for w in report.warnings)


def test_no_references_is_no_forward_transfer_and_no_warning(finetune):
    report = cm.evaluate(finetune)
    assert report.methods[0].forward_transfer is None and report.warnings == ()


def test_repeated_elements_share_their_reference(tmp_path):
    rows = [[50, 0, 0.5, 0.0], [100, 0, 0.5, 0.0], [150, 1, 0.0, 0.5], [200, 1, 0.0, 0.5]]
    run = make_run(tmp_path / "cw20like", ["a", "a"], rows, 100)
    ref = make_run(tmp_path / "ref", ["a"], [[50, 0, 0.0], [100, 0, 0.0]], 100)
    (method,) = cm.evaluate([run], [ref]).methods
    ft = [e.forward_transfer for e in method.elements]
    assert all(e is not None and e.value == pytest.approx(0.5) for e in ft)


def test_bootstrap_interval_contains_the_mean(tmp_path):
    runs = [
        make_run(tmp_path / f"r{s}", ["a", "b"], two_element_rows(1.0, b), 100, seed=s)
        for s, b in enumerate([0.2, 0.5, 0.9, 0.4])
    ]
    perf = cm.evaluate(runs).methods[0].performance
    assert perf.n == 4
    assert perf.ci[0] < perf.value < perf.ci[1]
    assert perf.value == pytest.approx(np.mean([0.2, 0.5, 0.9, 0.4]) / 2)


def test_identical_seeds_give_a_degenerate_interval(tmp_path, finetune):
    ref_a = [[10 * i, 0, 1.0 if i >= 3 else 0.0] for i in range(1, 11)]
    ref_b = [[10 * i, 0, 1.0 if i >= 9 else 0.0] for i in range(1, 11)]
    refs = [make_run(tmp_path / n, [n[-1]], r, 100) for n, r in (("ra", ref_a), ("rb", ref_b))]
    method = cm.evaluate(finetune, refs).methods[0]
    for est in (method.performance, method.forgetting, method.forward_transfer):
        assert est is not None and est.ci == (est.value, est.value)


def test_runs_are_grouped_by_method(tmp_path, finetune):
    pm = [
        make_run(tmp_path / f"pm{s}", ["a", "b"], two_element_rows(1.0, 1.0), 100,
                 method="perfect_memory", seed=s)
        for s in range(2)
    ]  # fmt: skip
    report = cm.evaluate([*finetune, *pm])
    assert [(m.label, len(m.runs), m.seeds) for m in report.methods] == [
        ("finetune", 3, (0, 1, 2)),
        ("perfect_memory", 2, (0, 1)),
    ]


def test_multitask_reports_only_performance(tmp_path):
    rows = [[100, 0, 0.5, 0.5], [200, 0, 1.0, 0.5]]
    run = make_run(tmp_path / "mt", ["a", "b"], rows, 100, method="multitask")
    (method,) = cm.evaluate([run]).methods
    assert method.performance.value == pytest.approx(
        (0.75 + 0.5) / 2
    )  # both rows are in the last 5
    assert method.forgetting is None and method.forward_transfer is None


def test_report_files_hold_every_metric(tmp_path, finetune):
    written = cm.write_report(cm.evaluate(finetune), tmp_path / "out")
    assert [p.name for p in written] == [cm.METRICS_CSV, cm.METRICS_JSON, cm.PLOT_PNG]
    with open(written[0], newline="") as f:
        table = list(csv.DictReader(f))
    perf = next(r for r in table if r["metric"] == "performance")
    assert perf["method"] == "finetune" and float(perf["value"]) == pytest.approx(0.5)
    assert {r["metric"] for r in table} >= {"forgetting", "final_success", "auc"}
    doc = json.loads(written[1].read_text())
    assert doc["tasks"] == ["a", "b"] and doc["confidence"] == 0.9
    assert doc["bootstrap_resamples"] == 4000
    assert doc["methods"][0]["forward_transfer"] is None
    assert written[2].read_bytes()[:4] == b"\x89PNG"


def test_cli_prints_the_table_and_writes_the_report(tmp_path, finetune, capsys):
    out = tmp_path / "report"
    assert main(["continual", *map(str, finetune), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "performance" in text and "finetune" in text and "0.50 [0.50, 0.50]" in text
    assert (out / cm.PLOT_PNG).is_file()


def test_cli_default_out_is_beside_the_runs_folder(finetune):
    assert main(["continual", *map(str, finetune)]) == 0
    folder = finetune[0].parent
    assert (folder.with_name(f"{folder.name}-continual") / cm.METRICS_JSON).is_file()


def test_cli_warns_about_a_missing_reference(tmp_path, finetune, capsys):
    ref = make_run(tmp_path / "ref_a", ["a"], [[50, 0, 0.5], [100, 0, 0.5]], 100)
    args = ["continual", *map(str, finetune), "--reference", str(ref), "--out", str(tmp_path)]
    assert main(args) == 0
    assert "warning: no reference run for b" in capsys.readouterr().err


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    ok = make_run(tmp / "ok", ["a", "b"], two_element_rows(1.0, 1.0), 100)
    plain = tmp / "plain"
    plain.mkdir()
    (plain / "config.yaml").write_text("seed: 0\n")
    other = make_run(tmp / "other", ["b", "a"], two_element_rows(1.0, 1.0), 100)
    doubled = [[2 * r[0], *r[1:]] for r in two_element_rows(1.0, 1.0)]
    longer = make_run(tmp / "longer", ["a", "b"], doubled, 200)
    env = make_run(tmp / "env", ["a", "b"], two_element_rows(1.0, 1.0), 100,
                   env={"name": "point-robot", "n_train": 5})  # fmt: skip
    unfinished = make_run(tmp / "unfinished", ["a", "b"], two_element_rows(1.0, 1.0)[:12], 100)
    two = make_run(tmp / "two", ["a", "b"], two_element_rows(1.0, 1.0), 100)
    ref_c = make_run(tmp / "ref_c", ["c"], [[100, 0, 1.0]], 100)
    ref_short = make_run(tmp / "ref_short", ["a"], [[50, 0, 1.0]], 50)
    sparse = make_run(tmp / "sparse", ["a", "b"], two_element_rows(1.0, 1.0)[1::2], 100, seed=1)
    broken = make_run(tmp / "broken", ["a", "b"], two_element_rows(1.0, 1.0), 100)
    (broken / "continual.csv").write_text("step,position,success_0\n10,0,1\n")
    return {
        "not a continual run": ([str(plain)], "not a continual run"),
        "not a run": ([str(tmp / "missing")], "not a run directory"),
        "mismatched tasks": ([str(ok), str(other)], "ran another sequence"),
        "mismatched budget": ([str(ok), str(longer)], "steps_per_task"),
        "mismatched env": ([str(ok), str(env)], "env.n_train differs"),
        "unfinished": ([str(unfinished)], "not finished"),
        "reference of two elements": ([str(ok), "--reference", str(two)], "runs one element"),
        "reference not in sequence": ([str(ok), "--reference", str(ref_c)], "not in the sequence"),
        "reference budget": ([str(ok), "--reference", str(ref_short)], "equal budgets"),
        "malformed table": ([str(broken)], "does not match"),
        "other eval steps": ([str(ok), str(sparse)], "evaluated at different steps"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not a continual run", "not a run", "mismatched tasks", "mismatched budget",
        "mismatched env", "unfinished", "reference of two elements", "reference not in sequence",
        "reference budget", "malformed table", "other eval steps",
    ],
)  # fmt: skip
def test_bad_input_is_one_line_with_exit_status_2(case, tmp_path, capsys):
    args, message = _bad_inputs(tmp_path)[case]
    assert main(["continual", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gmtl continual: error:")
    assert message in err


def test_evaluate_raises_usage_error_without_runs():
    with pytest.raises(UsageError, match="at least one"):
        cm.evaluate([])
