"""Learning-rate schedules (plain arithmetic, no torch: the settings models use them)."""

from __future__ import annotations

import math


def cosine_lr(lr: float, lr_min: float, epoch: int, epochs: int) -> float:
    """The rate in ``epoch`` (0-indexed) of a cosine from ``lr`` to ``lr_min`` over ``epochs``,
    as ``torch.optim.lr_scheduler.CosineAnnealingLR`` gives it."""
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs))
