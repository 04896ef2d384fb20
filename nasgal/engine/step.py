"""What every stage's step shares: capture (torch.compile, a CUDA graph of the whole step),
device-side metric accumulation, state snapshots, and evaluation.

Metrics accumulate on the device (``stats``: loss sum, correct, count) and are read once
per epoch, so no step waits for the host. Learning rates live in tensors
(:mod:`nasgal.engine.optim`), so a captured step follows the schedule without being captured again.
"""

from __future__ import annotations

import logging
from typing import Callable, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ..compiler.fuse import folded_for_inference
from ..errors import NasgalError
from ..options import Capture
from . import distributed
from .precision import autocast

log = logging.getLogger(__name__)


def split_output(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


CAPTURE_MODES: tuple[str, ...] = get_args(Capture)
GRAPH_MODES = ("cuda-graph", "compile+cuda-graph")


class StateSnapshot:
    """A copy of modules' state (weights, buffers) and optimizers' state tensors, to undo steps.

    ``restore()`` copies the saved values back in place (a captured graph keeps pointing at the
    same tensors) and zeroes optimizer state created after the snapshot: for
    SGD's momentum buffer and capturable Adam's step count and moments (:mod:`nasgal.engine.optim`)
    a zero state is the state before their first step.
    """

    def __init__(self, modules: list[nn.Module], optimizers: list[torch.optim.Optimizer]) -> None:
        self.modules, self.optimizers = modules, optimizers
        self.module_state = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]
        self.opt_state = [
            {(id(p), k): v.clone() for p, st in o.state.items() for k, v in st.items() if isinstance(v, torch.Tensor)}
            for o in optimizers
        ]

    @torch.no_grad()
    def restore(self) -> None:
        for m, saved in zip(self.modules, self.module_state):
            for k, v in m.state_dict().items():
                v.copy_(saved[k])
        for o, saved in zip(self.optimizers, self.opt_state):
            for p, st in o.state.items():
                for k, v in st.items():
                    if isinstance(v, torch.Tensor):
                        old = saved.get((id(p), k))
                        v.copy_(old) if old is not None else v.zero_()


class CapturedStep:
    """A training-style step over fixed-shape tensors, run eagerly or replayed from a CUDA graph.

    Subclasses implement ``_body(*tensors)``, which must not read values back to the host.
    With ``capture`` ``cuda-graph`` (or ``compile+cuda-graph``) the first call warms the body
    up on a side stream, records it into a graph, and undoes the warm-up's effect on
    ``modules`` and ``optimizers`` (so a resumed run keeps its optimizer state); every call
    then copies its inputs into the graph's static tensors and replays it. Without CUDA, or if
    recording fails, the graph modes fall back, with a warning, to eager (or compiled) execution.
    """

    def __init__(
        self,
        modules: list[nn.Module],
        optimizers: list[torch.optim.Optimizer],
        capture: str,
        device: torch.device,
    ) -> None:
        if capture not in CAPTURE_MODES:
            raise ValueError(f"capture must be one of {', '.join(CAPTURE_MODES)}, got {capture!r}")
        self.capture = capture
        self.device = device
        if self.graphed and device.type == "cuda" and distributed.active():
            raise NasgalError(
                f"capture {capture!r} under torchrun ({distributed.world_size()} processes) is not supported: a CUDA "
                "graph would have to hold the gradient all-reduce, which nasgal does not record",
                hint="use --capture none or --capture compile with several processes, or run one process per graph",
            )
        if self.graphed and device.type != "cuda":
            self._without_graph(f"capture {capture!r} needs a CUDA device, not {device}")
        self._modules, self._optimizers = modules, optimizers
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[torch.Tensor, ...] | None = None
        self.stats = torch.zeros(3, device=device)  # [loss sum, correct, images], on the device

    @property
    def graphed(self) -> bool:
        return self.capture in GRAPH_MODES

    @property
    def captured(self) -> bool:
        """Whether calls replay a recorded CUDA graph (not before the first call, nor after a fallback)."""
        return self._graph is not None

    def _without_graph(self, reason: str) -> None:
        """Fall back from a graph mode to eager (or compiled) execution, with a warning."""
        self.capture = "compile" if self.capture.startswith("compile") else "none"
        log.warning("%s; running the step %s", reason, "compiled" if self.capture == "compile" else "eagerly")

    def _forward_of(self, model: nn.Module) -> Callable:
        """``model``, compiled when the capture mode says so."""
        return torch.compile(model) if self.capture.startswith("compile") else model

    def _body(self, *tensors: torch.Tensor) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def _accumulate(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.stats[0].add_(loss.detach().float() * n)
        self.stats[1].add_((logits.detach().argmax(1) == y).sum())
        self.stats[2].add_(n)

    def read_stats(self) -> tuple[float, float, int]:
        """(mean loss, accuracy, images) since the last read, over every process; one host sync."""
        loss_sum, correct, count = distributed.sum_(self.stats).tolist()
        self.stats.zero_()
        n = max(count, 1.0)
        return loss_sum / n, correct / n, int(count)

    def _record(self, tensors: tuple[torch.Tensor, ...]) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream, then record the body into a graph over static inputs."""
        self._static = tuple(t.clone() for t in tensors)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._body(*self._static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        for o in self._optimizers:
            o.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._body(*self._static)
        return graph

    def _capture(self, tensors: tuple[torch.Tensor, ...]) -> bool:
        """Record the graph and undo the warm-up; if recording fails (an op that a graph cannot
        hold), undo the warm-up too, warn, and run eagerly (or compiled) from then on."""
        snapshot = StateSnapshot(self._modules, self._optimizers)
        try:
            self._graph = self._record(tensors)
        except Exception as exc:  # noqa: BLE001 - any failure to capture falls back
            self._static = None
            self._without_graph(f"CUDA-graph capture failed ({type(exc).__name__}: {exc})")
        snapshot.restore()
        self.stats.zero_()
        return self._graph is not None

    def __call__(self, *tensors: torch.Tensor) -> None:
        if not self.graphed:
            self._body(*tensors)
            return
        if self._graph is None and not self._capture(tensors):
            self._body(*tensors)
            return
        for static, t in zip(self._static, tensors):
            static.copy_(t, non_blocking=True)
        self._graph.replay()


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, precision: str = "fp32", device: torch.device = torch.device("cpu"),
    fold: bool = True, call: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` in eval mode over ``loader``; under torchrun each
    process evaluates its shard (a loader built with its rank) and the sums are added, so the
    figures are those of one process evaluating the whole set.

    ``fold``: run an inference copy with each BN folded into its conv
    (:func:`~nasgal.compiler.fuse.folded_for_inference`), one pass over every feature map
    fewer; the logits equal the unfolded model's up to float rounding. ``call(net, x)``: how to
    get the logits (default ``net(x)``, without an auxiliary head's), e.g. the supernet's
    ``net(x, arch)``.
    """
    was_training = model.training
    model.eval()
    net = folded_for_inference(model) if fold else model
    stats = torch.zeros(3, device=device)
    for x, y in loader:
        with autocast(device, precision):
            logits = call(net, x) if call is not None else split_output(net(x))[0]
        stats[0] += F.cross_entropy(logits.float(), y, reduction="sum")
        stats[1] += (logits.argmax(1) == y).sum()
        stats[2] += y.shape[0]
    model.train(was_training)
    loss_sum, correct, count = distributed.sum_(stats).tolist()
    n = max(count, 1.0)
    return loss_sum / n, correct / n
