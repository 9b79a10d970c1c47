"""`gmtl train | resume | eval | plot | continual | record | sweep | envs | agents | check-env`.

User mistakes print one line and exit with status 2; an interrupted run exits 128 + signal.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import warnings
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from gmtl_rl.errors import EnvWorkerFailure, NumericalFault, UsageError

EPILOG = "Docs: README.md. Every config key can be overridden as key.sub=value after CONFIG."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gmtl", description=__doc__, epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train from a YAML config")
    t.add_argument("config", help="path to a YAML config, e.g. configs/quickstart.yaml")
    t.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. total_steps=20000")
    t.add_argument(
        "--run-dir", help="write the run here instead of runs/<experiment>/<time>-s<seed>"
    )

    r = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    r.add_argument("run_dir")
    r.add_argument("overrides", nargs="*", help="total_steps=..., eval.*, checkpoint.*, logging.*")
    r.add_argument(
        "--checkpoint", metavar="step-N", help="continue from this checkpoint (default: newest)"
    )

    e = sub.add_parser("eval", help="adaptation curve of a run's latest checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--split", choices=["test", "train"], help="task split (default: the run's)")
    e.add_argument("--episodes", type=int, help="K, episodes per trial (default: the run's)")
    e.add_argument(
        "--checkpoint", metavar="step-N", help="evaluate this checkpoint (default: newest whole)"
    )
    e.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions instead of the policy's mode (eval-<split>-k<K>-stochastic/)",
    )
    e.add_argument(
        "--protocol",
        choices=["adaptation", "metaworld"],
        default="adaptation",
        help="adaptation: our adaptation curve (eval/); metaworld: Meta-World's own "
        "evaluation (eval-metaworld/metaworld.json): MT: --episodes per class (default 50); "
        "ML: 10 rounds of 10 adaptation + --episodes scored episodes (default 3)",
    )

    pl = sub.add_parser("plot", help="overlay the adaptation or training curves of several runs")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("--out", required=True, help="PNG file to write")
    pl.add_argument(
        "--kind", choices=["adaptation", "training", "options"], default="adaptation",
        help="adaptation: return/success against k (eval/adaptation.csv); "
        "training: evaluation points against env steps (metrics.csv); "
        "options: the option map of one option_critic run on four-rooms",
    )  # fmt: skip
    pl.add_argument("--statistic", choices=["mean", "iqm"], default="mean")
    pl.add_argument(
        "--group-by", choices=["experiment", "run"], default="experiment",
        help="pool seeds of one experiment into one curve (default) or draw each run",
    )  # fmt: skip
    for flag, what in (
        ("--oracle", "an agent shown the task (configs/oracle_*.yaml)"),
        ("--non-adaptive", "an agent with the task hidden, not adapting (nonadaptive_*.yaml)"),
    ):
        pl.add_argument(
            flag, nargs="+", action="extend", default=[], metavar="RUN_DIR",
            help=f"bound of the adaptation curves: runs of {what}, pooled over seeds and "
            "episodes into one dashed reference line with its interval band",
        )  # fmt: skip

    cl = sub.add_parser(
        "continual",
        help="Continual World's metrics (performance, forgetting, forward transfer) of "
        "continual runs, grouped by method, with the success plot of every element",
    )
    cl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs of one sequence")
    cl.add_argument(
        "--reference", nargs="+", action="extend", default=[], metavar="RUN_DIR",
        help="single-element runs (e.g. configs/continual/cw_single.yaml), matched to the "
        "sequence's elements by name: the baseline of forward transfer (absent without them)",
    )  # fmt: skip
    cl.add_argument(
        "--out", metavar="DIR",
        help="where continual_metrics.csv/.json and continual.png go (default: beside the "
        "runs' folder, runs/EXP-continual for runs under runs/EXP)",
    )  # fmt: skip

    rc = sub.add_parser(
        "record", help="a trial of a run's latest checkpoint as a video (.mp4, .gif) or picture"
    )
    rc.add_argument("run_dir")
    rc.add_argument(
        "--out", required=True, metavar="FILE",
        help=".mp4 or .gif: labelled frames (MuJoCo, Meta-World); .png: the trial drawn "
        "(trajectories of point robots, Four Rooms, ...; any family)",
    )  # fmt: skip
    rc.add_argument("--split", help="task split, test or train (default: the run's)")
    rc.add_argument(
        "--task", type=int, metavar="INDEX",
        help="the task's position in the split (adaptation.csv's task_index; default: the "
        "first evaluated task)",
    )  # fmt: skip
    rc.add_argument(
        "--episodes", type=int, metavar="K", help="episodes in the trial (default: the run's)"
    )
    rc.add_argument(
        "--seed", type=int, metavar="S", help="seed of the trial (default: the run's eval seed)"
    )
    rc.add_argument(
        "--checkpoint", metavar="step-N", help="record this checkpoint (default: newest whole)"
    )
    rc.add_argument(
        "--stochastic", action="store_true", help="sample actions (default: the policy's mode)"
    )
    rc.add_argument("--size", default="320x240", metavar="WxH", help="video frame size")
    rc.add_argument("--fps", type=float, help="video frame rate (default: real time, at most 30)")
    rc.add_argument(
        "--every", type=int, default=1, metavar="N",
        help="film every N-th step and each episode's last state (default: every step)",
    )  # fmt: skip

    sw = sub.add_parser(
        "sweep", help="run every combination of key=v1,v2 axes x seeds, each a normal run"
    )
    sw.add_argument("config", nargs="?", help="path to a YAML config")
    sw.add_argument(
        "overrides", nargs="*",
        help="key=value (every trial) or key=v1,v2 (a grid axis); commas inside [], {} or "
        "quotes stay in one value: agent.hidden=[64,64],[256,256]",
    )  # fmt: skip
    sw.add_argument("--seeds", help="0-9, 0,3,5 or 0-4,10 (default: the config's seed)")
    sw.add_argument(
        "--backend", choices=["auto", "local", "ray"], default="auto",
        help="auto: Ray Tune if Ray is installed, else one local process per trial",
    )  # fmt: skip
    sw.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    sw.add_argument(
        "--max-concurrent", type=int,
        help="trials at once (default: local, the CPU cores; ray, one per free CPU of the cluster)",
    )  # fmt: skip
    sw.add_argument("--sweep-dir", help="default: <runs_dir>/<experiment>/sweep-<time>")
    sw.add_argument("--resume", metavar="DIR", help="rerun the unfinished trials of a sweep")
    sw.add_argument("--aggregate", metavar="DIR", help="only (re)write a sweep's aggregate")

    sub.add_parser("envs", help="list task families")
    sub.add_parser("agents", help="list agents")

    c = sub.add_parser("check-env", help="run Gymnasium's and SB3's env checkers on a family")
    c.add_argument("name")
    c.add_argument("options", nargs="*", help="family options as key=value, e.g. observe_goal=true")
    c.add_argument(
        "--render", action="store_true",
        help="also run the render checks (off by default: Gymnasium's opens a window per "
        "render mode, which needs a display; refused on Linux without DISPLAY/WAYLAND_DISPLAY)",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # Overrides may also come after options (`gmtl train C --run-dir D a=1`): collect them.
    args, extra = parser.parse_known_args(argv)
    if extra:
        target = {
            "train": "overrides",
            "resume": "overrides",
            "sweep": "overrides",
            "check-env": "options",
        }
        if args.command not in target or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, target[args.command]).extend(extra)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except UsageError as err:
        # One line whatever the message holds (user-supplied keys may contain newlines).
        print(f"gmtl {args.command}: error: {' '.join(str(err).splitlines())}", file=sys.stderr)
        return 2
    except NumericalFault as fault:
        print(f"gmtl {args.command}: numerical fault: {fault}", file=sys.stderr)
        return fault.exit_code
    except EnvWorkerFailure as failure:
        print(f"gmtl {args.command}: env worker failure: {failure}", file=sys.stderr)
        return failure.exit_code
    except OSError as err:  # the machine's, not ours: read-only or full disk, missing device
        where = f"{err.filename}: " if err.filename else ""
        print(f"gmtl {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gmtl: interrupted", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace) -> int:
    from gmtl_rl import runner
    from gmtl_rl.config import load_config

    config = load_config(args.config, args.overrides)
    try:
        path = runner.train(config, args.run_dir, on_start=lambda p: print(f"run: {p}", flush=True))
    except runner.Interrupted as stop:
        print(f"{stop}; checkpoint written. Continue with: gmtl resume <run dir>", file=sys.stderr)
        return stop.exit_code
    _report(path)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from gmtl_rl import runner

    def started(path: Path, checkpoint: str | None, note: str) -> None:
        source = f"from {checkpoint}" if checkpoint else "from the start"
        print(f"run: {path} (resuming {source}{'; ' + note if note else ''})", flush=True)

    try:
        outcome = runner.resume(args.run_dir, args.overrides, args.checkpoint, on_start=started)
    except runner.Interrupted as stop:
        print(
            f"{stop}; checkpoint written. Continue with: gmtl resume {args.run_dir}",
            file=sys.stderr,
        )
        return stop.exit_code
    if not outcome.trained:
        print(f"{outcome.path}: run already finished at {outcome.checkpoint}; nothing to do "
              "(pass total_steps=N, or total_episodes=N, to train longer)")  # fmt: skip
        return 0
    _report(outcome.path)
    return 0


def _report(path: Path) -> None:
    from gmtl_rl.run_dir import RunDir

    run = RunDir(path)
    summary = json.loads(run.summary_json.read_text())
    ret, suc = summary["return"], summary["success"]
    first, last = ret[0], ret[-1]
    later = f", k={last['episode']} {last['mean']:.3g}" if len(ret) > 1 else ""
    explore = int(summary.get("exploration_episodes", 0))
    if explore:  # say which points of the curve are exploration, not adaptation
        span = "k=1" if explore == 1 else f"k=1..{explore}"
        later += f" ({span}: exploration)"
    print(
        f"eval on {summary['num_tasks']} {summary['split']} tasks: return k=1 {first['mean']:.3g}"
        f" (95% CI {first['mean_ci'][0]:.3g}..{first['mean_ci'][1]:.3g}){later};"
        f" success k={last['episode']} {suc[-1]['mean']:.2f}"
    )
    print(f"curve: {run.adaptation_plot}")


def _eval(args: argparse.Namespace) -> int:
    from gmtl_rl import runner
    from gmtl_rl.run_dir import ADAPTATION_CSV, ADAPTATION_PNG, SUMMARY_JSON

    if args.episodes is not None and args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    if args.protocol == "metaworld":
        if args.split is not None:
            raise UsageError(
                "--split does not apply to --protocol metaworld (MT: train goals, ML: test goals)"
            )
        if args.stochastic:
            raise UsageError(
                "--stochastic applies to --protocol adaptation; Meta-World's protocol follows "
                "the run's eval.deterministic"
            )
        outcome = runner.evaluate_metaworld(args.run_dir, args.episodes, args.checkpoint)
        print(f"evaluating {outcome.checkpoint}{'; ' + outcome.note if outcome.note else ''}")
        result = json.loads(outcome.out.read_text())
        print(f"Meta-World {result['benchmark']}: mean success {result['mean_success']:.3f}")
        for name, success in result["success_per_class"].items():
            print(f"  {name:<28} {success:.3f}")
        print(f"wrote {outcome.out}")
        return 0
    evaluated = runner.evaluate(
        args.run_dir, args.split, args.episodes, args.checkpoint, stochastic=args.stochastic
    )
    out = evaluated.out
    print(f"evaluated {evaluated.checkpoint}{'; ' + evaluated.note if evaluated.note else ''}")
    print(
        f"wrote {', '.join(str(out / n) for n in (ADAPTATION_CSV, SUMMARY_JSON, ADAPTATION_PNG))}"
    )
    return 0


def _plot(args: argparse.Namespace) -> int:
    from gmtl_rl.evaluation.adaptation import summarize
    from gmtl_rl.evaluation.plots import plot_adaptation
    from gmtl_rl.evaluation.runs import adaptation_groups, bound_references, training_groups
    from gmtl_rl.evaluation.training import write_training_plot

    if (args.oracle or args.non_adaptive) and args.kind != "adaptation":
        raise UsageError(
            f"--oracle and --non-adaptive are reference lines of the adaptation plot; "
            f"--kind {args.kind} has none (drop them or use --kind adaptation)"
        )
    if args.kind == "options":
        from gmtl_rl.evaluation.option_map import plot_option_map

        if len(args.run_dirs) != 1:
            raise UsageError("--kind options draws one run: give exactly one RUN_DIR")
        print(f"wrote {plot_option_map(args.run_dirs[0], args.out)}")
        return 0
    if args.kind == "training":
        points = training_groups(args.run_dirs, args.group_by)
        out = write_training_plot(points, Path(args.out), title="evaluation during training")
    else:
        groups = adaptation_groups(args.run_dirs, args.group_by)
        references = bound_references(args.oracle, args.non_adaptive)
        summaries = {label: summarize(rows) for label, rows in groups.items()}
        out = plot_adaptation(
            {k: s.episode_return for k, s in summaries.items()},
            {k: s.success for k, s in summaries.items()},
            args.out,
            title="adaptation on held-out tasks",
            statistic=args.statistic,
            references=references,
        )
        for label, s in summaries.items():
            curve = "  ".join(_point_text(p, args.statistic) for p in s.episode_return)
            print(f"{label}: return by episode k  {curve}")
        for label, ref in references.items():
            print(f"{label}: return {_point_text(ref.episode_return, args.statistic, k=False)}")
    print(f"wrote {out}")
    return 0


def _point_text(point: Any, statistic: str, k: bool = True) -> str:
    """'k=2: -8.0 [-8.9, -7.0]': a curve point's statistic and its 95% interval."""
    value = point.mean if statistic == "mean" else point.iqm
    low, high = point.mean_ci if statistic == "mean" else point.iqm_ci
    prefix = f"k={point.episode}: " if k else ""
    return f"{prefix}{value:.2f} [{low:.2f}, {high:.2f}]"


def _continual(args: argparse.Namespace) -> int:
    import os

    from gmtl_rl.evaluation import continual

    report = continual.evaluate(args.run_dirs, args.reference)
    for warning in report.warnings:
        print(f"gmtl continual: warning: {warning}", file=sys.stderr)
    if args.out is not None:
        out = Path(args.out)
    else:
        # Beside the runs' folder, not in it, so `gmtl continual runs/EXP/*` stays repeatable.
        parent = Path(os.path.commonpath([str(Path(p).resolve().parent) for p in args.run_dirs]))
        out = parent.with_name(f"{parent.name}-continual") if parent.name else parent / "continual"
    written = continual.write_report(report, out)
    spt = report.steps_per_task
    print(f"{report.family}: {len(report.names)} elements x {spt} steps; "
          f"{report.confidence:.0%} bootstrap intervals over seeds")  # fmt: skip
    for line in continual.summary_lines(report):
        print(line)
    print(f"wrote {', '.join(map(str, written))}")
    return 0


def _record(args: argparse.Namespace) -> int:
    from gmtl_rl.visual import offscreen

    offscreen.configure()  # before anything imports mujoco: it fixes its GL backend then
    from gmtl_rl.visual.record import RecordRequest, parse_size, record, summary

    request = RecordRequest(
        run_dir=Path(args.run_dir), out=Path(args.out), split=args.split, task=args.task,
        episodes=args.episodes, seed=args.seed, checkpoint=args.checkpoint,
        deterministic=not args.stochastic, size=parse_size(args.size), fps=args.fps,
        every=args.every,
    )  # fmt: skip
    print(summary(record(request)))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import os

    from gmtl_rl import sweep
    from gmtl_rl.ray_cluster import RAY_MISSING

    existing = args.resume or args.aggregate
    if args.resume and args.aggregate:
        raise UsageError("give --resume DIR or --aggregate DIR, not both")
    if existing and (args.config or args.overrides or args.seeds or args.sweep_dir):
        raise UsageError(
            f"{'--resume' if args.resume else '--aggregate'} DIR takes no CONFIG, overrides, "
            f"--seeds or --sweep-dir: they are saved in {existing}/{sweep.SPEC_FILE}"
        )
    if args.aggregate:
        sweep.aggregate(args.aggregate)
        return 0
    if not existing and not args.config:
        raise UsageError("give a CONFIG to start a sweep, or --resume DIR / --aggregate DIR")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.backend == "local" and args.address:
        raise UsageError("--address is a Ray cluster address; it needs --backend ray (or auto)")
    if args.resume:
        path = Path(args.resume)
        spec = sweep.load(path)
        backend = spec.backend if args.backend == "auto" else args.backend
    else:
        backend = args.backend
        if backend == "auto":
            backend = "ray" if sweep.ray_available() else "local"
        seeds = sweep.parse_seeds(args.seeds) if args.seeds is not None else None
        # Ray places trials by free CPUs (a cluster has more than this machine).
        concurrency = args.max_concurrent or (0 if backend == "ray" else os.cpu_count() or 1)
        spec, _ = sweep.plan(args.config, args.overrides, seeds, backend, args.address, concurrency)
    if backend == "ray" and not sweep.ray_available():
        raise UsageError(f"--backend ray: {RAY_MISSING} (or use --backend local)")
    if not args.resume:
        path = sweep.create(spec, args.config, args.sweep_dir)
    with sweep.SweepDir(path).writer_lock():  # one process runs a sweep, start to aggregate
        print(f"sweep: {path}", flush=True)
        try:
            outcomes = sweep.run(path, spec, print, backend, args.address, args.max_concurrent)
        except sweep.SweepInterrupted as stop:
            print(f"{stop}; continue with: gmtl sweep --resume {path}", file=sys.stderr)
            return stop.exit_code
        sweep.aggregate(path)
    failed = sorted((o for o in outcomes if o.exit_code != 0), key=lambda o: o.name)
    if failed:
        print(
            f"gmtl sweep: {len(failed)} of {len(outcomes)} trials failed "
            f"({', '.join(o.name for o in failed)}); their logs are in {path / 'logs'}; "
            f"rerun them with: gmtl sweep --resume {path}",
            file=sys.stderr,
        )
        return 1
    return 0


def _envs(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gmtl_rl.envs import families

    rows = [("name", "train/test", "horizon", "observation", "action", "description")]
    for name, cls in families().items():
        if cls.listing is not None:  # known without a slow build (Meta-World: up to 35 s)
            info = cls.listing
            rows.append(
                (name, info["split"], info["horizon"], info["observation"], info["action"],
                 cls.description)
            )  # fmt: skip
            continue
        try:
            dist = cls(cls.Options())
        except ValidationError:
            rows.append((name, "-", "-", "(from options)", "(from options)", cls.description))
            continue
        env = dist.make_env()
        split = f"{len(dist.train_tasks())}/{len(dist.test_tasks())}"
        rows.append(
            (name, split, str(dist.horizon or "-"), _space(env.observation_space),
             _space(env.action_space), cls.description)
        )  # fmt: skip
        env.close()
    _print_table(rows)
    return 0


def _space(space: Any) -> str:
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}:{_space(v)}" for k, v in space.spaces.items()) + ")"
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    return type(space).__name__


def _agents(args: argparse.Namespace) -> int:
    from gmtl_rl.agents import agents

    rows = [("name", "family", "description")]
    rows += [(s.name, s.family, s.description) for s in agents().values()]
    _print_table(rows)
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join([c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)] + [r[-1]]))


def _check_env(args: argparse.Namespace) -> int:
    import os

    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    from gmtl_rl.config import apply_overrides
    from gmtl_rl.envs import build

    options = apply_overrides({}, args.options)
    dist = build(args.name, options)
    render: bool = args.render
    if render:
        env = dist.make_env(dist.train_tasks()[0])
        # Gymnasium remakes the env from its spec in every declared render mode; for "human"
        # GLFW asserts (SIGABRT, core dump) rather than raising when there is no display.
        opens_window = env.spec is not None and "human" in (env.metadata.get("render_modes") or [])
        env.close()
        if opens_window and sys.platform.startswith("linux"):
            if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                raise UsageError(
                    "--render opens a window for render_mode='human', and there is no display "
                    "(DISPLAY and WAYLAND_DISPLAY unset): run it on a desktop or under xvfb-run"
                )
    failed = False
    for label, check in (
        ("gymnasium check_env", gym_check),
        ("stable-baselines3 check_env", sb3_check),
    ):
        env = dist.make_env(dist.train_tasks()[0])
        buf = io.StringIO()
        with (
            warnings.catch_warnings(record=True) as caught,
            redirect_stdout(buf),
            redirect_stderr(buf),
        ):
            warnings.simplefilter("always")
            try:
                check(env, skip_render_check=not render)
                error = None
            except Exception as err:  # the checkers raise plain AssertionErrors and friends
                error = f"{type(err).__name__}: {err}"
        env.close()
        print(f"{'FAIL' if error else 'ok  '} {label}")
        if error:
            failed = True
            print(f"     {error}")
        for w in caught:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(w.message)).strip().splitlines()[0]
            print(f"     warning: {text}")
    if not render:
        print(
            "skip render checks: off by default, they open a window per render mode, which "
            "needs a display (MuJoCo envs abort without one); add --render on a desktop"
        )
    return 1 if failed else 0


COMMANDS = {
    "train": _train,
    "resume": _resume,
    "eval": _eval,
    "plot": _plot,
    "continual": _continual,
    "record": _record,
    "sweep": _sweep,
    "envs": _envs,
    "agents": _agents,
    "check-env": _check_env,
}

if __name__ == "__main__":
    sys.exit(main())
