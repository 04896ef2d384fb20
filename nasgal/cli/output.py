"""Tables on standard output: box lines on a terminal, plain ASCII when piped or redirected
(a log or a file should not hold box-drawing characters)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


def stdout_console() -> Console:
    return Console()


def table(console: Console, **kwargs: Any) -> Table:
    """A ``rich`` table whose borders suit ``console``: box-drawing on a terminal, ASCII elsewhere."""
    kwargs.setdefault("box", box.HEAVY_HEAD if console.is_terminal else box.ASCII)
    return Table(**kwargs)
