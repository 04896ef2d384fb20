"""Arithmetic of a step: plain float32, or bf16 autocast. The one place that opens an autocast
region for the training, search and pruning steps and for evaluation."""

from __future__ import annotations

import torch

from ..options import Precision

__all__ = ["Precision", "autocast"]


def autocast(device: torch.device | str, precision: Precision | str) -> torch.autocast:
    """The autocast region of ``precision`` on ``device`` (disabled for fp32).

    The weight-cast cache is off: a CUDA graph may capture the region, and a cache would
    outlive the graph's tensors. Under ``no_grad`` the cache saves nothing anyway.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)
