"""One DARTS search step, eager or replayed from a CUDA graph.

A step is an α step on a batch of the α half (first- or second-order gradient, Adam), then a
weight step on a batch of the weight half (SGD with momentum, weight decay and gradient-norm
clipping of the weights only; α enters as a constant). Both optimizers keep their learning
rate and step count on the device (:mod:`nasgal.engine.optim`), nothing in the step reads a
value back to the host, and loss and accuracy of the weight step accumulate on the device,
so the whole step can be captured once and replayed (``capture="cuda-graph"``): the search
supernet is launch-bound on a GPU, thousands of small kernels per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collections.abc import Callable, Sequence

from ..engine.optim import adam, sgd
from ..engine.precision import autocast
from ..engine.step import CapturedStep
from . import architect
from .supernet import Architecture


class SearchStep(CapturedStep):
    """``step(x, y, x_val, y_val)``: one α step, then one weight step.

    ``w_opt`` must be SGD over the supernet's weights and ``a_opt`` Adam over α (and β), with
    tensor learning rates (:func:`make_optimizers`): the captured step follows them. ``stats`` (and :meth:`read_stats`) cover the weight
    steps. ``average`` (data-parallel runs): replaces gradients, in place, by their mean over
    the processes; it is applied to every gradient the step uses (α's, the weights', and the
    intermediate ones of the second-order gradient), so every process takes the same step.
    """

    def __init__(
        self,
        model: nn.Module,
        arch: Architecture,
        w_opt: torch.optim.SGD,
        a_opt: torch.optim.Adam,
        *,
        order: str = "first",
        grad_clip: float | None = 5.0,
        precision: str = "fp32",
        capture: str = "none",
        device: torch.device = torch.device("cpu"),
        average: Callable[[Sequence[torch.Tensor]], None] | None = None,
    ) -> None:
        if order not in ("first", "second"):
            raise ValueError(f"order must be 'first' or 'second', got {order!r}")
        super().__init__([model, arch], [w_opt, a_opt], capture, device)
        self.model, self.arch, self.w_opt, self.a_opt = model, arch, w_opt, a_opt
        self.order, self.grad_clip, self.precision = order, grad_clip, precision
        self.forward = self._forward_of(model)
        self.weights = [p for g in w_opt.param_groups for p in g["params"]]
        self.alphas = list(arch.parameters())
        self.average = average

    def _body(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor) -> None:
        group = self.w_opt.param_groups[0]
        # α step on the α half's batch.
        if self.order == "first":
            grads = architect.first_order(self.forward, self.arch, x_val, y_val, self.precision)
            if self.average is not None:
                self.average(grads)
        else:
            grads = architect.second_order(
                self.model, self.arch, x, y, x_val, y_val, group["lr"], group["momentum"], group["weight_decay"],
                architect.momentum_buffers(self.model, self.w_opt), self.precision, average=self.average,
            )
        for p, g in zip(self.alphas, grads):
            p.grad = g
        self.a_opt.step()
        # Weight step on the weight half's batch.
        self.w_opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            logits = self.forward(x, self.arch.as_dict(detach=True))
        loss = F.cross_entropy(architect.at_least_fp32(logits), y)
        loss.backward()
        if self.average is not None:
            self.average([p.grad for p in self.weights])
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.weights, self.grad_clip, foreach=True)
        self.w_opt.step()
        self._accumulate(loss, logits, y)


def make_optimizers(
    model: nn.Module,
    arch: Architecture,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    arch_lr: float,
    arch_betas: tuple[float, float],
    arch_weight_decay: float,
    device: torch.device,
) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    """DARTS's two optimizers, with their learning rates as device tensors."""
    return (sgd(model, lr, momentum, weight_decay, device),
            adam(list(arch.parameters()), arch_lr, arch_betas, arch_weight_decay, device))
