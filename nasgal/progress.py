"""Progress reporting for long loops: a rich bar on a terminal, plain lines otherwise.

Library code takes a :class:`Reporter` and never prints; the CLI picks the kind.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

log = logging.getLogger("nasgal")


def _fmt(row: dict[str, Any]) -> str:
    parts = []
    for k, v in row.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


class Reporter:
    """Silent reporter that forwards epoch summaries to ``logging``."""

    def start(self, title: str, epoch: int, epochs: int, steps: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def end(self, row: dict[str, Any]) -> None:
        log.info("%s", _fmt(row))

    def message(self, text: str) -> None:
        log.info("%s", text)

    def close(self) -> None:
        pass


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class PlainReporter(Reporter):
    """One line per epoch (and per message) on a stream: for logs and pipes. Early in the first
    epoch it also says how long an epoch will take, measured on the first steps."""

    #: Seconds of the first epoch after which the estimate is printed (if the epoch lasts longer).
    ESTIMATE_AFTER_S = 10.0

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.title = ""
        self.estimated = False
        self._steps = self._done = 0
        self._t0 = self._first = 0.0

    def start(self, title: str, epoch: int, epochs: int, steps: int) -> None:
        import time

        self.title = f"{title} epoch {epoch + 1}/{epochs}"
        self._steps, self._done, self._t0 = steps, 0, time.perf_counter()

    def advance(self, n: int = 1) -> None:
        if self.estimated:
            return
        import time

        now = time.perf_counter()
        if self._done == 0:
            self._first = now - self._t0  # the first step warms up (allocations, compilation)
        self._done += n
        spent = now - self._t0
        if spent >= self.ESTIMATE_AFTER_S and 1 < self._done < self._steps:
            self.estimated = True
            per_step = (spent - self._first) / (self._done - 1)
            per_epoch = self._first + per_step * (self._steps - 1)
            print(f"{self.title}: {self._done}/{self._steps} steps in {_duration(spent)}; "
                  f"about {_duration(per_epoch)} per epoch", file=self.stream, flush=True)

    def end(self, row: dict[str, Any]) -> None:
        print(f"{self.title}: {_fmt(row)}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class RichReporter(Reporter):
    """A progress bar per epoch with the last epoch's figures, on stderr."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        # No source link after each line (a log setting, not news for a user).
        self.console = console or Console(stderr=True, log_path=False)
        # The bar keeps a fixed width and the epoch's figures go to the line logged below it, so
        # at 80 columns nothing is squeezed to one character or to "…".
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = None

    def start(self, title: str, epoch: int, epochs: int, steps: int) -> None:
        desc = f"{title} {epoch + 1}/{epochs}"
        if self.task is None:
            self.task = self.progress.add_task(desc, total=steps)
        else:
            self.progress.reset(self.task, total=steps, description=desc)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def end(self, row: dict[str, Any]) -> None:
        self.console.log(_fmt(row), markup=False, highlight=False)

    def message(self, text: str) -> None:
        self.console.log(text, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def default_reporter(enabled: bool = True) -> Reporter:
    """Rich bar on a terminal, plain lines otherwise (``enabled=False``: logging only)."""
    if not enabled:
        return Reporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
