"""The training step, eager or captured (torch.compile, a CUDA graph of the whole step).

Metrics accumulate on the device (``stats``: loss sum, correct, count) and are read once
per epoch, so no step waits for the host. The learning rate lives in a tensor, so a
captured step follows the schedule without being captured again.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def split_output(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def make_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, device: torch.device):
    from .optim import DeviceSGD

    params = [p for p in model.parameters() if p.requires_grad]
    # A tensor lr lets a captured step see schedule changes; foreach ops keep launches few.
    return DeviceSGD(params, lr=torch.tensor(lr, device=device), momentum=momentum, weight_decay=weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


class TrainStep:
    """One SGD step on a batch: forward, loss (plus weighted auxiliary loss), backward,
    optional gradient clipping, update; with device-side metric accumulation.

    ``capture``: ``none`` (eager), ``compile`` (torch.compile of the model),
    ``cuda-graph`` (the whole step replayed from a CUDA graph), or ``compile+cuda-graph``.
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
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.aux_weight = aux_weight
        self.grad_clip = grad_clip
        self.device = device
        self.autocast_dtype = torch.bfloat16 if precision == "bf16" else None
        if capture in ("cuda-graph", "compile+cuda-graph") and device.type != "cuda":
            log.warning("capture %r needs a CUDA device; running eagerly on %s", capture, device)
            capture = "compile" if capture.startswith("compile") else "none"
        self.capture = capture
        self.forward: Callable = torch.compile(model) if capture.startswith("compile") else model
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.stats = torch.zeros(3, device=device)  # [loss sum, correct, count]
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None

    def _body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None, cache_enabled=False,
        ):
            logits, aux = split_output(self.forward(x))
            loss = F.cross_entropy(logits, y)
            total = loss if aux is None or self.aux_weight == 0 else loss + self.aux_weight * F.cross_entropy(aux, y)
        total.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optimizer.step()
        with torch.no_grad():
            n = y.shape[0]
            self.stats[0].add_(loss.detach().float() * n)
            self.stats[1].add_((logits.detach().argmax(1) == y).sum())
            self.stats[2].add_(n)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Warm up on a side stream, then record the whole step; the warm-up's effect on
        weights, optimizer state and metrics is undone so training starts clean."""
        snapshot = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._static = (x.clone(), y.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._body(*self._static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._body(*self._static)
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                v.copy_(snapshot[k])
            for state in self.optimizer.state.values():
                buf = state.get("momentum_buffer")
                if buf is not None:
                    buf.zero_()  # with dampening 0, a zero buffer equals "no step yet"
            self.stats.zero_()
        self._graph = graph

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.capture in ("cuda-graph", "compile+cuda-graph"):
            if self._graph is None:
                self._capture(x, y)
            sx, sy = self._static
            sx.copy_(x, non_blocking=True)
            sy.copy_(y, non_blocking=True)
            self._graph.replay()
        else:
            self._body(x, y)

    def read_stats(self) -> tuple[float, float, int]:
        """(mean loss, accuracy, images) since the last read; one host sync."""
        loss_sum, correct, count = self.stats.tolist()
        self.stats.zero_()
        n = max(count, 1.0)
        return loss_sum / n, correct / n, int(count)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, precision: str = "fp32", device: torch.device = torch.device("cpu")
) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` in eval mode over ``loader``."""
    was_training = model.training
    model.eval()
    stats = torch.zeros(3, device=device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    for x, y in loader:
        with torch.autocast(device.type, dtype=dtype, enabled=precision == "bf16"):
            logits, _ = split_output(model(x))
        stats[0] += F.cross_entropy(logits.float(), y, reduction="sum")
        stats[1] += (logits.argmax(1) == y).sum()
        stats[2] += y.shape[0]
    model.train(was_training)
    loss_sum, correct, count = stats.tolist()
    n = max(count, 1.0)
    return loss_sum / n, correct / n
