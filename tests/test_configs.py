"""Every shipped config parses, and every smoke twin trains and evaluates end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmtl_rl import runner
from gmtl_rl.config import load_config

CONFIGS = Path(__file__).parents[1] / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))
SMOKE = sorted((CONFIGS / "smoke").glob("*.yaml"))
SLOW_SMOKE = {  # MT50, ML45: 20-34 s builds; CW20
    "mtsac_mt50.yaml", "pearl_ml45.yaml", "rl2_ml45.yaml",
    "softmod_mt50.yaml", "care_mt50.yaml", "moore_mt50.yaml", "paco_mt50.yaml",
    "continual_cw20.yaml",  # 20 evaluations of a 10-class Meta-World sequence
}  # fmt: skip


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_parses_and_names_its_source(path):
    config = load_config(path)
    assert config.experiment
    assert path.read_text().startswith("#"), "every config opens with a comment on its source"


def test_every_full_config_has_a_smoke_twin():
    # `make run`'s three quickstart configs are small already and `make run` is their check.
    full = {p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith("quickstart")}
    assert full <= {p.name for p in SMOKE}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_SMOKE else p
        for p in SMOKE
        if p.name != "sac_point_robot.yaml"  # trained by test_cli and the learning tests
    ],
    ids=lambda p: p.name,
)
def test_smoke_twin_trains_and_writes_the_evaluation(path, tmp_path):
    run = runner.train(load_config(path), tmp_path / "run")
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["return"][0]["n"] >= 1
    assert (run / "checkpoints").is_dir()
