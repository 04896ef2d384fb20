"""Code paths nasgal takes on the CPU only, and the switch that turns them off.

torch's CPU kernels (oneDNN and ATen's own) are fast for some layouts and shapes and slow for
others, where a GPU does not care. nasgal takes a faster path on the CPU where one gives the
same numbers: the depthwise convs' backward (:mod:`nasgal.compiler.depthwise`), the search
supernet's layouts (:mod:`nasgal.search.supernet`), and the gradient layouts the cells hand to
batch norm (:func:`contiguous_grad`). ``nasgal --torch-kernels`` or ``NASGAL_CPU_PATHS=0`` runs
the other devices' paths on the CPU too (to rule nasgal's out when something looks wrong, and
to measure them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: ``NASGAL_CPU_PATHS=0`` (or ``nasgal --torch-kernels``) runs the other devices' code paths on the CPU too.
ENV_SWITCH = "NASGAL_CPU_PATHS"
_state = {"cpu_paths": os.environ.get(ENV_SWITCH, "1").strip().lower() not in {"0", "no", "false", "off"}}


def cpu_paths(t: torch.Tensor) -> bool:
    """Whether the CPU-only code paths apply to a tensor: it is on the CPU and
    :func:`other_device_paths` is not in force."""
    return t.device.type == "cpu" and bool(_state["cpu_paths"])


def use_cpu_paths(on: bool) -> None:
    """Switch the CPU-only code paths on or off in this process (for benchmarks and tests; they
    give the same numbers either way)."""
    _state["cpu_paths"] = on


@contextmanager
def other_device_paths() -> Iterator[None]:
    """Run the code paths other devices take, on the CPU too: for counting on a CPU what a GPU
    would run (``benchmarks/search_step.py --count``/``--saved``) and for tests."""
    before = _state["cpu_paths"]
    use_cpu_paths(False)
    try:
        yield
    finally:
        use_cpu_paths(before)


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """channels_last when ``t`` is laid out so (and not also plain contiguous), else contiguous:
    the layout a copy of ``t`` should keep."""
    cl = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


def backward_paths(*tensors: torch.Tensor) -> bool:
    """Whether a CPU-only backward applies to an op on ``tensors``: the CPU paths are on for the
    first, a gradient will flow through some of them, and no compiler, exporter or tracer is
    recording (those see torch's own ops)."""
    return (cpu_paths(tensors[0]) and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())


class _ContiguousGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.layout = memory_format_of(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=ctx.layout)


def contiguous_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself; on the CPU, its gradient is made contiguous in ``x``'s layout on the way back.

    A cell's outputs are concatenated along the channels, so the gradient of each comes back as
    a channel slice of the concatenation's: contiguous in no layout. torch's CPU batch norm
    backward (the last layer of almost every op) is 3-9x slower on such a gradient than on a
    contiguous one (measured, channels_last, 128 images of 28x28); one copy here makes the
    training step of the 5-cell DARTS_V2 network 1.3x faster. Elsewhere (other devices, no
    gradient, compiling, tracing) nothing is added to the graph.
    """
    return _ContiguousGrad.apply(x) if backward_paths(x) else x
