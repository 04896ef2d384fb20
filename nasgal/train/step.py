"""The training step of ``nasgal train``, eager or captured (see :class:`nasgal.engine.step.CapturedStep`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.precision import autocast
from ..engine.step import CapturedStep, split_output


class TrainStep(CapturedStep):
    """One SGD step on a batch: forward, loss (plus weighted auxiliary loss), backward,
    optional gradient clipping, update; with device-side metric accumulation.

    ``capture``: ``none`` (eager), ``compile`` (torch.compile of the model),
    ``cuda-graph`` (the whole step replayed from a CUDA graph), or ``compile+cuda-graph``.
    ``forward``: the module the forward pass runs through, when not ``model`` itself (its
    ``DistributedDataParallel`` wrapper under torchrun).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        aux_weight: float = 0.0,
        grad_clip: float | None = None,
        precision: str = "fp32",
        capture: str = "none",
        device: torch.device = torch.device("cpu"),
        forward: nn.Module | None = None,
    ) -> None:
        super().__init__([model], [optimizer], capture, device)
        self.model = model
        self.optimizer = optimizer
        self.aux_weight = aux_weight
        self.grad_clip = grad_clip
        self.precision = precision
        self.forward = self._forward_of(forward if forward is not None else model)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    def _body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            logits, aux = split_output(self.forward(x))
            loss = F.cross_entropy(logits, y)
            total = loss if aux is None or self.aux_weight == 0 else loss + self.aux_weight * F.cross_entropy(aux, y)
        total.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optimizer.step()
        self._accumulate(loss, logits, y)
