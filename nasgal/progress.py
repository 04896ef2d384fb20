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


class PlainReporter(Reporter):
    """One line per epoch (and per message) on a stream: for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.title = ""

    def start(self, title: str, epoch: int, epochs: int, steps: int) -> None:
        self.title = f"{title} epoch {epoch + 1}/{epochs}"

    def end(self, row: dict[str, Any]) -> None:
        print(f"{self.title}: {_fmt(row)}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class RichReporter(Reporter):
    """A progress bar per epoch with the last epoch's figures, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = None
        self.last = ""

    def start(self, title: str, epoch: int, epochs: int, steps: int) -> None:
        desc = f"{title} {epoch + 1}/{epochs}"
        if self.task is None:
            self.task = self.progress.add_task(desc, total=steps, info=self.last)
        else:
            self.progress.reset(self.task, total=steps, description=desc, info=self.last)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def end(self, row: dict[str, Any]) -> None:
        # Short figures only beside the bar: a long value (a search's genotype) squeezes the bar
        # out of the line; the full row, genotype included, goes to the log line below.
        keys = [k for k in ("train_loss", "train_acc", "val_acc", "images_per_s") if k in row]
        self.last = " ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys)
        if self.task is not None:
            self.progress.update(self.task, info=self.last)
        self.console.log(_fmt(row))

    def message(self, text: str) -> None:
        self.console.log(text)

    def close(self) -> None:
        self.progress.stop()


def default_reporter(enabled: bool = True) -> Reporter:
    """Rich bar on a terminal, plain lines otherwise (``enabled=False``: logging only)."""
    if not enabled:
        return Reporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
