"""A rich progress bar (count, rate, ETA) on a terminal; silent when output is not one."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


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
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]} " + self.unit + "/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),  # stdout stays clean for results and pipes
            )
            self.bar.start()
            self.task = self.bar.add_task(
                self.label, total=self.total, completed=self.done, rate="-"
            )
            self._t0, self._s0 = time.perf_counter(), self.done

        def advance(count: int) -> None:
            if self.bar is not None:
                rate = (count - self._s0) / max(time.perf_counter() - self._t0, 1e-9)
                self.bar.update(self.task, completed=count, rate=f"{rate:,.0f}")

        return advance

    def __exit__(self, *exc: object) -> None:
        progress_bar._active -= 1
        if self.bar is not None:
            self.bar.stop()
