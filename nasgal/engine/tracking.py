"""Experiment tracking beside a run's own records: TensorBoard event files, when asked for.

A stage gives the engine a row per epoch; :class:`TensorBoardTracker` writes its numbers as
scalars (``train/train_loss``, ``search/alpha_normal/0->2/sep_conv_3x3``, ``prune/masks/pos0/node1``,
...) into ``RUN_DIR/tensorboard``, with the epoch as the step. ``tensorboard --logdir RUN_DIR``
shows them. A resumed run appends a new event file; an epoch interrupted after its scalars
were written shows twice at the same step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import NasgalError
from ..runfiles import TENSORBOARD


class Tracker:
    """Receives each epoch's scalars; the default keeps nothing."""

    def epoch(self, kind: str, epoch: int, scalars: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    def __init__(self, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise NasgalError(
                "--tensorboard needs the tensorboard package, which is not installed",
                hint="pip install 'nasgal[tracking]' (or: pip install tensorboard)",
            ) from None
        self.writer = SummaryWriter(log_dir=str(out / TENSORBOARD))

    def epoch(self, kind: str, epoch: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(f"{kind}/{key}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) row, keys joined with '/', without the epoch counter."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(numbers(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
            if math.isfinite(value):
                out[name] = float(value)
    return out


def tracker(tensorboard: bool, out: Path) -> Tracker:
    """The tracker a run's settings ask for."""
    return TensorBoardTracker(out) if tensorboard else Tracker()
