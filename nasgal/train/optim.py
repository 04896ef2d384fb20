"""SGD whose step never waits for the host, so a CUDA graph can capture it.

``torch.optim.SGD`` reads a tensor learning rate back to the host in every step (an
``.item()``), which CUDA-graph capture forbids. This SGD keeps the rate on the device.
It computes what ``torch.optim.SGD`` computes with dampening 0 and no Nesterov
(buffer = momentum * buffer + (grad + wd * param); param -= lr * buffer), and stores the
same ``momentum_buffer`` state, so its checkpoints read like SGD's.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor


class DeviceSGD(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Tensor], lr: float | Tensor, momentum: float = 0.0, weight_decay: float = 0.0):
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - as torch.optim.Optimizer.step
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            if group["momentum"]:
                bufs = []
                for p in params:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        # A zero buffer makes the first step buffer = grad, as torch's SGD does.
                        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    bufs.append(state["momentum_buffer"])
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_add_(bufs, grads)
                grads = bufs
            lr = group["lr"]
            if isinstance(lr, Tensor):
                torch._foreach_add_(params, torch._foreach_mul(grads, -lr))
            else:
                torch._foreach_add_(params, grads, alpha=-lr)
        return loss
