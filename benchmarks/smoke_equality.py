"""Same numbers before and after a refactor: one smoke run per agent family at a fixed seed.

    python benchmarks/smoke_equality.py record DIR    # before: keep metrics.csv and adaptation.csv
    python benchmarks/smoke_equality.py compare DIR   # after: the same commands, the same numbers

Time columns (`time_s`, `steps_per_s`) are left out of the comparison; every other value of
`metrics.csv` and `eval/adaptation.csv` must be equal as text. The last line says
`equal=<n>/<total>`.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE_RUNS = {
    "sac": "configs/smoke/sac_point_robot.yaml",
    "pearl": "configs/smoke/pearl_point_robot.yaml",
    "rl2": "configs/smoke/rl2_point_robot.yaml",
    "option_critic": "configs/smoke/option_critic_four_rooms.yaml",
    "sb3": "configs/smoke/sb3_sac_point_robot.yaml",
}
FILES = ("metrics.csv", "eval/adaptation.csv")
TIME_COLUMNS = {"time_s", "steps_per_s"}


def run_family(config: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        gmtl = Path(sys.executable).parent / "gmtl"
        subprocess.run(
            [str(gmtl), "train", config, "--run-dir", str(run_dir), "seed=0"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for name in FILES:
            target = out / name.replace("/", "_")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(run_dir / name, target)


def rows_without_time(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in TIME_COLUMNS and k != "run"}
            for row in csv.DictReader(f)
        ]


def main() -> int:
    mode, reference = sys.argv[1], Path(sys.argv[2])
    equal = 0
    for family, config in SMOKE_RUNS.items():
        if mode == "record":
            run_family(config, reference / family)
            print(f"{family}: recorded")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            run_family(config, Path(tmp))
            same = all(
                rows_without_time(reference / family / n.replace("/", "_"))
                == rows_without_time(Path(tmp) / n.replace("/", "_"))
                for n in FILES
            )
        equal += same
        print(f"{family}: {'equal' if same else 'DIFFERENT'}")
    if mode == "compare":
        print(f"equal={equal}/{len(SMOKE_RUNS)}")
        return 0 if equal == len(SMOKE_RUNS) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
