"""The optimizers and the learning-rate schedule of every stage.

torch's own fused optimizers, with the learning rate in a device tensor: the schedule writes
into that tensor (:func:`set_lr`), so a step captured into a CUDA graph follows it, and the
step never reads a value back to the host. Fused ``SGD`` and ``Adam(capturable=True)`` do this
on CPU and CUDA alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .schedule import cosine_lr

__all__ = ["adam", "cosine_lr", "set_lr", "sgd"]


def _rate(lr: float, device: torch.device | str) -> Tensor:
    return torch.tensor(lr, device=device)


def sgd(params: Iterable[Tensor] | nn.Module, lr: float, momentum: float, weight_decay: float,
        device: torch.device | str) -> torch.optim.SGD:
    """SGD with momentum and L2 weight decay over ``params`` (a module: its trainable ones)."""
    if isinstance(params, nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=_rate(lr, device), momentum=momentum, weight_decay=weight_decay, fused=True)


def adam(params: Iterable[Tensor], lr: float, betas: tuple[float, float], weight_decay: float,
         device: torch.device | str) -> torch.optim.Adam:
    """Adam (L2 weight decay added to the gradient, as DARTS's α optimizer), capturable."""
    return torch.optim.Adam(params, lr=_rate(lr, device), betas=tuple(betas), weight_decay=weight_decay,
                            fused=True, capturable=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate, in place when it is a tensor (a captured step reads it)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
