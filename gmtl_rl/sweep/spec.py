"""What a sweep is: its grid axes, seeds and trials (`sweep.json`), planned and validated from a
config before anything runs, and the directory that holds it."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from gmtl_rl.errors import ConfigError, UsageError
from gmtl_rl.run_dir import RunDir, WriterLock, sweep_lock_file

SPEC_FILE = "sweep.json"
BASE_CONFIG = "base.yaml"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SweepDir:
    """Paths of one sweep directory; each trial is an ordinary run directory under trials/."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def spec(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def base_config(self) -> Path:
        return self.path / BASE_CONFIG

    @property
    def trials(self) -> Path:
        return self.path / "trials"

    def trial(self, name: str) -> RunDir:
        return RunDir(self.trials / name)

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def ray(self) -> Path:
        """Ray Tune's own records (and Ray's temp files where the path is short enough)."""
        return self.path / "ray"

    @property
    def aggregate_csv(self) -> Path:
        return self.path / "aggregate.csv"

    @property
    def aggregate_json(self) -> Path:
        return self.path / "aggregate.json"

    @property
    def adaptation_png(self) -> Path:
        return self.path / "adaptation.png"

    @property
    def training_png(self) -> Path:
        return self.path / "training.png"

    @contextmanager
    def writer_lock(self, command: str = "") -> Iterator[None]:
        """One process runs, resumes or aggregates a sweep at a time (see `WriterLock`); a
        second one gets a one-line `RunInUse` naming the first. Nested use is counted."""
        with WriterLock(sweep_lock_file(self.path), command or " ".join(sys.argv)):
            yield


@dataclass(frozen=True)
class Axis:
    """One grid axis: a dotted config key and its values as YAML text."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: combination `combination` of the axes with seed `seed`."""

    name: str  # also the run directory under trials/ and the log name
    combination: int
    seed: int
    overrides: tuple[str, ...]  # applied to base.yaml, plain overrides first


@dataclass(frozen=True)
class SweepSpec:
    source: str  # CONFIG as given (for the record; base.yaml is what runs)
    overrides: tuple[str, ...]
    axes: tuple[Axis, ...]
    seeds: tuple[int, ...]
    backend: Literal["local", "ray"]
    address: str | None
    max_concurrent: int  # 0 (Ray only): as many trials as the cluster has free CPUs
    trials: tuple[Trial, ...]

    def combination_label(self, index: int) -> str:
        if not self.axes:
            return "base"
        values = next(itertools.islice(self.combinations(), index, None))
        return " ".join(f"{a.key}={v}" for a, v in zip(self.axes, values, strict=True))

    def combinations(self) -> itertools.product[tuple[str, ...]]:
        return itertools.product(*(a.values for a in self.axes))

    @property
    def num_combinations(self) -> int:
        return int(np.prod([len(a.values) for a in self.axes])) if self.axes else 1

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSpec:
        if data.get("format_version") != FORMAT_VERSION:
            raise UsageError(f"unsupported sweep format {data.get('format_version')!r}")
        return cls(
            source=str(data["source"]),
            overrides=tuple(data["overrides"]),
            axes=tuple(Axis(a["key"], tuple(a["values"])) for a in data["axes"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            backend=data["backend"],
            address=data.get("address"),
            max_concurrent=int(data["max_concurrent"]),
            trials=tuple(
                Trial(t["name"], int(t["combination"]), int(t["seed"]), tuple(t["overrides"]))
                for t in data["trials"]
            ),
        )


def parse_seeds(text: str) -> tuple[int, ...]:
    """`0-9`, `0,3,5` or `0-4,10` -> the seeds, in order, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise UsageError(
                f"--seeds {text!r}: expected a range like 0-9, a list like 0,3,5, or both (0-4,10)"
            )
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise UsageError(f"--seeds {text!r}: range {part.strip()} runs backwards")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: a seed appears twice")
    return tuple(seeds)


def split_values(item: str) -> list[str]:
    """The comma-separated values of `key=v1,v2`. Commas inside [], {} or quotes belong to one
    value: `agent.hidden=[64,64],[256,256]` has two values; quote a string holding a comma."""
    key, _, raw = item.partition("=")
    values, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(raw):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"override {item!r}: unbalanced {ch!r}")
        elif ch == "," and depth == 0:
            values.append(raw[start:i])
            start = i + 1
    if quote or depth:
        raise ConfigError(f"override {item!r}: unclosed {quote or '[ or {'}")
    values.append(raw[start:])
    if len(values) > 1 and any(not v.strip() for v in values):
        raise ConfigError(
            f"override {item!r}: an empty value in a grid axis (write {key}=v1,v2; "
            f"quote a string that holds a comma: {key}='a,b')"
        )
    return values


def plan(
    config_path: str | Path,
    items: Sequence[str],
    seeds: Sequence[int] | None,
    backend: Literal["local", "ray"],
    address: str | None,
    max_concurrent: int,
) -> tuple[SweepSpec, dict[str, Any]]:
    """The spec, with every trial's config validated; returns it and the base mapping."""
    # Not at the top: Ray workers import this package, and the config models bring in torch.
    from gmtl_rl.config import apply_overrides, parse_config, read_yaml

    base = read_yaml(config_path)
    overrides: list[str] = []
    axes: list[Axis] = []
    seen: set[str] = set()
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected key=value or key=v1,v2 (a grid axis)")
        if key in seen:
            raise ConfigError(f"override {item!r}: {key} is given twice")
        seen.add(key)
        values = split_values(item)
        if key == "seed":
            raise ConfigError(f"override {item!r}: give seeds with --seeds (e.g. --seeds 0-9)")
        if key == "experiment" and len(values) > 1:
            raise ConfigError(
                f"override {item!r}: experiment cannot be a grid axis (each trial's experiment "
                "is <experiment>-c<combination>)"
            )
        if len(values) == 1:
            overrides.append(item)
        else:
            axes.append(Axis(key, tuple(v.strip() for v in values)))
    if max_concurrent < 0 or (max_concurrent == 0 and backend == "local"):
        raise UsageError(f"--max-concurrent must be >= 1, got {max_concurrent}")
    merged = apply_overrides(base, overrides)
    seeds = tuple(seeds) if seeds is not None else (int(merged.get("seed", 0)),)
    experiment = parse_config(merged).experiment
    if "threads" not in merged:
        # Trials share the machine: torch threads per trial so they add up to the cores
        # (a Ray trial reserves one CPU). Saved in each trial's config.yaml like any setting.
        cores = os.cpu_count() or 1
        overrides.append(f"threads={1 if backend == 'ray' else max(1, cores // max_concurrent)}")
    spec = SweepSpec(
        source=str(config_path),
        overrides=tuple(overrides),
        axes=tuple(axes),
        seeds=seeds,
        backend=backend,
        address=address,
        max_concurrent=max_concurrent,
        trials=(),
    )
    width = len(str(spec.num_combinations - 1))
    trials = []
    for index, combination in enumerate(spec.combinations()):
        combo = [f"{a.key}={v}" for a, v in zip(spec.axes, combination, strict=True)]
        for seed in seeds:
            name = f"c{index:0{width}d}-s{seed}"
            trial_overrides = (
                *overrides,
                *combo,
                f"seed={seed}",
                f"experiment={experiment}-c{index:0{width}d}",  # gmtl plot: one curve each
            )
            try:
                parse_config(apply_overrides(base, trial_overrides))
            except UsageError as err:
                where = spec.combination_label(index) if spec.axes else "the base config"
                raise ConfigError(f"trial {name} ({where}): {err}") from None
            trials.append(Trial(name, index, seed, trial_overrides))
    return replace(spec, trials=tuple(trials)), base


def create(spec: SweepSpec, config_path: str | Path, sweep_dir: str | Path | None) -> Path:
    """Write the sweep directory (spec + verbatim base config); refuses a non-empty one."""
    if sweep_dir is None:
        base = yaml.safe_load(Path(config_path).read_text())  # validated by plan()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        root = Path(str(base.get("runs_dir", "runs"))) / str(base.get("experiment", "default"))
        path = root / f"sweep-{stamp}"
    else:
        path = Path(sweep_dir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(
            f"sweep directory {path} already exists and is not empty; "
            f"continue it with `gmtl sweep --resume {path}` or choose another"
        )
    layout = SweepDir(path)
    try:
        layout.trials.mkdir(parents=True, exist_ok=True)
        layout.logs.mkdir(exist_ok=True)
        shutil.copyfile(config_path, layout.base_config)
        layout.spec.write_text(json.dumps(spec.to_json(), indent=2))
    except OSError as err:
        raise UsageError(f"cannot write sweep directory {path}: {err.strerror}") from None
    return path


def load(sweep_dir: str | Path) -> SweepSpec:
    path = Path(sweep_dir)
    try:
        data = json.loads(SweepDir(path).spec.read_text())
        return SweepSpec.from_json(data)
    except FileNotFoundError:
        raise UsageError(f"{path} is not a sweep directory (no {SPEC_FILE})") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path}/{SPEC_FILE}: corrupt ({type(err).__name__}: {err})") from None
