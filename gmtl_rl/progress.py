"""A rich progress bar (count, rate, ETA) on a terminal; silent when output is not one."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def compact(value: float) -> str:
    """A count or rate in at most 5 characters: 9,999 / 12.3k / 1.02M / 4.56G."""
    if value < 1e4:
        return f"{value:,.0f}"
    for scale, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        text = f"{value / scale:.3g}"
        if "e" not in text and float(text) < 1000:
            return text + suffix
    return f"{value:.1e}"


class progress_bar:
    """`with progress_bar(total, done, label, unit) as advance: advance(count)`."""

    def __init__(self, total: int, done: int, label: str, unit: str) -> None:
        self.total, self.done, self.label, self.unit = total, done, label, unit
        self.bar: Any = None

    _active = 0  # rich allows one live display: a bar opened inside another stays silent

    def __enter__(self) -> Callable[[int], None]:
        progress_bar._active += 1
        if sys.stderr.isatty() and progress_bar._active == 1:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            # Compact numbers and a short bar: the whole line fits 80 columns (a test holds it)
            # e.g. "train ━━━━━━━━━━━━ 1.23M/5.02M  25% 12.3k steps/s 0:12:34 ETA 0:37:00".
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=12),
                TextColumn("{task.fields[count]}/" + compact(self.total)),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]} " + self.unit + "/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),  # stdout stays clean for results and pipes
            )
            self.bar.start()
            self.task = self.bar.add_task(
                self.label,
                total=self.total,
                completed=self.done,
                rate="-",
                count=compact(self.done),
            )
            self._t0, self._s0 = time.perf_counter(), self.done

        def advance(count: int) -> None:
            if self.bar is not None:
                rate = (count - self._s0) / max(time.perf_counter() - self._t0, 1e-9)
                self.bar.update(
                    self.task, completed=count, rate=compact(rate), count=compact(count)
                )

        return advance

    def __exit__(self, *exc: object) -> None:
        progress_bar._active -= 1
        if self.bar is not None:
            self.bar.stop()
