"""`gmtl sweep`: every combination of grid axes x seeds as a normal run directory, run by local
processes or as Ray Tune trials, resumable, and aggregated across seeds at the end.

Sweep directory (default `<runs_dir>/<experiment>/sweep-<time>/`):

    sweep.json      the spec (axes, plain overrides, seeds, backend) and the trial list
    base.yaml       verbatim copy of CONFIG: `--resume` needs nothing outside the directory
    trials/<name>/  one run directory per trial (`gmtl resume | eval | plot` understand it)
    logs/<name>.log stdout and stderr of the trial's gmtl process (appended on resume)
    aggregate.csv, aggregate.json, adaptation.png, training.png   the cross-seed aggregate
    ray/            Ray Tune's own records and, where the path is short enough, Ray's temp files

Each trial is the gmtl CLI in its own process (`gmtl train BASE overrides --run-dir ...`, or
`gmtl resume` for a trial with a checkpoint), so a crashing trial never takes the others
down and checkpoints stay in our own atomic format.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import numpy as np
import yaml

from gmtl_rl.errors import ConfigError, UsageError
from gmtl_rl.ray_cluster import connect, import_ray

SPEC_FILE = "sweep.json"
BASE_CONFIG = "base.yaml"
FORMAT_VERSION = 1

TrialState = Literal["finished", "resumable", "fresh"]


# -- the spec ---------------------------------------------------------------------------------
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
    try:
        (path / "trials").mkdir(parents=True, exist_ok=True)
        (path / "logs").mkdir(exist_ok=True)
        shutil.copyfile(config_path, path / BASE_CONFIG)
        (path / SPEC_FILE).write_text(json.dumps(spec.to_json(), indent=2))
    except OSError as err:
        raise UsageError(f"cannot write sweep directory {path}: {err.strerror}") from None
    return path


def load(sweep_dir: str | Path) -> SweepSpec:
    path = Path(sweep_dir)
    try:
        data = json.loads((path / SPEC_FILE).read_text())
        return SweepSpec.from_json(data)
    except FileNotFoundError:
        raise UsageError(f"{path} is not a sweep directory (no {SPEC_FILE})") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path}/{SPEC_FILE}: corrupt ({type(err).__name__}: {err})") from None


# -- trial state --------------------------------------------------------------------------------
def trial_state(run_dir: Path) -> TrialState:
    """finished: its latest checkpoint says so and the step/episode budget is met (as
    `runner.resume` decides); resumable: it has a checkpoint; fresh: it has none."""
    # Read by hand: Ray workers import this module, and gmtl_rl.checkpoint brings in torch.
    found = sorted(p for p in run_dir.glob("checkpoints/step-*") if (p / "manifest.json").is_file())
    if not found:
        return "fresh"
    try:
        state = json.loads((found[-1] / "state.json").read_text())
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        counters = state["counters"]
        steps_done = counters["env_steps"] >= config["total_steps"]
        episodes = config.get("total_episodes")
        episodes_done = episodes is not None and counters["episodes"] >= episodes
        done = bool(state["finished"]) and (steps_done or episodes_done)
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return "resumable"  # `gmtl resume` gives the precise error, in the trial's log
    return "finished" if done and (run_dir / "eval" / "summary.json").is_file() else "resumable"


@dataclass(frozen=True)
class Job:
    """A trial's gmtl process: what to run and where its output goes (JSON-friendly)."""

    name: str
    command: tuple[str, ...]  # gmtl CLI arguments, after `python -m gmtl_rl.cli`
    log: str
    cwd: str


@dataclass(frozen=True)
class Outcome:
    name: str
    exit_code: int | None  # None: the trial never reported (Ray lost it)
    seconds: float
    log: str


def jobs_to_run(sweep_dir: Path, spec: SweepSpec) -> tuple[list[Job], list[str]]:
    """The unfinished trials as jobs (resume where a checkpoint exists, else start over),
    and the names of finished ones."""
    jobs, finished = [], []
    root = sweep_dir.resolve()
    for trial in spec.trials:
        run_dir = root / "trials" / trial.name
        state = trial_state(run_dir)
        if state == "finished":
            finished.append(trial.name)
            continue
        if state == "resumable":
            command: tuple[str, ...] = ("resume", str(run_dir))
        else:
            shutil.rmtree(run_dir, ignore_errors=True)  # a start cut before its first checkpoint
            base = str(root / BASE_CONFIG)
            command = ("train", base, *trial.overrides, "--run-dir", str(run_dir))
        log = str(root / "logs" / f"{trial.name}.log")
        jobs.append(Job(trial.name, command, log, os.getcwd()))
    return jobs, finished


# -- running ------------------------------------------------------------------------------------
Report = Callable[[str], None]


def run(
    sweep_dir: Path,
    spec: SweepSpec,
    report: Report = print,
    backend: Literal["local", "ray"] | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
) -> list[Outcome]:
    """Run the unfinished trials; backend, address and concurrency default to the spec's."""
    jobs, finished = jobs_to_run(sweep_dir, spec)
    backend = backend or spec.backend
    limit = max_concurrent or spec.max_concurrent
    if backend == "local" and limit < 1:  # a Ray sweep's "as many as Ray has CPUs for"
        limit = os.cpu_count() or 1
    at_once = f"up to {limit} at once" if limit else "as many at once as Ray has CPUs"
    report(
        f"sweep {sweep_dir}: {len(spec.trials)} trials ({spec.num_combinations} combinations x "
        f"{len(spec.seeds)} seeds); {len(finished)} finished, {len(jobs)} to run "
        f"({backend}, {at_once})"
    )
    if not jobs:
        return []
    if backend == "ray":
        return _run_ray(jobs, limit, address or spec.address, sweep_dir, report)
    return _run_local(jobs, limit, report)


def _python_command(job: Job) -> list[str]:
    return [sys.executable, "-m", "gmtl_rl.cli", *job.command]


def _run_local(jobs: Sequence[Job], max_concurrent: int, report: Report) -> list[Outcome]:
    """At most `max_concurrent` gmtl processes at once; SIGINT/SIGTERM is passed on to them
    once (each writes a checkpoint and exits), and no new trial starts after it."""
    pending = list(jobs)
    running: dict[str, tuple[subprocess.Popen[bytes], float, Job]] = {}
    outcomes: list[Outcome] = []
    stop: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        stop.append(signum)
        for proc, _, _ in running.values():
            proc.send_signal(signum)  # a second signal makes them stop at once, as for train

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while (pending and not stop) or running:
            while pending and not stop and len(running) < max_concurrent:
                job = pending.pop(0)
                with open(job.log, "ab") as log:
                    log.write(f"$ gmtl {' '.join(job.command)}\n".encode())
                    log.flush()
                    # Own session: a terminal's Ctrl-C reaches the sweep only, which passes it on.
                    proc = subprocess.Popen(
                        _python_command(job), cwd=job.cwd, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )  # fmt: skip
                running[job.name] = (proc, time.monotonic(), job)
                report(f"  started {job.name}: gmtl {job.command[0]} ({len(pending)} waiting)")
            time.sleep(0.1)
            for name, (proc, start, job) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                outcome = Outcome(name, proc.returncode, time.monotonic() - start, job.log)
                outcomes.append(outcome)
                report(_describe(outcome, len(outcomes), len(jobs)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop:
        raise SweepInterrupted(stop[0])
    return outcomes


class SweepInterrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


def _describe(outcome: Outcome, done: int, total: int) -> str:
    head = f"  [{done}/{total}] {outcome.name}"
    if outcome.exit_code == 0:
        return f"{head} finished in {outcome.seconds:.1f} s"
    code = "no exit status" if outcome.exit_code is None else f"exit {outcome.exit_code}"
    return f"{head} FAILED ({code}) after {outcome.seconds:.1f} s; log: {outcome.log}"


def ray_available() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def _tune_dirname(trial: Any) -> str:
    return str(trial.config["trial"])


def _ray_trial(config: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> None:
    """A Ray Tune function trainable: the trial's gmtl process, its exit status reported."""
    import ray
    from ray import tune

    spec = jobs[config["trial"]]
    job = Job(**{**spec, "command": tuple(spec["command"])})
    # A trial with sampler.backend: ray joins this cluster instead of starting its own Ray.
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    start = time.monotonic()
    with open(job.log, "ab") as log:
        log.write(f"$ gmtl {' '.join(job.command)}\n".encode())
        log.flush()
        # If this worker dies, the trial gets SIGTERM: it checkpoints and exits (resumable).
        proc = subprocess.Popen(
            _python_command(job), cwd=job.cwd, stdout=log, stderr=subprocess.STDOUT,
            env=env, preexec_fn=_die_with_parent,
        )  # fmt: skip
        code = proc.wait()
    tune.report({"exit_code": code, "seconds": time.monotonic() - start})


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, even by SIGKILL, so a trial of
    a killed sweep checkpoints and stops instead of running on unseen (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _run_ray(
    jobs: Sequence[Job],
    max_concurrent: int,
    address: str | None,
    sweep_dir: Path,
    report: Report,
) -> list[Outcome]:
    """Every job a Ray Tune trial of one CPU; Tune's own checkpointing is not used: `--resume`
    works from our run directories."""
    # Our run directories and the lines below say it all: no console table from Tune.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    session = connect(address, sweep_dir / "ray", hint=" (or use --backend local)")
    ray = import_ray()
    from ray import tune

    outcomes: dict[str, Outcome] = {}
    by_name = {job.name: job for job in jobs}

    class Progress(tune.Callback):
        """Reports each trial as it ends, as the local backend does."""

        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
        ) -> None:
            job = by_name[trial.config["trial"]]
            code = result.get("exit_code")
            outcome = Outcome(job.name, code, float(result.get("seconds", 0.0)), job.log)
            outcomes[outcome.name] = outcome
            report(_describe(outcome, len(outcomes), len(jobs)))

    try:
        report(f"  Ray: {ray.cluster_resources().get('CPU', 0):g} CPUs")
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(_ray_trial, jobs={j.name: asdict(j) for j in jobs}), {"cpu": 1}
            ),
            param_space={"trial": tune.grid_search(list(by_name))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent or None,  # 0: one trial per free CPU
                reuse_actors=False,
                trial_dirname_creator=_tune_dirname,
            ),
            run_config=tune.RunConfig(
                name=f"tune-{datetime.now():%Y%m%d-%H%M%S}",
                storage_path=str((sweep_dir / "ray").resolve()),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
                callbacks=[Progress()],
            ),
        )
        tuner.fit()
    finally:
        session.close()
    # A trial that never reported (its worker died, Tune was interrupted) is not finished.
    lost = [Outcome(j.name, None, 0.0, j.log) for j in jobs if j.name not in outcomes]
    for outcome in lost:
        report(_describe(outcome, len(outcomes) + 1, len(jobs)))
    return [*outcomes.values(), *lost]


# -- aggregate ----------------------------------------------------------------------------------
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
    and tasks, with stratified bootstrap intervals (tasks as strata, Agarwal et al. 2021);
    writes aggregate.csv, aggregate.json, adaptation.png and (when runs logged scheduled
    evaluations) training.png into the sweep directory."""
    from gmtl_rl.evaluation.adaptation import read_csv, summarize
    from gmtl_rl.evaluation.plots import plot_adaptation
    from gmtl_rl.evaluation.training import read_eval_points, write_training_plot

    root = Path(sweep_dir)
    spec = load(root)
    results: list[CombinationResult] = []
    curves: dict[str, Any] = {}
    training: dict[str, list[Any]] = {}
    confidence, resamples = 0.95, 2000
    for index in range(spec.num_combinations):
        label = f"c{index}: {spec.combination_label(index)}" if spec.axes else "base"
        rows, seeds, missing = [], [], []
        for trial in (t for t in spec.trials if t.combination == index):
            run_dir = root / "trials" / trial.name
            table = run_dir / "eval" / "adaptation.csv"
            if trial_state(run_dir) != "finished" or not table.is_file():
                missing.append(trial.name)
                continue
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            confidence = float(config.get("eval", {}).get("confidence", confidence))
            resamples = int(config.get("eval", {}).get("bootstrap_resamples", resamples))
            rows.extend(read_csv(table))
            seeds.append(trial.seed)
            points = read_eval_points(run_dir / "metrics.csv", trial.seed)
            if points:
                training.setdefault(label, []).extend(points)
        if not rows:
            results.append(CombinationResult(index, label, (), tuple(missing), 0, None, None))
            continue
        last = max(r.episode for r in rows)
        final = [r for r in rows if r.episode == last]
        estimates = [
            _estimate(final, field, confidence, resamples)
            for field in ("episode_return", "success")
        ]
        results.append(
            CombinationResult(
                index, label, tuple(seeds), tuple(missing), last, estimates[0], estimates[1]
            )
        )
        curves[label] = summarize(rows, confidence, resamples)
    _write_aggregate(root, spec, results, curves)
    if curves:
        plot_adaptation(
            {k: s.episode_return for k, s in curves.items()},
            {k: s.success for k, s in curves.items()},
            root / "adaptation.png",
            title=f"sweep {root.name}: adaptation on held-out tasks (IQM, 95% CI)",
            statistic="iqm",
        )
    if training:
        write_training_plot(
            training, root / "training.png", title=f"sweep {root.name}: evaluation during training"
        )
    for result in results:
        report(_result_line(result))
    report(f"wrote {root / 'aggregate.csv'}, {root / 'aggregate.json'}, {root / 'adaptation.png'}")
    return results


def _estimate(rows: Sequence[Any], field: str, confidence: float, resamples: int) -> Estimate:
    """One value per (seed, task): the mean over repeats; tasks are the bootstrap strata."""
    from gmtl_rl.evaluation.stats import iqm, stratified_bootstrap_ci

    groups: dict[tuple[int, int], list[float]] = {}
    for r in rows:
        groups.setdefault((r.seed, r.task), []).append(float(getattr(r, field)))
    keys = sorted(groups)
    values = np.array([np.mean(groups[k]) for k in keys])
    strata = np.array([task for _, task in keys])
    options = (confidence, resamples)
    return Estimate(
        iqm=iqm(values),
        iqm_ci=stratified_bootstrap_ci(values, strata, "iqm", *options),
        mean=float(values.mean()),
        mean_ci=stratified_bootstrap_ci(values, strata, "mean", *options),
    )


AGGREGATE_COLUMNS = (
    "combination", "label", "seeds", "missing", "episode",
    "return_iqm", "return_iqm_low", "return_iqm_high", "return_mean",
    "success_iqm", "success_iqm_low", "success_iqm_high", "success_mean",
)  # fmt: skip


def _write_aggregate(
    root: Path, spec: SweepSpec, results: Sequence[CombinationResult], curves: dict[str, Any]
) -> None:
    import csv

    with open(root / "aggregate.csv", "w", newline="") as f:
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
        "sweep": root.name,
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
    (root / "aggregate.json").write_text(json.dumps(doc, indent=2))


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
