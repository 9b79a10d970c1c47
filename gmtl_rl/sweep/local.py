"""The local launcher: a pool of at most N gmtl processes on this machine; SIGINT/SIGTERM is
passed on to the running trials once, and no new trial starts after it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

from gmtl_rl.sweep.trials import Job, Outcome, Report, describe, die_with_parent, python_command


class SweepInterrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


def run_local(jobs: Sequence[Job], max_concurrent: int, report: Report) -> list[Outcome]:
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
                        python_command(job), cwd=job.cwd, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True,
                        preexec_fn=die_with_parent,
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
                report(describe(outcome, len(outcomes), len(jobs)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop:
        raise SweepInterrupted(stop[0])
    return outcomes
