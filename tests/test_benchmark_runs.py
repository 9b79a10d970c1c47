"""benchmarks/_runs.py: the helpers every benchmark reads its runs with."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmark_modules import BENCHMARKS

if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from _runs import training_time  # benchmarks/ is not a package: on sys.path above

HEADER = "step,time_s,steps_per_s,episodes,eval_return_last\n"


def _metrics(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "metrics.csv").write_text(HEADER + "".join(f"{r}\n" for r in rows))
    return tmp_path


def test_training_time_is_the_last_rows_time_with_evaluation_rows_at_a_repeated_step(tmp_path):
    run = _metrics(tmp_path, ["100,1.5,66,4,", "200,3.0,66,8,", "200,3.4,,,-5.0"])
    assert training_time(run) == (200, 3.4)


def test_training_time_sums_the_attempts_of_a_resumed_run(tmp_path):
    # First attempt to 200 at 3.4 s (its last row an evaluation), then a resume from 200.
    rows = ["100,1.5,66,4,", "200,3.0,66,8,", "200,3.4,,,-5.0", "300,1.2,80,12,", "400,2.5,80,16,"]
    assert training_time(_metrics(tmp_path, rows)) == (400, 3.4 + 2.5)


def test_training_time_of_a_run_without_rows_is_none(tmp_path):
    assert training_time(tmp_path) is None
    assert training_time(_metrics(tmp_path, [])) is None
