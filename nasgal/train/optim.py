"""Optimizers whose step never waits for the host, so a CUDA graph can capture it.

:class:`DeviceSGD`: ``torch.optim.SGD`` reads a tensor learning rate back to the host in every step (an
``.item()``), which CUDA-graph capture forbids. This SGD keeps the rate on the device.
It computes what ``torch.optim.SGD`` computes with dampening 0 and no Nesterov
(buffer = momentum * buffer + (grad + wd * param); param -= lr * buffer), and stores the
same ``momentum_buffer`` state, so its checkpoints read like SGD's.

:class:`DeviceAdam`: Adam likewise (the search's α optimizer).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor


class _DeviceRates(torch.optim.Optimizer):
    """Loading a state keeps each group's tensor learning rate, the very tensor a captured step
    reads, and copies the loaded rate into it (torch would put the checkpoint's value, a float or
    a tensor wherever it was saved, in its place)."""

    def load_state_dict(self, state_dict) -> None:
        rates = [group["lr"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, rate in zip(self.param_groups, rates):
            if isinstance(rate, Tensor):
                with torch.no_grad():
                    rate.copy_(torch.as_tensor(group["lr"]))
                group["lr"] = rate


class DeviceSGD(_DeviceRates):
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


class DeviceAdam(_DeviceRates):
    """Adam whose step never waits for the host, on any device.

    ``torch.optim.Adam(capturable=True)`` does the same on CUDA but refuses CPU tensors; this
    one runs (and is tested) everywhere, so the captured and the eager search step share code.
    It computes what ``torch.optim.Adam`` computes without amsgrad (L2 weight decay added to the
    gradient, bias corrections from a step count kept as a tensor) and stores the same state
    (``step``, ``exp_avg``, ``exp_avg_sq``), so its checkpoints read like Adam's.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1:
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps}, {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def load_state_dict(self, state_dict) -> None:
        """As for :class:`DeviceSGD`, and the step counts land beside their parameters (torch
        leaves a non-capturable optimizer's ``step`` wherever it was saved)."""
        super().load_state_dict(state_dict)
        for p, state in self.state.items():
            if "step" in state:
                state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(p.device)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - as torch.optim.Optimizer.step
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                t.add_(1)
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                tp = t.to(p.dtype) if p.dtype.is_floating_point and p.element_size() >= 4 else t
                bias1 = 1 - torch.pow(b1, tp)
                bias2_sqrt = (1 - torch.pow(b2, tp)).sqrt()
                denom = (v.sqrt() / bias2_sqrt).add_(group["eps"])
                p.addcdiv_(m, denom * (bias1 / lr), value=-1.0)
        return loss
