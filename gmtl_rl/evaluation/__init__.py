"""Adaptation curves, multi-task tables, aggregate statistics and plots."""

from gmtl_rl.evaluation.adaptation import (
    AdaptationRow,
    CurveSummary,
    read_csv,
    run_adaptation,
    summarize,
    write_report,
)
from gmtl_rl.evaluation.stats import CurvePoint, iqm, stratified_bootstrap_ci, summarize_curve

__all__ = [
    "AdaptationRow",
    "CurvePoint",
    "CurveSummary",
    "iqm",
    "read_csv",
    "run_adaptation",
    "stratified_bootstrap_ci",
    "summarize",
    "summarize_curve",
    "write_report",
]
